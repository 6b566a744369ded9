"""Honest small-data reporting: caveats in records (unit and through real sweeps), the few-shot
interval over test images, and the 1-shot logistic fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store
from embedstore.cli.main import app
from embedstore.engine.sweep import run_sweep
from embedstore.probes.fewshot_ci import _draw, data_interval
from embedstore.probes.prototypes import evaluate_episodes, sample_episodes
from embedstore.results.caveats import SMALL_TEST, describe, find_caveats
from embedstore.results.table_formats import to_markdown
from embedstore.results.tables import build_tables
from tests.conftest import write_embeddings

GRID = np.logspace(-5, 6, 45)


def _find(**kw):
    base = dict(labels={}, selected_on="train-cv (5 folds)", hyperparameters={}, n_train=50)
    return find_caveats(**{**base, "n_test": 500, **kw})


def test_grid_edges_that_matter():
    edge = _find(hyperparameters={"C": 1e6}, grid=GRID)["grid_edge"]
    assert edge["C"] == "upper" and edge["grid"] == pytest.approx([1e-5, 1e6])
    assert _find(hyperparameters={"C": 1e-5}, grid=GRID)["grid_edge"]["C"] == "lower"
    assert "grid_edge" not in _find(hyperparameters={"C": 1.0}, grid=GRID)
    assert "grid_edge" not in _find(hyperparameters={"k": 1}, grid=(1, 3, 200))  # a floor
    assert _find(hyperparameters={"k": 200}, grid=(1, 3, 200))["grid_edge"] == {
        "k": "upper",
        "grid": [1, 200],
    }
    # the default of an unvalidated choice is not an 'edge'
    fallback = _find(hyperparameters={"C": 1e6}, grid=GRID, selected_on="default C=1e+06 (x)")
    assert "grid_edge" not in fallback and fallback["fallback"].startswith("default")


def test_k_capped_capped_uneven_and_small_test():
    k = _find(hyperparameters={"k": 4}, n_train=4, k_asked=20, selected_on="none")
    assert k["k_capped"] == {"asked": 20, "used": 4, "n_labelled": 4}
    labels = {"shots": 5, "per_class": {"a": 3, "b": 6, "c": 5}, "capped_classes": ["a"]}
    c = _find(labels=labels, n_test=SMALL_TEST - 1)
    assert c["capped_classes"] == {"a": 3} and c["uneven_classes"] == {"b": 6}
    assert c["small_test"] == SMALL_TEST - 1
    assert "3 (fewer in train" in describe("capped_classes", c["capped_classes"])
    assert _find() == {}


@pytest.fixture
def grouped_store(tmp_path):
    """Class 'a' has 3 training rows (shots 5 are capped); patients hold 2 rows of class 'b' each
    (1-shot of 'b' draws a whole patient: 2 rows)."""
    rng = np.random.default_rng(0)
    labels = np.array([0] * 3 + [1] * 30 + [0] * 10 + [1] * 10)
    split = np.array([0] * 33 + [2] * 20)
    group = [f"pa{i}" for i in range(3)] + [f"pb{i // 2}" for i in range(30)]
    group += [f"t{i}" for i in range(20)]
    store = create_store(tmp_path / "g.zarr")
    store.add_dataset(
        "g",
        ids=[f"s{i}" for i in range(53)],
        labels=labels,
        split=split,
        task="binary",
        class_names=["a", "b"],
        group=group,
    )
    write_embeddings(store, "g", "bb", (labels[:, None] + rng.normal(size=(53, 4))).astype("f4"))
    return store


def test_capped_and_uneven_settings_are_in_records_and_tables(grouped_store):
    results = run_sweep(grouped_store, "g", [["bb"]], shots=[1, 5], seeds=2, methods=["logreg"])
    by_shots = {}
    for r in results:
        by_shots.setdefault(r.labels["shots"], []).append(r)
    for r in by_shots[1]:
        assert r.labels["per_class"] == {"a": 1, "b": 2}  # a whole patient of 'b'
        assert r.caveats["uneven_classes"] == {"b": 2}
        assert r.caveats["fallback"].startswith("default C=1")
        assert r.caveats["small_test"] == 20
    for r in by_shots[5]:
        assert r.labels["per_class"]["a"] == 3 and r.caveats["capped_classes"] == {"a": 3}
        assert r.labels["per_class"]["b"] == 6  # 3 patients of 2 rows
    again = json.loads(json.dumps(results[0].to_dict()))
    assert again["caveats"] == results[0].caveats  # a record field, written to JSON lines
    md = to_markdown(build_tables(results))
    assert "1-shot (n=3)" in md and "5-shot (n=9)" in md
    assert "1-shot: drawn per class over seeds: a 1, b 2" in md
    assert "5-shot: drawn per class over seeds: a 3, b 6" in md
    assert "‡" in md and "§" in md and "¶" in md and "small test split: 20 rows" in md


def _clusters(n_per_class, n_classes, sep, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = rng.normal(size=(len(y), 8)) + sep * np.eye(8)[y]
    return X.astype(np.float32), y


def test_bootstrap_episodes_never_query_a_copy_of_their_support():
    rng = np.random.default_rng(1)
    pools = [rng.choice(np.arange(0, 30), 30), rng.choice(np.arange(30, 60), 30)]
    eps = _draw(pools, 2, 5, 5, 300, rng)
    assert eps is not None and eps.n_episodes > 150
    for e in range(eps.n_episodes):
        for w in range(2):
            assert not set(eps.query[e, w]) & set(eps.support[e, w])


def test_data_interval_is_wider_than_the_episode_interval_on_a_small_pool():
    X, y = _clusters(30, 2, sep=1.0)
    eps = sample_episodes(y, n_way=2, k_shot=5, n_query=10, n_episodes=600)
    published = evaluate_episodes(X, eps)
    ci = data_interval(X, y, n_way=2, k_shot=5, n_query=10, n_resamples=100)
    assert ci is not None and ci.low < published.mean < ci.high
    assert (ci.high - ci.low) / 2 > 3 * published.ci95  # 60 images: the data dominate
    X, y = _clusters(30, 2, sep=50.0)  # perfectly separable: no uncertainty at all
    sure = data_interval(X, y, n_way=2, k_shot=5, n_query=10, n_resamples=20)
    # every resample scores 100%: not a zero-width interval but the exact one over 60 images
    from scipy.stats import binomtest

    assert sure.exact and sure.high == 1.0
    assert sure.low == pytest.approx(binomtest(60, 60).proportion_ci(method="exact").low)
    assert "exact Clopper-Pearson" in sure.describe()


def test_probe_prints_both_few_shot_intervals_and_caveats(grouped_store):
    result = CliRunner().invoke(
        app,
        ["probe", grouped_store.location, "-d", "g", "-b", "bb", "--method", "fewshot,knn"]
        + ["--shots", "2", "--n-query", "3", "--ways", "2"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "(the published interval: episode sampling only)" in result.output
    assert "95% interval over test images" in result.output
    assert "small test split: 20 rows" in result.output


def test_one_shot_logistic_does_not_depend_on_c():
    """Why the fallback C=1 at one labelled sample per class is kept: with an unpenalised
    intercept, two points give the same decision for every C (the bisector), so no C is better."""
    from embedstore.probes.logistic import LogisticProbe

    X, y = _clusters(20, 2, sep=1.0, seed=3)
    X /= np.linalg.norm(X, axis=1, keepdims=True)  # L2-normalised, as the probes use them
    S = np.array([0, 20])
    preds = [LogisticProbe(C=C, task="binary").fit(X[S], y[S]).predict(X) for C in GRID[::11]]
    for p in preds[1:]:
        np.testing.assert_array_equal(p, preds[0])


def test_a_class_absent_from_test_is_a_caveat():
    from embedstore.results.caveats import absent_classes

    assert absent_classes(np.array([0, 0, 2]), ["nv", "mel", "bcc"]) == ["mel"]
    assert absent_classes(np.array([[1, 0], [1, 0]]), ["effusion", "mass"]) == ["mass"]
    assert absent_classes(np.array([0, 1]), ["a", "b"]) == []
    c = _find(absent=["mel"])
    assert c["absent_classes"] == ["mel"]
    assert describe("absent_classes", c["absent_classes"]).startswith("no test image of mel")
    assert "absent_classes" not in _find()
