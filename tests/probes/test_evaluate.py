"""The probe layer end to end on a real store: records, pairing, protocol choices."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid

from embedstore import create_store, open_store
from embedstore.engine.probe import ProbeOptions, evaluate_probes, selection_split
from embedstore.errors import ArrayNotFoundError, IncompleteArrayError, ProtocolError
from embedstore.probes.features import load_feature_sets

from ..conftest import write_embeddings

FAST = ProbeOptions(n_episodes=50, n_bootstrap=100)


def _signal_store(path, n=300, n_classes=2, seed=0):
    """'good' separates the classes, 'noise' does not; 'half' is float16 of 'good'."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    split = rng.choice([0, 0, 0, 1, 2, 2], n).astype(np.uint8)
    store = create_store(path)
    store.add_dataset(
        "d",
        ids=[f"s{i}" for i in range(n)],
        labels=labels,
        split=split,
        task="binary" if n_classes == 2 else "multiclass",
        class_names=[f"c{i}" for i in range(n_classes)],
    )
    centers = rng.normal(size=(n_classes, 16)) * 1.5
    good = centers[labels] + rng.normal(size=(n, 16))
    write_embeddings(store, "d", "good", good.astype(np.float32))
    write_embeddings(store, "d", "noise", rng.normal(size=(n, 24)).astype(np.float32))
    return store, good, labels, split


