"""Metrics against hand-computed cases and sklearn.metrics, point estimates and resamples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from embedstore.errors import InvalidDataError
from embedstore.probes.metrics import Metric, _all_metrics, classification_metrics, mean_ci


def _softmax_data(n: int, C: int, seed: int = 0, signal: float = 1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    logits = rng.normal(size=(n, C))
    logits[np.arange(n), y] += signal
    p = np.exp(logits)
    return y, p / p.sum(1, keepdims=True)


def _multilabel_data(n: int, L: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, L)) < 0.35).astype(np.int64)
    p = np.clip(0.3 * y + 0.7 * rng.random((n, L)), 0, 1)
    return y, p


def _sklearn(y, proba, task):
    if task == "multilabel":
        pred = (proba >= 0.5).astype(int)
        L = y.shape[1]
        return {
            "accuracy": np.mean([skm.accuracy_score(y[:, j], pred[:, j]) for j in range(L)]),
            "balanced_accuracy": np.mean(
                [skm.balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(L)]
            ),
            "macro_f1": skm.f1_score(y, pred, average="macro", zero_division=0),
            "auc": skm.roc_auc_score(y, proba, average="macro"),
        }
    pred = proba.argmax(1)
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "macro_f1": skm.f1_score(y, pred, average="macro"),
        "auc": skm.roc_auc_score(y, proba[:, 1])
        if task == "binary"
        else skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
    }
    if task == "ordinal":
        C = proba.shape[1]
        out["kappa"] = skm.cohen_kappa_score(y, pred, weights="quadratic", labels=np.arange(C))
    return out


def test_hand_computed_binary():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, np.c_[1 - p1, p1], task="binary", n_bootstrap=0)
    assert m["accuracy"].value == pytest.approx(0.5)
    assert m["balanced_accuracy"].value == pytest.approx(0.5)
    assert m["macro_f1"].value == pytest.approx(0.5)
    assert m["auc"].value == pytest.approx(0.75)  # 3 of the 4 positive-negative pairs ordered
    assert set(m) == {"accuracy", "balanced_accuracy", "macro_f1", "auc"}
    assert m["auc"].ci_low is None


def test_hand_computed_auc_with_ties():
    y = np.array([0, 1, 0, 1])
    p1 = np.array([0.5, 0.5, 0.2, 0.8])  # one tied pair counts 1/2: (1 + 0.5 + 1 + 1) / 4
    m = classification_metrics(y, np.c_[1 - p1, p1], task="binary", n_bootstrap=0)
    assert m["auc"].value == pytest.approx(0.875)


def test_hand_computed_quadratic_kappa():
    y = np.array([0, 1, 2])
    proba = np.eye(3)[[0, 2, 2]]  # predictions 0, 2, 2
    m = classification_metrics(y, proba, task="ordinal", n_bootstrap=0)
    # observed sum w*O = 1, expected sum w*E = 15/3 with w = (i - j)^2, so kappa = 1 - 1/5
    assert m["kappa"].value == pytest.approx(0.8)
    assert m["kappa"].value == pytest.approx(
        skm.cohen_kappa_score(y, [0, 2, 2], weights="quadratic")
    )


@pytest.mark.parametrize(
    "task,C", [("binary", 2), ("multiclass", 4), ("ordinal", 5), ("multilabel", 6)]
)
def test_point_estimates_match_sklearn(task, C):
    if task == "multilabel":
        y, proba = _multilabel_data(300, C, seed=1)
    else:
        y, proba = _softmax_data(300, C, seed=1)
    ours = classification_metrics(y, proba, task=task, n_bootstrap=0)
    ref = _sklearn(y, proba, task)
    assert set(ours) == set(ref)
    for key, value in ref.items():
        assert ours[key].value == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("task,C", [("binary", 2), ("ordinal", 4), ("multilabel", 3)])
def test_bootstrap_replicates_match_sklearn_on_resampled_rows(task, C):
    if task == "multilabel":
        y, proba = _multilabel_data(120, C, seed=2)
        pred = (proba >= 0.5).astype(np.int64)
    else:
        y, proba = _softmax_data(120, C, seed=2, signal=0.5)
        pred = proba.argmax(1)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 120, size=(4, 120))
    W = np.stack([np.bincount(row, minlength=120) for row in idx]).astype(float)
    ours = _all_metrics(W, y, proba, pred, task)
    for b in range(4):
        ref = _sklearn(y[idx[b]], proba[idx[b]], task)
        for key, value in ref.items():
            assert ours[key][b] == pytest.approx(value, abs=1e-12), (key, b)


def test_bootstrap_ci_contains_point_narrows_with_n_and_is_seeded():
    widths = []
    for n in (200, 2000):
        y, proba = _softmax_data(n, 3, seed=4)
        m = classification_metrics(y, proba, task="multiclass", n_bootstrap=200, seed=0)
        for metric in m.values():
            assert metric.ci_low <= metric.value <= metric.ci_high
        widths.append(m["accuracy"].ci_high - m["accuracy"].ci_low)
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(10) of the width
    again = classification_metrics(y, proba, task="multiclass", n_bootstrap=200, seed=0)
    assert again == m
    other = classification_metrics(y, proba, task="multiclass", n_bootstrap=200, seed=1)
    assert other["accuracy"].ci_low != m["accuracy"].ci_low or (
        other["accuracy"].ci_high != m["accuracy"].ci_high
    )


def test_auc_with_under_two_positives_is_not_estimable_and_replicates_skip_undefined():
    # issue 21: an AUC on fewer than 2 positives (or negatives) is "not estimable", not a number
    y = np.zeros(10, dtype=int)
    p1 = np.linspace(0, 1, 10)
    for n_pos in (0, 1):
        y[:n_pos] = 1
        m = classification_metrics(y, np.c_[1 - p1, p1], task="binary", n_bootstrap=50)
        assert np.isnan(m["auc"].value) and m["auc"].ci_low is None
        d = m["auc"].to_dict()
        assert d["value"] is None and d["ci_low"] is None and d["ci_high"] is None
        assert d["reason"].startswith(f"{n_pos} positives")
    # rare positives (3 of 40): replicates that miss them are skipped, the rest give an interval
    y = np.zeros(40, dtype=int)
    y[:3] = 1
    p1 = np.random.default_rng(0).random(40)
    m = classification_metrics(y, np.c_[1 - p1, p1], task="binary", n_bootstrap=200)
    assert 0.0 <= m["auc"].ci_low <= m["auc"].ci_high <= 1.0


def test_multilabel_auc_ignores_labels_with_one_class():
    y, proba = _multilabel_data(200, 3, seed=5)
    y[:, 2] = 0  # label 2 never positive: its AUC is undefined
    m = classification_metrics(y, proba, task="multilabel", n_bootstrap=0)
    assert m["auc"].value == pytest.approx(skm.roc_auc_score(y[:, :2], proba[:, :2]))


def test_mean_ci_population_std():
    m = mean_ci([0.0, 1.0])
    half = 1.96 * 0.5 / np.sqrt(2)  # population std of {0, 1} is 0.5
    assert m == Metric(0.5, pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    assert mean_ci([0.7]).to_dict() == {"value": 0.7, "ci_low": 0.7, "ci_high": 0.7}
    with pytest.raises(InvalidDataError):
        mean_ci([])


@pytest.mark.parametrize(
    "y,proba,task,match",
    [
        ([0, 1], [[0.5, 0.5], [0.2, 0.8]], "regression", "task must be one of"),
        ([0, 1], [[0.3, 0.3, 0.4], [0.2, 0.7, 0.1]], "binary", "2 columns"),
        ([0, 3], [[0.5, 0.5], [0.2, 0.8]], "multiclass", r"lie in \[0, 2\)"),
        ([0, 1], [[0.5, np.nan], [0.2, 0.8]], "binary", "finite"),
        ([0, 1, 1], [[0.5, 0.5], [0.2, 0.8]], "binary", "3 rows but X has 2"),
        ([0, 1], [0.5, 0.2], "binary", "2-D"),
        ([[0, 1], [1, 0]], [[0.5, 0.5], [0.2, 0.8]], "binary", "1-D class labels"),
        ([[0, 2], [1, 0]], [[0.5, 0.5], [0.2, 0.8]], "multilabel", "only 0 and 1"),
    ],
)
def test_bad_input_raises_clear_error(y, proba, task, match):
    with pytest.raises(InvalidDataError, match=match):
        classification_metrics(np.array(y), np.array(proba), task=task)
