"""Per-image test predictions kept beside a results file, so every test can be rerun.

Layout: the results file ``runs/sweep.jsonl`` has a folder ``runs/sweep.predictions/``
(:func:`predictions_folder`) holding one Parquet file per record, ``<record_id>.parquet``,
written to a temporary name and renamed into place (a reader never sees half a file; a record
written again replaces its file whole). Columns, one row per test image, in test-split order:

============================  =========  =================================================
column                        type       meaning
============================  =========  =================================================
``id``                        string     the store's sample id
``group``                     string     patient id (null where the dataset has no groups)
``y_true``                    int64      true class index (single-label tasks)
``y_pred``                    int64      predicted class: the argmax of the scores
``proba:<class>``             float64    the score of each class, one column per class
``y_true:<label>``            int8       multilabel only: the true 0/1 of each label
``y_pred:<label>``            int8       multilabel only: score >= 0.5
============================  =========  =================================================

The Parquet schema metadata key ``embedstore.predictions`` holds JSON: ``format`` (1),
``record_id``, ``task`` and ``class_names``. A reviewer reads a file with
``pandas.read_parquet(path)``; :func:`read_predictions` gives :class:`Predictions` objects.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError, MissingDependencyError

__all__ = [
    "FORMAT",
    "Predictions",
    "predictions_folder",
    "read_predictions",
    "write_predictions",
]

FORMAT = 1
_META = b"embedstore.predictions"
_RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+,-]{0,199}")


@dataclass(frozen=True, eq=False)
class Predictions:
    """One record's test predictions (arrays in test-split order)."""

    record_id: str
    task: str
    class_names: tuple[str, ...]
    ids: np.ndarray  # (n,) str
    groups: np.ndarray | None  # (n,) str, or None
    y_true: np.ndarray  # (n,) int64, or (n, L) int8 for multilabel
    y_pred: np.ndarray  # like y_true
    proba: np.ndarray  # (n, C) float64

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])


def predictions_folder(results: str | os.PathLike[str]) -> Path:
    """``runs/sweep.jsonl`` -> ``runs/sweep.predictions`` (the folder beside a results file)."""
    p = Path(results)
    return (
        p.with_name(p.stem + ".predictions") if p.suffix else p.with_name(p.name + ".predictions")
    )


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError(
            "per-image predictions are stored as Parquet, which needs pyarrow; "
            "install it with: pip install pyarrow"
        ) from None
    return pa, pq


def _task(y: np.ndarray, C: int, task: str | None) -> str:
    if task is not None:
        return task
    if y.ndim == 2:
        return "multilabel"
    return "binary" if C == 2 else "multiclass"


def write_predictions(
    folder: str | os.PathLike[str],
    record_id: str,
    *,
    ids: Any,
    groups: Any,
    y_true: Any,
    proba: Any,
    class_names: Any,
    task: str | None = None,
) -> Path:
    """Write one record's predictions to ``folder/<record_id>.parquet`` atomically.

    Args:
        record_id: the record's stable id (letters, digits and ``._=+,-``; up to 200 characters).
        ids: (n,) sample ids of the test rows; groups: (n,) patient ids, or None.
        y_true: (n,) class indices, or (n, L) 0/1 for multilabel; proba: (n, C) scores.
        class_names: C names (the columns of ``proba``).
        task: "binary", "multiclass", "ordinal" or "multilabel" (default: inferred).

    Returns:
        The path written.
    """
    if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
        raise InvalidDataError(
            f"record_id must be 1-200 characters of letters, digits and ._=+,- starting with a "
            f"letter or digit (it names a file); received {record_id!r}"
        )
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true)
    ids = np.asarray(ids).astype(str)
    names = [str(c) for c in class_names]
    n = ids.shape[0]
    if proba.ndim != 2 or proba.shape[0] != n or y.shape[0] != n or proba.shape[1] != len(names):
        raise InvalidDataError(
            f"predictions need ids (n,), y_true (n,) or (n, L), proba (n, C) and C class names; "
            f"received ids {ids.shape}, y_true {y.shape}, proba {proba.shape}, "
            f"{len(names)} class names"
        )
    if groups is not None and np.asarray(groups).shape != (n,):
        raise InvalidDataError(
            f"groups must hold one patient id per test row ({n},); received "
            f"{np.asarray(groups).shape}"
        )
    task = _task(y, proba.shape[1], task)
    pa, pq = _pyarrow()
    cols: dict[str, Any] = {
        "id": pa.array(ids.tolist(), pa.string()),
        "group": pa.array(
            [None] * n if groups is None else np.asarray(groups).astype(str).tolist(), pa.string()
        ),
    }
    if task == "multilabel":
        pred = (proba >= 0.5).astype(np.int8)
        for j, c in enumerate(names):
            cols[f"y_true:{c}"] = pa.array(y[:, j].astype(np.int8))
        for j, c in enumerate(names):
            cols[f"y_pred:{c}"] = pa.array(pred[:, j])
    else:
        cols["y_true"] = pa.array(y.astype(np.int64))
        cols["y_pred"] = pa.array(proba.argmax(axis=1).astype(np.int64))
    for j, c in enumerate(names):
        cols[f"proba:{c}"] = pa.array(proba[:, j])
    meta = {"format": FORMAT, "record_id": record_id, "task": task, "class_names": names}
    table = pa.table(cols).replace_schema_metadata({_META: json.dumps(meta).encode()})
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{record_id}.parquet"
    tmp = out / f".{record_id}.parquet.tmp-{os.getpid()}"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_predictions(folder: str | os.PathLike[str]) -> dict[str, Predictions]:
    """Every record's predictions in ``folder``, by record id (``{}`` when there is no folder)."""
    p = Path(folder)
    if not p.is_dir():
        return {}
    _, pq = _pyarrow()
    out = {}
    for path in sorted(p.glob("*.parquet")):
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(_META)
        if raw is None:
            raise InvalidDataError(
                f"{path} is not an embedstore predictions file (no '{_META.decode()}' metadata); "
                "remove it from the predictions folder"
            )
        meta = json.loads(raw)
        names = tuple(meta["class_names"])
        cols = table.to_pydict()
        proba = np.column_stack([np.asarray(cols[f"proba:{c}"], dtype=np.float64) for c in names])
        if meta["task"] == "multilabel":
            y = np.column_stack([np.asarray(cols[f"y_true:{c}"], dtype=np.int8) for c in names])
            pred = np.column_stack([np.asarray(cols[f"y_pred:{c}"], dtype=np.int8) for c in names])
        else:
            y = np.asarray(cols["y_true"], dtype=np.int64)
            pred = np.asarray(cols["y_pred"], dtype=np.int64)
        groups = cols["group"]
        out[meta["record_id"]] = Predictions(
            record_id=meta["record_id"],
            task=meta["task"],
            class_names=names,
            ids=np.asarray(cols["id"], dtype=str),
            groups=None if all(g is None for g in groups) else np.asarray(groups, dtype=str),
            y_true=y,
            y_pred=pred,
            proba=proba,
        )
    return out
