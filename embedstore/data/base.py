"""The `Source` interface the extractor uses, and the in-memory array source.

A source knows everything about its samples up front (ids, labels, class names, task kind,
split, optional group) and loads one image at a time by row index, so the extractor can write
the dataset first and then stream images through any number of loader worker processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from embedstore.data.splits import DEFAULT_FRACTIONS, make_splits, parse_split_names
from embedstore.errors import SourceError

__all__ = ["Source", "ArraySource", "infer_task"]

_TASKS = ("binary", "multiclass", "multilabel", "ordinal")


def infer_task(labels: np.ndarray, class_names: Sequence[str], task: str | None) -> str:
    """The given task, or multilabel for (n, C) labels, binary for 2 classes, else multiclass."""
    if task is not None:
        if task not in _TASKS:
            raise SourceError(f"task must be one of {', '.join(_TASKS)}, got '{task}'")
        return task
    if labels.ndim == 2:
        return "multilabel"
    return "binary" if len(class_names) == 2 else "multiclass"


class Source:
    """Samples with everything known up front; subclasses implement :meth:`load` and :meth:`locate`.

    Attributes:
        description: one line saying where the data comes from (stored with the dataset).
        ids: (n,) str, unique, stable across runs (relative path, or "train/0" for arrays).
        labels: (n,) int64 class indices, or (n, C) uint8 0/1 for multilabel.
        class_names: one name per class (per label for multilabel).
        task: binary, multiclass, multilabel or ordinal.
        split: (n,) uint8 codes, 0 train, 1 val, 2 test.
        group: (n,) str patient / group ids, or None.
        split_origin: 'source' when the data came with splits, else 'stratified(seed=..)'.
    """

    def __init__(
        self,
        *,
        description: str,
        ids: Sequence[str] | np.ndarray,
        labels: np.ndarray,
        class_names: Sequence[str],
        task: str | None = None,
        split: np.ndarray | Sequence[str] | None = None,
        group: Sequence[str] | np.ndarray | None = None,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        seed: int = 0,
    ) -> None:
        self.description = description
        self.ids = np.asarray(ids).astype(str)
        labels = np.asarray(labels)
        self.class_names = tuple(str(c) for c in class_names)
        self.task = infer_task(labels, self.class_names, task)
        self.labels = labels.astype(np.uint8 if self.task == "multilabel" else np.int64)
        n = len(self.ids)
        if n == 0:
            raise SourceError(f"{description}: no images found; check the path and its layout")
        if len(self.labels) != n:
            raise SourceError(f"{description}: {n} ids but {len(self.labels)} labels")
        if self.task != "multilabel" and len(self.class_names) < 2:
            raise SourceError(
                f"{description}: found {len(self.class_names)} class(es) "
                f"({', '.join(self.class_names)}); a classification task needs at least 2"
            )
        self.group = None if group is None else np.asarray(group).astype(str)
        if split is None:
            self.split = make_splits(self.labels, group=self.group, fractions=fractions, seed=seed)
            self.split_origin = f"stratified(seed={seed}, fractions={list(fractions)})"
        else:
            split = np.asarray(split)
            if split.dtype.kind in "OUS":
                split = parse_split_names(split.tolist(), where=description)
            self.split = split.astype(np.uint8)
            self.split_origin = "source"
        if self.group is not None:
            _check_groups_disjoint(self.group, self.split, description)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Image.Image | np.ndarray:
        """Decode sample ``index``: a PIL image or an array (H, W[, C]); raises BadImageError."""
        raise NotImplementedError

    def locate(self, index: int) -> str:
        """Where sample ``index`` lives, for error messages (a file path or an array key)."""
        return str(self.ids[index])

    def dataset_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``Store.add_dataset``."""
        return {
            "ids": self.ids,
            "labels": self.labels,
            "split": self.split,
            "task": self.task,
            "class_names": list(self.class_names),
            "group": self.group,
            "source": f"{self.description}; splits: {self.split_origin}",
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, n={len(self)}, task={self.task})"


def _check_groups_disjoint(group: np.ndarray, split: np.ndarray, description: str) -> None:
    _, inv = np.unique(group, return_inverse=True)
    inv = inv.reshape(-1)
    per_group = np.zeros((int(inv.max()) + 1, 3), dtype=bool)
    per_group[inv, split] = True
    leaking = np.flatnonzero(per_group.sum(axis=1) > 1)
    if len(leaking):
        names = np.unique(group)[leaking][:5].tolist()
        raise SourceError(
            f"{description}: group(s) {names} appear in more than one split, which leaks patients "
            "between train and test; fix the split column or leave it out to make group-aware "
            "splits"
        )


class ArraySource(Source):
    """Images held in memory: an array (n, H, W) grey or (n, H, W, 3) RGB, with labels.

    Args:
        images: uint8 (or any numeric) array of shape (n, H, W) or (n, H, W, 3).
        labels: (n,) or (n, 1) class indices, or (n, C) 0/1 multilabel.
        ids: default "0", "1", ...
        class_names: default "0" .. "K-1" (or "label_0" .. for multilabel).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        ids: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        task: str | None = None,
        split: np.ndarray | Sequence[str] | None = None,
        group: Sequence[str] | None = None,
        description: str = "in-memory arrays",
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        seed: int = 0,
    ) -> None:
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
            raise SourceError(
                f"{description}: images must have shape (n, H, W) grey or (n, H, W, 3) RGB, "
                f"got {images.shape}"
            )
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1 and task != "multilabel":
            labels = labels[:, 0]
        if labels.ndim == 2 and not np.isin(labels, (0, 1)).all():
            raise SourceError(f"{description}: multilabel labels (n, C) must be 0 or 1")
        if class_names is None:
            if labels.ndim == 2:
                class_names = [f"label_{i}" for i in range(labels.shape[1])]
            else:
                class_names = [str(i) for i in range(int(labels.max()) + 1)] if len(labels) else []
        if (
            labels.ndim == 1
            and len(labels)
            and (labels.min() < 0 or labels.max() >= len(class_names))
        ):
            raise SourceError(
                f"{description}: labels range over [{labels.min()}, {labels.max()}] but "
                f"{len(class_names)} class names were given"
            )
        if ids is None:
            ids = [str(i) for i in range(len(images))]
        if len(images) != len(labels):
            raise SourceError(f"{description}: {len(images)} images but {len(labels)} labels")
        self.images = images
        super().__init__(
            description=description,
            ids=ids,
            labels=labels,
            class_names=class_names,
            task=task,
            split=split,
            group=group,
            fractions=fractions,
            seed=seed,
        )

    def load(self, index: int) -> np.ndarray:
        return np.asarray(self.images[index])
