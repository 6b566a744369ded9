"""What a leak was worth: the headline probes on the test split with and without flagged rows.

For each backbone, the logistic probe (C chosen on val, see :mod:`embedstore.auditing._probe`) and
DINO's weighted kNN (k = 20, T = 0.07) are fitted once on train+val with all labels and scored on
(a) every test row and (b) the test rows that are not candidate duplicates of a train/val row.
A drop from (a) to (b) is what the duplicates added to the published number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedstore.auditing._probe import choose_C, fit_logistic, proba_full
from embedstore.probes.knn import KNNClassifier
from embedstore.probes.metrics import classification_metrics

__all__ = ["KNN_K", "LEAK_METRICS", "leak_effect"]

KNN_K = 20
LEAK_METRICS = ("accuracy", "balanced_accuracy", "auc")


def _knn_proba(X: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, test: np.ndarray, n_classes: int,
               multilabel: bool, device: str) -> np.ndarray:  # fmt: skip
    knn = KNNClassifier(k=KNN_K, device=device).fit(X[fit_rows], y[fit_rows])
    p = knn.predict_proba(X[test])
    if multilabel or p.shape[1] == n_classes:
        return p
    out = np.zeros((len(test), n_classes))
    out[:, knn.classes_.astype(np.int64)] = p
    return out


def _scores(y: np.ndarray, proba: np.ndarray, task: str, seed: int) -> dict[str, Any]:
    if len(y) == 0:
        return {}
    m = classification_metrics(y, proba, task=task, n_bootstrap=200, seed=seed)
    return {k: m[k].to_dict() for k in LEAK_METRICS if k in m}


def leak_effect(
    X: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    flagged_test: np.ndarray,
    *,
    task: str,
    n_classes: int,
    valid: np.ndarray | None = None,
    C: float | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """``{"logistic": {"all": metrics, "without_flagged": metrics}, "knn": ..., "n_test",
    "n_flagged"}`` for one backbone; ``flagged_test``: test rows to drop in (b); ``C``: the
    logistic probe's (default: chosen on val by :func:`~embedstore.auditing._probe.choose_C`)."""
    ok = np.ones(len(X), bool) if valid is None else valid
    train = np.flatnonzero((split == 0) & ok)
    val = np.flatnonzero((split == 1) & ok)
    test = np.flatnonzero((split == 2) & ok)
    fit_rows = np.concatenate([train, val])
    keep = ~np.isin(test, flagged_test)
    out: dict[str, Any] = {"n_test": int(len(test)), "n_flagged": int((~keep).sum())}
    if len(test) == 0 or len(np.unique(y[fit_rows], axis=0)) < 2:
        return out
    C = choose_C(X, y, train, val, task, device) if C is None else C
    probe = fit_logistic(X, y, fit_rows, task, C, device)
    multilabel = task == "multilabel"
    p_log = probe.predict_proba(X[test]) if multilabel else proba_full(probe, X[test], n_classes)
    p_knn = _knn_proba(X, y, fit_rows, test, n_classes, multilabel, device)
    for name, p in (("logistic", p_log), ("knn", p_knn)):
        out[name] = {
            "all": _scores(y[test], p, task, seed),
            "without_flagged": _scores(y[test][keep], p[keep], task, seed),
        }
    out["logistic_C"] = C
    return out
