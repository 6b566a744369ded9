"""A researcher's own checkpoint without Python (a TOML backbones file, ``--backbones-file``),
through the Python API (``embedstore.register_backbone``), and from a plugin package's entry
point; plus the CLI's one-line errors for names, hashes and wrong architectures."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import embedstore
from embedstore import open_store
from embedstore.backbones import get_backbone, load_backbones_file, load_model, registry, unregister
from embedstore.cli.main import app
from embedstore.errors import SourceError

timm = pytest.importorskip("timm")
runner = CliRunner()
VIT = "test_vit.r160_in1k"


@pytest.fixture
def lightning_vit(tmp_path):
    """A random test_vit saved as a PyTorch Lightning checkpoint (``model.`` under state_dict)."""
    torch.manual_seed(31)
    model = timm.create_model(VIT, num_classes=0).eval()
    path = tmp_path / "ckpt" / "last.ckpt"
    path.parent.mkdir()
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 9,
         "global_step": 90, "pytorch-lightning_version": "2.4.0"}, path,
    )  # fmt: skip
    return model, path


def _images(root, n=3):
    rng = np.random.default_rng(4)
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def test_backbones_file_through_the_cli(tmp_path, lightning_vit):
    model, ckpt = lightning_vit
    toml = tmp_path / "backbones.toml"
    toml.write_text(
        f'[backbones."mylab_vit.own_test"]\narch = "timm/{VIT}"\nweights = "ckpt/last.ckpt"\n'
        'recipe = "cls_mean"\nlicence = "CC-BY-4.0"\n'
        'preprocess = { resize = 72, crop = 64, interpolation = "bicubic", '
        "mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25] }\n"
    )
    store = tmp_path / "s.zarr"
    src = _images(tmp_path / "img")
    try:
        result = runner.invoke(
            app,
            ["extract", str(store), "--dataset", "d", "--source", str(src), "--backbone",
             "mylab_vit.own_test", "--backbones-file", str(toml), "--dtype", "float32",
             "--workers", "0", "--device", "cpu"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        spec = get_backbone("mylab_vit.own_test")
        assert spec.dim == 2 * model.num_features and spec.licence == "CC-BY-4.0"
        # by hand: 90x70 -> short side 72 (92x72, torchvision's int()), centre 64x64 crop
        x = torch.stack(
            [((torch.from_numpy(np.array(Image.open(src / i).resize((92, 72), Image.BICUBIC)
              .crop((14, 4, 78, 68)))).permute(2, 0, 1).float() / 255 - 0.5) / 0.25)
             for i in open_store(store).ids("d")]
        )  # fmt: skip
        with torch.no_grad():
            tokens = model.forward_features(x)
        want = torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], -1).numpy()
        got = open_store(store).embeddings("d", "mylab_vit.own_test")
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)
        prov = open_store(store).array_info("d", "mylab_vit.own_test").provenance
        assert (
            prov["weights_path"] == str(ckpt.resolve()) and prov["weights_origin"] == "entry-file"
        )
        assert prov["weights_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        result = runner.invoke(app, ["backbones", "--json", "--backbones-file", str(toml)])
        rows = {r["name"]: r for r in json.loads(result.stdout)}
        assert rows["mylab_vit.own_test"]["recipe"] == "cls_mean"
        assert rows["mylab_vit.own_test"]["weights_local"] is True  # the file beside the TOML
        _no_timm_weights_description(prov)
        ckpt.rename(ckpt.with_suffix(".moved"))
        result = runner.invoke(app, ["backbones", "--json", "--backbones-file", str(toml)])
        assert {r["name"]: r for r in json.loads(result.stdout)}["mylab_vit.own_test"][
            "weights_local"
        ] is False
    finally:
        unregister("mylab_vit.own_test")


def _no_timm_weights_description(prov: dict) -> None:
    """The provenance of an array made from the user's checkpoint describes the architecture and
    the file used, not timm's published weights of the default tag (licence, paper, hub id)."""
    for cfg in (prov["backbone"]["timm_pretrained_cfg"], prov["timm_pretrained_cfg_used"]):
        assert not {"license", "paper_ids", "paper_name", "hf_hub_id", "url", "tag"} & set(cfg)
        assert cfg["weights"].startswith("own checkpoint") and cfg["architecture"]
    assert prov["backbone"]["hub_id"] is None


