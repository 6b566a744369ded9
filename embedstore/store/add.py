"""Writing an embeddings array computed elsewhere into a dataset (``Store.add_embeddings``): a
public module of the store, used by :mod:`embedstore.interop` for its checks before a store is
touched.

The rows come from a *row source*: an in-memory array, or a file reader of
:mod:`embedstore.interop` (anything with ``ids``, ``n_rows``, ``dim``, ``dtype``, ``rows(index)``
and ``blocks()``). They are matched to the dataset's ids in any order and written with the same
:class:`~embedstore.store._writer.EmbeddingWriter` that extraction uses: chunk by chunk,
checksummed, resumable when killed, and marked complete at the end with provenance that says
embedstore did not compute them (``computed_by: "external"``).

Everything that can be wrong with the input is found before the first byte is written: ids the
dataset lacks, ids given twice, dataset ids the source does not have (unless ``allow_missing``:
then they become missing rows, "not in the imported file"), NaN/Inf, or values the stored dtype
cannot hold. The scan for NaN/Inf reads the source once in blocks, so that peak memory stays
bounded for a file larger than memory; it also digests the values (``data_sha256``), which names
the import: a killed import resumes only into an array begun from the same data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import zarr

from embedstore.errors import ConflictError, InvalidDataError
from embedstore.store._guard import writing
from embedstore.store._info import ArrayInfo
from embedstore.store._layout import BackboneAttrs
from embedstore.store._lock import writer_lock
from embedstore.store._validate import EMBEDDING_DTYPES
from embedstore.store._writer import EmbeddingWriter

__all__ = [
    "ArrayRows",
    "RowSource",
    "add_embeddings",
    "as_ids",
    "block_rows",
    "check",
    "check_count",
    "check_matrix",
]

NOT_IN_FILE = "not in the imported file"
_SCAN_BYTES = 8 << 20  # rows per block read: about 8 MiB of float32 (bounded memory)
_SHOWN = 5


class RowSource(Protocol):
    """What :func:`add_embeddings` reads: ids and rows of an (n_rows, dim) numeric array."""

    ids: np.ndarray
    n_rows: int
    dim: int
    dtype: np.dtype
    description: str

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (any order), array of shape (len(index), dim)."""

    def blocks(self) -> Iterator[np.ndarray]:
        """Every row once, in file order, in blocks of bounded size."""


class Target(Protocol):
    """What :func:`add_embeddings` needs of the :class:`~embedstore.store.Store` it writes into
    (a protocol: this module is below ``_store``, which calls it)."""

    location: str

    def datasets(self) -> list[str]: ...

    def backbones(self, dataset: str) -> list[str]: ...

    def ids(self, dataset: str) -> np.ndarray: ...

    @property
    def add_dataset(self) -> Callable[..., Any]: ...  # (name, **dataset_fields)

    def array_info(self, dataset: str, backbone: str) -> ArrayInfo: ...

    def writer(
        self, dataset: str, backbone: str, *, dim: int, dtype: str = ...,
        chunk_rows: int | None = ..., overwrite: bool = ...,
    ) -> EmbeddingWriter: ...  # fmt: skip

    def _check_writable(self) -> None: ...

    def _backbone_group(self, dataset: str, backbone: str) -> zarr.Group: ...


class ArrayRows:
    """An in-memory (n, dim) array with its ids as a :class:`RowSource`."""

    def __init__(self, X: np.ndarray, ids, description: str = "an in-memory array") -> None:
        X = np.asarray(X)
        check_matrix(X.shape, X.dtype, description)
        if ids is None:
            raise InvalidDataError(
                f"{description}: give the sample id of each row (ids=...), in the array's row "
                "order; rows are matched to the dataset's ids"
            )
        self.ids = as_ids(ids, description)
        check_count(len(self.ids), X.shape[0], description)
        self.X, self.n_rows, self.dim, self.dtype = X, int(X.shape[0]), int(X.shape[1]), X.dtype
        self.description = description

    def rows(self, index: np.ndarray) -> np.ndarray:
        return self.X[index]

    def blocks(self) -> Iterator[np.ndarray]:
        step = block_rows(self.dim)
        for a in range(0, self.n_rows, step):
            yield self.X[a : a + step]


