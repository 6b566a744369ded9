"""Shortcuts: how well a backbone reads a per-sample attribute (site, scanner), and whether its
label accuracy survives a change of that attribute.

1. **Reading the attribute.** Out-of-fold probabilities of the attribute from a logistic probe over
   all rows, folds grouped by patient (:func:`embedstore.auditing._probe.out_of_fold_proba`);
   balanced accuracy and AUC with 95% bootstrap intervals
   (:func:`embedstore.probes.metrics.classification_metrics`). Chance is 1/K for balanced accuracy
   and 0.5 for AUC. The backbone *reads* the attribute when the lower end of the balanced
   accuracy's interval is above chance + ``READ_MARGIN``.
2. **Label within each attribute value.** For each value v: a label probe fitted on the train+val
   rows with attribute v, scored (balanced accuracy) on the test rows with v (*same*) and on the
   test rows without v (*other*). It *collapses* when other < same − ``COLLAPSE_DROP``.

A backbone gets the **shortcut flag** for an attribute when it reads it and its accuracy
collapses for at least one value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedstore.auditing._probe import choose_C, fit_logistic, out_of_fold_proba, proba_full
from embedstore.probes.metrics import classification_metrics

__all__ = ["COLLAPSE_DROP", "MIN_ROWS", "READ_MARGIN", "ShortcutResult", "shortcut"]

READ_MARGIN = 0.25
COLLAPSE_DROP = 0.10
MIN_ROWS = 4  # fewer train+val or test rows of a value: not scored


@dataclass
class ShortcutResult:
    """One backbone × attribute: how well the attribute is read, the label per value, the flags."""

    backbone: str
    attribute: str
    values: list[str]
    chance: float
    balanced_accuracy: dict[str, float | None]
    auc: dict[str, float | None]
    reads_attribute: bool
    per_value: list[dict[str, Any]] = field(default_factory=list)
    collapses: bool = False

    @property
    def flagged(self) -> bool:
        return self.reads_attribute and self.collapses

    def record(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "attribute": self.attribute,
            "values": self.values,
            "chance": self.chance,
            "balanced_accuracy": self.balanced_accuracy,
            "auc": self.auc,
            "reads_attribute": self.reads_attribute,
            "per_value": self.per_value,
            "collapses": self.collapses,
            "flagged": self.flagged,
        }


def _balanced(y: np.ndarray, p: np.ndarray, task: str, seed: int) -> float | None:
    if len(y) == 0:
        return None
    return classification_metrics(y, p, task=task, n_bootstrap=0, seed=seed)[
        "balanced_accuracy"
    ].value


def shortcut(
    X: np.ndarray,
    attribute: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    group: np.ndarray | None,
    *,
    backbone: str,
    name: str,
    task: str,
    n_classes: int,
    valid: np.ndarray | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> ShortcutResult | None:
    """The shortcut audit of one backbone for one attribute (None: fewer than two values)."""
    ok = np.ones(len(X), bool) if valid is None else valid
    rows = np.flatnonzero(ok)
    values, codes = np.unique(attribute, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    if len(np.unique(codes[rows])) < 2:
        return None
    K = len(values)
    a_task = "binary" if K == 2 else "multiclass"
    train, val = np.flatnonzero((split == 0) & ok), np.flatnonzero((split == 1) & ok)
    C = choose_C(X, codes, train, val, a_task, device)
    oof, _ = out_of_fold_proba(X, codes, rows, group, task=a_task, C=C, n_classes=K,
                               device=device, seed=seed)  # fmt: skip
    scored = ~np.isnan(oof).any(axis=1)
    m = classification_metrics(codes[rows][scored], oof[scored], task=a_task, seed=seed)
    chance = 1.0 / K
    bal, auc = m["balanced_accuracy"].to_dict(), m["auc"].to_dict()
    low = bal["ci_low"] if bal["ci_low"] is not None else bal["value"]
    result = ShortcutResult(
        backbone=backbone, attribute=name, values=[str(v) for v in values], chance=chance,
        balanced_accuracy=bal, auc=auc,
        reads_attribute=low is not None and low > chance + READ_MARGIN,
    )  # fmt: skip
    if task == "multilabel":
        return result
    test = np.flatnonzero((split == 2) & ok)
    for v in range(K):
        fit = np.flatnonzero((split < 2) & ok & (codes == v))
        same, other = test[codes[test] == v], test[codes[test] != v]
        entry: dict[str, Any] = {"value": str(values[v]), "n_fit": int(len(fit))}
        if len(fit) < MIN_ROWS or len(same) < MIN_ROWS or len(other) < MIN_ROWS:
            entry["note"] = "too few rows to score"
        elif len(np.unique(labels[fit])) < 2:
            entry["note"] = "one class only among its train+val rows"
        else:
            v_train, v_val = fit[split[fit] == 0], fit[split[fit] == 1]
            Cv = choose_C(X, labels, v_train, v_val, task, device)
            probe = fit_logistic(X, labels, fit, task, Cv, device)
            entry["same"] = _balanced(
                labels[same], proba_full(probe, X[same], n_classes), task, seed
            )
            entry["other"] = _balanced(
                labels[other], proba_full(probe, X[other], n_classes), task, seed
            )
            entry["drop"] = entry["same"] - entry["other"]
            if entry["drop"] > COLLAPSE_DROP:
                result.collapses = True
        result.per_value.append(entry)
    return result
