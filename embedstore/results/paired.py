"""Two feature sets scored on the same test images, compared on those images.

For predictions ``a`` and ``b`` of one test split (:class:`~embedstore.results.predictions.
Predictions`), :func:`compare_predictions` gives:

- **DeLong's test** for the difference of two correlated ROC-AUCs (binary tasks; DeLong et al.
  1988, computed with the fast midrank algorithm of Sun & Xu 2014). Unit: image.
- **McNemar's exact test** for accuracy: the two-sided binomial test on the discordant images
  (those exactly one of the two gets right). Unit: image (single-label tasks).
- a **paired bootstrap** 95% interval of the difference a - b for every metric: both are
  scored on the same resample of test units, patients where groups exist (a cluster bootstrap),
  so the interval accounts for the pairing and for images of one patient moving together.

DeLong and McNemar treat images as independent; where the split has patient groups, read the
patient-level paired bootstrap interval first (every comparison says its unit).
:func:`compare_to_best` compares every feature set with the best one (and named pairs), with
Holm-adjusted p-values over the family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError
from embedstore.results.predictions import Predictions

__all__ = [
    "DeLong",
    "DiffInterval",
    "McNemar",
    "PairedComparison",
    "compare_predictions",
    "compare_to_best",
    "delong_test",
    "holm",
    "mcnemar_exact",
]


@dataclass(frozen=True)
class DeLong:
    """DeLong's test of AUC(a) = AUC(b) on the same images."""

    auc_a: float
    auc_b: float
    se: float  # standard error of the difference
    z: float
    p_value: float
    test: str = "DeLong (fast midrank, Sun & Xu 2014), two-sided"
    unit: str = "image"


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test of equal accuracy: ``a_only`` images only a gets right, ``b_only``."""

    a_only: int
    b_only: int
    p_value: float
    test: str = "McNemar exact (binomial on discordant images), two-sided"
    unit: str = "image"


@dataclass(frozen=True)
class DiffInterval:
    """One metric: a, b, their difference a - b and its paired-bootstrap interval."""

    a: float | None
    b: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class PairedComparison:
    """``a`` vs ``b`` on the same test images (names: feature sets or record ids)."""

    a: str
    b: str
    task: str
    n_images: int
    unit: str  # what the paired bootstrap resampled: "image" or "patient"
    n_units: int
    n_bootstrap: int
    metrics: dict[str, DiffInterval]
    delong: DeLong | None
    mcnemar: McNemar | None
    notes: tuple[str, ...] = ()
    p_holm: dict[str, float] = field(default_factory=dict)  # set by compare_to_best

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bootstrap"] = f"paired percentile bootstrap over {self.unit}s, 95%"
        return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (as ``statsmodels.multipletests(method="holm")``)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out.tolist()


def delong_test(y_true: Any, score_a: Any, score_b: Any) -> DeLong:
    """DeLong's test for two ROC-AUCs on the same binary test set (fast midrank algorithm).

    Args:
        y_true: (n,) 0/1; score_a, score_b: (n,) scores of the positive class.
    """
    from scipy.stats import norm, rankdata

    y = np.asarray(y_true).astype(bool)
    m, k = int(y.sum()), int((~y).sum())
    if m < 2 or k < 2:
        raise InvalidDataError(
            f"DeLong's test needs at least 2 positives and 2 negatives; received {m} and {k}"
        )
    s = np.stack([np.asarray(score_a, float), np.asarray(score_b, float)])  # (2, n)
    pos, neg = s[:, y], s[:, ~y]  # (2, m), (2, k)
    tx = np.stack([rankdata(r) for r in pos])  # midranks within positives
    ty = np.stack([rankdata(r) for r in neg])  # midranks within negatives
    tz = np.stack([rankdata(r) for r in np.concatenate([pos, neg], axis=1)])  # (2, m + k)
    auc = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2) / k  # (2,)
    v10 = (tz[:, :m] - tx) / k  # (2, m) structural components of the positives
    v01 = 1.0 - (tz[:, m:] - ty) / m  # (2, k) of the negatives
    cov = np.cov(v10) / m + np.cov(v01) / k  # (2, 2)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = auc[0] - auc[1]
    if var <= 0:
        z, p = (0.0, 1.0) if diff == 0 else (float(np.sign(diff) * np.inf), 0.0)
    else:
        z = float(diff / np.sqrt(var))
        p = float(2 * norm.sf(abs(z)))
    return DeLong(float(auc[0]), float(auc[1]), float(np.sqrt(max(var, 0.0))), z, p)


def mcnemar_exact(correct_a: Any, correct_b: Any) -> McNemar:
    """McNemar's exact two-sided test from per-image correctness (bool arrays of one length)."""
    from scipy.stats import binom

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    p = 1.0 if n == 0 else min(1.0, 2.0 * float(binom.cdf(min(a_only, b_only), n, 0.5)))
    return McNemar(a_only, b_only, p)


