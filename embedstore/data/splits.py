"""Train / val / test splits: parse the source's own, or make stratified ones from a fixed seed,
keeping every group (patient) inside one split when groups are known.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embedstore.errors import SourceError

__all__ = [
    "DEFAULT_FRACTIONS",
    "SPLIT_ALIASES",
    "SmallClassWarning",
    "make_splits",
    "parse_split_names",
    "split_gaps",
]

DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
SPLIT_ALIASES = {
    "train": 0,
    "training": 0,
    "val": 1,
    "valid": 1,
    "validation": 1,
    "dev": 1,
    "test": 2,
    "testing": 2,
}


def parse_split_names(values: Sequence[str], *, where: str) -> np.ndarray:
    """Split names (train/val/test and common aliases) -> codes, array of shape (n,) uint8."""
    keys = [str(v).strip().lower() for v in values]
    bad = [i for i, k in enumerate(keys) if k not in SPLIT_ALIASES]
    if bad:
        unknown = sorted({str(values[i]) for i in bad})
        raise SourceError(
            f"{where}: split value(s) {unknown[:5]} (rows {bad[:5]}) are not train, val or test "
            f"(aliases: {', '.join(sorted(SPLIT_ALIASES))}); fix the values or leave the "
            "split column out to make stratified splits"
        )
    return np.asarray([SPLIT_ALIASES[k] for k in keys], dtype=np.uint8)


def _strata(labels: np.ndarray) -> np.ndarray:
    """One integer stratum per sample: the class, or the label combination for multilabel."""
    if labels.ndim == 1:
        return np.unique(labels, return_inverse=True)[1]
    keys = np.packbits(labels.astype(bool), axis=1)
    return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)


def make_splits(
    labels: np.ndarray,
    *,
    group: np.ndarray | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> np.ndarray:
    """Stratified split codes (0 train, 1 val, 2 test), array of shape (n_samples,) uint8.

    Within each stratum (class, or label combination for multilabel) the units are shuffled with
    ``seed`` and laid end to end; a unit goes to the split its midpoint falls in, so each stratum
    is divided as close to ``fractions`` as whole units allow. A unit is a sample, or with
    ``group`` a whole group (stratified by its most common stratum), so no group spans two splits.

    Args:
        labels: (n,) class indices or (n, C) 0/1 multilabel.
        group: optional (n,) group ids (e.g. patient).
        fractions: train, val, test fractions summing to 1.
        seed: fixed seed; the same inputs always give the same splits.
    """
    parts = np.asarray(fractions, dtype=np.float64)
    if parts.shape != (3,) or (parts < 0).any() or abs(parts.sum() - 1.0) > 1e-6:
        raise SourceError(
            f"split fractions must be three non-negative numbers (train, val, test) summing to 1, "
            f"got {parts.tolist()}"
        )
    labels = np.asarray(labels)
    n = len(labels)
    strata = _strata(labels)
    if group is None:
        unit_of = np.arange(n)
        unit_stratum = strata
    else:
        _, unit_of = np.unique(np.asarray(group).astype(str), return_inverse=True)
        unit_of = unit_of.reshape(-1)
        n_units = int(unit_of.max()) + 1
        counts = np.zeros((n_units, int(strata.max()) + 1), dtype=np.int64)
        np.add.at(counts, (unit_of, strata), 1)
        unit_stratum = counts.argmax(axis=1)
    unit_size = np.bincount(unit_of, minlength=len(unit_stratum)).astype(np.float64)
    bounds = np.cumsum(parts)[:2]
    rng = np.random.default_rng(seed)
    unit_split = np.zeros(len(unit_stratum), dtype=np.uint8)
    for s in np.unique(unit_stratum):
        units = rng.permutation(np.flatnonzero(unit_stratum == s))
        sizes = unit_size[units]
        ends = np.cumsum(sizes)
        mid = (ends - sizes / 2.0) / ends[-1]
        unit_split[units] = np.searchsorted(bounds, mid, side="right").astype(np.uint8)
    return unit_split[unit_of]


SPLIT_NAMES = ("train", "val", "test")


class SmallClassWarning(UserWarning):
    """A class has too few images for every split to hold one (extraction goes on)."""


def split_gaps(labels: np.ndarray, split: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """One line per class that is missing from a split it could have been in: how many images it
    has and where they landed, e.g. ``class 'b' (1 image): train 1, val 0, test 0``.

    Single-label tasks only (a multilabel task's classes are columns, present in every row).
    Splits that hold no row at all (a source without val) are not counted as missing.
    """
    labels, split = np.asarray(labels), np.asarray(split)
    if labels.ndim != 1:
        return []
    used = [code for code in range(3) if (split == code).any()]
    lines = []
    for c, name in enumerate(class_names):
        where = [int(((labels == c) & (split == code)).sum()) for code in range(3)]
        total = sum(where)
        if total and any(where[code] == 0 for code in used):
            parts = ", ".join(f"{SPLIT_NAMES[code]} {where[code]}" for code in used)
            lines.append(f"class '{name}' ({total} image{'s' if total != 1 else ''}): {parts}")
    return lines
