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

from embedstore.data.images import to_rgb
from embedstore.data.labels import integer_classes, order_classes, read_labels
from embedstore.data.splits import DEFAULT_FRACTIONS, make_splits, parse_split_names
from embedstore.errors import BadImageError, SourceError

__all__ = [
    "TASKS",
    "ArraySource",
    "Source",
    "infer_task",
    "order_classes",
    "parse_class_names",
]

TASKS = ("binary", "multiclass", "multilabel", "ordinal")


def parse_class_names(value: str | Sequence[str] | None) -> list[str] | None:
    """``"a,b,c"`` or ``["a", "b", "c"]`` -> ``["a", "b", "c"]``; None stays None.

    Raises SourceError for an empty name or a name given twice."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else list(value)
    names = [str(n).strip() for n in names]
    if not names or any(not n for n in names):
        raise SourceError(
            f"class names must be non-empty and comma-separated, e.g. --class-names "
            f"normal,benign,malignant; got {value!r}"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SourceError(f"class names must differ; {twice} given more than once in {names}")
    return names


def infer_task(labels: np.ndarray, class_names: Sequence[str], task: str | None) -> str:
    """The given task, checked against the labels; else multilabel for (n, C) labels, binary
    for 2 classes, otherwise multiclass. Ordinal is never inferred: declare it."""
    if task is None:
        if labels.ndim == 2:
            return "multilabel"
        return "binary" if len(class_names) == 2 else "multiclass"
    if task not in TASKS:
        raise SourceError(f"task must be one of {', '.join(TASKS)} (--task), got '{task}'")
    if task == "multilabel" and labels.ndim != 2:
        raise SourceError(
            "task 'multilabel' needs several 0/1 labels per image (a CSV with --label-column "
            "repeated, a .json 'labels' list, or (n, C) labels); this source has one class per "
            "image: use --task binary, multiclass or ordinal"
        )
    if task != "multilabel" and labels.ndim == 2:
        raise SourceError(
            f"task '{task}' needs one class per image, but this source has {labels.shape[1]} "
            "0/1 labels per image (multilabel); leave --task out or pass --task multilabel"
        )
    if task == "binary" and len(class_names) != 2:
        raise SourceError(
            f"task 'binary' needs exactly 2 classes, found {len(class_names)} "
            f"({', '.join(class_names)}); use --task multiclass (or ordinal for ordered grades)"
        )
    return task


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
        label_note: how label values became classes where that is not the identity (e.g.
            integer labels 0, 1, 10000000 as classes 0..2), "" otherwise; stored in the
            dataset's ``source`` attribute.
        meta: {column: (n,) str} per-sample attributes (``--meta-column``), stored beside the
            labels for ``embedstore audit --meta``; empty unless asked for.
    """

    meta: dict[str, np.ndarray] = {}  # noqa: RUF012 (replaced, never mutated)

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
        label_note: str = "",
    ) -> None:
        self.description = description
        self.label_note = label_note
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
        _check_labels_fit_names(self.labels, self.class_names, description)
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

    def load_rgb(self, index: int) -> Image.Image:
        """The decoded image of row ``index`` as an RGB PIL image, before any backbone's transform.

        This is the one decode that every backbone's preprocessing starts from
        (:func:`~embedstore.data.images.to_rgb` of :meth:`load`); a failure is a BadImageError
        naming the file.
        """
        image = self.load(index)
        try:
            return to_rgb(image)
        except BadImageError as exc:
            where = self.locate(index)
            if where in str(exc):
                raise
            raise BadImageError(f"image '{where}': {exc}") from None

    def locate(self, index: int) -> str:
        """Where sample ``index`` lives, for error messages (a file path or an array key)."""
        return str(self.ids[index])

    def split_gaps(self) -> list[str]:
        """Classes with too few images for every split (:func:`~embedstore.data.splits.split_gaps`):
        one line each, saying where their images landed."""
        from embedstore.data.splits import split_gaps

        return split_gaps(self.labels, self.split, self.class_names)

    def dataset_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``Store.add_dataset``."""
        return {
            "ids": self.ids,
            "labels": self.labels,
            "split": self.split,
            "task": self.task,
            "class_names": list(self.class_names),
            "group": self.group,
            "source": f"{self.description}; splits: {self.split_origin}"
            + (f"; labels: {self.label_note}" if self.label_note else ""),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, n={len(self)}, task={self.task})"


def _check_labels_fit_names(labels: np.ndarray, names: tuple[str, ...], where: str) -> None:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SourceError(f"{where}: class names must differ; {twice} appear more than once")
    if labels.ndim == 2:
        if labels.shape[1] != len(names):
            raise SourceError(
                f"{where}: {labels.shape[1]} labels per image but {len(names)} class names "
                f"({', '.join(names)}); give one name per label column"
            )
        return
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise SourceError(
            f"{where}: labels range over [{labels.min()}, {labels.max()}], which needs "
            f"{int(labels.max()) + 1} class names, but {len(names)} were given "
            f"({', '.join(names)}); give one name per class index, lowest first"
        )


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
            values = np.unique(labels)[:10].tolist()
            raise SourceError(
                f"{description}: multilabel labels (n, C) must be 0 or 1, got values {values}; "
                "class indices need a single-label task (leave --task out, or pass multiclass "
                "or ordinal)"
            )
        if ids is None:
            ids = [str(i) for i in range(len(images))]
        if len(images) != len(labels):
            raise SourceError(f"{description}: {len(images)} images but {len(labels)} labels")
        note = ""
        if labels.ndim == 2:
            if class_names is None:
                class_names = [f"label_{i}" for i in range(labels.shape[1])]
        elif labels.dtype.kind in "OUS":  # class names (or ids) as text
            values = [str(v).strip() for v in labels.tolist()]
            labels, class_names, note = read_labels(
                values, class_names=class_names, task=task, where=description, what="",
                rows=lambda rows: _rows(rows, ids),
            )  # fmt: skip
        else:
            _check_whole(labels, ids, description)
            labels, class_names, note = integer_classes(labels, class_names, description)
        self.images = images
        super().__init__(
            label_note=note,
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


def _rows(rows: Sequence[int], ids: Sequence[str], limit: int = 5) -> str:
    """'row 4 (id 'train/4')' / 'rows 4 (id ..), 9 (id ..) and 3 more'."""
    shown = ", ".join(f"{i} (id '{ids[i]}')" for i in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _check_whole(labels: np.ndarray, ids: Sequence[str], where: str) -> None:
    """Single labels must be whole numbers: NaN, infinities and fractions name their rows."""
    if labels.dtype.kind == "b":
        return
    if labels.dtype.kind not in "iuf":
        raise SourceError(
            f"{where}: labels must be integers or text, got an array of dtype {labels.dtype}"
        )
    if labels.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
    elif labels.dtype.kind == "u" and len(labels) and labels.max() > np.iinfo(np.int64).max:
        bad = np.flatnonzero(labels > np.iinfo(np.int64).max)
    else:
        return
    if len(bad):
        values = list(dict.fromkeys(str(v) for v in labels[bad[:5]].tolist()))
        raise SourceError(
            f"{where}: label(s) {', '.join(values)} on {_rows(bad.tolist(), ids)} are not whole "
            "numbers; labels are integer class ids (e.g. 0, 1, 2): fix them (NaN marks a "
            "missing label), or leave those images out"
        )
