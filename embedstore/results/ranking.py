"""Do the rankings hold across datasets? Ranks, Friedman, Nemenyi and Wilcoxon-Holm (Demšar 2006).

From a :class:`~embedstore.results.study_table.StudyTable` (feature sets x datasets, each value
the mean over seeds):

- each feature set's **rank** per dataset (1 = best; ties share the mean rank) and its **average
  rank** over the datasets where every feature set was scored (complete blocks);
- the **Friedman test** that all feature sets rank alike (chi-square with the tie correction,
  as ``scipy.stats.friedmanchisquare``), then the **Nemenyi critical difference**
  CD = q_alpha sqrt(k (k + 1) / (6 N)), q_alpha the studentized range quantile / sqrt 2: two
  average ranks further apart than CD differ (and the pairwise Nemenyi p-values);
- **pairwise Wilcoxon signed-rank tests** over datasets with Holm's correction.

Too few datasets for a test gives a sentence instead of a p-value: Friedman needs k >= 3 feature
sets and N >= 3 datasets; a two-sided Wilcoxon test needs N >= ``MIN_WILCOXON`` (5) datasets
before any p-value can fall under 0.05.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedstore.results.paired import holm
from embedstore.results.seeds import MIN_WILCOXON
from embedstore.results.study_table import StudyTable

__all__ = ["MIN_FRIEDMAN", "PairTest", "Ranking", "friedman", "nemenyi_cd", "rank_feature_sets"]

MIN_FRIEDMAN = 3  # datasets (and feature sets)


@dataclass(frozen=True)
class PairTest:
    """Two feature sets over the datasets: Wilcoxon (Holm-adjusted) and Nemenyi p-values."""

    a: str
    b: str
    wins: int  # datasets where a scored higher
    losses: int
    wilcoxon_p: float | None
    wilcoxon_p_holm: float | None
    nemenyi_p: float | None


@dataclass(frozen=True)
class Ranking:
    """Ranks of the feature sets of one study table, and the tests across datasets."""

    method: str
    metric: str
    features: list[str]  # in order of average rank, best first
    datasets: list[str]  # the complete blocks used
    ranks: dict[str, dict[str, float]]  # dataset -> feature set -> rank (1 = best)
    mean_rank: dict[str, float]
    friedman_stat: float | None
    friedman_p: float | None
    cd: float | None  # Nemenyi critical difference at alpha
    alpha: float
    pairs: list[PairTest]
    notes: list[str] = field(default_factory=list)  # what could not be tested, and why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def friedman(values: np.ndarray) -> tuple[float, float]:
    """Friedman's chi-square and p-value of an (N datasets, k feature sets) array (higher =
    better), with the correction for ties."""
    from scipy.stats import chi2, rankdata

    N, k = values.shape
    R = rankdata(values, axis=1)  # (N, k), ties: mean rank
    ties = 0.0
    for row in values:
        t = np.unique(row, return_counts=True)[1]
        ties += float((t**3 - t).sum())
    stat = 12.0 / (N * k * (k + 1)) * (R.sum(axis=0) ** 2).sum() - 3.0 * N * (k + 1)
    c = 1.0 - ties / (N * k * (k * k - 1))
    stat = stat / c if c > 0 else 0.0
    return float(stat), float(chi2.sf(stat, k - 1))


def nemenyi_cd(k: int, N: int, alpha: float = 0.05) -> float:
    """The Nemenyi critical difference of average ranks (Demšar 2006, eq. in section 3.2.2)."""
    from scipy.stats import studentized_range

    q = float(studentized_range.ppf(1 - alpha, k, np.inf)) / np.sqrt(2.0)
    return q * float(np.sqrt(k * (k + 1) / (6.0 * N)))


def _nemenyi_p(dr: float, k: int, N: int) -> float:
    from scipy.stats import studentized_range

    q = abs(dr) / np.sqrt(k * (k + 1) / (6.0 * N))
    return float(studentized_range.sf(q * np.sqrt(2.0), k, np.inf))


def rank_feature_sets(table: StudyTable, *, alpha: float = 0.05) -> Ranking:
    """Ranks and tests across the datasets of ``table`` (module docstring)."""
    from scipy.stats import rankdata, wilcoxon

    features = list(table.features)
    by_dataset = table.values()
    complete = [d for d in table.datasets if set(features) <= set(by_dataset.get(d, {}))]
    notes = []
    left_out = [d for d in table.datasets if d not in complete]
    if left_out:
        notes.append(
            f"left out of the ranks (not every feature set scored there): {', '.join(left_out)}"
        )
    N, k = len(complete), len(features)
    V = np.array([[by_dataset[d][f] for f in features] for d in complete]).reshape(N, k)
    R = rankdata(-V, axis=1) if N else np.zeros((0, k))  # 1 = best
    mean_rank = {f: float(R[:, j].mean()) if N else float("nan") for j, f in enumerate(features)}
    stat = p = cd = None
    if k < MIN_FRIEDMAN or N < MIN_FRIEDMAN:
        notes.append(
            f"Friedman/Nemenyi: not tested - {N} dataset(s) and {k} feature set(s); the test "
            f"needs at least {MIN_FRIEDMAN} of each"
        )
    else:
        stat, p = friedman(V)
        cd = nemenyi_cd(k, N, alpha)
        if N < 10:
            notes.append(
                f"Friedman with {N} datasets: the chi-square approximation is rough under 10 "
                "(Demšar 2006); read the p-value as indicative"
            )
    pairs_idx = list(itertools.combinations(range(k), 2))
    w_p: list[float | None] = []
    for i, j in pairs_idx:
        d = V[:, i] - V[:, j]
        if N < MIN_WILCOXON:
            w_p.append(None)
        elif np.all(d == 0):
            w_p.append(1.0)
        else:
            w_p.append(float(wilcoxon(V[:, i], V[:, j]).pvalue))
    if N < MIN_WILCOXON and pairs_idx:
        notes.append(
            f"Wilcoxon signed-rank: not tested - {N} dataset(s); a two-sided p-value cannot "
            f"fall under 0.05 with fewer than {MIN_WILCOXON}"
        )
    have = [n for n, v in enumerate(w_p) if v is not None]
    tested = [v for v in w_p if v is not None]
    adjusted = dict(zip(have, holm(tested), strict=True)) if have else {}
    pairs = []
    for n, (i, j) in enumerate(pairs_idx):
        d = V[:, i] - V[:, j]
        pairs.append(
            PairTest(
                a=features[i],
                b=features[j],
                wins=int((d > 0).sum()),
                losses=int((d < 0).sum()),
                wilcoxon_p=w_p[n],
                wilcoxon_p_holm=adjusted.get(n),
                nemenyi_p=None if cd is None else _nemenyi_p(R[:, i].mean() - R[:, j].mean(), k, N),
            )
        )
    order = sorted(features, key=lambda f: (mean_rank[f], features.index(f)))
    return Ranking(
        method=table.method,
        metric=table.metric,
        features=order,
        datasets=complete,
        ranks={
            d: {f: float(R[n, j]) for j, f in enumerate(features)} for n, d in enumerate(complete)
        },
        mean_rank=mean_rank,
        friedman_stat=stat,
        friedman_p=p,
        cd=cd,
        alpha=alpha,
        pairs=pairs,
        notes=notes,
    )
