"""`embedstore analyze ...` through the real CLI app: tables, records, figures, one-line errors."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from cli.main import app
from embedstore import create_store
from embedstore.analyze import read_records
from tests.conftest import make_dataset, write_embeddings

runner = CliRunner()


def _store(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    make_dataset(store, n=40)
    rng = np.random.default_rng(0)
    write_embeddings(store, "toy", "a", rng.normal(size=(40, 8)).astype(np.float32))
    write_embeddings(store, "toy", "b", rng.normal(size=(40, 6)).astype(np.float32))
    return tmp_path / "s.zarr"


def test_similarity_table_records_and_plot(tmp_path):
    path = _store(tmp_path)
    out, png = tmp_path / "r.jsonl", tmp_path / "cka.png"
    res = runner.invoke(
        app,
        ["analyze", "similarity", str(path), "-d", "toy", "--out", str(out), "--plot", str(png)],
    )
    assert res.exit_code == 0, res.output
    assert "linear / debiased" in res.output and "1.00 / 1.00" in res.output
    records = read_records(out)
    assert [r.features for r in records] == [("a", "a"), ("a", "b"), ("b", "b")]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_similarity_json(tmp_path):
    path = _store(tmp_path)
    res = runner.invoke(app, ["analyze", "similarity", str(path), "-d", "toy", "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.output.splitlines()]
    assert {d["analysis"] for d in lines} == {"similarity"}
    assert 0.0 < lines[1]["metrics"]["cka"]["value"] < 1.0


def test_similarity_errors_are_one_line(tmp_path):
    path = _store(tmp_path)
    for args, expected in (
        (["-d", "nope"], "dataset 'nope' is not in store"),
        (["-d", "toy", "-b", "a", "-b", "zz"], "backbone 'zz' has not been extracted"),
        (["-d", "toy", "-b", "a"], "at least two"),
        (["-d", "toy", "--split", "dev"], "split must be one of"),
    ):
        res = runner.invoke(app, ["analyze", "similarity", str(path), *args])
        assert res.exit_code == 1, res.output
        assert expected in res.output
        assert "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1, res.output


def test_help_lists_the_analyses():
    res = runner.invoke(app, ["analyze", "--help"])
    assert res.exit_code == 0
    for name in ("similarity", "invariance", "saliency"):
        assert name in res.output
