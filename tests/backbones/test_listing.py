"""`embedstore backbones` lists entries from facts they state as plain data (no torch, no timm):
each literal must equal what the built model gives."""

from __future__ import annotations

import pytest
import torch

from embedstore.backbones import get_backbone, list_backbones, list_entries
from embedstore.backbones.zoo import _TORCHVISION, LAZY_ZOO


def _listed_config(spec) -> dict:
    out = spec.config()
    out.pop("timm_pretrained_cfg", None)
    return out


@pytest.mark.parametrize("name", sorted(LAZY_ZOO))
def test_listed_timm_entry_equals_the_entry_timm_resolves(name):
    from embedstore.backbones.embedder import Embedder
    from embedstore.backbones.timm_models import meta_model

    listed = LAZY_ZOO[name].listing
    resolved = get_backbone(name)
    assert _listed_config(listed) == _listed_config(resolved)
    # The literal dim against the built model's own forward (meta device: shapes, no memory).
    model = meta_model(resolved.arch, dict(resolved.model_kwargs))
    size = int(resolved.preprocess.crop or 224)
    with torch.no_grad():
        out = Embedder(model, resolved.recipe)(torch.empty(1, 3, size, size, device="meta"))
    assert out.shape[-1] == listed.dim


@pytest.mark.parametrize("arch", sorted(_TORCHVISION))
def test_torchvision_dims_equal_the_built_models_output(arch):
    builder, dim, _ = _TORCHVISION[arch]
    with torch.no_grad():
        out = builder().eval()(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, dim)


def test_listing_equals_the_resolved_registry():
    listed = {s.name: _listed_config(s) for s in list_entries()}
    resolved = {s.name: _listed_config(s) for s in list_backbones()}
    assert listed == resolved
