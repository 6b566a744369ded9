from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app
from embedstore.results.records import read_jsonl

from ..conftest import write_embeddings

runner = CliRunner()


def _store(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    labels = rng.integers(0, 2, n)
    store = create_store(tmp_path / "p.zarr")
    store.add_dataset(
        "d",
        ids=[f"s{i}" for i in range(n)],
        labels=labels,
        split=rng.choice([0, 0, 1, 2], n),
        task="binary",
        class_names=["no", "yes"],
    )
    write_embeddings(
        store, "d", "a", (labels[:, None] + rng.normal(size=(n, 8))).astype(np.float32)
    )
    write_embeddings(store, "d", "b", rng.normal(size=(n, 6)).astype(np.float32))
    return store


def test_probe_table_and_out_file(tmp_path):
    store = _store(tmp_path)
    out = tmp_path / "r.jsonl"
    result = runner.invoke(
        app,
        [
            "probe",
            store.location,
            "-d",
            "d",
            "-b",
            "a",
            "-b",
            "b",
            "--fuse",
            "a,b",
            "--method",
            "knn,logreg,dvme",
            "--out",
            str(out),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "a+b" in result.stdout and "knn" in result.stdout and "logreg" in result.stdout
    assert "mean attention received: a " in result.stdout
    records = read_jsonl(out)
    assert [(r.feature_name, r.method) for r in records] == [
        ("a", "knn"),
        ("a", "logreg"),
        ("a", "dvme"),
        ("b", "knn"),
        ("b", "logreg"),
        ("b", "dvme"),
        ("a+b", "knn"),
        ("a+b", "logreg"),
        ("a+b", "dvme"),
    ]
    dvme = records[-1]
    assert dvme.extra["attention_backbones"] == ["a", "b"]
    assert sum(dvme.extra["attention"]["mean"]) == pytest.approx(1.0, abs=1e-4)
    assert set(dvme.extra["attention"]["per_class"]) == {"no", "yes"}


def test_probe_json_passes_options_through(tmp_path):
    store = _store(tmp_path)
    result = runner.invoke(
        app,
        [
            "probe",
            store.location,
            "-d",
            "d",
            "-b",
            "a",
            "--method",
            "knn",
            "--k",
            "7",
            "--seed",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    rec = json.loads(result.stdout.splitlines()[0])
    assert rec["protocol"]["k"] == 7 and rec["seed"] == 3 and rec["features"] == ["a"]
    acc = rec["metrics"]["accuracy"]  # issue 21: each interval also says its unit and method
    assert {"value", "ci_low", "ci_high", "ci_unit", "n_units", "ci_method"} <= set(acc)


def test_probe_bad_input_is_one_line_exit_1(tmp_path):
    store = _store(tmp_path)
    cases = [
        (["--fuse", "a,bb"], "did you mean 'b'"),
        (["--fuse", "a"], "two or more"),
        (["-b", "a", "--method", "svmm"], "method 'svmm'"),
        (["-b", "a", "--method", "fewshot", "--shots", "500"], "largest feasible"),
        ([], "at least one backbone"),
    ]
    for args, expected in cases:
        result = runner.invoke(app, ["probe", store.location, "-d", "d", *args])
        assert result.exit_code == 1, (args, result.output)
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output
