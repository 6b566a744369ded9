"""LogisticProbe and the C sweep against scikit-learn's LogisticRegression on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from embedstore.errors import InvalidDataError, LabelsError
from embedstore.probes.logistic import GRIDS, LogisticProbe, fit_best, logistic_sweep


def _data(n=300, d=20, k=4, seed=0, sep=1.0):
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d)) * sep
    y = rng.integers(0, k, n)
    X = rng.standard_normal((n, d)) + means[y] + 0.5
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("C", [0.1, 10.0])
def test_matches_sklearn_at_fixed_C(k, C):
    X, y = _data(k=k)
    ref = LogisticRegression(C=C, tol=1e-8, max_iter=5000).fit(X, y)
    task = "binary" if k == 2 else "multiclass"
    probe = LogisticProbe(C=C, task=task, tol=1e-8, dtype="float64").fit(X, y)
    assert probe.coef_.shape == ref.coef_.shape
    np.testing.assert_allclose(probe.predict_proba(X), ref.predict_proba(X), atol=1e-4)
    np.testing.assert_array_equal(probe.predict(X), ref.predict(X))
    np.testing.assert_allclose(
        probe.coef_, ref.coef_, atol=1e-3 * max(1.0, np.abs(ref.coef_).max())
    )
    assert probe.score(X, y) == pytest.approx(ref.score(X, y))


def test_float32_default_close_to_sklearn():
    X, y = _data(k=4)
    ref = LogisticRegression(C=1.0, max_iter=5000, tol=1e-8).fit(X, y)
    probe = LogisticProbe(C=1.0).fit(X, y)
    np.testing.assert_allclose(probe.predict_proba(X), ref.predict_proba(X), atol=1e-3)


def test_multilabel_matches_one_sklearn_fit_per_label():
    X, y = _data(k=3, seed=1)
    rng = np.random.default_rng(1)
    Y = np.stack([(y == 0) | (y == 1), y == 2, rng.random(len(y)) < 0.3], axis=1).astype(np.uint8)
    probe = LogisticProbe(C=2.0, task="multilabel", tol=1e-8, dtype="float64").fit(X, Y)
    proba = probe.predict_proba(X)
    assert proba.shape == Y.shape
    for j in range(Y.shape[1]):
        ref = LogisticRegression(C=2.0, tol=1e-8, max_iter=5000).fit(X, Y[:, j])
        np.testing.assert_allclose(proba[:, j], ref.predict_proba(X)[:, 1], atol=1e-4)
        np.testing.assert_array_equal(probe.predict(X)[:, j], ref.predict(X))


def test_ordinal_is_multiclass_and_string_labels_round_trip():
    X, y = _data(k=3)
    names = np.array(["a", "b", "c"])[y]
    a = LogisticProbe(task="ordinal", dtype="float64").fit(X, names)
    b = LogisticProbe(task="multiclass", dtype="float64").fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-8)
    assert set(a.predict(X)) <= {"a", "b", "c"}


def test_no_intercept_matches_sklearn():
    X, y = _data(k=3)
    ref = LogisticRegression(C=1.0, fit_intercept=False, tol=1e-8, max_iter=5000).fit(X, y)
    probe = LogisticProbe(C=1.0, fit_intercept=False, tol=1e-8, dtype="float64").fit(X, y)
    np.testing.assert_allclose(probe.predict_proba(X), ref.predict_proba(X), atol=1e-4)
    assert np.all(probe.intercept_ == 0)


def test_representer_basis_equals_primal_when_n_below_d():
    X, y = _data(n=40, d=200, k=3, seed=2)
    a = LogisticProbe(C=5.0, tol=1e-8, dtype="float64").fit(X, y)
    b = LogisticProbe(C=5.0, tol=1e-8, dtype="float64", precondition=False).fit(X, y)
    ref = LogisticRegression(C=5.0, tol=1e-8, max_iter=5000).fit(X, y)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-5)
    np.testing.assert_allclose(a.predict_proba(X), ref.predict_proba(X), atol=1e-4)


def test_warm_start_reaches_the_cold_start_solution():
    X, y = _data(k=3)
    cold = LogisticProbe(C=3.0, tol=1e-8, dtype="float64").fit(X, y)
    start = LogisticProbe(C=0.01, dtype="float64").fit(X, y)
    warm = LogisticProbe(C=3.0, tol=1e-8, dtype="float64").fit(X, y, init=start)
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=1e-5)
    # softmax is unchanged by a shift common to all intercepts; compare them up to that shift
    centre = lambda b: b - b.mean()  # noqa: E731
    np.testing.assert_allclose(centre(warm.intercept_), centre(cold.intercept_), atol=1e-5)
    np.testing.assert_allclose(warm.predict_proba(X), cold.predict_proba(X), atol=1e-6)


def test_sweep_matches_sklearn_per_C_and_selects_on_val():
    X, y = _data(n=400, d=30, k=3, sep=0.5, seed=3)
    Xtr, ytr, Xva, yva = X[:250], y[:250], X[250:], y[250:]
    Cs = GRIDS["ericsson"][::4]
    res = logistic_sweep(Xtr, ytr, Xva, yva, Cs=Cs, tol=1e-8, dtype="float64")
    ref = [
        LogisticRegression(C=C, tol=1e-8, max_iter=5000).fit(Xtr, ytr).score(Xva, yva) for C in Cs
    ]
    np.testing.assert_allclose(res.val_scores, ref, atol=1.5 / len(yva))
    assert res.best_index == int(np.argmax(res.val_scores)) and res.best_C == Cs[res.best_index]
    assert (
        res.selected_on == "val"
        and res.val_scores.shape == (len(Cs),)
        and res.n_iter.shape == (len(Cs),)
    )
    # a choice made on val: scoring on labels that favour the strongest regularisation changes it
    y_const = np.full_like(yva, np.bincount(ytr).argmax())
    other = logistic_sweep(Xtr, ytr, Xva, y_const, Cs=Cs, dtype="float64")
    assert other.best_C == Cs[int(np.argmax(other.val_scores))]
    assert other.best_C != res.best_C
    probe = fit_best(res, Xtr, ytr, Xva, yva, dtype="float64", tol=1e-8)
    ref_best = LogisticRegression(C=res.best_C, tol=1e-8, max_iter=5000).fit(X, y)
    np.testing.assert_allclose(probe.predict_proba(X), ref_best.predict_proba(X), atol=1e-4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p, X, y: p.fit(X[:, 0], y), "2-D"),
        (
            lambda p, X, y: p.fit(np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), y),
            "finite",
        ),
        (lambda p, X, y: p.fit(X, y[:-1]), "same number of samples"),
        (lambda p, X, y: p.fit(X, y).predict(X[:, :-1]), "fitted with 20"),
        (lambda p, X, y: p.predict(X), "not fitted"),
        (lambda p, X, y: LogisticProbe(task="regression").fit(X, y), "task must be one of"),
        (lambda p, X, y: LogisticProbe(task="binary").fit(X, y), "exactly 2 classes"),
        (lambda p, X, y: LogisticProbe(C=0).fit(X, y), "C must be positive"),
    ],
)
def test_input_validation(call, match):
    X, y = _data(n=50, k=3)
    error = LabelsError if "classes" in match else InvalidDataError  # labels it cannot learn from
    with pytest.raises(error, match=match):
        call(LogisticProbe(), X, y)


def test_refit_reusing_the_sweeps_rotation_gives_the_same_solution():
    from scipy.stats import ortho_group

    rng = np.random.default_rng(11)
    X = rng.normal(size=(300, 12))
    y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)
    R = ortho_group.rvs(12, random_state=3)  # any orthogonal basis is exact
    plain = LogisticProbe(C=0.7, task="binary", dtype="float64", tol=1e-10).fit(X, y)
    rotated = LogisticProbe(C=0.7, task="binary", dtype="float64", tol=1e-10).fit(X, y, rotation=R)
    np.testing.assert_allclose(rotated.coef_, plain.coef_, atol=1e-6)
    np.testing.assert_allclose(rotated.intercept_, plain.intercept_, atol=1e-6)


def test_rows_fit_the_same_model_as_copied_rows():
    """``rows=`` (no copy of the rows out of X) gives what fitting on ``X[rows]`` gives."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    tr, va = np.sort(rng.choice(400, 250, replace=False)), np.arange(0, 400, 7)
    a = logistic_sweep(X[tr], y[tr], X[va], y[va], Cs=[0.01, 1.0, 100.0], dtype="float64")
    b = logistic_sweep(
        X, y[tr], X, y[va], Cs=[0.01, 1.0, 100.0], dtype="float64", train_rows=tr, val_rows=va
    )
    np.testing.assert_array_equal(a.val_scores, b.val_scores)
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-6)
    p = LogisticProbe(C=0.5, dtype="float64", tol=1e-10).fit(X[tr], y[tr])
    q = LogisticProbe(C=0.5, dtype="float64", tol=1e-10).fit(X, y[tr], rows=tr)
    np.testing.assert_allclose(q.coef_, p.coef_, atol=1e-6)
    with pytest.raises(InvalidDataError, match="rows must be"):
        LogisticProbe().fit(X, y[:3], rows=np.array([0, 1, 400]))
