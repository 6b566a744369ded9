"""Patients (groups) found in more than one split: each with its rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PatientOverlap", "patients_in_several_splits", "splits_made_by_embedstore"]

_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PatientOverlap:
    """One group present in several splits: its id, the splits, and its rows' ids per split."""

    group: str
    splits: tuple[str, ...]
    ids: dict[str, list[str]]

    def record(self) -> dict[str, Any]:
        return {"group": self.group, "splits": list(self.splits), "ids": self.ids}


def patients_in_several_splits(
    group: np.ndarray, split: np.ndarray, ids: np.ndarray
) -> list[PatientOverlap]:
    """Every group whose rows lie in more than one split, sorted by group id."""
    names, inv = np.unique(group, return_inverse=True)
    inv = inv.reshape(-1)
    per = np.zeros((len(names), 3), dtype=bool)
    per[inv, split] = True
    order = np.argsort(inv, kind="stable")  # rows grouped by patient, in row order
    starts = np.searchsorted(inv[order], np.arange(len(names) + 1))
    out = []
    for g in np.flatnonzero(per.sum(axis=1) > 1):
        rows = order[starts[g] : starts[g + 1]]
        splits = tuple(_SPLITS[c] for c in range(3) if per[g, c])
        by_split = {s: [str(ids[r]) for r in rows if _SPLITS[split[r]] == s] for s in splits}
        out.append(PatientOverlap(group=str(names[g]), splits=splits, ids=by_split))
    return out


def splits_made_by_embedstore(source: str) -> bool:
    """Whether a dataset's recorded ``source`` says its splits were made at extraction
    (``splits: stratified(...)``: group-aware, so no patient can be in two splits)."""
    return "splits: stratified" in source
