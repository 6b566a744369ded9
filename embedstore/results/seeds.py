"""Sweep statistics: mean ± std over seeds, and paired comparisons between feature sets.

Every feature set in a sweep is scored on the same labelled subsets (same seed, same rows), so
two feature sets are compared *paired by seed*: the per-seed differences d_s = a_s - b_s give the
mean difference, a percentile bootstrap CI of that mean (seeds resampled with replacement), and a
Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided) when there are at least
``MIN_WILCOXON`` seeds (below that no two-sided p-value can fall under 0.05: with 4 seeds the
smallest is 0.125; with 5, 0.0625, so "won on 5/5 seeds" is the strongest a 5-seed sweep can say).
When every seed drew the same labelled subset (records carry ``labels["subset_digest"]``; e.g. 100%
of the labels), the seeds are not replicates and no CI or p-value is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from embedstore.data.subsets import LabelSetting, setting_key
from embedstore.errors import InvalidDataError
from embedstore.results.records import ProbeResult

__all__ = [
    "MIN_WILCOXON",
    "PairedComparison",
    "SummaryRow",
    "compare_feature_sets",
    "format_setting",
    "paired_comparison",
    "paired_stats",
    "summarize",
]

MIN_WILCOXON = 5

Setting = LabelSetting


@dataclass(frozen=True)
class SummaryRow:
    """One (feature set, method, label setting): a metric's mean and sample std over seeds."""

    features: str
    method: str
    setting: Setting
    metric: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]  # per seed, in the order of ``seeds``
    mean: float
    std: float  # sample standard deviation (ddof=1); 0.0 for a single seed

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


@dataclass(frozen=True)
class PairedComparison:
    """Feature set ``a`` minus feature set ``b``, paired by seed, for one method and setting."""

    a: str
    b: str
    method: str
    setting: Setting
    metric: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]  # a - b per seed
    mean_diff: float
    ci_low: float | None  # 95% paired-bootstrap CI of the mean difference (None for < 2 seeds)
    ci_high: float | None
    p_value: float | None  # two-sided Wilcoxon signed-rank; None for < MIN_WILCOXON seeds
    wins: int  # seeds where a > b
    losses: int
    n_subsets: int | None = None  # distinct labelled subsets among the seeds (None: unknown)

    @property
    def n(self) -> int:
        return len(self.seeds)

    def describe(self, scale: float = 100.0) -> str:
        """'a+b vs a, knn at 1%: +3.1 points (95% CI +1.2 to +5.0), Wilcoxon p=0.031, 5/5 seeds'."""
        text = (
            f"{self.a} vs {self.b}, {self.method} at {format_setting(self.setting)}: "
            f"{self.mean_diff * scale:+.1f} points"
        )
        if self.ci_low is not None and self.ci_high is not None:
            text += f" (95% CI {self.ci_low * scale:+.1f} to {self.ci_high * scale:+.1f})"
        if self.p_value is not None:
            text += f", Wilcoxon p={self.p_value:.3g}"
        if self.n_subsets == 1:
            text += " (one labelled subset for every seed: no spread to test)"
        return text + f", better on {self.wins}/{self.n} seeds"


def format_setting(setting: Setting) -> str:
    """('fraction', 0.01) -> '1%'; ('shots', 5) -> '5-shot' (:meth:`LabelSetting.display`)."""
    return LabelSetting(*setting).display()


def _value(r: ProbeResult, metric: str) -> float | None:
    m = r.metrics.get(metric)
    v = None if m is None else m.get("value")
    return None if v is None or not np.isfinite(v) else float(v)


def _by_cell(
    results: Iterable[ProbeResult], metric: str
) -> dict[tuple[str, str, Setting], dict[int, float]]:
    """(features, method, setting) -> {seed: value}; records without the metric are left out."""
    cells: dict[tuple[str, str, Setting], dict[int, float]] = {}
    for r in results:
        setting = setting_key(r.labels)
        v = _value(r, metric)
        if setting is None or v is None:
            continue
        cells.setdefault((r.feature_name, r.method, setting), {})[int(r.seed)] = v
    return cells


def summarize(results: Iterable[ProbeResult], *, metric: str = "accuracy") -> list[SummaryRow]:
    """Mean and sample std over seeds per (feature set, method, setting), in first-seen order."""
    rows = []
    for (features, method, setting), per_seed in _by_cell(results, metric).items():
        seeds = tuple(sorted(per_seed))
        values = np.array([per_seed[s] for s in seeds])
        rows.append(
            SummaryRow(
                features=features,
                method=method,
                setting=setting,
                metric=metric,
                seeds=seeds,
                values=tuple(float(v) for v in values),
                mean=float(values.mean()),
                std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            )
        )
    return rows


