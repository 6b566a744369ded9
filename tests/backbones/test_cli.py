"""`embedstore backbones` through Typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.main import app
from embedstore.backbones import list_backbones

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


def test_backbones_table():
    result = runner.invoke(app, ["backbones"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "efficientnet_lite0.in1k" in result.stdout and "local" in result.stdout
    assert "resnet50.dino" in result.stdout


def test_backbones_help():
    result = runner.invoke(app, ["backbones", "--help"])
    assert result.exit_code == 0 and "--json" in result.stdout
