"""run_sweep on real tiny stores: records, paired subsets, honest selection, resume; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app
from embedstore.data.subsets import labelled_subsets
from embedstore.engine.probe import ProbeOptions
from embedstore.engine.sweep import cv_folds, run_sweep
from embedstore.errors import InvalidDataError
from embedstore.results.records import read_jsonl
from tests.conftest import write_embeddings

OPTS = ProbeOptions(n_bootstrap=0)


def _make(path, *, n=240, dim=8, seed=0, group=False, multilabel=False, poison=None):
    """3-class (or 3-label) dataset, 60/20/20 split, backbones 'a' and 'b'.

    ``poison``: positions whose features (and, outside train, labels) are replaced by noise.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    split = np.repeat([0, 1, 2], [n * 6 // 10, n * 2 // 10, n - n * 8 // 10]).astype(np.uint8)
    labels = np.eye(3, dtype=np.uint8)[y] | (rng.random((n, 3)) < 0.15) if multilabel else y
    labels = np.array(labels)
    means = rng.normal(size=(2, 3, dim))
    Xs = [(means[i][y] + 1.5 * rng.normal(size=(n, dim))).astype(np.float32) for i in range(2)]
    if poison is not None:
        noise = np.random.default_rng(99)
        for X in Xs:
            X[poison] = 50 * noise.normal(size=(len(poison), dim)).astype(np.float32)
        val = poison[split[poison] == 1]
        labels[val] = labels[val][::-1]  # scrambled validation labels
    store = create_store(path)
    store.add_dataset(
        "d",
        ids=[f"s{i:04d}" for i in range(n)],
        labels=labels,
        split=split,
        task="multilabel" if multilabel else "multiclass",
        class_names=["x", "y", "z"],
        group=[f"p{i // 3}" for i in range(n)] if group else None,
    )
    for name, X in zip("ab", Xs, strict=True):
        write_embeddings(store, "d", name, X)
    return store


SETS = [["a"], ["b"], ["a", "b"]]


def test_one_record_per_cell_with_labels_and_same_subsets_for_every_feature_set(tmp_path):
    store = _make(tmp_path / "s.zarr")
    out = tmp_path / "r.jsonl"
    res = run_sweep(
        store,
        "d",
        SETS,
        fractions=[0.1, 1.0],
        shots=[1, 5],
        seeds=2,
        methods=("knn", "proto"),
        options=OPTS,
        out=out,
    )
    res += run_sweep(
        store, "d", SETS[:1], shots=[1, 5], seeds=2, methods=("logreg",), options=OPTS, out=out
    )
    assert len(res) == 3 * 2 * 4 * 2 + 4
    back = read_jsonl(out)
    assert [r.to_dict() | {"embedstore_version": 0} for r in back] == [
        r.to_dict() | {"embedstore_version": 0} for r in res
    ]
    cells = {
        (r.feature_name, r.method, r.labels.get("fraction"), r.labels.get("shots"), r.seed)
        for r in res
    }
    assert len(cells) == len(res)
    for r in res:
        assert r.protocol["selection"] == "train-cv" and r.protocol["scored_on"] == "test"
        assert 0.0 <= r.metrics["accuracy"]["value"] <= 1.0
        assert r.n_test == 48
    # the labelled subset of a (setting, seed) is the same for every feature set and method
    by_cell = {}
    for r in res:
        key = (r.labels.get("fraction"), r.labels.get("shots"), r.seed)
        by_cell.setdefault(key, set()).add((r.labels["subset_digest"], r.n_train))
    assert all(len(v) == 1 for v in by_cell.values())
    assert next(iter(by_cell[(None, 1, 0)]))[1] == 3  # 1 shot x 3 classes
    one_shot = [r for r in res if r.labels.get("shots") == 1 and r.method != "proto"]
    assert all(r.selected_on.startswith("default") for r in one_shot)
    five = [r for r in res if r.labels.get("shots") == 5 and r.method == "logreg"]
    assert all(r.selected_on == "train-cv (5 folds)" for r in five)


def test_knn_cell_matches_a_brute_force_numpy_computation(tmp_path):
    store = _make(tmp_path / "s.zarr")
    (r,) = run_sweep(
        store, "d", [["a", "b"]], fractions=[0.25], seeds=[3], methods=["knn"], options=OPTS
    )
    X = np.concatenate([store.embeddings("d", b) for b in "ab"], axis=1)
    X = np.concatenate(
        [
            X[:, :8] / np.linalg.norm(X[:, :8], axis=1, keepdims=True),
            X[:, 8:] / np.linalg.norm(X[:, 8:], axis=1, keepdims=True),
        ],
        axis=1,
    )
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y, split = store.labels("d"), store.split("d")
    (sub,) = labelled_subsets(y, np.flatnonzero(split == 0), seed=3, fractions=[0.25])
    test, k = np.flatnonzero(split == 2), r.hyperparameters["k"]
    correct = 0
    for q in test:  # DINO's vote, one query at a time
        sims = X[sub.positions] @ X[q]
        top = np.argsort(-sims)[:k]
        votes = np.zeros(3)
        for j in top:
            votes[y[sub.positions[j]]] += np.exp(sims[j] / 0.07)
        correct += votes.argmax() == y[q]
    assert r.metrics["accuracy"]["value"] == pytest.approx(correct / len(test))


@pytest.mark.parametrize("group", [False, True])
def test_train_cv_never_sees_validation_test_labels_or_unlabelled_rows(tmp_path, group):
    """Poison val features+labels and every train row outside the labelled subsets: no change."""
    kw = dict(fractions=[0.1, 0.3], seeds=[0, 1], methods=("knn", "logreg"), options=OPTS)
    sets = [["a", "b"]]
    clean = run_sweep(_make(tmp_path / "c.zarr", group=group), "d", sets, **kw)
    y = np.random.default_rng(0).integers(0, 3, size=240)  # same draw as _make
    pool = np.arange(144)
    g = np.array([f"p{i // 3}" for i in range(240)]) if group else None
    used = set()
    for s in (0, 1):
        for sub in labelled_subsets(y, pool, seed=s, fractions=[0.1, 0.3], group=g):
            used |= set(sub.positions.tolist())
    poison = np.array(sorted(set(range(192)) - used))  # unlabelled train rows and all of val
    dirty = run_sweep(_make(tmp_path / "p.zarr", group=group, poison=poison), "d", sets, **kw)
    for a, b in zip(clean, dirty, strict=True):
        assert a.labels == b.labels and a.hyperparameters == b.hyperparameters
        assert a.metrics["accuracy"]["value"] == pytest.approx(b.metrics["accuracy"]["value"])
    # the poison is strong enough to matter where validation IS used
    kw_val = dict(kw, selection="val", methods=("knn",))
    c_val = run_sweep(_make(tmp_path / "c2.zarr", group=group), "d", sets, **kw_val)
    d_val = run_sweep(_make(tmp_path / "p2.zarr", group=group, poison=poison), "d", sets, **kw_val)
    assert any(a.hyperparameters != b.hyperparameters for a, b in zip(c_val, d_val, strict=True))
    assert all(r.selected_on == "val" for r in c_val)


def test_resume_skips_finished_cells(tmp_path):
    store = _make(tmp_path / "s.zarr")
    out = tmp_path / "r.jsonl"
    kw = dict(fractions=[0.1, 0.5], seeds=3, methods=("knn", "proto"), options=OPTS, out=out)
    first = run_sweep(store, "d", SETS[:2], **kw)
    lines = out.read_text().splitlines()
    assert len(lines) == len(first) == 24
    out.write_text("\n".join(lines[:7]) + "\n" + lines[7][:40])  # 7 cells kept + a torn line
    seen = []
    again = run_sweep(store, "d", SETS[:2], **kw, progress=lambda d, t, s: seen.append((d, t)))
    assert seen[-1] == (24, 24)
    new = out.read_text().splitlines()
    assert new[:7] == lines[:7]
    assert len(read_jsonl(out)) == 24  # 17 computed and appended, the torn line ignored
    assert [r.to_dict() for r in again][:7] == [r.to_dict() for r in read_jsonl(out)][:7]
    assert [r.metrics for r in again] == [r.metrics for r in first]
    # a different selection is a different cell
    run_sweep(store, "d", SETS[:1], **dict(kw, selection="val", methods=("knn",)))
    assert len(read_jsonl(out)) == 24 + 6


def test_multilabel_and_grouped_sweeps_run(tmp_path):
    ml = _make(tmp_path / "m.zarr", multilabel=True)
    res = run_sweep(
        ml, "d", SETS[:1], shots=[2, 8], seeds=1, methods=("knn", "logreg"), options=OPTS
    )
    assert len(res) == 4 and all("auc" in r.metrics for r in res)
    grouped = _make(tmp_path / "g.zarr", group=True)
    res = run_sweep(
        grouped, "d", SETS[:1], fractions=[0.2], seeds=1, methods=("knn",), options=OPTS
    )
    assert res[0].labels["n_groups"] > 0


def test_cv_folds_respect_the_smallest_class_and_groups():
    y = np.array([0] * 10 + [1] * 3)
    folds = cv_folds(y, None, seed=0)
    assert len(folds) == 3
    assert all(set(np.bincount(y[tr], minlength=2) > 0) == {True} for tr, _ in folds)
    assert cv_folds(np.array([0, 0, 1]), None, seed=0) == []
    g = np.repeat(np.arange(6), 2)
    yg = np.repeat([0, 1, 0, 1, 0, 1], 2)
    for tr, va in cv_folds(yg, g, seed=0):
        assert not set(g[tr]) & set(g[va])


def test_bad_arguments(tmp_path):
    store = _make(tmp_path / "s.zarr")
    with pytest.raises(InvalidDataError, match="fewshot"):
        run_sweep(store, "d", SETS[:1], fractions=[0.1], methods=["fewshot"])
    with pytest.raises(InvalidDataError, match="selection"):
        run_sweep(store, "d", SETS[:1], fractions=[0.1], selection="test")


def test_cli_sweep_tables_records_plot_and_bad_fraction(tmp_path):
    _make(tmp_path / "s.zarr")
    runner = CliRunner()
    out, png = tmp_path / "r.jsonl", tmp_path / "p.png"
    res = runner.invoke(
        app,
        [
            "sweep",
            str(tmp_path / "s.zarr"),
            "-d",
            "d",
            "-b",
            "a",
            "-b",
            "b",
            "--fuse",
            "a,b",
            "--fractions",
            "0.1,1.0",
            "--seeds",
            "5",
            "--methods",
            "knn",
            "--out",
            str(out),
            "--plot",
            str(png),
        ],
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # rich wraps at the runner's 80 columns
    assert "mean ± s.d. over 5 seeds" in text and "paired comparison" in text
    assert "a+b" in text and "10%" in text and "(one" in text
    assert len(read_jsonl(out)) == 3 * 2 * 5
    assert png.read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(
        app,
        [
            "sweep",
            str(tmp_path / "s.zarr"),
            "-d",
            "d",
            "-b",
            "a",
            "--fractions",
            "0.1",
            "--seeds",
            "2",
            "--json",
        ],
    )
    assert res.exit_code == 0
    assert [json.loads(line)["seed"] for line in res.output.splitlines()] == [0, 1, 0, 1]
    bad = runner.invoke(
        app, ["sweep", str(tmp_path / "s.zarr"), "-d", "d", "-b", "a", "--fractions", "0.1,abc"]
    )
    assert bad.exit_code == 1
    assert "--fractions expects comma-separated numbers" in bad.output
    assert len([ln for ln in bad.output.splitlines() if ln.strip()]) == 1
    bad = runner.invoke(
        app, ["sweep", str(tmp_path / "s.zarr"), "-d", "d", "-b", "a", "--fractions", "1.5"]
    )
    assert bad.exit_code == 1 and "(0, 1]" in bad.output
    assert runner.invoke(app, ["sweep", "--help"]).exit_code == 0


def test_methods_all_is_parsed_once_and_runs_dvme_on_fusions_only(tmp_path):
    store = _make(tmp_path / "s.zarr")
    res = run_sweep(store, "d", SETS, fractions=[1.0], seeds=[0], methods="all", options=OPTS)
    cells = [(r.feature_name, r.method) for r in res]
    assert cells == [(f, m) for f in ("a", "b") for m in ("proto", "knn", "logreg")] + [
        ("a+b", m) for m in ("proto", "knn", "logreg", "dvme")
    ]
    assert (
        run_sweep(store, "d", SETS[:1], fractions=[1.0], seeds=1, methods=" knn, knn ")[0].method
        == "knn"
    )
