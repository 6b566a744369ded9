"""The probes every audit section fits, through the public probe estimators only.

One rule for the logistic probe's C in every section: the first best of :data:`AUDIT_CS` (six
values, 1e-3 … 1e2, inside the many-shot protocol's range; an audit needs a good probe, not the
best one, and large C on separable features costs the most iterations) fitted on the train rows
and scored by accuracy on the val rows (:func:`~embedstore.probes.logistic.logistic_sweep`); with
no val rows, C = 1. Fits stop at ``MAX_ITER`` L-BFGS iterations. Out-of-fold probabilities come from grouped, stratified folds
(:func:`~embedstore.probes.selection.cv_folds`: a patient is never on both sides of a fold).
"""

from __future__ import annotations

import numpy as np

from embedstore.probes.logistic import LogisticProbe, logistic_sweep
from embedstore.probes.selection import cv_folds

__all__ = ["AUDIT_CS", "FOLDS", "choose_C", "fit_logistic", "out_of_fold_proba", "proba_full"]

AUDIT_CS = np.logspace(-3, 2, 6)
FOLDS = 5
MAX_ITER = 300


def choose_C(
    X: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, task: str, device: str
) -> float:
    """C of the logistic probe predicting ``y`` (labels of all rows of X), chosen on ``val``."""
    if len(val) == 0 or len(np.unique(y[train], axis=0)) < 2:
        return 1.0
    sweep = logistic_sweep(
        X, y[train], X, y[val], task=task, Cs=AUDIT_CS, device=device, max_iter=MAX_ITER,
        train_rows=train, val_rows=val, selected_on="val",
    )  # fmt: skip
    return float(sweep.best_C)


def fit_logistic(
    X: np.ndarray, y: np.ndarray, rows: np.ndarray, task: str, C: float, device: str
) -> LogisticProbe:
    """A logistic probe on ``X[rows]`` with labels ``y[rows]`` (y covers all rows of X)."""
    probe = LogisticProbe(C=C, task=task, device=device, tol=1e-4, max_iter=MAX_ITER)
    return probe.fit(X, y[rows], rows=rows)


def proba_full(probe: LogisticProbe, X: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n_classes) probabilities; classes absent from the probe's training get 0."""
    p = probe.predict_proba(X)
    if p.shape[1] == n_classes:
        return p
    out = np.zeros((len(X), n_classes))
    out[:, np.asarray(probe.classes_, dtype=np.int64)] = p
    return out


def out_of_fold_proba(
    X: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    group: np.ndarray | None,
    *,
    task: str,
    C: float,
    n_classes: int,
    device: str,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """Out-of-fold class probabilities of ``rows`` (n_rows, n_classes), and the number of folds.

    Rows whose fold could not be formed (fewer than two folds) are NaN."""
    sub_group = None if group is None else group[rows]
    folds = cv_folds(y[rows], sub_group, seed=seed, max_folds=FOLDS)
    proba = np.full((len(rows), n_classes), np.nan)
    for fit_pos, held_pos in folds:
        if len(np.unique(y[rows[fit_pos]])) < 2:
            continue
        probe = fit_logistic(X, y, rows[fit_pos], task, C, device)
        proba[held_pos] = proba_full(probe, X[rows[held_pos]], n_classes)
    return proba, len(folds)
