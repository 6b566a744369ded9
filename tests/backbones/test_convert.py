"""Each upstream checkpoint format, written from a random model, loads strictly and reproduces it.

Every test writes a tiny checkpoint in the upstream layout with ``torch.save`` and loads it back
through ``load_model(spec, weights=path)`` (resolution, sha256, torch.load weights_only,
conversion, strict load), then compares the embedding to the source model's.
"""

from __future__ import annotations

import pytest
import torch

from embedstore.backbones import load_model
from embedstore.backbones.convert import (
    CONVERTERS,
    convert_byol,
    convert_dino,
    convert_efficientnet_lite_timm,
    convert_moco,
    convert_simclr_v1,
    convert_swav,
    convert_torchvision,
    convert_vissl,
    detect_and_convert,
    detect_format,
    unwrap,
)
from embedstore.errors import CheckpointError

from .conftest import randomize_bn, tiny_densenet, tiny_resnet

VisionTransformer = pytest.importorskip("timm.models").VisionTransformer

X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _resnet_trunk(seed: int = 5) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(tiny_resnet(), seed)


def _head(prefix: str, d_in: int = 512, d_out: int = 7) -> dict[str, torch.Tensor]:
    return {f"{prefix}weight": torch.randn(d_out, d_in), f"{prefix}bias": torch.randn(d_out)}


def _tiny_vit() -> torch.nn.Module:
    """timm's VisionTransformer at DINO's key layout (cls_token, pos_embed, patch_embed.proj,
    blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm), no head."""
    return VisionTransformer(
        img_size=64, patch_size=16, embed_dim=48, depth=4, num_heads=3, num_classes=0
    )


def _roundtrip(tmp_path, spec, ckpt, source: torch.nn.Module) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(ckpt, path)
    loaded = load_model(spec, weights=path)
    assert loaded.weights_path == str(path)
    assert loaded.weights_sha256 is not None and len(loaded.weights_sha256) == 64
    assert not loaded.model.training
    with torch.no_grad():
        got, want = loaded.model(X), source.eval()(X)
    assert got.shape == (2, spec.dim)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_torchvision_resnet_drops_fc(tmp_path, make_spec):
    trunk = _resnet_trunk()
    ckpt = {**trunk.state_dict(), **_head("fc.")}
    _roundtrip(tmp_path, make_spec(convert_torchvision), ckpt, trunk)
    assert detect_format(ckpt) == "torchvision"


def test_torchvision_densenet_old_norm_dot_keys(tmp_path, make_spec):
    torch.manual_seed(3)
    trunk = randomize_bn(tiny_densenet())
    old = {}
    for k, v in trunk.state_dict().items():  # the 2017 files spell norm.1 / conv.2 ...
        if k.endswith("num_batches_tracked"):  # ... and predate BatchNorm's step counter
            continue
        for a in ("norm1", "norm2", "conv1", "conv2"):
            if "denselayer" in k and f".{a}." in k:
                k = k.replace(f".{a}.", f".{a[:-1]}.{a[-1]}.")
        old[k] = v
    assert any(".norm.1." in k for k in old)
    ckpt = {**old, **_head("classifier.", d_in=trunk.features.norm5.num_features)}
    spec = make_spec(convert_torchvision, builder=tiny_densenet, dim=32)
    _roundtrip(tmp_path, spec, ckpt, trunk)


def test_simclr_v1_tonylins_state_dict_wrapper(tmp_path, make_spec):
    trunk = _resnet_trunk()
    ckpt = {"state_dict": {**trunk.state_dict(), **_head("fc.", d_out=1000)}}
    _roundtrip(tmp_path, make_spec(convert_simclr_v1), ckpt, trunk)


def test_dino_resnet_release_without_fc(tmp_path, make_spec):
    trunk = _resnet_trunk()
    _roundtrip(tmp_path, make_spec(convert_dino), trunk.state_dict(), trunk)


