"""The registry and load_model: strict-load errors, names, random backbones, the real demo files."""

from __future__ import annotations

import functools

import pytest
import torch

from embedstore.backbones import (
    BackboneSpec,
    get_backbone,
    list_backbones,
    load_model,
    register,
    unregister,
    weights_available,
)
from embedstore.backbones.archs import resnet
from embedstore.backbones.convert import convert_torchvision
from embedstore.errors import CheckpointError, InvalidDataError, UnknownBackboneError

from .conftest import randomize_bn, tiny_resnet


@functools.cache
def _demo(name: str):
    """Each real demo backbone loaded once (the first forward pass is the slow part)."""
    return load_model(name)


def _random_spec(name: str = "resnet18.random_test") -> BackboneSpec:
    return BackboneSpec(
        name=name,
        arch="resnet18",
        dim=512,
        builder=lambda: resnet(18),
        weights=None,
        convert=convert_torchvision,
    )


def test_missing_and_unexpected_keys_are_named_with_counts(tmp_path, make_spec):
    sd = randomize_bn(tiny_resnet()).state_dict()
    del sd["layer4.0.bn2.running_var"], sd["conv1.weight"]
    sd["extra.thing"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        load_model(make_spec(convert_torchvision, name="r18.bad"), weights=path)
    msg = str(info.value)
    assert "'r18.bad'" in msg
    assert "missing keys (2: 'conv1.weight', 'layer4.0.bn2.running_var')" in msg
    assert "unexpected keys (1: 'extra.thing')" in msg


def test_many_bad_keys_show_first_few_and_count(tmp_path, make_spec):
    sd = {f"module.encoder_q.{k}": v for k, v in tiny_resnet().state_dict().items()}  # wrong fmt
    path = tmp_path / "moco.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"missing keys \(\d+: .* … and \d+ more\)"):
        load_model(make_spec(lambda c: dict(c)), weights=path)


def test_wrong_architecture_names_shape_mismatch(tmp_path, make_spec):
    path = tmp_path / "r18.pth"
    torch.save(resnet(18).state_dict(), path)  # more blocks than the tiny one
    with pytest.raises(CheckpointError, match=r"unexpected keys \(48: .layer1.1.conv1.weight."):
        load_model(make_spec(convert_torchvision), weights=path)
    sd = tiny_resnet().state_dict()
    sd["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"conv1.weight \(64, 3, 3, 3\) vs \(64, 3, 7, 7\)"):
        load_model(make_spec(convert_torchvision), weights=path)


def test_register_twice_raises_and_unknown_suggests():
    spec = _random_spec()
    register(spec)
    try:
        with pytest.raises(InvalidDataError, match="already registered"):
            register(spec)
        assert get_backbone("resnet18.random_test") is spec
    finally:
        unregister(spec.name)
    with pytest.raises(UnknownBackboneError, match="did you mean 'resnet50.dino'"):
        get_backbone("resnet50.dion")


def test_zoo_entries():
    names = {s.name for s in list_backbones()}
    assert {
        "resnet18.tv_in1k",
        "resnet50.tv_in1k",
        "densenet121.tv_in1k",
        "resnet50.dino",
        "resnet50.swav",
        "resnet50.simclr_v1",
        "resnet50.mocov2",
        "resnet50.byol",
        "resnet50.pirl",
        "vit_small_patch16.dino",
        "vit_small_patch16.dino_last4",
        "vit_base_patch16.dino",
        "vit_base_patch16.dino_last4",
        "resnet18.moco_cxr",
        "densenet121.moco_cxr",
        "mobilenet_v2.tv_in1k",
        "efficientnet_lite0.in1k",
        "xcit_small_12_p8.sparsam_bm",
        "xcit_small_12_p8.sparsam_endo",
        "xcit_small_12_p8.sparsam_isic",
        "vit_small_patch14_dinov2.lvd142m",
        "vit_small_patch14_dinov2.lvd142m_linear",
        "vit_base_patch14_dinov2.lvd142m",
        "vit_base_patch14_dinov2.lvd142m_linear",
    } <= names
    dims = {s.name: s.dim for s in list_backbones()}
    assert dims["vit_small_patch16.dino_last4"] == 4 * dims["vit_small_patch16.dino"] == 1536
    assert dims["vit_base_patch16.dino_last4"] == 3072
    assert get_backbone("resnet50.simclr_v1").preprocess.mean is None
    assert dims["xcit_small_12_p8.sparsam_bm"] == 384  # XCiT-S12/8 class token
    assert dims["vit_small_patch14_dinov2.lvd142m_linear"] == 2 * 384  # class + mean patch
    for s in list_backbones():
        assert (s.weights is not None or s.hub_id) and s.config()["name"] == s.name
        w = s.weights
        if w and w.url and "download.pytorch.org" in w.url:
            assert w.sha256_prefix and w.sha256_prefix in w.filename


def test_random_backbone_is_deterministic_and_leaves_global_rng_alone():
    spec = _random_spec()
    torch.manual_seed(123)
    a = load_model(spec)
    after = torch.rand(1)
    torch.manual_seed(123)
    b = load_model(spec)
    assert torch.equal(after, torch.rand(1))
    assert a.weights_path is None and a.weights_sha256 is None
    assert weights_available(spec)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ya, yb = a.model(x), b.model(x)
    assert ya.shape == (2, 512) and torch.equal(ya, yb)
    assert not a.model.training and not any(p.requires_grad for p in a.model.parameters())


@pytest.mark.parametrize("name", ["mobilenet_v2.tv_in1k", "efficientnet_lite0.in1k"])
def test_real_demo_checkpoints_load_offline(name):
    spec = get_backbone(name)
    assert weights_available(spec)
    loaded = _demo(name)
    assert loaded.weights_sha256 == spec.weights.sha256  # verified against the recorded hash
    assert loaded.weights_path.endswith(spec.weights.filename)
    with torch.no_grad():
        y = loaded.model(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert y.shape == (1, 1280) and torch.isfinite(y).all() and y.abs().sum() > 0


def test_efficientnet_lite0_matches_reference_package():
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    loaded = _demo("efficientnet_lite0.in1k")
    ref = ref_pkg.EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(loaded.weights_path, map_location="cpu", weights_only=True))
    ref._fc = torch.nn.Identity()
    x = torch.rand(
        2, 3, 64, 64, generator=torch.Generator().manual_seed(1)
    )  # even sizes: same pads
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), ref.eval()(x), rtol=0, atol=1e-5)


def test_mobilenet_matches_torchvision_with_its_head():
    from torchvision import models

    loaded = _demo("mobilenet_v2.tv_in1k")
    full = models.mobilenet_v2(weights=None)
    full.load_state_dict(torch.load(loaded.weights_path, map_location="cpu", weights_only=True))
    full.eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # classifier(embedding) == torchvision logits: the head was all we cut
        torch.testing.assert_close(full.classifier(loaded.model(x)), full(x))
