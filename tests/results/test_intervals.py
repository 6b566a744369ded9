"""Patient-level and exact intervals of classification_metrics against independent references:
scipy's exact binomial interval and a plain numpy loop over resampled patients."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn import metrics as skm

from embedstore.errors import InvalidDataError
from embedstore.probes.metrics import classification_metrics
from embedstore.results.intervals import clopper_pearson


def _grouped(n_patients: int, seed: int = 0):
    """Binary data with 1-5 images per patient and a patient effect on correctness."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_patients)
    groups = np.repeat(np.array([f"p{i:03d}" for i in range(n_patients)]), sizes)
    y = np.repeat(rng.integers(0, 2, n_patients), sizes)
    hard = np.repeat(rng.random(n_patients) < 0.3, sizes)  # patients the model gets wrong
    p1 = np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.1, y.size)
    p1 = np.clip(np.where(hard, 1 - p1, p1), 0, 1)
    return y, np.c_[1 - p1, p1], groups


@pytest.mark.parametrize("k,n", [(16, 16), (0, 12), (6, 12), (25, 29)])
def test_small_n_accuracy_gets_scipys_exact_interval(k, n):
    y = np.array([0, 1] * (n // 2) + [0] * (n % 2))
    correct = np.zeros(n, dtype=bool)
    correct[:k] = True
    pred = np.where(correct, y, 1 - y)
    m = classification_metrics(y, np.eye(2)[pred], task="binary", n_bootstrap=200)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    acc = m["accuracy"]
    assert acc.value == pytest.approx(k / n)
    assert (acc.ci_low, acc.ci_high) == pytest.approx((ref.low, ref.high), abs=1e-9)
    assert acc.ci_high > acc.ci_low  # never zero-width
    assert acc.ci_method.startswith("Clopper-Pearson") and acc.ci_unit == "image"
    if k == n == 16:  # the case: 16 of 16 correct is 79.4-100, not 100 +- 0
        assert round(acc.ci_low * 100, 1) == 79.4 and acc.ci_high == 1.0


def test_degenerate_bootstrap_at_large_n_also_goes_exact():
    y = np.array([0, 1] * 30)
    m = classification_metrics(y, np.eye(2)[y], task="binary", n_bootstrap=100)
    ref = binomtest(60, 60).proportion_ci(method="exact")
    assert m["accuracy"].ci_low == pytest.approx(ref.low, abs=1e-9)
    assert m["balanced_accuracy"].ci_low == pytest.approx(ref.low, abs=1e-9)  # balanced: n_eff=60
    # macro-F1 and AUC are 1 in every replicate: no interval rather than a zero-width one
    assert m["macro_f1"].ci_low is None and m["macro_f1"].ci_method.startswith("none")
    assert m["auc"].ci_low is None


def test_balanced_accuracy_exact_interval_uses_harmonic_class_count():
    y = np.array([0] * 20 + [1] * 5)  # n_eff = 2 * H(20, 5) = 2 * 8 = 16
    m = classification_metrics(y, np.eye(2)[y], task="binary", n_bootstrap=50)
    ref = binomtest(16, 16).proportion_ci(method="exact")
    assert m["balanced_accuracy"].ci_low == pytest.approx(ref.low, abs=1e-9)
    assert "n_eff=16" in m["balanced_accuracy"].ci_method


def test_cluster_bootstrap_matches_a_numpy_loop_over_patients():
    y, proba, groups = _grouped(40, seed=1)
    B, seed = 300, 7
    m = classification_metrics(y, proba, task="binary", n_bootstrap=B, seed=seed, groups=groups)
    # reference: the same draws (patients in sorted-id order), one resample at a time
    ids = np.unique(groups)
    draws = np.random.default_rng(seed).integers(0, ids.size, size=(B, ids.size))
    pred = proba.argmax(1)
    acc, bal, auc = [], [], []
    for b in range(B):
        rows = np.concatenate([np.flatnonzero(groups == ids[g]) for g in draws[b]])
        acc.append(skm.accuracy_score(y[rows], pred[rows]))
        bal.append(skm.balanced_accuracy_score(y[rows], pred[rows]))
        if len(set(y[rows])) == 2:
            auc.append(skm.roc_auc_score(y[rows], proba[rows, 1]))
    for key, ref in (("accuracy", acc), ("balanced_accuracy", bal), ("auc", auc)):
        lo, hi = np.quantile(ref, [0.025, 0.975])
        assert (m[key].ci_low, m[key].ci_high) == pytest.approx((lo, hi), abs=1e-12), key
        assert m[key].ci_unit == "patient" and m[key].n_units == 40
        assert "cluster" in m[key].ci_method
    assert m["accuracy"].to_dict()["ci_unit"] == "patient"


def test_patient_interval_is_wider_than_the_image_interval_on_clustered_errors():
    y, proba, groups = _grouped(60, seed=2)
    by_image = classification_metrics(y, proba, task="binary", n_bootstrap=400)
    by_patient = classification_metrics(y, proba, task="binary", n_bootstrap=400, groups=groups)
    w_img = by_image["accuracy"].ci_high - by_image["accuracy"].ci_low
    w_pat = by_patient["accuracy"].ci_high - by_patient["accuracy"].ci_low
    assert w_pat > 1.2 * w_img
    assert by_patient["accuracy"].value == by_image["accuracy"].value


def test_one_image_per_patient_gives_the_image_interval():
    y, proba, _ = _grouped(50, seed=3)
    a = classification_metrics(y, proba, task="binary", n_bootstrap=200)
    b = classification_metrics(y, proba, task="binary", n_bootstrap=200, groups=np.arange(y.size))
    for key in a:
        assert (a[key].ci_low, a[key].ci_high) == (b[key].ci_low, b[key].ci_high)


def test_small_grouped_test_uses_patients_as_the_exact_count():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1] * 2)  # 16 images, all correct, 4 patients of 4
    groups = np.repeat(["a", "b", "c", "d"], 4)
    m = classification_metrics(y, np.eye(2)[y], task="binary", n_bootstrap=100, groups=groups)
    ref = binomtest(4, 4).proportion_ci(method="exact")  # ICC = 1: a patient counts once
    assert m["accuracy"].ci_low == pytest.approx(ref.low, abs=1e-9)
    assert m["accuracy"].n_units == 4 and m["accuracy"].ci_unit == "patient"


def test_class_absent_from_test_makes_multiclass_auc_not_estimable():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)  # class 2 of 3 has no test image
    proba = rng.dirichlet(np.ones(3), 50)
    m = classification_metrics(y, proba, task="multiclass", n_bootstrap=50)
    assert np.isnan(m["auc"].value) and m["auc"].to_dict()["value"] is None
    assert "class 2: 0" in m["auc"].reason


def test_clopper_pearson_real_counts_and_bad_input():
    assert clopper_pearson(3, 10) == pytest.approx(
        tuple(binomtest(3, 10).proportion_ci(method="exact")), abs=1e-12
    )
    lo, hi = clopper_pearson(2.5, 10)  # an effective count between 2 and 3
    assert clopper_pearson(2, 10)[0] < lo < clopper_pearson(3, 10)[0] and hi > lo
    with pytest.raises(InvalidDataError, match="n > 0"):
        clopper_pearson(0, 0)
    with pytest.raises(InvalidDataError, match="one patient id per test row"):
        classification_metrics([0, 1], np.eye(2), task="binary", groups=["a"])