def test_dino_vit_release_loads_into_timm_vit(tmp_path, make_spec):
    torch.manual_seed(7)
    source = _tiny_vit()
    spec = make_spec(convert_dino, builder=_tiny_vit, dim=48)
    _roundtrip(tmp_path, spec, source.state_dict(), source)


def test_dino_full_checkpoint_takes_teacher(tmp_path, make_spec):
    torch.manual_seed(9)
    teacher, student = _tiny_vit(), _tiny_vit()
    ckpt = {
        "teacher": {
            **{f"backbone.{k}": v for k, v in teacher.state_dict().items()},
            **_head("head.mlp.0.", d_in=48),
            "head.last_layer.weight_g": torch.ones(10, 1),
        },
        "student": {f"module.backbone.{k}": v for k, v in student.state_dict().items()},
        "epoch": 100,
    }
    spec = make_spec(convert_dino, builder=_tiny_vit, dim=48)
    _roundtrip(tmp_path, spec, ckpt, teacher)
    assert detect_format(ckpt) == "dino"


def test_swav_module_prefix_projection_and_prototypes(tmp_path, make_spec):
    trunk = _resnet_trunk()
    ckpt = {
        **{f"module.{k}": v for k, v in trunk.state_dict().items()},
        **_head("module.projection_head.0.", d_out=2048),
        "module.prototypes.weight": torch.randn(3000, 128),
    }
    _roundtrip(tmp_path, make_spec(convert_swav), ckpt, trunk)
    assert detect_format(ckpt) == "swav"


def test_moco_keeps_encoder_q_drops_encoder_k_queue_mlp(tmp_path, make_spec):
    trunk, other = _resnet_trunk(5), _resnet_trunk(6)
    sd = {f"module.encoder_q.{k}": v for k, v in trunk.state_dict().items()}
    sd |= {f"module.encoder_k.{k}": v for k, v in other.state_dict().items()}
    sd |= _head("module.encoder_q.fc.0.", d_out=512) | _head("module.encoder_q.fc.2.", 512, 128)
    sd |= _head("module.encoder_k.fc.0.", d_out=512)
    sd |= {"module.queue": torch.randn(128, 64), "module.queue_ptr": torch.zeros(1)}
    ckpt = {"epoch": 800, "arch": "resnet50", "state_dict": sd}
    _roundtrip(tmp_path, make_spec(convert_moco), ckpt, trunk)
    assert detect_format(ckpt) == "moco"


def test_moco_cxr_densenet(tmp_path, make_spec):
    torch.manual_seed(4)
    trunk = randomize_bn(tiny_densenet())
    sd = {f"module.encoder_q.{k}": v for k, v in trunk.state_dict().items()}
    sd |= _head("module.encoder_q.classifier.0.", d_in=32, d_out=32)
    sd |= _head("module.encoder_q.classifier.2.", d_in=32, d_out=128)
    sd |= {"module.queue": torch.randn(128, 16)}
    spec = make_spec(convert_moco, builder=tiny_densenet, dim=32)
    _roundtrip(tmp_path, spec, {"state_dict": sd}, trunk)


