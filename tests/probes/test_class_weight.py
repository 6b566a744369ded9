"""class_weight="balanced" against scikit-learn (logistic) and a brute-force numpy kNN."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_class_weight

from embedstore.errors import InvalidDataError
from embedstore.probes._weights import class_weights, sample_weights
from embedstore.probes.knn import KNNClassifier
from embedstore.probes.logistic import LogisticProbe, logistic_sweep


def _imbalanced(n=240, d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    p = np.array([0.7] + [0.3 / (k - 1)] * (k - 1))
    y = rng.choice(k, size=n, p=p)
    X = rng.normal(size=(n, d)) + 1.2 * np.eye(k, d)[y]
    return X, y


@pytest.mark.parametrize("k", [2, 3])
def test_balanced_weights_are_scikit_learns(k):
    _, y = _imbalanced(k=k)
    classes = np.unique(y)
    expected = compute_class_weight("balanced", classes=classes, y=y)
    np.testing.assert_allclose(class_weights("balanced", classes, y), expected)
    sw = sample_weights("balanced", classes, y)
    assert sw.sum() == pytest.approx(len(y))  # n / (k n_c) summed over samples
    np.testing.assert_allclose(class_weights({0: 2.0}, classes, y)[0], 2.0)
    assert sample_weights(None, classes, y) is None


@pytest.mark.parametrize("k,C", [(2, 0.05), (2, 2.5), (3, 0.05), (3, 2.5)])
def test_logistic_balanced_matches_scikit_learn(k, C):
    X, y = _imbalanced(k=k)
    ref = LogisticRegression(C=C, class_weight="balanced", tol=1e-10, max_iter=10000).fit(X, y)
    ours = LogisticProbe(C=C, class_weight="balanced", dtype="float64", tol=1e-10).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    # and the weighting changes the answer: the minority classes gain recall
    plain = LogisticProbe(C=C, dtype="float64", tol=1e-10).fit(X, y)
    assert not np.allclose(plain.coef_, ours.coef_)


def test_logistic_sweep_and_dict_weights_match_scikit_learn():
    X, y = _imbalanced(k=3, seed=1)
    sw = logistic_sweep(
        X[:160],
        y[:160],
        X[160:],
        y[160:],
        Cs=[0.1, 1.0],
        class_weight="balanced",
        tol=1e-10,
        dtype="float64",
    )
    for p, C in enumerate([0.1, 1.0]):
        ref = LogisticRegression(C=C, class_weight="balanced", tol=1e-10, max_iter=10000)
        ref.fit(X[:160], y[:160])
        np.testing.assert_allclose(sw.coef[p], ref.coef_, atol=1e-4)
    cw = {0: 0.5, 2: 3.0}
    ref = LogisticRegression(C=1.0, class_weight=cw, tol=1e-10, max_iter=10000).fit(X, y)
    ours = LogisticProbe(C=1.0, class_weight=cw, dtype="float64", tol=1e-10).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def _brute_knn(Xb, yb, Xq, k, T, weighted):
    """DINO's vote with each vote times n / (C n_c): a loop over queries in numpy."""
    C = yb.max() + 1
    cw = len(yb) / (C * np.bincount(yb, minlength=C)) if weighted else np.ones(C)
    Bn = Xb / np.linalg.norm(Xb, axis=1, keepdims=True)
    out = []
    for q in Xq:
        s = Bn @ (q / np.linalg.norm(q))
        nn = np.argsort(-s, kind="stable")[:k]
        votes = np.zeros(C)
        for j in nn:
            votes[yb[j]] += np.exp(s[j] / T) * cw[yb[j]]
        out.append(votes / votes.sum())
    return np.array(out)


@pytest.mark.parametrize("weighted", [False, True])
def test_knn_balanced_votes_match_brute_force(weighted):
    X, y = _imbalanced(n=200, k=3, seed=2)
    Xb, yb, Xq = X[:150], y[:150], X[150:]
    knn = KNNClassifier(k=15, class_weight="balanced" if weighted else None).fit(Xb, yb)
    np.testing.assert_allclose(
        knn.predict_proba(Xq), _brute_knn(Xb, yb, Xq, 15, 0.07, weighted), atol=1e-5
    )


def test_knn_balanced_raises_minority_recall():
    X, y = _imbalanced(n=600, k=3, seed=3)
    X = X + np.random.default_rng(0).normal(scale=2.0, size=X.shape)  # overlapping classes
    plain = KNNClassifier(k=30).fit(X[:400], y[:400]).predict(X[400:])
    bal = KNNClassifier(k=30, class_weight="balanced").fit(X[:400], y[:400]).predict(X[400:])
    yt = X[400:], y[400:]
    minority = yt[1] != 0
    assert (bal[minority] == yt[1][minority]).mean() > (plain[minority] == yt[1][minority]).mean()


@pytest.mark.parametrize("bad", ["balance", {0: -1.0}, 3])
def test_bad_class_weight_is_one_clear_error(bad):
    X, y = _imbalanced()
    with pytest.raises(InvalidDataError, match="class_weight"):
        LogisticProbe(class_weight=bad).fit(X, y)


def test_class_weight_refused_for_multilabel():
    X, _ = _imbalanced()
    Y = (np.random.default_rng(0).random((len(X), 3)) > 0.5).astype(int)
    with pytest.raises(InvalidDataError, match="single-label"):
        KNNClassifier(class_weight="balanced").fit(X, Y)
    with pytest.raises(InvalidDataError, match="single-label"):
        LogisticProbe(task="multilabel", class_weight="balanced").fit(X, Y)
