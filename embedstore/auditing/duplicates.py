"""Near-duplicates across and within splits, with a threshold calibrated per backbone.

For each backbone: the nearest train/val row of every test row, and the nearest other row of the
same split for every row of each split (:func:`embedstore.auditing.search.nearest`, cosine on
L2-normalised embeddings). Together these nearest-neighbour similarities describe how close
*ordinary* neighbours are in this embedding; a duplicate is an outlier of that distribution.

The threshold rule (per backbone, from its own data): work with the nearest-neighbour distance
``d = 1 − cos`` on a log scale, where ordinary neighbours spread evenly whatever the backbone's
typical similarity (a ViT's ordinary neighbours may sit at cos 0.95, a ResNet's at 0.7); a pair is
a candidate duplicate when ``log d < median(log d) − k · 1.4826 · MAD(log d)``, k = ``K_MAD``
(the median and MAD are robust to the duplicates themselves while they are fewer than half the
rows). Equivalently ``cos > 1 − exp(median − k·σ̂)``, the threshold reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedstore.auditing.search import nearest, resolve_method

__all__ = ["K_MAD", "DuplicatePair", "DuplicateSearch", "calibrate", "search_backbone"]

K_MAD = 4.0
_SPLITS = ("train", "val", "test")


def calibrate(nn_sims: np.ndarray, k: float = K_MAD) -> float:
    """The cosine threshold above which a nearest neighbour is a candidate duplicate."""
    s = np.asarray(nn_sims, dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) < 3:
        return 1.0
    d = np.log(np.clip(1.0 - s, 1e-7, None))
    med = float(np.median(d))
    spread = 1.4826 * float(np.median(np.abs(d - med)))
    return float(1.0 - np.exp(med - k * max(spread, 1e-3)))


@dataclass(frozen=True)
class DuplicateSearch:
    """One backbone's nearest neighbours: per split pair (e.g. ``"test-trainval"``,
    ``"train-train"``) the query rows, their neighbour rows and similarities; the threshold."""

    backbone: str
    method: str
    threshold: float
    queries: dict[str, np.ndarray]
    neighbours: dict[str, np.ndarray]
    sims: dict[str, np.ndarray]
    median_sim: float

    def flagged(self) -> list[tuple[str, int, int, float]]:
        """(split pair, query row, neighbour row, similarity) above the threshold."""
        out = []
        for kind, q in self.queries.items():
            hit = np.flatnonzero(self.sims[kind] >= self.threshold)
            for j in hit:
                if self.neighbours[kind][j] >= 0:
                    out.append(
                        (kind, int(q[j]), int(self.neighbours[kind][j]), float(self.sims[kind][j]))
                    )
        return out


def search_backbone(
    X: np.ndarray,
    split: np.ndarray,
    backbone: str,
    *,
    valid: np.ndarray | None = None,
    k: float = K_MAD,
    method: str = "auto",
    device: str = "cpu",
) -> DuplicateSearch:
    """Nearest neighbours test→train∪val and within each split, and the calibrated threshold.

    Args:
        X: (n, D) embeddings of one backbone; split: (n,) codes 0/1/2; valid: (n,) rows to use
            (images that were read at extraction).
    """
    ok = np.ones(len(X), bool) if valid is None else valid
    rows = {s: np.flatnonzero((split == c) & ok) for c, s in enumerate(_SPLITS)}
    trainval = np.concatenate([rows["train"], rows["val"]])
    how = resolve_method(method, max(len(trainval), 1), device)
    queries, neigh, sims = {}, {}, {}
    if len(rows["test"]) and len(trainval):
        s, i = nearest(X, rows["test"], trainval, method=how, device=device)
        queries["test-trainval"], neigh["test-trainval"], sims["test-trainval"] = rows["test"], i, s
    for name in _SPLITS:
        if len(rows[name]) > 1:
            s, i = nearest(X, rows[name], rows[name], exclude_self=True, method=how, device=device)
            kind = f"{name}-{name}"
            queries[kind], neigh[kind], sims[kind] = rows[name], i, s
    pooled = np.concatenate(list(sims.values())) if sims else np.array([])
    return DuplicateSearch(
        backbone=backbone,
        method=how,
        threshold=calibrate(pooled, k),
        queries=queries,
        neighbours=neigh,
        sims=sims,
        median_sim=float(np.nanmedian(pooled)) if len(pooled) else float("nan"),
    )


@dataclass
class DuplicatePair:
    """A candidate duplicate: rows ``a`` (the query; the test row across splits) and ``b``."""

    a: int
    b: int
    id_a: str
    id_b: str
    split_a: str
    split_b: str
    similarity: dict[str, float] = field(default_factory=dict)  # backbone -> cosine
    flagged_by: list[str] = field(default_factory=list)
    same_group: bool | None = None

    @property
    def split_pair(self) -> str:
        """ "test-train", "train-train", ...: the splits of the two rows."""
        return f"{self.split_a}-{self.split_b}"

    def record(self) -> dict[str, Any]:
        return {
            "id_a": self.id_a,
            "id_b": self.id_b,
            "split_a": self.split_a,
            "split_b": self.split_b,
            "similarity": self.similarity,
            "flagged_by": self.flagged_by,
            "same_group": self.same_group,
        }


def collect_pairs(
    searches: list[DuplicateSearch],
    read_rows: Callable[[str, np.ndarray], np.ndarray],
    ids: np.ndarray,
    split: np.ndarray,
    group: np.ndarray | None,
) -> list[DuplicatePair]:
    """Every pair flagged by at least one backbone, with its cosine in every backbone, sorted by
    the number of backbones that flag it, then by the mean similarity.

    ``read_rows(backbone, rows)``: the (len(rows), D) embeddings of those rows (only the rows of
    flagged pairs are read again)."""
    pairs: dict[tuple[int, int], DuplicatePair] = {}
    for search in searches:
        for kind, a, b, _ in search.flagged():
            key = (a, b) if kind.startswith("test-trainval") else (min(a, b), max(a, b))
            if key not in pairs:
                pairs[key] = DuplicatePair(
                    a=key[0], b=key[1], id_a=str(ids[key[0]]), id_b=str(ids[key[1]]),
                    split_a=_SPLITS[split[key[0]]], split_b=_SPLITS[split[key[1]]],
                    same_group=None if group is None else bool(group[key[0]] == group[key[1]]),
                )  # fmt: skip
            if search.backbone not in pairs[key].flagged_by:
                pairs[key].flagged_by.append(search.backbone)
    rows = np.unique([r for key in pairs for r in key]).astype(np.int64)
    for search in searches if len(rows) else []:
        X = read_rows(search.backbone, rows).astype(np.float64)
        X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        at = {int(r): i for i, r in enumerate(rows)}
        for pair in pairs.values():
            pair.similarity[search.backbone] = round(float(X[at[pair.a]] @ X[at[pair.b]]), 6)
    return sorted(
        pairs.values(),
        key=lambda p: (-len(p.flagged_by), -float(np.mean(list(p.similarity.values())))),
    )


def count_by_split_pair(pairs: list[DuplicatePair]) -> dict[str, int]:
    """Number of flagged pairs per split pair ("test-train": 3, "train-train": 1, ...)."""
    out: dict[str, int] = {}
    for p in pairs:
        out[p.split_pair] = out.get(p.split_pair, 0) + 1
    return dict(sorted(out.items()))