def test_timm_name_with_own_weights_records_what_was_used(tmp_path, lightning_vit):
    """timm/<name> --weights NAME=own.ckpt: timm's default tag's licence and hub id are not
    recorded as if its weights had been loaded."""
    timm_cfg = timm.create_model(VIT, pretrained=False).pretrained_cfg
    assert timm_cfg.get("license") or timm_cfg.get("hf_hub_id")  # there is something to leave out
    _, ckpt = lightning_vit
    store = tmp_path / "s.zarr"
    result = runner.invoke(
        app,
        ["extract", str(store), "-d", "d", "--source", str(_images(tmp_path / "img")), "-b",
         f"timm/{VIT}", "--weights", f"timm/{VIT}={ckpt}", "--workers", "0", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    prov = open_store(store).array_info("d", f"timm--{VIT}").provenance
    _no_timm_weights_description(prov)
    assert prov["backbone"]["licence"] is None and prov["weights_origin"] == "explicit"
    assert prov["backbone"]["timm_pretrained_cfg"]["preprocessing_defaults_from_tag"]


def test_register_backbone_python_api(lightning_vit):
    model, ckpt = lightning_vit
    try:
        spec = embedstore.register_backbone(
            "mylab_vit.api_test", VIT, weights=ckpt, format="auto", recipe="last2"
        )
        assert spec.dim == 2 * model.num_features
        assert get_backbone("mylab_vit.api_test") is spec
        with torch.no_grad():
            x = torch.rand(1, 3, 160, 160)
            got = load_model(spec).model(x)
            want = torch.cat([p[:, 0] for _, p in model.forward_intermediates(
                x, indices=2, return_prefix_tokens=True, norm=True, output_fmt="NLC",
                intermediates_only=True)], -1)  # fmt: skip
        torch.testing.assert_close(got, want)
    finally:
        unregister("mylab_vit.api_test")


def test_bad_backbones_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[backbones."x.y"]\narch = "timm/resnet18"\ncolour = "red"\n')
    with pytest.raises(SourceError, match=r"unknown keys \['colour'\]"):
        load_backbones_file(bad)
    bad.write_text('[backbones."x.y"]\narch = "timm/resnet18"\nformat = "keras"\n')
    with pytest.raises(SourceError, match="format 'keras' is unknown"):
        load_backbones_file(bad)
    bad.write_text("backbones = 3\n")
    with pytest.raises(SourceError, match=r"no \[backbones"):
        load_backbones_file(bad)
    result = runner.invoke(app, ["backbones", "--backbones-file", str(tmp_path / "none.toml")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_entry_point_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "embedstore_test_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "embedstore_test_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: embedstore-test-plugin\nVersion: 0.1\n"
    )
    (site / "embedstore_test_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[embedstore.backbones]\ntiny = embedstore_test_plugin:entries\n"
    )
    (site / "embedstore_test_plugin.py").write_text(
        "from embedstore.backbones import BackboneSpec, Preprocess\n"
        "import torch\n"
        "def entries():\n"
        "    return [BackboneSpec('plugin.tiny_test', 'linear', 3, lambda: torch.nn.Flatten(),"
        " None, dict, Preprocess(resize=4, crop=1))]\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    try:
        spec = get_backbone("plugin.tiny_test")
        assert spec.dim == 3 and load_model(spec).model(torch.ones(2, 3, 1, 1)).shape == (2, 3)
    finally:
        unregister("plugin.tiny_test")


def test_cli_errors_are_one_line(tmp_path):
    src = _images(tmp_path / "img", n=2)
    base = ["extract", str(tmp_path / "s.zarr"), "--dataset", "d", "--source", str(src)]
    result = runner.invoke(app, [*base, "--backbone", "timm/convnext_tinyy"])
    assert result.exit_code == 1 and "convnext_tiny" in result.output
    assert "Traceback" not in result.output
    fake = tmp_path / "pretrained_bm.pt"
    torch.manual_seed(1)
    xcit = timm.create_model("xcit_nano_12_p16_224", num_classes=0)
    torch.save({f"backbone.{k}": v for k, v in xcit.state_dict().items()}, fake)
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    name = "xcit_small_12_p8.sparsam_bm"
    args = [*base, "--backbone", name, "--weights", f"{name}={fake}", "--workers", "0"]
    result = runner.invoke(app, args)
    msg = " ".join(result.output.split())
    assert result.exit_code == 1 and digest in msg and "4c641d05" in msg
    assert "--unverified-weights" in msg
    result = runner.invoke(app, [*args, "--unverified-weights"])  # now: the wrong architecture
    msg = " ".join(result.output.split())
    assert result.exit_code == 1 and "does not fit timm's xcit_small_12_p8_224" in msg
    assert "'cls_token [1, 1, 128] vs [1, 1, 384]'" in msg and "Traceback" not in result.output
