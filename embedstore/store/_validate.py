"""Checks and conversions for what goes into a store: names, datasets, dtypes, provenance."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError

SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
TASK_KINDS = ("binary", "multiclass", "multilabel", "ordinal")
EMBEDDING_DTYPES = ("float16", "float32")
DATA_ARRAYS = ("ids", "labels", "split", "group")
META_PREFIX = "meta."  # per-sample attribute arrays of a dataset: <dataset>/meta.<column>


def is_data_array(name: str) -> bool:
    """Whether a dataset's child ``name`` is one of its data arrays (ids, labels, split, group,
    or a ``meta.<column>`` attribute), not a backbone."""
    return name in DATA_ARRAYS or name.startswith(META_PREFIX)


_IDENTITY_ATTRS = ("task", "class_names", "n_samples")


def _check_name(name: str, what: str) -> None:
    if not name or "/" in name or name.startswith(".") or is_data_array(name):
        raise InvalidDataError(
            f"{what} name must be non-empty, without '/', not starting with '.', and not one of "
            f"{', '.join(DATA_ARRAYS)}; got '{name}'"
        )


def _split_code(split: str) -> int:
    if split not in SPLIT_CODES:
        raise InvalidDataError(f"split must be one of {', '.join(SPLIT_CODES)}, got '{split}'")
    return SPLIT_CODES[split]


def _validate_dataset(ids, labels, split, task, class_names, group) -> dict[str, np.ndarray | None]:
    if task not in TASK_KINDS:
        raise InvalidDataError(f"task must be one of {', '.join(TASK_KINDS)}, got '{task}'")
    ids = _as_str(np.asarray(ids))
    n = len(ids)
    if ids.ndim != 1 or n == 0:
        raise InvalidDataError(
            f"ids must be a non-empty 1-D array of strings, got shape {ids.shape}"
        )
    if (ids == "").any():
        raise InvalidDataError(
            f"ids must be non-empty strings; row(s) {np.flatnonzero(ids == '')[:10].tolist()} are empty"
        )
    try:
        "".join(ids.tolist()).encode("utf-8")
    except UnicodeEncodeError:
        _check_utf8(ids)
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != n:
        dups = uniq[counts > 1][:5].tolist()
        raise InvalidDataError(f"ids must be unique; duplicated: {dups}")
    k = len(class_names)
    labels = np.asarray(labels)
    if task == "multilabel":
        if labels.shape != (n, k):
            raise InvalidDataError(
                f"multilabel labels must have shape (n_samples, n_classes) = ({n}, {k}), "
                f"got {labels.shape}"
            )
        if not np.isin(labels, (0, 1)).all():
            raise InvalidDataError("multilabel labels must be 0 or 1")
        labels = labels.astype(np.uint8)
    else:
        if labels.shape != (n,):
            raise InvalidDataError(f"labels must have shape ({n},), got {labels.shape}")
        if labels.dtype.kind not in "iub":
            if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
                labels = labels.astype(np.int64)
            else:
                raise InvalidDataError(
                    f"labels must be integer class indices, got dtype {labels.dtype}"
                )
        labels = labels.astype(np.int64)
        if task == "binary" and k != 2:
            raise InvalidDataError(f"a binary task needs exactly 2 class names, got {k}")
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            raise InvalidDataError(
                f"labels must be in [0, {k - 1}] for {k} classes, got range "
                f"[{labels.min()}, {labels.max()}]"
            )
    split = np.asarray(split)
    if split.dtype.kind in "OUST":
        bad = sorted(set(_as_str(split).tolist()) - set(SPLIT_CODES))
        if bad:
            raise InvalidDataError(f"split names must be train/val/test, got {bad[:5]}")
        split = np.array([SPLIT_CODES[s] for s in _as_str(split)], dtype=np.uint8)
    if split.shape != (n,):
        raise InvalidDataError(f"split must have shape ({n},), got {split.shape}")
    if not np.isin(split, list(SPLIT_CODES.values())).all():
        raise InvalidDataError("split codes must be 0 (train), 1 (val) or 2 (test)")
    split = split.astype(np.uint8)
    if group is not None:
        group = _as_str(np.asarray(group))
        if group.shape != (n,):
            raise InvalidDataError(f"group must have shape ({n},), got {group.shape}")
    return {"ids": ids, "labels": labels, "split": split, "group": group}


def _check_utf8(ids: np.ndarray) -> None:
    for i, value in enumerate(ids.tolist()):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidDataError(
                f"sample id {value!r} (row {i}) is not valid UTF-8 text (a file name in another "
                "encoding?); ids are stored as UTF-8: rename the file, or pass ids that are text"
            ) from None


def _as_str(values: np.ndarray) -> np.ndarray:
    """Zarr returns numpy's variable-width StringDType; give callers a plain '<U' array."""
    return np.array(values.tolist(), dtype=str)


def _jsonable(value: Any) -> Any:
    """Provenance must be JSON: convert numpy scalars, tuples and paths."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value) if math.isfinite(float(value)) else str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def iter_dataset_differences(
    attrs_a: Mapping[str, Any],
    read_a: Callable[[str], np.ndarray | None],
    attrs_b: Mapping[str, Any],
    read_b: Callable[[str], np.ndarray | None],
) -> Iterator[str]:
    """Fields in which two datasets differ, lazily: task, class names, size, then each data array.

    ``attrs_*`` map task, class_names and n_samples to values; ``read_*(name)`` returns the data
    array of that name (ids, labels, split, group) or None when the dataset has none. Arrays are
    read only once the attributes agree so far, in that order; an empty result means the same.
    """
    for key in _IDENTITY_ATTRS:
        if attrs_a.get(key) != attrs_b.get(key):
            yield key
    for name in DATA_ARRAYS:
        a, b = read_a(name), read_b(name)
        if a is None or b is None:
            if (a is None) != (b is None):
                yield name
        elif a.shape != b.shape or not np.array_equal(a, b):
            yield name
