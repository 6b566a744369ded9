"""Paired tests on the same test images against independent references: DeLong by hand (the
1988 definitions, O(m n) loops) and against the paired bootstrap, McNemar and Holm against
statsmodels, the paired bootstrap against a plain numpy loop over patients."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm, rankdata
from sklearn import metrics as skm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from embedstore.errors import InvalidDataError
from embedstore.results.paired import (
    compare_predictions,
    compare_to_best,
    delong_test,
    holm,
    mcnemar_exact,
)
from embedstore.results.predictions import Predictions


def _delong_by_hand(y, a, b):
    """DeLong, DeLong & Clarke-Pearson (1988) from their definitions, pair by pair."""
    y = np.asarray(y).astype(bool)
    comps = []
    for s in (a, b):
        X, Y = s[y], s[~y]
        psi = (X[:, None] > Y[None, :]) + 0.5 * (X[:, None] == Y[None, :])  # (m, n) every pair
        V10, V01 = psi.mean(axis=1), psi.mean(axis=0)
        comps.append((V10.mean(), V10, V01))
    m, n = int(y.sum()), int((~y).sum())
    S10 = np.cov(np.stack([comps[0][1], comps[1][1]]))
    S01 = np.cov(np.stack([comps[0][2], comps[1][2]]))
    S = S10 / m + S01 / n
    var = S[0, 0] + S[1, 1] - 2 * S[0, 1]
    z = (comps[0][0] - comps[1][0]) / np.sqrt(var)
    return comps[0][0], comps[1][0], 2 * norm.sf(abs(z))


def _preds(y, proba, groups=None, rid="r"):
    y = np.asarray(y)
    return Predictions(rid, "binary" if proba.shape[1] == 2 else "multiclass",
                       tuple(str(c) for c in range(proba.shape[1])),
                       np.array([f"s{i}" for i in range(len(y))]), groups, y,
                       proba.argmax(1), proba)  # fmt: skip


def test_delong_small_hand_computed_case_with_ties():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    a = np.array([0.9, 0.8, 0.4, 0.5, 0.3, 0.2, 0.4])
    b = np.array([0.7, 0.6, 0.6, 0.6, 0.5, 0.1, 0.2])
    res = delong_test(y, a, b)
    auc_a, auc_b, p = _delong_by_hand(y, a, b)
    assert res.auc_a == pytest.approx(auc_a, abs=1e-12) == skm.roc_auc_score(y, a)
    assert res.auc_b == pytest.approx(auc_b, abs=1e-12)
    assert res.p_value == pytest.approx(p, abs=1e-6)


def test_delong_larger_case_matches_hand_loops_and_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    a = y * 1.0 + rng.normal(0, 1.0, n)
    b = y * 0.6 + 0.5 * a + rng.normal(0, 1.0, n)
    res = delong_test(y, a, b)
    _, _, p = _delong_by_hand(y, a, b)
    assert res.p_value == pytest.approx(p, abs=1e-6)
    # the paired bootstrap of the AUC difference has about DeLong's standard error
    idx = rng.integers(0, n, size=(2000, n))
    pos = y[idx] == 1  # (B, n)
    m = pos.sum(axis=1)

    def mann_whitney_auc(s):  # rank-sum AUC per resample, midranks for ties
        ranks = rankdata(s[idx], axis=1)
        return ((ranks * pos).sum(axis=1) - m * (m + 1) / 2) / (m * (n - m))

    diffs = mann_whitney_auc(a) - mann_whitney_auc(b)
    assert np.std(diffs) == pytest.approx(res.se, rel=0.1)


def test_delong_refuses_a_single_positive():
    with pytest.raises(InvalidDataError, match="2 positives"):
        delong_test([1, 0, 0], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])


@pytest.mark.parametrize("a_only,b_only,both", [(3, 9, 20), (0, 0, 5), (7, 2, 0), (15, 30, 3)])
def test_mcnemar_exact_matches_statsmodels(a_only, b_only, both):
    ca = np.r_[np.ones(a_only), np.zeros(b_only), np.ones(both), np.zeros(4)].astype(bool)
    cb = np.r_[np.zeros(a_only), np.ones(b_only), np.ones(both), np.zeros(4)].astype(bool)
    res = mcnemar_exact(ca, cb)
    table = [[both, a_only], [b_only, 4]]
    assert (res.a_only, res.b_only) == (a_only, b_only)
    assert res.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-6)


def test_holm_matches_statsmodels():
    p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.04]
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist(), abs=1e-12)


def _grouped_pair(n_patients=40, seed=1):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_patients)
    groups = np.repeat(np.array([f"p{i:02d}" for i in range(n_patients)]), sizes)
    y = np.repeat(rng.integers(0, 2, n_patients), sizes)
    effect = np.repeat(rng.normal(0, 1, n_patients), sizes)
    sa = y * 1.2 + effect + rng.normal(0, 0.7, y.size)
    sb = y * 0.8 + effect + rng.normal(0, 0.7, y.size)
    to_p = lambda s: np.c_[1 - 1 / (1 + np.exp(-s)), 1 / (1 + np.exp(-s))]  # noqa: E731
    return y, to_p(sa), to_p(sb), groups


def test_paired_cluster_bootstrap_matches_a_numpy_loop_and_tests_match_references():
    y, pa, pb, groups = _grouped_pair()
    a, b = _preds(y, pa, groups, "a"), _preds(y, pb, groups, "b")
    B, seed = 300, 5
    c = compare_predictions(a, b, n_bootstrap=B, seed=seed)
    assert c.unit == "patient" and c.n_units == 40 and c.n_images == y.size
    ids = np.unique(groups)
    draws = np.random.default_rng(seed).integers(0, ids.size, size=(B, ids.size))
    acc, auc = [], []
    for d in draws:
        rows = np.concatenate([np.flatnonzero(groups == ids[g]) for g in d])
        acc.append(
            skm.accuracy_score(y[rows], pa[rows].argmax(1))
            - skm.accuracy_score(y[rows], pb[rows].argmax(1))
        )
        if len(set(y[rows])) == 2:
            auc.append(
                skm.roc_auc_score(y[rows], pa[rows, 1]) - skm.roc_auc_score(y[rows], pb[rows, 1])
            )
    for key, ref in (("accuracy", acc), ("auc", auc)):
        lo, hi = np.quantile(ref, [0.025, 0.975])
        m = c.metrics[key]
        assert (m.ci_low, m.ci_high) == pytest.approx((lo, hi), abs=1e-12), key
        assert m.diff == pytest.approx(m.a - m.b)
    _, _, p = _delong_by_hand(y, pa[:, 1], pb[:, 1])
    assert c.delong.p_value == pytest.approx(p, abs=1e-6)
    ca, cb = pa.argmax(1) == y, pb.argmax(1) == y
    table = [[(ca & cb).sum(), (ca & ~cb).sum()], [(~ca & cb).sum(), (~ca & ~cb).sum()]]
    assert c.mcnemar.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-6)
    assert any("resamples the 40 patients" in n for n in c.notes)
    assert c.to_dict()["bootstrap"].startswith("paired percentile bootstrap over patients")


def test_compare_to_best_orders_rows_and_adjusts_with_holm():
    y, pa, pb, groups = _grouped_pair(seed=2)
    rng = np.random.default_rng(3)
    pc = np.c_[1 - (q := rng.random(y.size)), q]  # noise
    preds = {n: _preds(y, p, groups, n) for n, p in (("dino", pa), ("swav", pb), ("noise", pc))}
    out = compare_to_best(preds, pairs=[("swav", "noise")], n_bootstrap=100)
    assert [(c.a, c.b) for c in out] == [("dino", "swav"), ("dino", "noise"), ("swav", "noise")]
    raw = [c.delong.p_value for c in out]
    ref = multipletests(raw, method="holm")[1]
    assert [c.p_holm["delong"] for c in out] == pytest.approx(ref.tolist(), abs=1e-12)
    with pytest.raises(InvalidDataError, match="no saved predictions"):
        compare_to_best(preds, pairs=[("dino", "moco")])


def test_rows_in_another_order_are_aligned_and_other_splits_refused():
    y, pa, pb, _ = _grouped_pair(seed=4)
    a = _preds(y, pa, None, "a")
    order = np.random.default_rng(0).permutation(y.size)
    b = _preds(y, pb, None, "b")
    shuffled = Predictions("b", "binary", b.class_names, b.ids[order], None, y[order],
                           b.y_pred[order], pb[order])  # fmt: skip
    c1 = compare_predictions(a, b, n_bootstrap=50)
    c2 = compare_predictions(a, shuffled, n_bootstrap=50)
    assert c1.delong == c2.delong and c1.metrics == c2.metrics
    short = Predictions("c", "binary", b.class_names, b.ids[:-1], None, y[:-1], b.y_pred[:-1],
                        pb[:-1])  # fmt: skip
    with pytest.raises(InvalidDataError, match="same test images"):
        compare_predictions(a, short)


def test_multiclass_has_no_delong_but_a_bootstrap_auc_difference():
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(3), 20)
    pa, pb = rng.dirichlet(np.ones(3), 60), rng.dirichlet(np.ones(3), 60)
    pa[np.arange(60), y] += 1
    pa /= pa.sum(1, keepdims=True)
    c = compare_predictions(_preds(y, pa), _preds(y, pb), n_bootstrap=200)
    assert c.delong is None and "binary AUC" in c.notes[0]
    assert c.metrics["auc"].ci_low > 0  # a is clearly better
    assert c.mcnemar is not None and c.unit == "image"