def _aligned(a: Predictions, b: Predictions) -> Predictions:
    """``b`` in the row order of ``a``; both must hold the same test images and labels."""
    if a.n == b.n and np.array_equal(a.ids, b.ids):
        out = b
    else:
        if a.n != b.n or set(a.ids.tolist()) != set(b.ids.tolist()):
            raise InvalidDataError(
                f"'{a.record_id}' and '{b.record_id}' were not scored on the same test images "
                f"({a.n} and {b.n} images); a paired test needs the same test split for both"
            )
        where = {v: i for i, v in enumerate(b.ids.tolist())}
        order = np.array([where[v] for v in a.ids.tolist()])
        out = Predictions(
            b.record_id, b.task, b.class_names, b.ids[order],
            None if b.groups is None else b.groups[order],
            b.y_true[order], b.y_pred[order], b.proba[order],
        )  # fmt: skip
    if not np.array_equal(a.y_true, out.y_true):
        raise InvalidDataError(
            f"'{a.record_id}' and '{b.record_id}' disagree on the true labels of the same images; "
            "compare predictions of one dataset and label set"
        )
    return out


def compare_predictions(
    a: Predictions,
    b: Predictions,
    *,
    task: str | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    names: tuple[str, str] | None = None,
) -> PairedComparison:
    """Compare ``a`` with ``b`` on the same test images (module docstring): a - b.

    Args:
        task: default ``a.task``; names: labels for a and b (default their record ids).
    """
    from embedstore.probes.metrics import _all_metrics, auc_estimable
    from embedstore.results.intervals import draw_units, row_weights, units

    task = task or a.task
    b = _aligned(a, b)
    y = a.y_true
    n = a.n
    u = units(a.groups, n)
    auc_labels, auc_reason = auc_estimable(y, a.proba.shape[1], task)
    pa = (a.proba >= 0.5).astype(np.int64) if task == "multilabel" else a.proba.argmax(axis=1)
    pb = (b.proba >= 0.5).astype(np.int64) if task == "multilabel" else b.proba.argmax(axis=1)
    point_a = _all_metrics(np.ones((1, n)), y, a.proba, pa, task, auc_labels)
    point_b = _all_metrics(np.ones((1, n)), y, b.proba, pb, task, auc_labels)
    idx = draw_units(np.random.default_rng(seed), u.n_units, n_bootstrap)
    W = row_weights(idx, u)  # (B, n): the same resample for a and b
    ra = _all_metrics(W, y, a.proba, pa, task, auc_labels)
    rb = _all_metrics(W, y, b.proba, pb, task, auc_labels)
    alpha = (1.0 - ci) / 2
    metrics = {}
    for key in point_a:
        va, vb = float(point_a[key][0]), float(point_b[key][0])
        if key == "auc" and auc_reason is not None or not (np.isfinite(va) and np.isfinite(vb)):
            metrics[key] = DiffInterval(None, None, None, None, None)
            continue
        d = ra[key] - rb[key]
        d = d[np.isfinite(d)]
        lo, hi = (float(q) for q in np.quantile(d, [alpha, 1 - alpha])) if d.size else (None, None)
        metrics[key] = DiffInterval(va, vb, va - vb, lo, hi)
    notes = []
    delong = None
    if task == "binary" and auc_reason is None:
        delong = delong_test(y, a.proba[:, 1], b.proba[:, 1])
    elif task == "binary":
        notes.append(f"AUC not estimable: {auc_reason}")
    else:
        notes.append(
            "DeLong's test is for binary AUC; the AUC difference uses the paired bootstrap"
        )
    mcnemar = None
    if task != "multilabel":
        mcnemar = mcnemar_exact(pa == y, pb == y)
    if u.kind == "patient":
        notes.append(
            f"DeLong and McNemar treat the {n} images as independent; the paired bootstrap "
            f"resamples the {u.n_units} patients"
        )
    na, nb = names or (a.record_id, b.record_id)
    return PairedComparison(
        na, nb, task, n, u.kind, u.n_units, n_bootstrap, metrics, delong, mcnemar, tuple(notes)
    )


