"""Any timm model as a backbone (``timm/<name>``), from a local file, with timm's own forward and
timm's own transform as the references; recipes; strictness; unknown names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from embedstore.backbones import get_backbone, load_model
from embedstore.data import ImageTransform
from embedstore.errors import CheckpointError, InvalidDataError, UnknownBackboneError

timm = pytest.importorskip("timm")
from timm.data import create_transform, resolve_model_data_config  # noqa: E402

VIT = "test_vit.r160_in1k"  # timm's own 0.3M-parameter test ViT (160 px, 1 class token)
CNN = "test_efficientnet.r160_in1k"


def _random_timm(name: str, seed: int, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, **kw).eval()
    for m in model.modules():  # non-trivial BN statistics, so a lost buffer shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def _image(tmp_path, w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    path = tmp_path / f"img{seed}.png"
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return Image.open(path)


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory):
    """A random test_vit with its 1000-class head, saved as a plain state dict."""
    model = _random_timm(VIT, seed=3)
    path = tmp_path_factory.mktemp("vit") / "vit.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_timm_name_loads_offline_from_local_file_and_matches_timm(tmp_path, vit_file):
    model, path = vit_file
    spec = get_backbone(f"timm/{VIT}")
    assert spec.name == f"timm--{VIT}" and "/" not in spec.name  # a store array name
    assert get_backbone(spec.name) is spec
    assert spec.source == "timm" and spec.arch == VIT and spec.recipe == "pooled"
    assert spec.dim == model.num_features == 64
    assert spec.preprocess.crop == 160 and spec.preprocess.interpolation == "bicubic"
    loaded = load_model(spec, weights=path)
    assert loaded.weights_path == str(path) and loaded.weights_origin == "explicit"
    assert loaded.verified is False  # no published hash for a file the user brings
    assert loaded.timm_pretrained_cfg["architecture"] == "test_vit"
    assert "state_dict" not in loaded.timm_pretrained_cfg
    images = [_image(tmp_path, 211, 173, 0), _image(tmp_path, 97, 240, 1)]
    ours = torch.stack([ImageTransform(spec.preprocess)(im) for im in images])
    reference = create_transform(**resolve_model_data_config(model))
    theirs = torch.stack([reference(im.convert("RGB")) for im in images])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    with torch.no_grad():  # timm's own pre-logits: forward_head(pre_logits=True)
        want = model.forward_head(model.forward_features(theirs), pre_logits=True)
        torch.testing.assert_close(loaded.model(ours), want, rtol=0, atol=1e-6)


def test_recipes_on_a_timm_vit(vit_file):
    model, path = vit_file
    x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tokens = model.forward_features(x)  # (B, 1 + N, C), after the final norm
        t = model.norm_pre(model._pos_embed(model.patch_embed(x)))
        per_block = []
        for block in model.blocks:  # DINO's get_intermediate_layers, written out
            t = block(t)
            per_block.append(model.norm(t)[:, 0])
    want = {
        "cls": tokens[:, 0],
        "mean": tokens[:, 1:].mean(1),
        "cls_mean": torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], -1),
        f"last{len(per_block)}": torch.cat(per_block, -1),
        "last1": per_block[-1],
    }
    for recipe, expected in want.items():
        spec = get_backbone(f"timm/{VIT}@{recipe}")
        assert spec.name == f"timm--{VIT}@{recipe}" and spec.dim == expected.shape[1]
        with torch.no_grad():
            got = load_model(spec, weights=path).model(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5, msg=recipe)
    with pytest.raises(InvalidDataError, match="unknown embedding recipe"):
        from embedstore.backbones.recipes import parse_recipe

        parse_recipe("cls+mean")


def test_gap_recipe_on_a_cnn_and_class_token_recipes_refused(tmp_path):
    model = _random_timm(CNN, seed=4)
    path = tmp_path / "cnn.pth"
    torch.save(model.state_dict(), path)
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model.forward_features(x).mean((2, 3))
        got = load_model(f"timm/{CNN}@gap", weights=path).model(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    with pytest.raises(InvalidDataError, match="has none"):
        get_backbone(f"timm/{CNN}@cls")
    with pytest.raises(InvalidDataError, match="torchvision|builder"):
        get_backbone("mobilenet_v2.tv_in1k@cls")


def test_wrong_architecture_and_missing_keys_are_named(tmp_path, vit_file):
    _, vit_path = vit_file
    with pytest.raises(CheckpointError, match=r"does not fit timm's test_efficientnet.*keys"):
        load_model(f"timm/{CNN}", weights=vit_path)
    sd = torch.load(vit_path, weights_only=True)
    del sd["blocks.0.norm1.weight"]
    sd["extra.thing"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        load_model(f"timm/{VIT}", weights=path)
    msg = str(info.value)
    assert "missing keys (1: 'blocks.0.norm1.weight')" in msg
    assert "unexpected keys (1: 'extra.thing')" in msg


def test_wrappers_and_prefixes_of_own_checkpoints(tmp_path, vit_file):
    model, _ = vit_file
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = model.forward_head(model.forward_features(x), pre_logits=True)
    layouts = {
        "lightning": {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3,
                      "pytorch-lightning_version": "2.4.0"},
        "dino_teacher": {"teacher": {**{f"backbone.{k}": v for k, v in sd.items()},
                                     "head.mlp.0.weight": torch.zeros(8, 64)},
                         "student": {f"module.backbone.{k}": v + 1 for k, v in sd.items()}},
        "moco": {"state_dict": {f"module.encoder_q.{k}": v for k, v in sd.items()}},
        "compiled_ddp": {"model": {f"module._orig_mod.{k}": v for k, v in sd.items()}},
    }  # fmt: skip
    for label, ckpt in layouts.items():
        path = tmp_path / f"{label}.pth"
        torch.save(ckpt, path)
        with torch.no_grad():
            got = load_model(f"timm/{VIT}", weights=path).model(x)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6, msg=label)


def test_unknown_timm_names_suggest_the_closest():
    with pytest.raises(UnknownBackboneError, match="vit_small_patch16_224") as info:
        get_backbone("timm/vit_smal_patch16_224")
    assert "is not a timm model" in str(info.value)
    with pytest.raises(UnknownBackboneError, match=r"no pretrained tag 'dinoo'.*\.dino"):
        get_backbone("timm/vit_small_patch16_224.dinoo")
    with pytest.raises(UnknownBackboneError, match="timm/<timm name>"):
        get_backbone("not_a_backbone_at_all")


def test_local_timm_folder_by_name(tmp_path):
    """``timm/local-dir:<folder>``: timm's own syntax for a folder with config.json + weights."""
    from timm.models import save_for_hf

    model = _random_timm(CNN, seed=9)
    save_for_hf(model, tmp_path / "mine", safe_serialization=True)
    spec = get_backbone(f"timm/local-dir:{tmp_path / 'mine'}")
    assert "/" not in spec.name and spec.dim == model.num_features
    loaded = load_model(spec)
    assert loaded.weights_path == str(tmp_path / "mine" / "model.safetensors")
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(loaded.model(x), want, rtol=0, atol=1e-6)


