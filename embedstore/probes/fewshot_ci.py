"""A data-level interval for few-shot accuracy: bootstrap the test images, then draw episodes.

The published interval, 1.96·σ/√E over E episodes, says how precisely the episodes pin down the
mean accuracy *on this test pool*; with 600 episodes it is ±0.5 points even on 60 images. It says
nothing about how much the score would move on another draw of test images. This module gives
that second interval, labelled as such beside the published one:

1. resample the test images with replacement, within each class (class sizes kept);
2. draw ``n_episodes`` N-way K-shot episodes from the resample, as the protocol does, except
   that a query is never a copy of an image in the same episode's support (a bootstrap
   resample holds duplicates; a copy in both would leak the answer; an episode that cannot
   avoid it, possible only for classes barely larger than K + Q, is dropped);
3. score the episodes; the 2.5 and 97.5 percentiles of the per-resample mean accuracies over
   ``n_resamples`` resamples are the interval. Where every resample scores the same (perfectly
   separated classes), the exact Clopper-Pearson interval over the test units replaces the
   zero-width one.

Where the test split records patients (``groups``), step 1 resamples patients instead, with all
their images (a cluster bootstrap: images of one patient are not independent); class sizes then
vary between resamples, and a resample in which a class falls below K + Q images is dropped.

The Monte-Carlo noise of ``n_episodes`` episodes per resample widens the interval slightly (by
about σ/√n_episodes, well under a point at the defaults): it errs on the wide side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedstore.probes.prototypes import Episodes, evaluate_episodes

__all__ = ["DATA_EPISODES", "DATA_RESAMPLES", "DataInterval", "data_interval"]

DATA_RESAMPLES = 200
DATA_EPISODES = 200


@dataclass(frozen=True)
class DataInterval:
    """The 95% percentile interval over resamples of the test images, and how it was made."""

    low: float
    high: float
    n_resamples: int  # resamples that could hold the episodes (all, unless classes are tiny)
    n_episodes: int
    ci_unit: str = "image"  # what was resampled: "image" or "patient"
    n_units: int | None = None
    exact: bool = False  # every resample gave one value: Clopper-Pearson over the units instead

    def describe(self) -> str:
        if self.exact:
            return (
                f"exact Clopper-Pearson 95% interval over the {self.n_units} test "
                f"{self.ci_unit}s (every one of {self.n_resamples} resamples of the test "
                f"{self.ci_unit}s scored the same: the bootstrap has no spread to show)"
            )
        what = (
            "class-stratified resamples of the test pool"
            if self.ci_unit == "image"
            else f"resamples of the test split's {self.n_units} patients (cluster bootstrap)"
        )
        return (
            f"95% percentile bootstrap over test {self.ci_unit}s: {self.n_resamples} {what}, "
            f"{self.n_episodes} episodes each (queries never copies of their episode's support)"
        )


def _draw(
    pools: list[np.ndarray], n_way: int, k: int, q: int, n_episodes: int, rng: np.random.Generator
) -> Episodes | None:
    """Episodes over the resampled class pools (arrays of row indices, duplicates allowed).

    An episode whose class pool cannot give ``q`` queries that are not copies of its support is
    dropped (tiny classes); None when over half are dropped.
    """
    C = len(pools)
    ways = np.argsort(rng.random((n_episodes, C)), axis=1)[:, :n_way]  # (E, N) class slots
    support = np.empty((n_episodes, n_way, k), dtype=np.int64)
    query = np.empty((n_episodes, n_way, q), dtype=np.int64)
    ok = np.ones(n_episodes, dtype=bool)
    for c, pool in enumerate(pools):
        where = np.argwhere(ways == c)  # (m, 2) episode, way
        if not len(where):
            continue
        keys = rng.random((len(where), pool.size))
        sup = np.argpartition(keys, k - 1, axis=1)[:, :k]  # (m, K) positions in the pool
        sup_rows = pool[sup]
        # positions whose image is in the support (the support positions among them)
        taken = (pool[None, None, :] == sup_rows[:, :, None]).any(axis=1)  # (m, n_c)
        ok[where[(~taken).sum(axis=1) < q, 0]] = False  # too few other images for the queries
        keys[taken] = np.inf
        qry = np.argpartition(keys, q - 1, axis=1)[:, :q]
        support[where[:, 0], where[:, 1]] = sup_rows
        query[where[:, 0], where[:, 1]] = pool[qry]
    if ok.sum() < n_episodes / 2:
        return None
    return Episodes(ways[ok], support[ok], query[ok], n_way, k, q, seed=-1)


def data_interval(
    X: Any,
    y: np.ndarray,
    *,
    n_way: int,
    k_shot: int,
    n_query: int,
    seed: int = 0,
    n_resamples: int = DATA_RESAMPLES,
    n_episodes: int = DATA_EPISODES,
    device: str = "cpu",
    groups: Any = None,
) -> DataInterval | None:
    """The interval of mean episode accuracy over resamples of the test images (module doc).

    Args:
        X: (n, dim) test embeddings; y: (n,) their labels. Only classes with at least
            ``k_shot + n_query`` images take part, as in :func:`sample_episodes`.
        groups: (n,) patient id per test image, or None; with groups, patients are resampled.

    Returns:
        None when fewer than half the resamples could hold the episodes (classes too small).
    """
    y = np.asarray(y)
    labels, counts = np.unique(y, return_counts=True)
    eligible = labels[counts >= k_shot + n_query]
    if eligible.size < n_way:
        return None
    rows = [np.flatnonzero(y == c) for c in eligible]
    rng = np.random.default_rng([seed, 0x5EED])
    u = None
    if groups is not None:
        from embedstore.results.intervals import units

        u = units(groups, y.shape[0])
        members = [np.flatnonzero(u.codes == g) for g in range(u.n_units)]
    means = []
    for _ in range(n_resamples):
        if u is None:
            pools = [rng.choice(r, size=r.size, replace=True) for r in rows]
        else:
            drawn = np.concatenate([members[g] for g in rng.integers(0, u.n_units, u.n_units)])
            pools = [drawn[y[drawn] == c] for c in eligible]
            if min(p.size for p in pools) < k_shot + n_query:
                continue  # a class lost too many patients in this resample
        eps = _draw(pools, n_way, k_shot, n_query, n_episodes, rng)
        if eps is not None:
            means.append(evaluate_episodes(X, eps, device=device).mean)
    if len(means) < n_resamples / 2:
        return None
    low, high = (float(q) for q in np.quantile(means, [0.025, 0.975]))
    unit, n_units = ("image", y.shape[0]) if u is None else ("patient", u.n_units)
    if low == high:  # no zero-width interval for a proportion: the exact one over the units
        from embedstore.results.intervals import clopper_pearson

        low, high = clopper_pearson(low * n_units, n_units)
        return DataInterval(low, high, len(means), n_episodes, unit, n_units, exact=True)
    return DataInterval(low, high, len(means), n_episodes, unit, n_units)