def compare_to_best(
    predictions: Mapping[str, Predictions],
    *,
    metric: str = "auc",
    pairs: Sequence[tuple[str, str]] = (),
    task: str | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> list[PairedComparison]:
    """The best feature set (by ``metric`` on test) against every other, plus ``pairs``.

    Args:
        predictions: {feature set name: its predictions on one test split}.
        pairs: extra (a, b) pairs the user named.

    Returns:
        Comparisons best - other first, then the named pairs; ``p_holm`` holds the DeLong and
        McNemar p-values adjusted with Holm's method over all of them.
    """
    from embedstore.probes.metrics import _all_metrics, auc_estimable

    if len(predictions) < 2:
        return []
    for a, b in pairs:
        for name in (a, b):
            if name not in predictions:
                raise InvalidDataError(
                    f"feature set '{name}' has no saved predictions; have: "
                    f"{', '.join(predictions)} (run with --predictions)"
                )

    def score(p: Predictions) -> float:
        t = task or p.task
        labels, reason = auc_estimable(p.y_true, p.proba.shape[1], t)
        key = "accuracy" if metric == "auc" and reason is not None else metric
        pred = (p.proba >= 0.5).astype(np.int64) if t == "multilabel" else p.proba.argmax(axis=1)
        v = float(_all_metrics(np.ones((1, p.n)), p.y_true, p.proba, pred, t, labels)[key][0])
        return v if np.isfinite(v) else -np.inf

    best = max(predictions, key=lambda k: score(predictions[k]))
    todo = [(best, other) for other in predictions if other != best]
    todo += [p for p in pairs if p not in todo and p[0] != p[1]]
    out = [
        compare_predictions(
            predictions[a], predictions[b], task=task, n_bootstrap=n_bootstrap, seed=seed,
            names=(a, b),
        )
        for a, b in todo
    ]  # fmt: skip
    for test in ("delong", "mcnemar"):
        have = [i for i, c in enumerate(out) if getattr(c, test) is not None]
        adjusted = holm([getattr(out[i], test).p_value for i in have])
        for i, p in zip(have, adjusted, strict=True):
            out[i].p_holm[test] = p
    return out


def compare_records(
    records: Sequence[Any],
    predictions: Mapping[str, Predictions],
    *,
    pairs: Sequence[tuple[str, str]] = (),
    n_bootstrap: int = 1000,
) -> list[tuple[tuple, PairedComparison]]:
    """Paired tests within every test split of ``records``: the records of one (dataset, method,
    label setting, seed) scored the same test images, so their saved ``predictions`` (by
    ``record_id``) are compared, best against each other feature set (:func:`compare_to_best`,
    by AUC on binary tasks, else accuracy) and any named ``pairs``.

    Returns:
        ((dataset, method, label setting, seed), comparison) in the order the records come.
    """
    from embedstore.data.subsets import setting_key

    groups: dict[tuple, dict[str, Predictions]] = {}
    for r in records:
        rid = getattr(r, "record_id", None) or r.extra.get("record_id")
        if rid and str(rid) in predictions:
            key = (r.dataset, r.method, setting_key(r.labels), r.seed)
            groups.setdefault(key, {})[r.feature_name] = predictions[str(rid)]
    out = []
    for key, preds in groups.items():
        named = [p for p in pairs if p[0] in preds and p[1] in preds]
        task = next(iter(preds.values())).task
        metric = "auc" if task == "binary" else "accuracy"
        for c in compare_to_best(
            preds, metric=metric, pairs=named, n_bootstrap=n_bootstrap, seed=key[3]
        ):
            out.append((key, c))
    return out
