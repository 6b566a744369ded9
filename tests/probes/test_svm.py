"""The SVM probe against scikit-learn's SVC (same libsvm, kernel computed by a matrix product)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.svm import SVC

from embedstore.errors import InvalidDataError
from embedstore.probes.svm import SVM_C_GRID, SVMProbe, rbf_kernel, svm_select_C


def _data(n=160, d=10, k=2, seed=0, imbalance=0.7):
    rng = np.random.default_rng(seed)
    p = np.array([imbalance] + [(1 - imbalance) / (k - 1)] * (k - 1))
    y = rng.choice(k, size=n, p=p)
    X = rng.normal(size=(n, d)) + 1.0 * np.eye(k, d)[y]
    return X.astype(np.float32), y


def _svc(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # SVC(probability=True), sklearn 1.9
        return SVC(kernel="rbf", **kw)


@pytest.mark.parametrize(
    "k,kw",
    [
        (2, {"C": 1.0}),
        (2, {"C": 10.0, "class_weight": "balanced"}),
        (3, {"C": 0.5, "class_weight": "balanced", "break_ties": True}),
        (3, {"C": 2.0, "gamma": "auto"}),
        (2, {"C": 1.0, "gamma": 0.05, "class_weight": {0: 1.0, 1: 4.0}}),
    ],
)
def test_matches_scikit_learn_svc(k, kw):
    X, y = _data(k=k)
    Xtr, ytr, Xte = X[:110], y[:110], X[110:]
    ref = _svc(probability=True, random_state=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref.fit(Xtr, ytr)
    ours = SVMProbe(probability=True, random_state=0, **kw).fit(Xtr, ytr)
    np.testing.assert_array_equal(ours.predict(Xte), ref.predict(Xte))
    np.testing.assert_allclose(ours.decision_function(Xte), ref.decision_function(Xte), atol=1e-8)
    # Platt's probabilities come from five internal fits solved to libsvm's tol (1e-3): kernel
    # rounding (1e-16) moves them at the 1e-5 level, never the class they rank first here
    p_ours, p_ref = ours.predict_proba(Xte), ref.predict_proba(Xte)
    np.testing.assert_allclose(p_ours, p_ref, atol=1e-4)
    np.testing.assert_array_equal(p_ours.argmax(1), p_ref.argmax(1))
    np.testing.assert_array_equal(np.sort(ours.support_), np.sort(ref.support_))
    assert ours.gamma_ == pytest.approx(ref._gamma)


def test_balanced_weighting_changes_the_svm():
    X, y = _data(n=200, imbalance=0.85, seed=3)
    plain = SVMProbe(C=1.0, probability=False).fit(X, y)
    bal = SVMProbe(C=1.0, probability=False, class_weight="balanced").fit(X, y)
    minority = y == 1
    assert (bal.predict(X)[minority] == 1).mean() > (plain.predict(X)[minority] == 1).mean()


def test_rbf_kernel_is_brute_force():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
    brute = np.exp(-0.3 * ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(rbf_kernel(A, B, 0.3), brute, rtol=1e-12)


def test_select_C_scores_each_C_on_validation_like_svc():
    X, y = _data(n=200, k=3, seed=5)
    tr, va = slice(0, 140), slice(140, 200)
    sel = svm_select_C(X[tr], y[tr], X[va], y[va], Cs=[0.01, 1.0, 100.0], class_weight="balanced")
    for C, score in zip(sel.Cs, sel.val_scores, strict=True):
        ref = _svc(C=C, class_weight="balanced").fit(X[tr], y[tr])
        assert score == pytest.approx((ref.predict(X[va]) == y[va]).mean())
    assert (
        sel.best_C in (0.01, 1.0, 100.0) and sel.val_scores[sel.best_index] == sel.val_scores.max()
    )
    assert sel.selected_on == "val" and len(SVM_C_GRID) == 11


def test_select_C_never_reads_rows_it_is_not_given():
    # the validation rows decide; rows that are neither train nor val cannot change anything
    X, y = _data(n=200, k=2, seed=6)
    a = svm_select_C(X[:120], y[:120], X[120:160], y[120:160])
    X2 = X.copy()
    X2[160:] = 1e3 * np.random.default_rng(1).normal(size=X2[160:].shape)  # "test" rows poisoned
    b = svm_select_C(X2[:120], y[:120], X2[120:160], y[120:160])
    np.testing.assert_array_equal(a.val_scores, b.val_scores)


def test_errors_are_clear():
    X, y = _data()
    with pytest.raises(InvalidDataError, match="C must be"):
        SVMProbe(C=0).fit(X, y)
    with pytest.raises(InvalidDataError, match="gamma"):
        SVMProbe(gamma="wide").fit(X, y)
    with pytest.raises(InvalidDataError, match="probability=True"):
        SVMProbe(probability=False).fit(X, y).predict_proba(X)
    with pytest.raises(InvalidDataError, match="expecting 10 features"):
        SVMProbe().fit(X, y).predict(X[:, :3])
    with pytest.raises(InvalidDataError, match="n_samples,"):
        SVMProbe().fit(X, np.stack([y, y], axis=1))
