"""Embeddings read straight into float32: each chunk file decoded and converted in a thread.

Why: zarr assembles a float16 array and the caller converts it, a second full pass in one
thread, so a full read cost 2.6x ``np.load(...).astype(np.float32)`` (benchmarks/
bench_store_read.py). Here each worker reads one chunk file, decodes it with the same zstd codec
zarr uses (``numcodecs.Zstd``) and writes its rows converted into the output: decoding and
conversion overlap across cores and no float16 copy of the whole array is made.

Only for the layout this package writes (``_layout``): a local store, chunks of whole rows, the
codec chain ``bytes`` (little endian) + ``zstd`` and a zero fill value. Anything else (s3/http,
archives opened in place, other codecs) returns None and the caller reads through zarr; a chunk
file that does not exist is a never-written chunk and reads as the fill value, as in zarr. Chunk
files are read through the store's one raw reader (``_raw.DirRaw``), as ``verify`` reads them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Zstd
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.storage import LocalStore

from embedstore.store._access import v3_metadata
from embedstore.store._raw import DirRaw

__all__ = ["read_float32"]

_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _chunk_files(arr: zarr.Array) -> tuple[DirRaw, int] | None:
    """The store's raw files and rows per chunk when the fast path applies, else None."""
    meta = v3_metadata(arr)
    store = arr.store
    if not isinstance(store, LocalStore) or arr.ndim != 2 or meta is None:
        return None
    codecs, fill = meta.codecs, meta.fill_value
    if (
        len(codecs) != 2
        or not isinstance(codecs[0], BytesCodec)
        or str(getattr(codecs[0].endian, "value", codecs[0].endian)) != "little"
        or not isinstance(codecs[1], ZstdCodec)
        or np.dtype(arr.dtype) not in (np.dtype("<f2"), np.dtype("<f4"))
        or not isinstance(fill, int | float | np.number)
        or float(fill) != 0.0
        or arr.chunks[1] != arr.shape[1]
    ):
        return None
    return DirRaw(Path(store.root)), int(arr.chunks[0])


def read_float32(arr: zarr.Array, sel: np.ndarray | slice | None) -> np.ndarray | None:
    """Rows ``sel`` (None: all; a slice; or int64 indices in [0, n), any order) as float32, or
    None when the array is not in the layout this fast path reads."""
    found = _chunk_files(arr)
    if found is None:
        return None
    raw, per = found
    n, dim = arr.shape
    rows = np.arange(n, dtype=np.int64)[sel] if sel is not None else None
    out = np.empty((n if rows is None else len(rows), dim), dtype=np.float32)
    if out.size == 0:
        return out
    chunks: range | np.ndarray
    if rows is None:
        chunks = range(-(-n // per))
        where = None
    else:
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        chunk_of = sorted_rows // per
        chunks, starts = np.unique(chunk_of, return_index=True)
        ends = np.append(starts[1:], len(sorted_rows))
        spans = zip(chunks, starts, ends, strict=True)
        where = {int(c): (order[s:e], sorted_rows[s:e]) for c, s, e in spans}
    dtype = np.dtype(arr.dtype)
    codec = Zstd()

    def one(i: int) -> None:
        lo = i * per
        count = min(n, lo + per) - lo
        key = f"{arr.path}/{arr.metadata.encode_chunk_key((i, 0))}".lstrip("/")
        try:
            data = raw.read(key)
        except FileNotFoundError:
            block = np.zeros((count, dim), dtype=dtype)  # never written: the fill value
        else:
            flat = np.frombuffer(codec.decode(data), dtype=dtype)
            if flat.size != per * dim:  # zarr stores whole chunks, the last one padded
                raise ValueError(
                    f"chunk {key.rsplit('/', 1)[-1]} holds {flat.size} values, not {per * dim}"
                )
            block = flat[: count * dim].reshape(count, dim)
        if where is None:
            out[lo : lo + count] = block
        else:
            positions, wanted = where[i]
            out[positions] = block[wanted - lo]

    with ThreadPoolExecutor(min(_WORKERS, len(chunks))) as pool:
        list(pool.map(one, (int(c) for c in chunks)))  # list(): re-raise a worker's error here
    return out
