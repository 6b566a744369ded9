from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from embedstore import __version__
from embedstore.cli.main import COMMANDS, app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"embedstore {__version__}"


def test_every_command_has_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    names = list(COMMANDS)  # the lazy command table: modules load on use
    assert {"ls", "info"} <= set(names)
    for name in names:
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, name
        assert "Usage" in sub.stdout


def test_ls_shows_arrays(toy_store):
    store, _ = toy_store
    w = store.writer("toy", "half", dim=4, dtype="float16", chunk_rows=8)
    w.write(np.ones((10, 4)))
    result = runner.invoke(app, ["ls", store.location], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "toy" in result.stdout and "bb" in result.stdout
    assert "40×8" in result.stdout and "float32" in result.stdout and "complete" in result.stdout
    assert "incomplete 8/40" in result.stdout


def test_ls_json(toy_store):
    store, _ = toy_store
    result = runner.invoke(app, ["ls", store.location, "--json"])
    payload = json.loads(result.stdout)
    (ds,) = payload["datasets"]
    assert ds["name"] == "toy" and ds["n_samples"] == 40
    assert ds["arrays"][0]["shape"] == [40, 8] and ds["arrays"][0]["complete"] is True


def test_info_levels(toy_store):
    store, _ = toy_store
    top = runner.invoke(app, ["info", store.location], env={"COLUMNS": "200"})
    assert top.exit_code == 0 and "24/8/8" in top.stdout
    ds = runner.invoke(app, ["info", store.location, "toy"], env={"COLUMNS": "200"})
    assert ds.exit_code == 0 and "24 / 8 / 8" in ds.stdout and "a, b" in ds.stdout
    arr = runner.invoke(app, ["info", store.location, "toy", "bb", "--json"])
    assert json.loads(arr.stdout)["provenance"] == {"name": "bb"}


def test_missing_store_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["ls", str(tmp_path / "nope.zarr")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no store at" in lines[0]


def test_unknown_dataset_and_backbone(toy_store):
    store, _ = toy_store
    result = runner.invoke(app, ["info", store.location, "nope"])
    assert result.exit_code == 1 and "dataset 'nope'" in result.stderr
    result = runner.invoke(app, ["info", store.location, "toy", "resnet50.dino"])
    assert result.exit_code == 1 and "has not been extracted" in result.stderr


def test_newer_format_is_exit_1(toy_store):
    store, _ = toy_store
    path = f"{store.location}/zarr.json"
    meta = json.load(open(path))
    meta["attributes"]["embedstore_format"] = 99
    json.dump(meta, open(path, "w"))
    result = runner.invoke(app, ["ls", store.location])
    assert result.exit_code == 1 and "upgrade embedstore" in result.stderr
