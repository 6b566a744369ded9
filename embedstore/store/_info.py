"""What the store reports (:class:`DatasetInfo`, :class:`ArrayInfo`), the chunk size rule, and
row selection for reads."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import zarr

from embedstore.store._access import array, values

_TARGET_CHUNK_BYTES = 4 * 2**20
MIN_CHUNKS = 8  # resume points a dataset gets at least, when MIN_CHUNK_ROWS allows
MIN_CHUNK_ROWS = 64


def default_chunk_rows(
    dim: int, dtype: str, multiple_of: int = 64, n_rows: int | None = None
) -> int:
    """Rows per chunk: ~4 MiB chunks, but for a dataset of ``n_rows`` small enough to fit in
    fewer than :data:`MIN_CHUNKS` of them, about ``n_rows / MIN_CHUNKS`` rows (never fewer than
    :data:`MIN_CHUNK_ROWS`), so that a killed extraction loses at most about an eighth of the work.
    Always a whole multiple of ``multiple_of`` (e.g. a batch size, so that a resumed extraction
    recomputes exactly the batches of an uninterrupted one).

    A chunk is the unit of resume; reads decode whole chunks, and a full read of 8 chunks costs
    about what a read of 2 does (``benchmarks/bench_store_read.py --n 3000 --dim 1280``)."""
    target = _TARGET_CHUNK_BYTES // (dim * np.dtype(dtype).itemsize)
    rows = multiple_of * max(1, round(target / multiple_of))
    if n_rows is not None:  # ~n/8 rows, at least MIN_CHUNK_ROWS, rounded up to whole batches
        cap = max(-(-int(n_rows) // MIN_CHUNKS), MIN_CHUNK_ROWS)
        rows = min(rows, multiple_of * -(-cap // multiple_of))
    return rows


def chunk_rows_for(n_rows: int, dim: int, dtype: str, chunk_rows: int | None) -> int:
    """The rows per chunk of a new array: ``chunk_rows`` (default :func:`default_chunk_rows`),
    within [1, n_rows]."""
    if chunk_rows is None:
        chunk_rows = default_chunk_rows(dim, dtype, n_rows=n_rows)
    return int(min(max(1, chunk_rows), max(1, n_rows)))


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset holds: task, classes, sample and split counts, and its backbones."""

    name: str
    task: str
    class_names: tuple[str, ...]
    n_samples: int
    split_counts: dict[str, int]
    has_group: bool
    source: str
    backbones: tuple[str, ...]


@dataclass(frozen=True)
class ArrayInfo:
    """One backbone's embeddings for one dataset: shape, storage, completeness and provenance."""

    dataset: str
    backbone: str
    shape: tuple[int, int]
    dtype: str
    chunk_rows: int
    nbytes_stored: int
    complete: bool
    rows_written: int
    n_missing: int
    provenance: dict[str, Any] = field(default_factory=dict)
    chunk_checksums: bool = True  # per-chunk sha256 recorded (format 1 has none): verify can check
    numerics: dict[str, Any] = field(default_factory=dict)  # what determined the bits (extract)


def read_rows(arr: zarr.Array, rows: np.ndarray) -> np.ndarray:
    """Read selected rows; reads whole chunks once, which beats per-row selection for dense sets."""
    if len(rows) == 0:
        return np.empty((0, *arr.shape[1:]), dtype=arr.dtype)
    if len(rows) > 1 and np.any(np.diff(rows) < 0):
        order = np.argsort(rows, kind="stable")
        out = read_rows(arr, rows[order])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return out[inverse]
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if len(rows) >= 0.25 * (hi - lo):
        return values(arr, slice(lo, hi))[rows - lo]
    if arr.ndim == 1:
        return np.asarray(arr.get_orthogonal_selection(rows))
    return np.asarray(arr.get_orthogonal_selection((rows, slice(None))))


class Block(TypedDict):
    """The ``start`` and ``stop`` keywords of :class:`EmbeddingWriter` for a block of rows."""

    start: int
    stop: int | None


def block(rows: tuple[int, int] | None) -> Block:
    return {"start": 0, "stop": None} if rows is None else {"start": rows[0], "stop": rows[1]}


def ids_digest(ids: Iterable[object]) -> str:
    return hashlib.sha256("\0".join(map(str, ids)).encode()).hexdigest()


def nbytes_stored(group: zarr.Group) -> int:
    """Bytes stored under a group's arrays; for an archive from the zip directory (zarr's ZipStore
    would read every member to size it)."""
    zf = getattr(group.store, "_zf", None)  # zarr.storage.ZipStore, once open
    if zf is not None:
        prefix = f"{group.path}/"
        return sum(i.compress_size for i in zf.infolist() if i.filename.startswith(prefix))
    if isinstance(group.store, zarr.storage.LocalStore):  # the arrays' folders, as zarr sizes them
        folder = os.path.join(group.store.root, group.path)
        return sum(_folder_bytes(os.path.join(folder, k)) for k in group.array_keys())
    return sum(int(array(group, k).nbytes_stored()) for k in group.array_keys())


def _folder_bytes(folder: str) -> int:
    """Bytes of the finished files under a local folder. A writer running meanwhile writes each
    chunk to a ``*.partial`` file and renames it (zarr's LocalStore), so a file listed here may be
    gone when it is sized: such files are skipped, never an error for a reader."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".partial"):
                continue
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(parent, name)).st_size
    return total


def child_group(parent: zarr.Group, name: str, marker: str) -> zarr.Group | None:
    """The subgroup ``name`` if it exists and is fully created (has attribute ``marker``)."""
    if not name or "/" in name or name.startswith("."):
        return None
    try:
        g = parent[name]
    except KeyError:
        return None
    return g if isinstance(g, zarr.Group) and marker in g.attrs else None
