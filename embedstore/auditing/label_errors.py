"""Suspected label errors by confident learning (Northcutt et al. 2021) on out-of-fold probabilities.

Probabilities: a logistic probe on train+val, cross-validated with folds grouped by patient
(:func:`embedstore.auditing._probe.out_of_fold_proba`), so no row is scored by a probe that saw it
or its patient. Then, as cleanlab's ``find_label_issues(filter_by="confident_learning")``:

- per-class thresholds ``t_j`` = mean probability of class j over the rows labelled j;
- a row is *confidently* class j when ``p_j ≥ t_j`` (of several such classes, the most probable);
- the confident joint ``C[i, j]`` counts rows labelled i confidently in class j; a row counted
  off the diagonal is a suspected error, unless the probe's own prediction is its given label;
- the noise rate ``P(true = j | given = i)`` is row i of the confident joint calibrated to the
  label counts (cleanlab's ``calibrate_confident_joint``), normalised.

Ranking: **self-confidence**, the out-of-fold probability of the given label (lowest first);
the suggested label is the row's most probable class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ConfidentLearning", "LabelIssue", "confident_learning"]


@dataclass(frozen=True)
class ConfidentLearning:
    """Confident learning on (n, K) probabilities: ``labels`` (n,) given, ``issues`` (n,) bool, ``score`` (n,) the
    self-confidence, ``suggested`` (n,) argmax class, ``thresholds`` (K,), ``confident_joint``
    (K, K) counts, ``noise_rate`` (K, K) estimated P(true = j | given = i)."""

    labels: np.ndarray
    issues: np.ndarray
    score: np.ndarray
    suggested: np.ndarray
    thresholds: np.ndarray
    confident_joint: np.ndarray
    noise_rate: np.ndarray


def confident_learning(labels: np.ndarray, proba: np.ndarray) -> ConfidentLearning:
    """Label issues and noise rates of given ``labels`` (n,) in [0, K) under ``proba`` (n, K)."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    n, K = p.shape
    counts = np.bincount(y, minlength=K)
    thresholds = np.array([p[y == j, j].mean() if counts[j] else np.inf for j in range(K)])  # (K,)
    confident = p >= thresholds - 1e-6  # (n, K), cleanlab's tolerance
    n_conf = confident.sum(axis=1)
    guess = np.where(n_conf > 1, p.argmax(axis=1), confident.argmax(axis=1))
    counted = n_conf > 0
    joint = np.zeros((K, K), dtype=np.int64)
    np.add.at(joint, (y[counted], guess[counted]), 1)
    bumped = p.copy()
    bumped[np.arange(n), y] += 1e-6  # a tie between the given label and another is no issue
    predicted_given = bumped.argmax(axis=1) == y
    issues = counted & (guess != y) & ~predicted_given
    row_sums = joint.sum(axis=1, keepdims=True)
    calibrated = np.where(row_sums > 0, joint / np.maximum(row_sums, 1) * counts[:, None], 0.0)
    totals = calibrated.sum(axis=1, keepdims=True)
    noise = np.where(totals > 0, calibrated / np.maximum(totals, 1e-12), 0.0)
    return ConfidentLearning(
        labels=y,
        issues=issues,
        score=p[np.arange(n), y],
        suggested=p.argmax(axis=1),
        thresholds=thresholds,
        confident_joint=joint,
        noise_rate=noise,
    )


@dataclass(frozen=True)
class LabelIssue:
    """One suspected label error: the row's id, its given and suggested class names, and its
    self-confidence (the out-of-fold probability of the given label; lower is more suspect)."""

    row: int
    id: str
    given: str
    suggested: str
    self_confidence: float
    flagged: bool

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "given": self.given,
            "suggested": self.suggested,
            "self_confidence": round(self.self_confidence, 6),
            "confident_learning_issue": self.flagged,
        }


def ranked_issues(
    rows: np.ndarray, cl: ConfidentLearning, ids: np.ndarray, class_names: list[str], top: int
) -> list[LabelIssue]:
    """The suspected errors (``cl.issues``) by self-confidence, lowest first, at most ``top``."""
    order = np.argsort(cl.score, kind="stable")
    out = []
    for j in order:
        if not cl.issues[j]:
            continue
        out.append(
            LabelIssue(
                row=int(rows[j]),
                id=str(ids[rows[j]]),
                given=class_names[int(cl.labels[j])],
                suggested=class_names[int(cl.suggested[j])],
                self_confidence=float(cl.score[j]),
                flagged=True,
            )
        )
        if len(out) >= top:
            break
    return out