def check_matrix(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
    """A 2-D numeric (integer or float) array, or one clear error."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf":
        raise InvalidDataError(
            f"{where}: embeddings must be numbers (float or integer), got dtype {dtype}; "
            "convert the array to float32 first"
        )
    if len(shape) != 2:
        hint = (
            "one embedding per sample is needed: pool patch or token features first (e.g. mean "
            "over patches)"
            if len(shape) > 2
            else "a 1-D array holds one vector; stack one row per sample"
        )
        raise InvalidDataError(
            f"{where}: embeddings must be a 2-D array (n_samples, dim), got shape {shape}; {hint}"
        )
    if shape[1] == 0:
        raise InvalidDataError(f"{where}: embeddings have 0 columns (shape {shape})")


def check_count(n_ids: int, n_rows: int, where: str) -> None:
    if n_ids != n_rows:
        raise InvalidDataError(
            f"{where}: {n_rows} rows of embeddings but {n_ids} ids; give exactly one id per row, "
            "in row order"
        )


def as_ids(ids, where: str) -> np.ndarray:
    out = np.asarray([str(i) for i in np.asarray(ids).reshape(-1).tolist()], dtype=str)
    empty = np.flatnonzero(out == "")
    if len(empty):
        raise InvalidDataError(f"{where}: empty id on row(s) {_first(empty.tolist())}")
    return out


def block_rows(dim: int) -> int:
    return max(1, _SCAN_BYTES // (4 * max(1, dim)))


def _first(values: list) -> str:
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:_SHOWN])
    return shown + (f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else "")


def match_rows(dataset_ids: np.ndarray, src: RowSource, allow_missing: bool, dataset: str):
    """For each dataset row, the source row that holds it (-1: absent), or one clear error."""
    where = src.description
    uniq, first, counts = np.unique(src.ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        twice = uniq[counts > 1].tolist()
        raise InvalidDataError(
            f"{where}: {len(twice)} id(s) appear more than once: {_first(twice)}; each sample "
            "must be one row"
        )
    pos = np.searchsorted(uniq, dataset_ids)
    pos = np.minimum(pos, len(uniq) - 1)
    found = uniq[pos] == dataset_ids
    order = np.where(found, first[pos], -1).astype(np.int64)
    extra = np.setdiff1d(src.ids, dataset_ids)
    if len(extra):
        extra = src.ids[np.isin(src.ids, extra)]  # in the file's order
        raise InvalidDataError(
            f"{where}: {len(extra)} id(s) are not samples of dataset '{dataset}': "
            f"{_first(extra.tolist())}; the dataset's ids are e.g. "
            f"{_first(dataset_ids[:3].tolist())} (check the id column, or create the dataset "
            "from a table of these ids with --labels)"
        )
    absent = np.flatnonzero(order < 0)
    if len(absent) and not allow_missing:
        raise InvalidDataError(
            f"{where}: {len(absent)} of {len(dataset_ids)} samples of dataset '{dataset}' are "
            f"not in it: {_first(dataset_ids[absent].tolist())}; pass --allow-missing "
            f"(allow_missing=True) to record them as missing rows ('{NOT_IN_FILE}')"
        )
    return order


def scan(src: RowSource, dtype: str) -> str:
    """Check every value is finite and fits ``dtype``; return the sha256 of the values (float32
    little-endian bytes, file order). Reads the source once, a block at a time."""
    digest = hashlib.sha256()
    limit = float(np.finfo(dtype).max)
    start = 0
    for block in src.blocks():
        values = np.ascontiguousarray(block, dtype="<f4")
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if len(bad):
            rows = (start + bad).tolist()
            raise InvalidDataError(
                f"{src.description}: NaN or Inf in the rows of ids "
                f"{_first(src.ids[rows].tolist())} (rows {_first(rows)}); nothing was written"
            )
        big = np.flatnonzero(((values > limit) | (values < -limit)).any(axis=1))
        if len(big):
            rows = (start + big).tolist()
            raise InvalidDataError(
                f"{src.description}: values beyond {dtype}'s range (±{limit:.6g}) in ids "
                f"{_first(src.ids[rows].tolist())}; nothing was written. Store them as float32 "
                "(--dtype float32)"
            )
        digest.update(values.tobytes())
        start += len(values)
    if start != src.n_rows:
        raise InvalidDataError(f"{src.description}: read {start} rows, expected {src.n_rows}")
    return digest.hexdigest()


def stored_dtype(src: RowSource, dtype: str | None) -> str:
    """``dtype`` if it is one the store keeps; default float16 for float16 input, else float32."""
    if dtype is None:
        return "float16" if src.dtype == np.float16 else "float32"
    if dtype not in EMBEDDING_DTYPES:
        raise InvalidDataError(
            f"--dtype must be one of {', '.join(EMBEDDING_DTYPES)} (dtype=), got '{dtype}'"
        )
    return dtype


def check(
    src: RowSource, dataset_ids: np.ndarray, dataset: str, allow_missing: bool, dtype: str | None
) -> str:
    """Every check of :func:`add_embeddings` without a store (to validate before creating one):
    returns the ``data_sha256`` to pass on as ``checked``."""
    dtype = stored_dtype(src, dtype)
    match_rows(np.asarray(dataset_ids).astype(str), src, allow_missing, dataset)
    return scan(src, dtype)


def add_embeddings(
    store: Target,
    dataset: str,
    name: str,
    src: RowSource,
    *,
    provenance: dict[str, Any] | None = None,
    allow_missing: bool = False,
    dtype: str | None = None,
    chunk_rows: int | None = None,
    overwrite: bool = False,
    dataset_fields: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    checked: str | None = None,
) -> ArrayInfo:
    """See :meth:`Store.add_embeddings`. ``checked``: the ``data_sha256`` that :func:`check`
    already returned for this source and dataset (the scan is not repeated)."""
    store._check_writable()
    dtype = stored_dtype(src, dtype)
    exists = dataset in store.datasets()
    if dataset_fields is not None and not exists:
        dataset_ids = np.asarray(dataset_fields["ids"]).astype(str)
    else:
        dataset_ids = store.ids(dataset)  # raises DatasetNotFoundError naming the datasets
    order = match_rows(dataset_ids, src, allow_missing, dataset)
    data_sha256 = checked or scan(src, dtype)
    prov = {
        "backbone": name,
        **(provenance or {}),
        "computed_by": "external",
        "data_sha256": data_sha256,
        "source_dtype": str(src.dtype),
        "dtype": dtype,
        "rows_imported": int((order >= 0).sum()),
        "rows_missing": int((order < 0).sum()),
    }
    with writer_lock(store.location, [f"{dataset}/{name}"]):
        if dataset_fields is not None:
            with writer_lock(store.location, ["setup"], wait=30.0):
                store.add_dataset(dataset, **dataset_fields)  # identical: no-op; else Conflict
        if not overwrite and name in store.backbones(dataset):
            info = store.array_info(dataset, name)
            if info.complete and info.provenance.get("data_sha256") == data_sha256:
                return info  # this very import is already done
            if info.complete:
                raise ConflictError(
                    f"'{dataset}/{name}' already holds complete embeddings "
                    f"({info.provenance.get('computed_by', 'extracted')}); pass --overwrite "
                    "(overwrite=True) to replace them, or choose another -b name"
                )
        w = store.writer(
            dataset, name, dim=src.dim, dtype=dtype, chunk_rows=chunk_rows, overwrite=overwrite
        )
        bg = store._backbone_group(dataset, name)
        pending = BackboneAttrs.of(bg).provenance
        if w.rows_written and pending.get("data_sha256") != data_sha256:
            begun = (pending.get("imported") or {}).get("file") or "an extraction or other data"
            raise ConflictError(
                f"'{dataset}/{name}' is an incomplete array begun from {begun}, not from this "
                "data; pass --overwrite (overwrite=True) to discard it and import this file"
            )
        if not w.rows_written:  # named before the first row: a resumed import checks it
            with writing(store.location, f"the provenance of '{dataset}/{name}'"):
                bg.update_attributes({"provenance": prov})
        _write_rows(w, src, order, dataset_ids, progress)
        w.finish(prov)
    return store.array_info(dataset, name)


def _write_rows(w, src: RowSource, order: np.ndarray, ids: np.ndarray, progress) -> None:
    """Write rows from ``w.rows_written`` on, one stored chunk at a time (bounded memory)."""
    n, step = len(order), w.chunk_rows
    for a in range(w.rows_written, n, step):
        idx = order[a : a + step]
        block = np.zeros((len(idx), src.dim), dtype=np.float32)
        present = idx >= 0
        if present.any():
            block[present] = src.rows(idx[present])
        for r in np.flatnonzero(~present):
            w.mark_missing(a + int(r), str(ids[a + r]), NOT_IN_FILE)
        w.write(block)
        if progress is not None:
            progress(min(n, a + step), n)