def paired_stats(
    differences: Sequence[float] | np.ndarray, *, n_bootstrap: int = 10_000, seed: int = 0
) -> tuple[float, float | None, float | None, float | None]:
    """Mean of paired differences, its 95% percentile-bootstrap CI, and the Wilcoxon p-value.

    Args:
        differences: (n,) per-seed differences a - b.

    Returns:
        (mean, ci_low, ci_high, p_value); the CI is None for n < 2 and p for n < MIN_WILCOXON.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size == 0 or not np.isfinite(d).all():
        raise InvalidDataError(
            f"paired differences must be a non-empty 1-D finite array; got shape {d.shape}"
        )
    mean = float(d.mean())
    lo = hi = p = None
    if d.size >= 2:
        idx = np.random.default_rng(seed).integers(0, d.size, size=(n_bootstrap, d.size))
        means = d[idx].mean(axis=1)  # (B,)
        lo, hi = (float(q) for q in np.quantile(means, [0.025, 0.975]))
    if d.size >= MIN_WILCOXON:
        if np.all(d == 0):
            p = 1.0
        else:
            from scipy.stats import wilcoxon

            p = float(wilcoxon(d).pvalue)
    return mean, lo, hi, p


def paired_comparison(
    results: Iterable[ProbeResult],
    a: str,
    b: str,
    *,
    method: str,
    setting: Setting,
    metric: str = "accuracy",
    n_bootstrap: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Compare feature set ``a`` with ``b`` (names like 'dino+swav') on the seeds both have."""
    cells = _by_cell(results, metric)
    va, vb = cells.get((a, method, setting)), cells.get((b, method, setting))
    for name, v in ((a, va), (b, vb)):
        if not v:
            raise InvalidDataError(
                f"no '{metric}' results for feature set '{name}', method '{method}' at "
                f"{format_setting(setting)}; run the sweep for it first"
            )
    assert va is not None and vb is not None  # both checked above
    seeds = tuple(sorted(set(va) & set(vb)))
    if not seeds:
        raise InvalidDataError(
            f"'{a}' and '{b}' share no seeds at {format_setting(setting)} ({method}); "
            "a paired comparison needs the same seeds for both"
        )
    d = np.array([va[s] - vb[s] for s in seeds])
    mean, lo, hi, p = paired_stats(d, n_bootstrap=n_bootstrap, seed=seed)
    digests = {
        r.labels.get("subset_digest")
        for r in results
        if r.feature_name == a
        and r.method == method
        and setting_key(r.labels) == setting
        and int(r.seed) in seeds
    }
    n_subsets = None if None in digests else len(digests)
    if n_subsets == 1:  # e.g. 100% of the labels: the seeds are not independent replicates
        lo = hi = p = None
    return PairedComparison(
        a=a,
        b=b,
        method=method,
        setting=setting,
        metric=metric,
        seeds=seeds,
        differences=tuple(float(x) for x in d),
        mean_diff=mean,
        ci_low=lo,
        ci_high=hi,
        p_value=p,
        wins=int((d > 0).sum()),
        losses=int((d < 0).sum()),
        n_subsets=n_subsets,
    )


def compare_feature_sets(
    results: Sequence[ProbeResult], *, metric: str = "accuracy", n_bootstrap: int = 10_000
) -> list[PairedComparison]:
    """The comparisons a reader wants, per (method, setting).

    With fusions in the results: each fusion against the best single backbone (by mean over
    seeds). Without: the best feature set against the runner-up.
    """
    rows = summarize(results, metric=metric)
    fusion = {r.feature_name: len(r.features) > 1 for r in results}
    out = []
    groups: dict[tuple[str, Setting], list[SummaryRow]] = {}
    for row in rows:
        groups.setdefault((row.method, row.setting), []).append(row)
    for (method, setting), members in groups.items():
        singles = sorted((m for m in members if not fusion[m.features]), key=lambda m: -m.mean)
        fusions = [m for m in members if fusion[m.features]]
        if fusions and singles:
            pairs = [(f.features, singles[0].features) for f in fusions]
        elif len(members) >= 2:
            ranked = sorted(members, key=lambda m: -m.mean)
            pairs = [(ranked[0].features, ranked[1].features)]
        else:
            continue
        for a, b in pairs:
            out.append(
                paired_comparison(
                    results,
                    a,
                    b,
                    method=method,
                    setting=setting,
                    metric=metric,
                    n_bootstrap=n_bootstrap,
                )
            )
    return out
