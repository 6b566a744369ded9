"""Analysis records: one per (analysis, features, setting), frozen, JSON lines on disk.

They follow the probe records (``embedstore.results.records.ProbeResult``): a ``metrics`` dict of
``{"value", "ci_low", "ci_high"}``, the settings that produced them, the number of samples, the
backbones' provenance, and free-form ``extra``. An interrupted analysis resumes by reading its
``--out`` file back (:func:`read_records`) and skipping what :meth:`AnalysisResult.key` says is done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedstore._version import __version__
from embedstore.results.records import json_default as _json_default
from embedstore.results.records import read_records as read_all
from embedstore.results.records import write_jsonl

__all__ = [
    "AnalysisResult",
    "backbone_provenance",
    "mean_ci",
    "read_records",
    "write_records",
]


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis value: which analysis, which backbones, which setting, with what settings.

    ``analysis`` is "similarity", "invariance", "saliency" or "saliency_image" (one image's map,
    kept so that a resumed run can redraw its figure). ``features`` names the backbone(s): one
    for invariance and saliency, two for a similarity pair. ``setting`` is the transformation for
    invariance, the image id for saliency_image, "" otherwise.
    """

    analysis: str
    dataset: str
    features: tuple[str, ...]
    setting: str
    metrics: dict[str, dict[str, float | None]]
    settings: dict[str, Any]
    n: int
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_name(self) -> str:
        return "+".join(self.features)

    def key(self) -> str:
        """What a resumed run compares: the same analysis, backbones, setting and settings."""
        return json.dumps(
            [self.analysis, self.dataset, list(self.features), self.setting, self.settings],
            sort_keys=True,
            default=_json_default,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        out["kind"] = "analysis"
        out["embedstore_version"] = __version__
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalysisResult:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["features"] = tuple(d["features"])
        return cls(**d)


def write_records(results: Iterable[AnalysisResult], path: str | os.PathLike[str]) -> None:
    """Append records to a JSON-lines file, one line each, flushed per record (the probe
    records' writer: analysis and probe records may share one file)."""
    write_jsonl(results, path)


def read_records(path: str | os.PathLike[str]) -> list[AnalysisResult]:
    """The analysis records of a results file (probe records in the same file are skipped), by
    the one reader of :mod:`embedstore.results.records` and its torn-line rule."""
    return read_all(path, analysis=True, parse=AnalysisResult.from_dict)


def mean_ci(values: Sequence[float | None] | np.ndarray) -> dict[str, float | None]:
    """Mean with a normal 95% interval, mean ± 1.96·σ/√n (σ the sample std; the few-shot rule);
    None and non-finite values are left out."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"value": None, "ci_low": None, "ci_high": None}
    mean = float(v.mean())
    if len(v) < 2:
        return {"value": mean, "ci_low": None, "ci_high": None}
    half = 1.96 * float(v.std(ddof=1)) / float(np.sqrt(len(v)))
    return {"value": mean, "ci_low": mean - half, "ci_high": mean + half}


def backbone_provenance(info_provenance: dict[str, Any]) -> dict[str, Any]:
    """The parts of a stored array's provenance that identify the backbone that made it."""
    keep = (
        "backbone", "weights_sha256", "weights_path", "extracted_at", "source", "dtype",
        "computed_by", "imported",  # these two: embeddings brought in with `embedstore add`
    )  # fmt: skip
    return {k: info_provenance[k] for k in keep if k in info_provenance}
