"""What features encode (Anton et al. 2022 §4.4, after Ericsson et al. 2021): invariance to
image transformations and occlusion saliency (both run a backbone over images, beside
``embedstore.extract``), and backbone similarity (CKA, from the store alone).

``similarity`` and ``records`` need only numpy; ``invariance`` and ``saliency`` (torch) load on
first use, so ``from embedstore.analyze import backbone_similarity`` stays light.
"""

from __future__ import annotations

from embedstore.analyze.records import AnalysisResult, read_records, write_records
from embedstore.analyze.similarity import SimilarityMatrix, backbone_similarity, linear_cka

__all__ = [
    "AnalysisResult",
    "SimilarityMatrix",
    "backbone_similarity",
    "linear_cka",
    "read_records",
    "write_records",
    "TRANSFORMS",
    "evaluate_invariance",
    "whitening",
    "attentive_diffusion",
    "evaluate_saliency",
    "occlusion_map",
]

_LAZY = {
    "TRANSFORMS": "embedstore.analyze.invariance",
    "evaluate_invariance": "embedstore.analyze.invariance",
    "whitening": "embedstore.analyze.invariance",
    "attentive_diffusion": "embedstore.analyze.saliency",
    "evaluate_saliency": "embedstore.analyze.saliency",
    "occlusion_map": "embedstore.analyze.saliency",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedstore.analyze' has no attribute '{name}'")
