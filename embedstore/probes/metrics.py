"""Classification metrics with bootstrap confidence intervals, and the few-shot mean ± CI.

Every metric is computed in numpy from *row weights*: the point estimate uses weight 1 for every
test row, a bootstrap replicate uses how many times each row was drawn. That turns 1,000 bootstrap
replicates into a few matrix products instead of 1,000 calls into ``sklearn.metrics``; the tests
check every metric against ``sklearn.metrics`` on the point estimate and on explicit resamples.

The input checks live in :mod:`embedstore.probes.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError
from embedstore.probes.validation import TASK_KINDS, check_features, check_labels, check_task

__all__ = [
    "METRIC_TASKS",
    "auc_estimable",
    "Metric",
    "classification_metrics",
    "mean_ci",
]

METRIC_TASKS = TASK_KINDS
_MAX_BOOTSTRAP_CELLS = 4_000_000  # rows x replicates held at once (float64: 32 MB)


@dataclass(frozen=True)
class Metric:
    """A point estimate with an optional confidence interval (``None`` where none was computed).

    ``ci_unit`` says what the interval resampled ("image", or "patient" for a cluster bootstrap),
    ``n_units`` how many of them the test split holds, ``ci_method`` how the interval was made
    ("percentile bootstrap", "Clopper-Pearson exact (...)", or why there is none); ``reason``
    says why a metric is not estimable (its value is then NaN, ``None`` in JSON).
    """

    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    ci_unit: str | None = None
    n_units: int | None = None
    ci_method: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"value", "ci_low", "ci_high"}`` (NaN becomes ``None`` for JSON), plus ``ci_unit``,
        ``n_units``, ``ci_method`` and ``reason`` where they are set."""
        out: dict[str, Any] = {
            "value": _none_if_nan(self.value),
            "ci_low": _none_if_nan(self.ci_low),
            "ci_high": _none_if_nan(self.ci_high),
        }
        for key in ("ci_unit", "n_units", "ci_method", "reason"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _none_if_nan(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


# ------------------------------------------------------------------------ weighted metric kernels
#
# W is (B, n): row weights of B replicates (ones for the point estimate). Each kernel returns (B,)
# values, NaN where the metric is undefined for that replicate.


def _confusion(W: np.ndarray, y: np.ndarray, pred: np.ndarray, C: int) -> np.ndarray:
    """Weighted confusion matrices, shape (B, C, C): [b, true, predicted]."""
    cell = y * C + pred  # (n,)
    onehot = np.zeros((y.shape[0], C * C))
    onehot[np.arange(y.shape[0]), cell] = 1.0
    return (W @ onehot).reshape(-1, C, C)


def _from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy (mean recall over classes present in y_true, as sklearn) and
    macro-F1 (mean over classes present in y_true or y_pred, as sklearn's default labels)."""
    tp = np.diagonal(cm, axis1=1, axis2=2)  # (B, C)
    support = cm.sum(axis=2)  # (B, C) true counts
    predicted = cm.sum(axis=1)  # (B, C) predicted counts
    total = support.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = tp.sum(axis=1) / total
        present = support > 0
        recall = np.where(present, tp / np.where(present, support, 1), 0.0)
        balanced = recall.sum(axis=1) / present.sum(axis=1)
        denom = support + predicted  # 2TP + FP + FN
        seen = denom > 0
        f1 = np.where(seen, 2 * tp / np.where(seen, denom, 1), 0.0)
        macro_f1 = f1.sum(axis=1) / seen.sum(axis=1)
    return {"accuracy": accuracy, "balanced_accuracy": balanced, "macro_f1": macro_f1}


def _auc(W: np.ndarray, positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Weighted ROC-AUC (Mann-Whitney with ties counted 1/2), shape (B,); NaN for one class."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first position of each tie group
    pos = positive[order]
    # weights of positives and negatives per tie group, in increasing score order: (B, G)
    w_pos = np.add.reduceat(np.where(pos, W[:, order], 0.0), starts, axis=1)
    w_neg = np.add.reduceat(np.where(pos, 0.0, W[:, order]), starts, axis=1)
    below = np.cumsum(w_neg, axis=1) - w_neg  # negatives strictly below each group
    n_pos, n_neg = w_pos.sum(axis=1), w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (w_pos * (below + 0.5 * w_neg)).sum(axis=1) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _mean_auc(W: np.ndarray, Y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mean over columns of per-column AUC, ignoring columns where it is undefined; (B,)."""
    per = np.stack([_auc(W, Y[:, j] == 1, scores[:, j]) for j in range(Y.shape[1])], axis=1)
    defined = ~np.isnan(per)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, per, 0.0).sum(axis=1) / defined.sum(axis=1)


def _quadratic_kappa(cm: np.ndarray) -> np.ndarray:
    """Quadratic-weighted Cohen's kappa over the full grade range 0..C-1, shape (B,)."""
    C = cm.shape[1]
    grades = np.arange(C)
    w = (grades[:, None] - grades[None, :]) ** 2.0  # (C, C)
    total = cm.sum(axis=(1, 2))
    expected = np.einsum("bi,bj->bij", cm.sum(axis=2), cm.sum(axis=1)) / total[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = 1.0 - (w * cm).sum(axis=(1, 2)) / (w * expected).sum(axis=(1, 2))
    return kappa


def _all_metrics(
    W: np.ndarray,
    y: np.ndarray,
    proba: np.ndarray,
    pred: np.ndarray,
    task: str,
    auc_labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every metric of ``task`` for each weight row of W; dict of (B,) arrays.

    ``auc_labels``: (L,) bool, the multilabel columns whose AUC enters the mean (default all).
    """
    if task == "multilabel":
        L = y.shape[1]
        per_label = [_from_confusion(_confusion(W, y[:, j], pred[:, j], 2)) for j in range(L)]
        out = {}
        for key in ("accuracy", "balanced_accuracy"):
            out[key] = np.mean([m[key] for m in per_label], axis=0)
        # sklearn's multilabel macro-F1: F1 of the positive class per label, 0 where undefined
        f1s = []
        for j in range(L):
            cm = _confusion(W, y[:, j], pred[:, j], 2)
            tp, denom = cm[:, 1, 1], cm[:, 1, :].sum(axis=1) + cm[:, :, 1].sum(axis=1)
            f1s.append(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0))
        out["macro_f1"] = np.mean(f1s, axis=0)
        keep = np.ones(L, dtype=bool) if auc_labels is None else auc_labels
        out["auc"] = _mean_auc(W, y[:, keep], proba[:, keep])
        return out
    C = proba.shape[1]
    cm = _confusion(W, y, pred, C)
    out = _from_confusion(cm)
    if task == "binary":
        out["auc"] = _auc(W, y == 1, proba[:, 1])
    else:
        out["auc"] = _mean_auc(W, np.eye(C, dtype=np.int64)[y], proba)
    if task == "ordinal":
        out["kappa"] = _quadratic_kappa(cm)
    return out


# --------------------------------------------------------------------------------- public API


def classification_metrics(
    y_true: Any,
    proba: Any,
    *,
    task: str,
    n_bootstrap: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    groups: Any = None,
) -> dict[str, Metric]:
    """Test-set metrics with confidence intervals over test images, or over patients.

    Args:
        y_true: (n,) int class labels in [0, C) for binary / multiclass / ordinal, or (n, L) 0/1
            indicators for multilabel.
        proba: (n, C) class probabilities (binary: C = 2, column 1 is the positive class), or
            (n, L) per-label probabilities for multilabel.
        task: "binary", "multiclass", "multilabel" or "ordinal".
        n_bootstrap: bootstrap replicates (units resampled with replacement); 0 for no CIs.
        seed: seed of the bootstrap resampling.
        ci: coverage of the interval.
        groups: (n,) patient id of each test row, or None. With groups the bootstrap draws
            patients (all their images come along: a cluster bootstrap) and ``ci_unit`` is
            "patient"; without, it draws images exactly as it always did.

    Returns:
        ``{"accuracy", "balanced_accuracy", "macro_f1", "auc"}`` plus ``"kappa"`` for ordinal tasks,
        each a :class:`Metric`. Predictions are the argmax of ``proba`` (multilabel: ``proba >=
        0.5``). Definitions follow ``sklearn.metrics``: balanced accuracy is the mean recall over
        classes present in ``y_true``; macro-F1 averages over classes present in ``y_true`` or in
        the predictions (multilabel: over all labels, 0 where undefined); AUC is the positive-class
        AUC (binary), the one-vs-rest macro AUC (multiclass, ordinal) or the mean over labels
        (multilabel); kappa is quadratic-weighted Cohen's kappa over the full grade range 0..C-1
        (as ``cohen_kappa_score(weights="quadratic", labels=range(C))``).
        For multilabel tasks "accuracy" is the **mean per-label accuracy** (not subset accuracy)
        and "balanced_accuracy" the mean per-label balanced accuracy.

        Intervals: the percentile bootstrap, except that accuracy and balanced accuracy get an
        exact Clopper-Pearson interval where the bootstrap degenerates (fewer than 30 units, or
        a zero-width interval); other metrics then get no interval (``ci_method`` says why).
        AUC is *not estimable* (value NaN, ``reason`` set) when a class has fewer than 2 test
        positives or negatives (multilabel: such labels leave the mean; none left: not
        estimable). Bootstrap replicates where a metric is undefined are skipped.
    """
    from embedstore.results.intervals import (
        MIN_BOOTSTRAP_UNITS,
        clopper_pearson,
        draw_units,
        effective_n,
        row_weights,
        units,
    )

    check_task(task)
    proba = check_features(proba, name="proba").astype(np.float64)
    y = check_labels(y_true, n_samples=proba.shape[0], name="y_true")
    n, C = proba.shape
    if task == "multilabel":
        if y.ndim != 2 or y.shape != proba.shape:
            raise InvalidDataError(
                f"multilabel y_true must be (n, L) 0/1 with the shape of proba {proba.shape}; "
                f"received {y.shape}"
            )
        pred = (proba >= 0.5).astype(np.int64)
    else:
        if y.ndim != 1:
            raise InvalidDataError(
                f"{task} y_true must be 1-D class labels; received shape {y.shape} "
                "(use task='multilabel' for indicator matrices)"
            )
        if task == "binary" and C != 2:
            raise InvalidDataError(
                f"binary proba must have 2 columns (negative, positive); received {C}"
            )
        if y.min() < 0 or y.max() >= C:
            raise InvalidDataError(
                f"y_true labels must lie in [0, {C}) to index the {C} columns of proba; "
                f"received labels from {y.min()} to {y.max()}"
            )
        pred = proba.argmax(axis=1)
    if not 0.0 < ci < 1.0:
        raise InvalidDataError(f"ci must lie strictly between 0 and 1; got {ci}")
    if n_bootstrap < 0:
        raise InvalidDataError(f"n_bootstrap must be >= 0; got {n_bootstrap}")
    u = units(groups, n)
    auc_labels, auc_reason = auc_estimable(y, C, task)

    point = _all_metrics(np.ones((1, n)), y, proba, pred, task, auc_labels)
    if auc_reason is not None:
        point["auc"] = np.array([np.nan])
    if n_bootstrap == 0:
        return {
            key: Metric(float(v[0]), reason=auc_reason if key == "auc" else None)
            for key, v in point.items()
        }

    rng = np.random.default_rng(seed)
    idx = draw_units(rng, u.n_units, n_bootstrap)  # (B, units), drawn once for every metric
    chunk = max(1, _MAX_BOOTSTRAP_CELLS // n)
    reps: dict[str, list[np.ndarray]] = {key: [] for key in point}
    for start in range(0, n_bootstrap, chunk):
        W = row_weights(idx[start : start + chunk], u)  # (b, n) row counts
        for key, values in _all_metrics(W, y, proba, pred, task, auc_labels).items():
            reps[key].append(values)
    alpha = (1.0 - ci) / 2.0
    unit: dict[str, Any] = {"ci_unit": u.kind, "n_units": u.n_units}
    boot = "percentile bootstrap" + (" over patients (cluster)" if u.kind == "patient" else "")
    result = {}
    for key, v in point.items():
        value = float(v[0])
        values = np.concatenate(reps[key])
        values = values[~np.isnan(values)]
        if key == "auc" and auc_reason is not None:
            result[key] = Metric(value, ci_method="not estimable", reason=auc_reason, **unit)
            continue
        low = high = None
        if values.size:
            low, high = (float(q) for q in np.quantile(values, [alpha, 1.0 - alpha]))
        degenerate = low is None or low == high or u.n_units < MIN_BOOTSTRAP_UNITS
        if degenerate and key in ("accuracy", "balanced_accuracy") and np.isfinite(value):
            n_eff = effective_n(key, y, u, task)
            low, high = clopper_pearson(value * n_eff, n_eff, ci)
            method = f"Clopper-Pearson exact, n_eff={n_eff:.4g} {u.kind}s"
        elif low is None or low == high:
            low = high = None
            method = "none: " + (
                "no bootstrap replicate defines it"
                if not values.size
                else "the same value in every bootstrap replicate"
            )
        else:
            method = boot
        result[key] = Metric(value, low, high, ci_method=method, **unit)
    return result


def auc_estimable(y: np.ndarray, n_columns: int, task: str) -> tuple[np.ndarray | None, str | None]:
    """Which AUC columns enter the mean, and why the AUC is not estimable (None: it is).

    Binary / multiclass / ordinal: every class needs at least 2 test positives and 2 negatives.
    Multilabel: labels short of that leave the mean (returned as a (L,) bool mask).
    """
    if task == "multilabel":
        pos = y.sum(axis=0)
        ok = (pos >= 2) & (y.shape[0] - pos >= 2)
        if not ok.any():
            return ok, "no label has 2 or more test positives and negatives"
        return ok, None
    counts = np.bincount(y, minlength=n_columns)
    classes = range(1, 2) if task == "binary" else range(n_columns)
    short = [c for c in classes if counts[c] < 2 or y.shape[0] - counts[c] < 2]
    if not short:
        return None, None
    if task == "binary":
        return None, f"{counts[1]} positives and {counts[0]} negatives in test (2 of each needed)"
    which = ", ".join(f"class {c}: {counts[c]}" for c in short)
    return None, f"fewer than 2 test images (or non-images) of a class ({which})"


def mean_ci(values: Any) -> Metric:
    """Mean ± 1.96·σ/√n of per-episode (or per-seed) scores, as in the few-shot literature.

    σ is the *population* standard deviation (``np.std`` with ``ddof=0``), as in the published
    few-shot evaluation code (Ericsson et al. 2021). Returns a Metric whose CI is the normal 95%
    interval; a single value gives a zero-width interval.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or not np.isfinite(v).all():
        raise InvalidDataError(f"mean_ci needs at least one finite value; got {v.size} values")
    mean = float(v.mean())
    half = 1.96 * float(v.std()) / np.sqrt(v.size)
    return Metric(mean, mean - half, mean + half)
