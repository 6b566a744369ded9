"""Suspected label errors: 5% of real digit labels flipped are recovered by the self-confidence
ranking of out-of-fold probabilities, and confident learning agrees with cleanlab on them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import embedstore
from embedstore.auditing._probe import out_of_fold_proba
from embedstore.auditing.label_errors import confident_learning
from embedstore.store import open_store


@pytest.fixture(scope="module")
def audited_digits(digits_csv):
    store = digits_csv[0]
    return embedstore.audit(store, "digits", top=1000), digits_csv


@pytest.fixture(scope="module")
def oof(audited_digits):
    """The audit's own out-of-fold probabilities, recomputed with its C."""
    result, (store, *_rest) = audited_digits
    s = open_store(store)
    (name,) = result.backbones
    X, y, split, group = (s.embeddings("digits", name), s.labels("digits"), s.split("digits"),
                          s.group("digits"))  # fmt: skip
    tv = np.flatnonzero(split < 2)
    C = result.label_summary[name]["C"]
    proba, folds = out_of_fold_proba(X, y, tv, group, task="multiclass", C=C, n_classes=10,
                                     device="cpu")  # fmt: skip
    return s.ids("digits")[tv], y[tv], proba, folds


def test_ranking_recovers_flipped_labels(audited_digits, oof):
    result, (_, _, flipped, _) = audited_digits
    ids, y, proba, folds = oof
    assert folds == 5 and not np.isnan(proba).any()
    cl = confident_learning(y, proba)
    is_flipped = np.isin(ids, list(flipped))
    auc = roc_auc_score(is_flipped, -cl.score)  # lowest self-confidence = most suspect
    assert auc >= 0.9, auc
    (listed,) = result.label_issues.values()
    assert [i.id for i in listed] == [ids[j] for j in np.argsort(cl.score, kind="stable")
                                      if cl.issues[j]]  # fmt: skip
    hits = sum(i.id in flipped for i in listed)
    assert hits / len(flipped) >= 0.6 and hits / len(listed) >= 0.4, (hits, len(listed))


def test_suggested_label_is_the_true_one_for_found_flips(audited_digits):
    result, (_, _, flipped, true) = audited_digits
    (listed,) = result.label_issues.values()
    found = [i for i in listed if i.id in flipped]
    right = sum(int(i.suggested) == true[i.id] for i in found)
    assert right / len(found) >= 0.8, (right, len(found))


def test_agrees_with_cleanlab_on_the_same_probabilities(oof):
    from cleanlab.count import compute_confident_joint
    from cleanlab.filter import find_label_issues

    _, y, proba, _ = oof
    cl = confident_learning(y, proba)
    theirs = find_label_issues(y, proba, filter_by="confident_learning")
    jaccard = (cl.issues & theirs).sum() / max((cl.issues | theirs).sum(), 1)
    assert jaccard >= 0.95, jaccard
    np.testing.assert_array_equal(cl.confident_joint, compute_confident_joint(y, proba,
                                  calibrate=False))  # fmt: skip
    ranked = find_label_issues(y, proba, filter_by="confident_learning",
                               return_indices_ranked_by="self_confidence")  # fmt: skip
    ours = np.flatnonzero(cl.issues)[np.argsort(cl.score[cl.issues], kind="stable")]
    np.testing.assert_array_equal(ours, ranked)


def test_noise_rate_rows_sum_to_one(audited_digits):
    result, _ = audited_digits
    (summary,) = result.label_summary.values()
    noise = np.asarray(summary["noise_rate"])
    assert noise.shape == (10, 10)
    np.testing.assert_allclose(noise.sum(axis=1), 1.0, atol=1e-3)
    assert np.diag(noise).min() > 0.7  # 5% flipped: most of each class is clean