def test_features_are_l2_normalised_per_backbone_and_concatenated(tmp_path):
    store, good, labels, _ = _signal_store(tmp_path / "s.zarr")
    data, (g, fused) = load_feature_sets(store, "d", [["good"], ["good", "noise"]])
    np.testing.assert_allclose(np.linalg.norm(g.X, axis=1), 1.0, rtol=1e-5)
    assert fused.widths == (16, 24) and fused.X.shape == (300, 40)
    np.testing.assert_allclose(fused.X[:, :16], g.X)
    np.testing.assert_allclose(np.linalg.norm(fused.X[:, 16:], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(data.labels, labels)


def test_standardise_uses_training_rows_only(tmp_path):
    store, good, _, split = _signal_store(tmp_path / "s.zarr")
    _, (g,) = load_feature_sets(store, "d", [["good"]], normalize="standard")
    train = split == 0
    np.testing.assert_allclose(g.X[train].mean(axis=0), 0.0, atol=1e-5)
    assert not np.allclose(g.X[~train].mean(axis=0), 0.0, atol=1e-3)


def test_rows_missing_in_any_backbone_are_dropped_everywhere(tmp_path):
    store, good, labels, _ = _signal_store(tmp_path / "s.zarr")
    w = store.writer("d", "holey", dim=4, dtype="float32")
    w.mark_missing(5, "s5", "unreadable")
    w.write(np.ones((300, 4)))
    w.finish({})
    data, sets = load_feature_sets(store, "d", [["good"], ["holey"]])
    assert data.n_dropped == 1 and 5 not in data.rows
    assert all(len(fs.X) == 299 for fs in sets)


def test_probe_records_and_references(tmp_path):
    store, good, labels, split = _signal_store(tmp_path / "s.zarr")
    results = evaluate_probes(
        open_store(store.location), "d", [["good"], ["noise"], ["good", "noise"]], "all", FAST
    )
    by = {(r.feature_name, r.method): r for r in results}
    assert {m for name, m in by if name == "good+noise"} == {
        "proto",
        "fewshot",
        "knn",
        "logreg",
        "dvme",
    }
    assert by[("good", "logreg")].metrics["accuracy"]["value"] > 0.85
    assert by[("noise", "logreg")].metrics["accuracy"]["value"] < 0.7
    for r in results:
        assert r.dataset == "d" and r.seed == 0 and "name" in r.protocol
        assert r.metrics["accuracy"]["ci_low"] <= r.metrics["accuracy"]["value"]
    # Nearest prototype equals scikit-learn's NearestCentroid on the same normalised rows.
    X = good / np.linalg.norm(good, axis=1, keepdims=True)
    fit, test = split != 2, split == 2
    ref = NearestCentroid().fit(X[fit], labels[fit]).score(X[test], labels[test])
    assert by[("good", "proto")].metrics["accuracy"]["value"] == pytest.approx(ref)
    # Logistic: C chosen on val, refit on train+val; same C in scikit-learn gives the same score.
    lr = by[("good", "logreg")]
    assert lr.selected_on == "val" and lr.n_train == int(fit.sum())
    sk = LogisticRegression(C=lr.hyperparameters["C"], max_iter=5000).fit(X[fit], labels[fit])
    assert lr.metrics["accuracy"]["value"] == pytest.approx(
        sk.score(X[test], labels[test]), abs=0.01
    )
    assert by[("good+noise", "dvme")].extra["attention_backbones"] == ["good", "noise"]
    assert ("good", "dvme") not in by  # 'all' fits DVME on fusions only


def test_fewshot_episodes_are_paired_across_feature_sets(tmp_path):
    store, *_ = _signal_store(tmp_path / "s.zarr")
    a = evaluate_probes(store, "d", [["good"], ["noise"]], "fewshot", FAST)
    b = evaluate_probes(store, "d", [["noise"]], "fewshot", FAST)
    # The noise backbone sees the same episodes whether or not 'good' is in the run.
    assert a[1].metrics == b[0].metrics
    assert a[0].metrics["accuracy"]["value"] > a[1].metrics["accuracy"]["value"]
    assert a[0].protocol["n_way"] == 2 and a[0].protocol["k_shot"] == 20


def test_selection_split_without_val_is_20_percent_of_train_and_fixed(tmp_path):
    store, *_ = _signal_store(tmp_path / "s.zarr")
    data, _ = load_feature_sets(store, "d", [["good"]])
    object.__setattr__(data, "split", np.where(data.split == 1, 0, data.split).astype(np.uint8))
    tr, va, how = selection_split(data, seed=3)
    tr2, va2, _ = selection_split(data, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert "20% of train" in how and not set(tr) & set(va)
    assert abs(len(va) / (len(tr) + len(va)) - 0.2) < 0.03
    assert set(va) <= set(data.indices("train"))


def test_probe_errors(tmp_path):
    store, *_ = _signal_store(tmp_path / "s.zarr")
    with pytest.raises(ArrayNotFoundError, match="did you mean 'good'"):
        evaluate_probes(store, "d", [["good", "goood"]], "knn", FAST)
    with pytest.raises(ProtocolError, match=r"largest feasible --shots \(k_shot\) is"):
        evaluate_probes(store, "d", [["good"]], "fewshot", ProbeOptions(k_shot=200))
    with pytest.raises(
        ProtocolError, match=r"--shots \(k_shot\) plus --n-query \(n_query\) must be"
    ):
        evaluate_probes(store, "d", [["good"]], "fewshot", ProbeOptions(n_query=500))
    w = store.writer("d", "partial", dim=3, chunk_rows=8)
    w.write(np.ones((10, 3)))
    with pytest.raises(IncompleteArrayError):
        evaluate_probes(store, "d", [["partial"]], "knn", FAST)


def test_multilabel_refuses_single_label_methods(tmp_path):
    store = create_store(tmp_path / "m.zarr")
    rng = np.random.default_rng(0)
    store.add_dataset(
        "m",
        ids=[str(i) for i in range(80)],
        labels=(rng.random((80, 3)) > 0.5).astype(int),
        split=rng.choice([0, 1, 2], 80),
        task="multilabel",
        class_names=["a", "b", "c"],
    )
    write_embeddings(store, "m", "bb", rng.normal(size=(80, 8)).astype(np.float32))
    with pytest.raises(ProtocolError, match="multilabel"):
        evaluate_probes(store, "m", [["bb"]], "proto", FAST)
    (r,) = evaluate_probes(store, "m", [["bb"]], "logreg", FAST)
    assert "auc" in r.metrics


def test_selection_split_without_val_keeps_patients_whole(tmp_path):
    store, *_ = _signal_store(tmp_path / "s.zarr")
    data, _ = load_feature_sets(store, "d", [["good"]])
    object.__setattr__(data, "split", np.where(data.split == 1, 0, data.split).astype(np.uint8))
    object.__setattr__(data, "group", np.array([f"p{i // 3}" for i in range(len(data.ids))]))
    tr, va, _ = selection_split(data, seed=0)
    assert not set(data.group[tr]) & set(data.group[va])
    assert abs(len(va) / (len(tr) + len(va)) - 0.2) < 0.05
