"""`embedstore backbones` through Typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from embedstore.backbones import list_backbones
from embedstore.cli.main import app

runner = CliRunner()


def test_backbones_json_lists_every_entry():
    result = runner.invoke(app, ["backbones", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {s.name for s in list_backbones()}
    mob = rows["mobilenet_v2.tv_in1k"]
    assert mob["dim"] == 1280 and mob["arch"] == "mobilenet_v2" and mob["weights_local"] is True
    assert mob["preprocess"] == "256→224, imagenet" and mob["method"] == "supervised"
    assert rows["resnet50.simclr_v1"]["preprocess"].startswith("256→224, none")
    assert rows["vit_base_patch16.dino_last4"]["dim"] == 3072
    assert rows["vit_base_patch16.dino_last4"]["recipe"] == "last4"
    sparsam = rows["xcit_small_12_p8.sparsam_bm"]
    assert sparsam["hash"] == "sha256 published" and sparsam["sha256"].startswith("4c641d05")
    assert (
        sparsam["preprocess"]
        == "256→256, mean=(0.5, 0.5, 0.5) std=(0.5, 0.5, 0.5), squash, nearest"
    )
    assert "zenodo.org/records/10391339" in sparsam["url"] and sparsam["licence"]
    dinov2 = rows["vit_small_patch14_dinov2.lvd142m"]
    assert dinov2["licence"] == "apache-2.0" and dinov2["gated"] is False
    assert dinov2["hub_id"] == "timm/vit_small_patch14_dinov2.lvd142m"
    assert rows["vit_small_patch14_dinov2.lvd142m_linear"]["recipe"] == "cls_mean"
    assert rows["vit_base_patch14_dinov2.rad_dino"]["hub_id"] == "microsoft/rad-dino"
    assert rows["vit_base_patch16.biomedclip"]["licence"]
    assert rows["mobilenet_v2.tv_in1k"]["hash"] == "sha256 published"
    assert rows["resnet50.dino"]["hash"] == "none published"


def test_backbones_table():
    result = runner.invoke(app, ["backbones"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "efficientnet_lite0.in1k" in result.stdout and "local" in result.stdout
    assert "resnet50.dino" in result.stdout


def test_backbones_help():
    result = runner.invoke(app, ["backbones", "--help"])
    assert result.exit_code == 0 and "--json" in result.stdout