@pytest.mark.parametrize("layout", ["plain", "online_backbone", "online_network"])
def test_byol_conversions(tmp_path, make_spec, layout):
    trunk = _resnet_trunk()
    sd = trunk.state_dict()
    if layout == "plain":  # chigur/byol-convert: torchvision keys (+ fc from the linear eval)
        ckpt = {**sd, **_head("fc.", d_out=1000)}
    elif layout == "online_backbone":
        ckpt = {"online_backbone": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
    else:
        ckpt = {
            **{f"online_network.encoder.{k}": v for k, v in sd.items()},
            **_head("online_network.projector.net.0.", d_out=64),
            **_head("predictor.net.0.", d_in=64, d_out=64),
            **{f"target_network.encoder.{k}": v + 1 for k, v in sd.items()},
        }
        assert detect_format(ckpt) == "byol"
    _roundtrip(tmp_path, make_spec(convert_byol), ckpt, trunk)


def test_vissl_pirl_classy_state_dict_trunk(tmp_path, make_spec):
    trunk = _resnet_trunk()
    ckpt = {
        "phase_idx": 799,
        "classy_state_dict": {
            "base_model": {
                "model": {
                    "trunk": {f"_feature_blocks.{k}": v for k, v in trunk.state_dict().items()},
                    "heads": _head("0.clf.0.", d_out=128),
                }
            }
        },
    }
    _roundtrip(tmp_path, make_spec(convert_vissl), ckpt, trunk)
    assert detect_format(ckpt) == "vissl"


def test_efficientnet_lite_reference_layout_to_timm(tmp_path, make_spec):
    """The reference package's keys (written from timm's model through the inverse mapping
    spelled out here block by block) convert back onto timm's tf_efficientnet_lite0."""
    import timm

    torch.manual_seed(2)
    trunk = randomize_bn(timm.create_model("tf_efficientnet_lite0", num_classes=0))
    repeats, flat = (1, 2, 2, 3, 3, 4, 1), []
    for stage, n in enumerate(repeats):
        flat += [(stage, b) for b in range(n)]
    ir = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
          "conv_pwl": "_project_conv", "bn3": "_bn2"}  # fmt: skip
    ds = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
    top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1"}
    ref = {}
    for k, v in trunk.state_dict().items():
        parts = k.split(".")
        if parts[0] == "blocks":
            i = flat.index((int(parts[1]), int(parts[2])))
            names = ds if i == 0 else ir
            ref[f"_blocks.{i}.{names[parts[3]]}.{'.'.join(parts[4:])}"] = v
        else:
            ref[f"{top[parts[0]]}.{'.'.join(parts[1:])}"] = v
    ckpt = {**ref, **_head("_fc.", d_in=1280, d_out=1000)}
    assert detect_format(ckpt) == "efficientnet_lite"
    out = convert_efficientnet_lite_timm(ckpt)
    assert out.keys() == trunk.state_dict().keys()
    spec = make_spec(
        convert_efficientnet_lite_timm,
        builder=lambda: timm.create_model("tf_efficientnet_lite0", num_classes=0),
        dim=1280,
    )
    _roundtrip(tmp_path, spec, ckpt, trunk)


def test_detect_and_convert_matches_each_specific_converter():
    sd = _resnet_trunk().state_dict()
    cases = {
        "torchvision": {**sd, **_head("fc.")},
        "swav": {
            **{f"module.{k}": v for k, v in sd.items()},
            "module.prototypes.weight": torch.randn(30, 8),
        },
        "moco": {"state_dict": {f"module.encoder_q.{k}": v for k, v in sd.items()}},
        "vissl": {
            "classy_state_dict": {
                "base_model": {
                    "model": {"trunk": {f"_feature_blocks.{k}": v for k, v in sd.items()}}
                }
            }
        },
        "dino": {"teacher": {f"backbone.{k}": v for k, v in sd.items()}},
        "byol": {"online_backbone": dict(sd)},
    }
    for fmt, ckpt in cases.items():
        assert detect_format(ckpt) == fmt
        out = detect_and_convert(ckpt)
        assert out.keys() == sd.keys(), fmt
        assert out == CONVERTERS[fmt](ckpt)


def test_converters_are_pure():
    sd = {f"module.{k}": v for k, v in _resnet_trunk().state_dict().items()}
    before = dict(sd)
    convert_swav(sd)
    assert sd == before and list(sd) == list(before)


def test_unwrap_names_what_it_found_when_no_state_dict():
    with pytest.raises(CheckpointError, match=r"cannot find a state dict.*'epoch'"):
        unwrap({"epoch": 3, "optimizer_name": "sgd"})
    with pytest.raises(CheckpointError, match="base_model"):
        unwrap({"classy_state_dict": {"other": {}}})