def test_cli_extract_timm_name_with_local_weights(tmp_path, vit_file):
    from typer.testing import CliRunner

    from embedstore import open_store
    from embedstore.cli.main import app

    model, path = vit_file
    root = tmp_path / "img"
    for i, (w, h) in enumerate([(200, 150), (90, 170)]):
        (root / "ab"[i]).mkdir(parents=True)
        _image(root / "ab"[i], w, h, i)
    store = tmp_path / "s.zarr"
    result = CliRunner().invoke(
        app,
        ["extract", str(store), "--dataset", "d", "--source", str(root), "--backbone",
         f"timm/{VIT}", "--weights", f"timm/{VIT}={path}", "--dtype", "float32",
         "--workers", "0", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    opened = open_store(store)
    transform = create_transform(**resolve_model_data_config(model))
    with torch.no_grad():
        want = torch.cat(
            [model.forward_head(model.forward_features(
                transform(Image.open(root / i).convert("RGB"))[None]),
                pre_logits=True) for i in opened.ids("d")]
        ).numpy()  # fmt: skip
    np.testing.assert_allclose(opened.embeddings("d", f"timm--{VIT}"), want, rtol=0, atol=1e-5)
    prov = opened.array_info("d", f"timm--{VIT}").provenance
    assert prov["weights_path"] == str(path) and prov["weights_origin"] == "explicit"


def test_strict_load_messages_are_read_from_torch():
    """timm loads strictly when its config has no classifier to drop; torch's own message is
    turned into the named keys (missing, unexpected, shapes)."""
    from embedstore.backbones.timm_models import _torch_load_error

    layer = torch.nn.Linear(2, 3)
    with pytest.raises(RuntimeError) as info:
        layer.load_state_dict({"weight": torch.zeros(3, 2), "extra.w": torch.zeros(1)})
    assert _torch_load_error(str(info.value)) == (["bias"], ["extra.w"], "")
    with pytest.raises(RuntimeError) as info:
        layer.load_state_dict({"weight": torch.zeros(4, 2), "bias": torch.zeros(3)})
    missing, unexpected, shapes = _torch_load_error(str(info.value))
    assert (missing, unexpected) == ([], []) and "'weight [4, 2] vs [3, 2]'" in shapes
