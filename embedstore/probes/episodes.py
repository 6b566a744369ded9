"""Few-shot episodes: which classes, support and query rows each episode draws (numpy only).

Episodes depend only on the labels and the seed, so one :class:`Episodes` object is drawn per run
and reused for every backbone and fusion (paired comparisons). Drawing them is also how a plan
checks, before any feature is read, that few-shot can run on a test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError, ProtocolError
from embedstore.probes.validation import check_labels

__all__ = ["WAYS_RULE", "Episodes", "default_n_way", "sample_episodes"]

WAYS_RULE = (
    "2-way for two classes, 5-way for five or more, and every class (3- or 4-way) in between"
)


def default_n_way(n_classes: int) -> int:
    """The protocol's default ways (``WAYS_RULE``): 2 for two classes, 5 for five or more, and
    all of them for three or four (a 5-way episode needs five classes); ``--ways`` sets it."""
    if n_classes < 2:
        raise ProtocolError(
            f"few-shot episodes need at least 2 classes; the labels have {n_classes}"
        )
    return 2 if n_classes == 2 else min(5, n_classes)


def _infeasible_hint(counts: np.ndarray, n_way: int, n_query: int) -> str:
    """What to change when ``n_way`` classes of ``counts`` (sorted, largest first) cannot each
    give k_shot + n_query samples, in the CLI's flags (the API's parameters in brackets)."""
    if counts.size < n_way:
        return (
            f"the labels have only {counts.size} classes; use --ways (n_way) {counts.size} or fewer"
        )
    smallest = int(counts[n_way - 1])  # the n_way-th largest class bounds every episode
    if smallest - n_query >= 1:
        return (
            f"the largest feasible --shots (k_shot) is {smallest - n_query} with --n-query "
            f"(n_query) {n_query}"
        )
    fewer = int(np.sum(counts >= 2))
    if smallest < 2:
        return (
            f"the {n_way} largest classes include one with {smallest} sample; use --ways (n_way) "
            f"{fewer} or fewer (classes with 2 samples or more: {fewer})"
            if fewer >= 2
            else "no two classes have 2 samples or more: few-shot episodes cannot be drawn"
        )
    shots = max(1, smallest // 2)
    return (
        f"the {n_way} largest classes have {smallest} samples or more, so --shots (k_shot) plus "
        f"--n-query (n_query) must be at most {smallest}: e.g. --shots {shots} --n-query "
        f"{smallest - shots}"
    )


@dataclass(frozen=True, eq=False)
class Episodes:
    """A fixed set of few-shot episodes over rows of one label vector.

    Attributes:
        classes: (E, N) int, the class label of each way.
        support: (E, N, K) int, row indices of the support samples of each way.
        query: (E, N, Q) int, row indices of the query samples of each way (disjoint from support).
    """

    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray
    n_way: int
    k_shot: int
    n_query: int
    seed: int

    @property
    def n_episodes(self) -> int:
        return int(self.classes.shape[0])


def sample_episodes(
    y: Any,
    *,
    n_way: int,
    k_shot: int,
    n_query: int = 15,
    n_episodes: int = 600,
    seed: int = 0,
) -> Episodes:
    """Draw N-way K-shot episodes with Q queries per class from labels ``y`` (n_samples,).

    Classes are drawn uniformly among those with at least ``k_shot + n_query`` samples; within an
    episode, support and query rows are drawn without replacement and are disjoint. The result
    depends only on ``y`` and ``seed``. Row indices refer to positions in ``y``.

    Raises:
        ProtocolError: fewer than ``n_way`` classes have ``k_shot + n_query`` samples (the message
            gives the samples per class and the largest feasible ``k_shot``).
    """
    y = check_labels(y, allow_multilabel=False)
    for name, value, low in (
        ("n_way", n_way, 2),
        ("k_shot", k_shot, 1),
        ("n_query", n_query, 1),
        ("n_episodes", n_episodes, 1),
    ):
        if int(value) != value or value < low:
            raise InvalidDataError(f"{name} must be an integer >= {low}; got {value!r}")
    labels, counts = np.unique(y, return_counts=True)
    need = k_shot + n_query
    eligible = labels[counts >= need]
    if eligible.size < n_way:
        pairs = zip(labels.tolist(), counts.tolist(), strict=True)
        per_class = ", ".join(f"{c}: {n}" for c, n in pairs)
        hint = _infeasible_hint(np.sort(counts)[::-1], n_way, n_query)
        raise ProtocolError(
            f"{n_way}-way {k_shot}-shot episodes with {n_query} queries need {need} samples in "
            f"at least {n_way} classes; only {eligible.size} classes have that many "
            f"(samples per class: {per_class}); {hint}"
        )

    rng = np.random.default_rng(seed)
    # (E, N) classes: the first N of a random permutation of the eligible classes per episode
    ways = np.argsort(rng.random((n_episodes, eligible.size)), axis=1)[:, :n_way]
    classes = eligible[ways]
    picks = np.empty((n_episodes, n_way, need), dtype=np.int64)
    for c in eligible:  # one vectorised draw per class, over every (episode, way) that chose it
        rows = np.flatnonzero(y == c)
        where = np.argwhere(classes == c)  # (m, 2) episode, way
        step = max(1, 4_000_000 // rows.size)
        for start in range(0, where.shape[0], step):
            sel = where[start : start + step]
            keys = rng.random((sel.shape[0], rows.size))
            # a uniformly random subset of `need` rows, then put in random order by their keys
            first = np.argpartition(keys, need - 1, axis=1)[:, :need]
            first_keys = np.take_along_axis(keys, first, axis=1)
            chosen = np.take_along_axis(first, np.argsort(first_keys, axis=1), axis=1)
            picks[sel[:, 0], sel[:, 1]] = rows[chosen]
    support, query = picks[:, :, :k_shot].copy(), picks[:, :, k_shot:].copy()
    for a in (classes, support, query):
        a.setflags(write=False)
    return Episodes(classes, support, query, int(n_way), int(k_shot), int(n_query), int(seed))
