"""The same options on every command, and one line + exit 1 for every bad value."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app
from embedstore.devices import resolve_device
from embedstore.errors import InvalidDataError

from ..conftest import make_dataset, write_embeddings

runner = CliRunner()


@pytest.fixture
def store(tmp_path):
    s = create_store(tmp_path / "o.zarr")
    _, labels, _ = make_dataset(s, "d", n=120, classes=("a", "b", "c"))
    rng = np.random.default_rng(0)
    write_embeddings(s, "d", "a", (labels[:, None] + rng.normal(size=(120, 6))).astype("f4"))
    return s


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("command", ["probe", "sweep"])
def test_device_gpu_is_refused_with_the_accepted_values(store, command):
    extra = ["--fractions", "0.5", "--seeds", "1"] if command == "sweep" else []
    result = runner.invoke(
        app, [command, store.location, "-d", "d", "-b", "a", *extra, "--device", "gpu"]
    )
    _one_line_error(result, "cpu, cuda, cuda:N, auto", "'gpu'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("command", ["probe", "sweep"])
def test_device_cuda_without_a_gpu_is_one_line(store, command):
    extra = ["--fractions", "0.5", "--seeds", "1"] if command == "sweep" else []
    result = runner.invoke(
        app, [command, store.location, "-d", "d", "-b", "a", *extra, "--device", "cuda"]
    )
    _one_line_error(result, "no CUDA GPU", "--device cpu")


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "tpu", ""):
        with pytest.raises(InvalidDataError, match="cpu, cuda, cuda:N, auto"):
            resolve_device(bad)


def test_unknown_metric_lists_the_metrics(store):
    base = ["sweep", store.location, "-d", "d", "-b", "a", "--fractions", "0.5", "--seeds", "1"]
    _one_line_error(runner.invoke(app, [*base, "--metric", "roc_auc"]), "accuracy", "'roc_auc'")
    # kappa is a real metric, but only for ordinal tasks: said before any work is done.
    _one_line_error(runner.invoke(app, [*base, "--metric", "kappa"]), "ordinal", "multiclass")


@pytest.mark.parametrize("command", ["probe", "sweep"])
def test_unknown_grid_is_one_line(store, command):
    extra = ["--fractions", "0.5", "--seeds", "1"] if command == "sweep" else []
    result = runner.invoke(
        app, [command, store.location, "-d", "d", "-b", "a", *extra, "--grid", "foo"]
    )
    _one_line_error(result, "ericsson, dinov2", "'foo'")


def test_n_query_reaches_the_episodes(store):
    # 24 test rows, 8 per class: 15 queries (the default) cannot fit; --n-query 3 can.
    base = ["probe", store.location, "-d", "d", "-b", "a", "--method", "fewshot"]
    short = runner.invoke(app, [*base, "--shots", "2"])
    _one_line_error(short, "n_query")
    result = runner.invoke(app, [*base, "--shots", "2", "--n-query", "3", "--episodes", "20"])
    assert result.exit_code == 0, result.output
    ok = runner.invoke(app, [*base, "--shots", "2", "--n-query", "3", "--episodes", "20", "--json"])
    (record,) = [json.loads(line) for line in ok.stdout.splitlines()]
    assert record["protocol"]["n_query"] == 3 and record["protocol"]["n_episodes"] == 20


def test_info_takes_dataset_and_backbone_as_options(store):
    positional = runner.invoke(app, ["info", store.location, "d", "a", "--json"])
    options = runner.invoke(app, ["info", store.location, "-d", "d", "-b", "a", "--json"])
    assert positional.exit_code == options.exit_code == 0
    assert json.loads(positional.stdout) == json.loads(options.stdout)
    _one_line_error(runner.invoke(app, ["info", store.location, "d", "-d", "x"]), "disagree")
    _one_line_error(runner.invoke(app, ["info", store.location, "-b", "a"]), "DATASET")


def test_extract_takes_short_options(tmp_path):
    target = tmp_path / "e.zarr"
    result = runner.invoke(
        app, ["extract", str(target), "-d", "demo", "--source", "demo", "-b", "no-such-net"]
    )
    _one_line_error(result, "no-such-net")  # reached the library: -d and -b were parsed
    assert not target.exists()


def test_plot_suffix_is_checked_before_the_sweep_runs(store, tmp_path):
    result = runner.invoke(
        app,
        ["sweep", store.location, "-d", "d", "-b", "a", "--fractions", "0.5"]
        + ["--seeds", "1", "--plot", str(tmp_path / "f.jpg"), "--out", str(tmp_path / "r.jsonl")],
    )
    _one_line_error(result, ".png, .pdf, .svg", "'.jpg'")
    assert not (tmp_path / "r.jsonl").exists()


def test_method_short_option_is_the_same_on_probe_sweep_and_report(store, tmp_path):
    out = tmp_path / "r.jsonl"
    probe = runner.invoke(app, ["probe", store.location, "-d", "d", "-b", "a", "-m", "knn"])
    assert probe.exit_code == 0 and "knn" in probe.output
    sweep = runner.invoke(
        app,
        ["sweep", store.location, "-d", "d", "-b", "a", "-m", "knn", "--fractions", "0.5"]
        + ["--seeds", "1", "--out", str(out)],
    )
    assert sweep.exit_code == 0, sweep.output
    report = runner.invoke(app, ["report", str(out), "-m", "knn", "-f", "csv"])
    assert report.exit_code == 0 and {
        line.split(",")[1] for line in report.stdout.splitlines()[1:]
    } == {"knn"}
