"""The layout rules and recorded checksums of one dataset, checked for ``verify``.

Each problem is keyed by the array (or group) it concerns and says what is wrong in words a user
can act on: a chunk whose bytes differ from the sha256 recorded when it was written (a flipped
byte), a chunk shorter or longer than recorded (truncated), a chunk file that is gone, an array
whose ``zarr.json`` is gone, an array marked complete whose chunks were not all written, labels
outside the classes, NaN/Inf rows.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from embedstore.archive._checksums import _Layout
from embedstore.store import SPLIT_CODES, Store
from embedstore.store.layout import (
    EMBEDDING_DTYPES,
    DatasetAttrs,
    array,
    backbone_problems,
    read_text,
    row_chunk_keys,
    subgroup,
    values,
)


def check_dataset(store: Store, ds: str, layout: _Layout) -> tuple[dict[str, list[str]], set]:
    """(problems keyed by path, arrays whose recorded checksums all matched) of one dataset."""
    out: dict[str, list[str]] = {}
    verified: set[str] = set()

    def bad(path: str, msg: str) -> None:
        out.setdefault(path, []).append(msg)

    g = subgroup(store.zarr_group, ds)
    try:
        attrs = DatasetAttrs.of(g)
        n, k, task = attrs.n, len(attrs.class_names), attrs.task
    except Exception as exc:  # a missing attribute surfaces here
        bad(ds, f"dataset attributes unreadable: {type(exc).__name__}: {exc}")
        return out, verified
    recorded = attrs.checksums
    present = set(g.array_keys())
    for name in ("ids", "labels", "split", "group"):
        path = f"{ds}/{name}"
        if name not in present:
            if name != "group" or name in recorded:
                bad(path, "array is gone (no zarr.json): the dataset is damaged")
            continue
        out.setdefault(path, [])
        if name in recorded and path in layout.arrays:
            if layout.digest(path).hexdigest() != recorded[name]:
                bad(path, "stored bytes differ from the sha256 recorded when it was written")
            else:
                verified.add(path)
        try:
            value = values(array(g, name), ...)
        except Exception as exc:  # a damaged chunk fails to decode
            bad(path, f"cannot be decoded: {type(exc).__name__}: {exc}")
            continue
        if name in ("ids", "group"):
            value = read_text(value)
        for msg in _data_array_problems(name, value, n, k, task):
            bad(path, msg)
    for bb in store.backbones(ds):
        _check_backbone(store, ds, bb, n, layout, bad, verified, out)
    return out, verified


def _check_backbone(store, ds, bb, n, layout, bad, verified, out) -> None:
    path = f"{ds}/{bb}/embeddings"
    out.setdefault(path, [])
    bg = subgroup(subgroup(store.zarr_group, ds), bb)
    layout_problems = backbone_problems(bg, n)
    for msg in layout_problems:
        bad(path, msg)
    if "embeddings" not in bg.array_keys() or "progress" not in bg.array_keys():
        return
    arr = array(bg, "embeddings")
    if str(arr.dtype) not in EMBEDDING_DTYPES:
        bad(path, f"dtype {arr.dtype}, expected float16 or float32")
    damaged = _chunk_damage(bg, path, layout)
    for msg in damaged:
        bad(path, msg)
    if damaged or "checksums" not in bg.array_keys():
        return
    if not layout_problems:
        verified.add(path)
    try:
        n_bad, first = _non_finite_rows(arr)
    except Exception as exc:  # a chunk that fails to decode
        bad(path, f"cannot be decoded: {type(exc).__name__}: {exc}")
        return
    if n_bad:
        bad(path, f"{n_bad} row(s) contain NaN or Inf (first: {first})")


def _chunk_damage(bg: Any, path: str, layout: _Layout) -> list[str]:
    """Each written chunk against the sha256 and size recorded when it was written."""
    keys = set(bg.array_keys())
    record = {"checksums", "chunk_nbytes"}
    if len(record & keys) == 1:  # written together: one alone means the other was lost
        (gone,) = record - keys
        return [f"its '{gone}' array is gone (no zarr.json): the chunk checksums cannot be checked"]
    if not record <= keys:
        return []  # format 1: no per-chunk record (an archive's manifest still covers it)
    arr = array(bg, "embeddings")
    done = values(array(bg, "progress")) == 1
    sums, sizes = values(array(bg, "checksums")), values(array(bg, "chunk_nbytes"))
    rows = int(arr.chunks[0])
    present = set(layout.chunks.get(path, ()))
    out = []
    for i, key in enumerate(row_chunk_keys(arr)):
        if not done[i]:
            continue
        where = f"chunk {i} (rows {i * rows}-{min((i + 1) * rows, arr.shape[0]) - 1}, '{key}')"
        if not sums[i].any():  # written with the chunk, before it was marked done
            out.append(f"{where}: its checksum record is lost (a 'checksums' chunk was deleted)")
            continue
        if key not in present:
            out.append(f"{where} is missing: the file was deleted")
            continue
        try:
            data = layout.raw.read(key)
        except Exception as exc:  # e.g. an archive member failing its CRC
            out.append(f"{where} cannot be read: {exc}")
            continue
        if len(data) != int(sizes[i]):
            out.append(f"{where} is {len(data)} bytes, {int(sizes[i])} were written: truncated")
        elif hashlib.sha256(data).digest() != sums[i].tobytes():
            out.append(f"{where}: bytes differ from the sha256 recorded when it was written")
    return out


def _data_array_problems(name: str, value: np.ndarray, n: int, k: int, task: str) -> list[str]:
    if name in ("ids", "group"):
        if value.shape != (n,):
            return [f"shape {value.shape}, expected ({n},)"]
        if name == "ids" and (len(np.unique(value)) != n or (value == "").any()):
            return ["ids must be unique non-empty strings"]
    elif name == "split":
        if value.shape != (n,) or value.dtype != np.uint8:
            return [f"shape {value.shape} {value.dtype}, expected ({n},) uint8"]
        if not np.isin(value, list(SPLIT_CODES.values())).all():
            return ["split codes outside 0 (train), 1 (val), 2 (test)"]
    elif task == "multilabel":
        if value.shape != (n, k) or value.dtype != np.uint8:
            return [f"shape {value.shape} {value.dtype}, expected ({n}, {k}) uint8"]
        if not np.isin(value, (0, 1)).all():
            return ["multilabel labels must be 0 or 1"]
    else:
        if value.shape != (n,) or value.dtype.kind not in "iu":
            return [f"shape {value.shape} {value.dtype}, expected ({n},) integer"]
        if n and (value.min() < 0 or value.max() >= k):
            return [
                f"labels in [{value.min()}, {value.max()}], outside the {k} classes [0, {k - 1}]"
            ]
    return []


def _non_finite_rows(arr: Any) -> tuple[int, int | None]:
    shape, chunk_rows = arr.shape, int(arr.chunks[0])
    step = max(1, (2**26 // max(1, 4 * shape[1])) // chunk_rows) * chunk_rows  # ~64 MiB blocks
    n_bad, first = 0, None
    for start in range(0, shape[0], step):
        block = np.asarray(arr[start : start + step], dtype=np.float32)
        rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if len(rows) and first is None:
            first = start + int(rows[0])
        n_bad += len(rows)
    return n_bad, first
