"""Named pretrained backbones (``arch.tag``) on timm: registry, checkpoint conversion, weights,
embedding recipes, loading.

``load_model("resnet50.dino")`` returns a ``LoadedBackbone`` whose ``model`` maps (B, 3, H, W)
float images to (B, dim) embeddings; the entry's ``preprocess`` says how to make those images.
Besides the built-in entries (``zoo.py``, registered on import; timm ones resolved on first use),
any timm model is a backbone as ``timm/<timm name>``, any timm entry can be read with another
recipe as ``<name>@<recipe>``, and own checkpoints register through ``register_backbone``,
``load_backbones_file`` (TOML) or the ``embedstore.backbones`` entry-point group.

The modules form layers; each imports only those below it (the import-linter contract
``backbones-layers``; torch is imported by the lower torch modules only when first used):

- ``loading`` (build a backbone, load its weights), ``userfile`` (own entries);
- ``zoo`` (the built-in entries, registered on import);
- ``registry`` (names to specs, plugins; builds ``timm/`` and ``@recipe`` specs);
- ``hf_models`` (entries of Hugging Face repos made for transformers / open_clip);
- ``timm_models`` (specs and models on timm);
- ``embedder`` (recipes read from a model), ``weights`` (checkpoint files), ``archs``
  (torchvision);
- ``specs`` (the entry dataclasses), ``recipes`` (recipe names), ``convert`` (checkpoint
  converters), ``hub`` (the Hugging Face cache).
"""

from __future__ import annotations

from embedstore.backbones import zoo as _zoo  # noqa: F401  (registers the built-in entries)
from embedstore.backbones.hub import hub_cached
from embedstore.backbones.recipes import RECIPES
from embedstore.backbones.registry import (
    check_name,
    get_backbone,
    list_backbones,
    list_entries,
    list_names,
    register,
    unregister,
)
from embedstore.backbones.specs import BackboneSpec, Preprocess, WeightsSource
from embedstore.backbones.userfile import load_backbones_file, register_backbone
from embedstore.backbones.weights import weights_available as _weights_available_for_source
from embedstore.names import store_name

__all__ = [
    "BackboneSpec",
    "Preprocess",
    "WeightsSource",
    "LoadedBackbone",
    "register",
    "unregister",
    "check_name",
    "get_backbone",
    "list_backbones",
    "list_entries",
    "list_names",
    "load_model",
    "store_name",
    "register_backbone",
    "load_backbones_file",
    "RECIPES",
    "weights_available",
]


def weights_available(spec: BackboneSpec | str) -> bool:
    """True when the entry's weights are on this machine (hub cache or installed package) or it
    needs none; never touches the network."""
    if isinstance(spec, str):
        spec = get_backbone(spec)
    if spec.weights is None and spec.hub_id:
        return hub_cached(spec.hub_id)
    return _weights_available_for_source(spec.weights)


def __getattr__(name: str):
    """``load_model`` and ``LoadedBackbone`` import torch: loaded on first use (PEP 562), so that
    listing the registry (`embedstore backbones`) imports no torch, torchvision or timm."""
    if name in ("load_model", "LoadedBackbone"):
        from embedstore.backbones import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
