"""Presets, the SVM method and class weights through run_sweep / evaluate_probes and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app
from embedstore.engine.probe import evaluate_probes
from embedstore.engine.sweep import run_sweep
from embedstore.errors import InvalidDataError
from embedstore.probes.options import ProbeOptions
from embedstore.probes.presets import get_protocol
from tests.conftest import write_embeddings

OPTS = ProbeOptions(n_bootstrap=0)
runner = CliRunner()


def _make(path, *, n=300, dim=12, poison_test=False):
    """3 classes (class 'z' rare: 6 training rows), 60/20/20 split, backbones 'a' and 'b'."""
    rng = np.random.default_rng(0)
    split = np.repeat([0, 1, 2], [n * 6 // 10, n * 2 // 10, n - n * 8 // 10]).astype(np.uint8)
    y = rng.integers(0, 2, size=n)
    y[np.flatnonzero(split == 0)[:6]] = 2  # a rare class: 6 rows in train
    y[np.flatnonzero(split == 2)[:10]] = 2
    y[np.flatnonzero(split == 1)[:4]] = 2
    store = create_store(path)
    labels = y.copy()
    Xs = []
    for _ in range(2):
        means = rng.normal(size=(3, dim)) * 1.5
        X = (means[y] + rng.normal(size=(n, dim))).astype(np.float32)
        Xs.append(X)
    if poison_test:
        test = np.flatnonzero(split == 2)
        for X in Xs:
            X[test] = 50 * np.random.default_rng(9).normal(size=(len(test), dim))
        labels[test] = labels[test][::-1]
    store.add_dataset("d", ids=[f"s{i:04d}" for i in range(n)], labels=labels, split=split,
                      task="multiclass", class_names=["x", "y", "z"])  # fmt: skip
    for name, X in zip("ab", Xs, strict=True):
        write_embeddings(store, "d", name, X)
    return store


def test_nielsen_preset_one_record_per_backbone_classifier_shots_seed(tmp_path):
    store = _make(tmp_path / "s.zarr")
    res = run_sweep(store, "d", [["a"], ["b"]], protocol="nielsen", seeds=2, options=OPTS)
    preset = get_protocol("nielsen")
    shots = preset.subsets["shots"]
    assert len(res) == 2 * 3 * len(shots) * 2
    keys = {(r.features, r.method, r.labels["shots"], r.seed) for r in res}
    assert len(keys) == len(res)
    assert {r.method for r in res} == {"nielsen-svm", "nielsen-knn", "nielsen-logreg"}
    # documented order: feature set, method, setting, seed
    assert [r.method for r in res[: 2 * len(shots)]] == ["nielsen-svm"] * (2 * len(shots))
    for r in res:
        assert r.protocol["preset"]["name"] == "nielsen"
        assert r.protocol["preset"]["paper"].startswith("Nielsen et al.")
        assert r.protocol["selection"] == "none" and r.selected_on.startswith("none")
        assert "balanced_accuracy" in r.metrics
        clf = r.method.removeprefix("nielsen-")
        for key, value in preset.hyperparameters[clf].items():
            if key != "n_neighbors":
                assert r.hyperparameters[key] == value
        if r.method == "nielsen-knn":  # 5 x 3 classes, capped at the labelled rows
            assert r.hyperparameters["n_neighbors"] == min(15, r.n_train)
        assert r.protocol["class_weight"] == ("none" if clf == "knn" else "balanced")
        # a class with fewer training rows than asked is capped (all its rows) and listed
        per_class = r.labels["per_class"]
        for name in ("x", "y", "z"):
            short = per_class[name] < r.labels["shots"]
            assert (name in r.labels["capped_classes"]) == short
        assert ("z" in r.labels["capped_classes"]) == (r.labels["shots"] > 6)
    # the same subsets for both backbones (paired)
    digests = {}
    for r in res:
        digests.setdefault((r.labels["shots"], r.seed), set()).add(r.labels["subset_digest"])
    assert all(len(d) == 1 for d in digests.values())


def test_nielsen_cells_equal_the_authors_pipeline_on_the_stored_rows(tmp_path):
    from tests.probes.test_nielsen import _ref_predict

    store = _make(tmp_path / "s.zarr", n=600)
    res = run_sweep(store, "d", [["a"]], protocol="nielsen", shots=[25, 100], seeds=[1],
                    options=OPTS)  # fmt: skip
    assert all(r.protocol["normalize"] == "none" for r in res)  # the raw stored features
    X = store.embeddings("d", "a")
    y, split = np.asarray(store.labels("d")), np.asarray(store.split("d"))
    train, test = np.flatnonzero(split == 0), np.flatnonzero(split == 2)
    from embedstore.data.subsets import labelled_subsets

    for sub in labelled_subsets(y, train, seed=1, shots=[25, 100]):
        for name in ("svm", "knn", "logreg"):
            (r,) = [
                x for x in res if x.method == f"nielsen-{name}" and x.labels["shots"] == sub.value
            ]
            pred = _ref_predict(name, X, y, sub.positions, test, seed=1)
            ref = np.mean([(pred[y[test] == c] == c).mean() for c in np.unique(y[test])])
            assert abs(r.metrics["balanced_accuracy"]["value"] - ref) <= 0.005, (name, sub.value)


def test_preset_may_not_be_contradicted(tmp_path):
    store = _make(tmp_path / "s.zarr")
    with pytest.raises(InvalidDataError, match="leave out --methods"):
        run_sweep(store, "d", [["a"]], protocol="nielsen", methods="knn", options=OPTS)
    with pytest.raises(InvalidDataError, match="leave out --selection"):
        run_sweep(store, "d", [["a"]], protocol="nielsen", selection="val", options=OPTS)
    with pytest.raises(InvalidDataError, match="embedstore probe"):
        run_sweep(store, "d", [["a"]], protocol="dino-knn", options=OPTS)
    with pytest.raises(InvalidDataError, match="embedstore sweep"):
        evaluate_probes(store, "d", [["a"]], protocol="nielsen", options=OPTS)


def test_probe_presets_set_their_options_and_are_named(tmp_path):
    store = _make(tmp_path / "s.zarr")
    (r,) = evaluate_probes(store, "d", [["a"]], protocol="dinov2-linear", options=OPTS)
    assert r.method == "logreg" and r.protocol["grid"] == "dinov2"
    assert r.protocol["preset"]["name"] == "dinov2-linear" and r.selected_on == "val"
    (r,) = evaluate_probes(
        store, "d", [["a"]], protocol="dino-knn", options=ProbeOptions(n_bootstrap=0, k=3)
    )
    assert r.hyperparameters["k"] == 20  # the preset's k, whatever the options said


def test_svm_chooses_C_without_reading_test_rows(tmp_path):
    kw = dict(shots=[5, 20], seeds=[0, 1], methods="svm", options=OPTS)
    clean = run_sweep(_make(tmp_path / "c.zarr"), "d", [["a"]], **kw)
    dirty = run_sweep(_make(tmp_path / "p.zarr", poison_test=True), "d", [["a"]], **kw)
    for a, b in zip(clean, dirty, strict=True):
        assert a.hyperparameters["C"] == b.hyperparameters["C"]
        assert a.selected_on == b.selected_on and a.selected_on.startswith("train-cv")
    assert any(
        a.metrics["accuracy"]["value"] != b.metrics["accuracy"]["value"]
        for a, b in zip(clean, dirty, strict=True)
    )  # the poison reached the test rows
    # probe: C chosen on the validation split, then refit on train+val; test rows never read
    (a,) = evaluate_probes(_make(tmp_path / "c3.zarr"), "d", [["a"]], "svm", OPTS)
    (b,) = evaluate_probes(_make(tmp_path / "p3.zarr", poison_test=True), "d", [["a"]], "svm", OPTS)
    assert a.hyperparameters["C"] == b.hyperparameters["C"] and a.selected_on == "val"
    assert a.n_train == 240 and a.protocol["fit_on"] == "train+val"


def test_class_weight_is_recorded_and_changes_the_weighted_methods(tmp_path):
    store = _make(tmp_path / "s.zarr")
    kw = dict(shots=[20], seeds=[0], methods="knn,logreg,svm,proto")
    plain = run_sweep(store, "d", [["a"]], options=OPTS, **kw)
    bal = run_sweep(
        store, "d", [["a"]], options=ProbeOptions(n_bootstrap=0, class_weight="balanced"), **kw
    )
    for p, b in zip(plain, bal, strict=True):
        assert p.protocol["class_weight"] == "none"
        assert b.protocol["class_weight"] == ("none" if b.method == "proto" else "balanced")
    by = {r.method: r for r in bal}
    assert by["svm"].metrics["balanced_accuracy"]["value"] >= 0.0
    assert any(
        p.metrics["balanced_accuracy"] != b.metrics["balanced_accuracy"]
        for p, b in zip(plain, bal, strict=True)
        if p.method != "proto"
    )


def test_cli_sweep_protocol_nielsen_with_plot(tmp_path):
    store = _make(tmp_path / "s.zarr")
    out, png = tmp_path / "r.jsonl", tmp_path / "p.png"
    args = ["sweep", store.location, "-d", "d", "-b", "a", "--protocol", "nielsen", "--seeds", "1"]
    r = runner.invoke(app, [*args, "--out", str(out), "--plot", str(png)], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "balanced_accuracy" in r.stdout and "Fixed hyper-parameters, no selection" in r.stdout
    assert "capped at 10 per class: z" in r.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 * 9 and {x["protocol"]["preset"]["name"] for x in records} == {
        "nielsen"
    }
    bad = runner.invoke(app, [*args, "--methods", "knn"])
    assert bad.exit_code == 1 and "leave out --methods" in bad.stderr
    bad = runner.invoke(app, [*args, "--class-weight", "balanced"])
    assert bad.exit_code == 1 and "fixes its class weights" in bad.stderr
    bad = runner.invoke(app, ["sweep", store.location, "-d", "d", "-b", "a", "--protocol", "x"])
    assert bad.exit_code == 1 and "embedstore protocols" in bad.stderr


def test_cli_probe_protocol_and_class_weight(tmp_path):
    store = _make(tmp_path / "s.zarr")
    base = ["probe", store.location, "-d", "d", "-b", "a", "--json"]
    r = runner.invoke(app, [*base, "--protocol", "ericsson-linear"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout.splitlines()[0])
    assert rec["protocol"]["preset"]["name"] == "ericsson-linear"
    r = runner.invoke(app, [*base, "--method", "knn", "--class-weight", "balanced"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[0])["protocol"]["class_weight"] == "balanced"
    bad = runner.invoke(app, [*base, "--class-weight", "inverse"])
    assert bad.exit_code == 1 and "--class-weight must be one of none, balanced" in bad.stderr
