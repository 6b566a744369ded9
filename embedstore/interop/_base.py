"""What every format reader shares: the row-source interface, ids files, digests, lazy imports.

A reader is a row source for :meth:`Store.add_embeddings`: ``ids`` (n,) str, ``n_rows``, ``dim``,
``dtype``, ``rows(index)`` (any order) and ``blocks()`` (every row once, in file order, a bounded
block at a time), plus ``format`` and ``sha256`` (of the file, or of the files of a folder) for the
provenance. Shape, dtype and id problems are found when the reader is opened, before any row is
read.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embedstore.errors import InvalidDataError, MissingDependencyError, SourceError
from embedstore.store.add import as_ids, block_rows, check_count, check_matrix

__all__ = ["FileRows", "as_ids", "check_count", "check_matrix", "read_ids_file", "require"]


def require(module: str, what: str) -> Any:
    """Import an optional library or raise one clear MissingDependencyError."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pip = {"h5py": "h5py", "pyarrow": "pyarrow", "pyarrow.parquet": "pyarrow"}.get(
            module, module
        )
        raise MissingDependencyError(
            f"reading or writing {what} needs the '{pip}' package; install it with "
            f"`pip install 'embedstore[interop]'` (or `pip install {pip}`)"
        ) from None


def sha256_file(path: Path, digest=None) -> str:
    """sha256 of a file's bytes, read 8 MiB at a time (or fed into ``digest``)."""
    h = digest or hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def sha256_files(paths: list[Path]) -> str:
    """sha256 over the files of a folder, in the given order: each name, then its bytes."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0")
        sha256_file(p, h)
    return h.hexdigest()


def read_ids_file(path: str | Path, column: str | None = None) -> np.ndarray:
    """Ids from a text file, one per line, or from a column of a CSV (``column``, or the header
    ``id`` when the first line is a header naming it)."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"ids file '{path}' does not exist; pass --ids FILE (one id per line)")
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    header = [c.strip() for c in next(csv.reader([lines[0]]))] if lines else []
    if column is None and "id" in header and len(header) > 1:
        column = "id"
    if column is not None:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        if column not in header:
            raise SourceError(
                f"ids file '{path}' has no column '{column}' (columns: {', '.join(header)}); "
                "name it with --id-column"
            )
        values = [(r.get(column) or "").strip() for r in rows]
    else:
        values = [line.strip() for line in lines]
        while values and not values[-1]:
            values.pop()
    return as_ids(values, f"ids file '{path}'")


class RawRows:
    """Rows of a C-order (n, dim) array stored raw at ``offset`` in a file, read with ``pread``
    (no memory map: pages of a mapped file would count in the process's resident memory)."""

    def __init__(self, path: Path, offset: int, dtype: np.dtype, shape: tuple[int, int]) -> None:
        self.path, self.fd = Path(path), os.open(path, os.O_RDONLY)
        self.offset, self.dtype, self.shape = int(offset), np.dtype(dtype), shape
        self.row_bytes = self.dtype.itemsize * int(shape[1])

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (sorted), array of shape (len(index), dim); runs read at once."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), self.shape[1]), dtype=self.dtype)
        view = out.data.cast("B")
        starts = np.flatnonzero(np.diff(index, prepend=-2) != 1)  # runs of consecutive rows
        for j, k in zip(starts, [*starts[1:], len(index)], strict=True):
            want = (k - j) * self.row_bytes
            got = os.preadv(self.fd, [view[j * self.row_bytes : k * self.row_bytes]],
                            self.offset + int(index[j]) * self.row_bytes)  # fmt: skip
            if got != want:
                raise InvalidDataError(f"file ended early: {got} of {want} bytes at row {index[j]}")
        return out

    def close(self) -> None:
        os.close(self.fd)


class FileRows:
    """Base of the readers: checks shape, dtype and ids once, then serves rows.

    Subclasses set ``_read(index)`` (sorted unique int64 indices -> rows) and may override
    :meth:`blocks`.
    """

    format = ""

    def __init__(
        self,
        path: Path,
        ids,
        shape: tuple[int, ...],
        dtype,
        sha256: str,
        where: str,
        missing: np.ndarray | None = None,
    ) -> None:
        check_matrix(tuple(int(s) for s in shape), np.dtype(dtype), where)
        self.path, self.description, self.sha256 = path, where, sha256
        self.ids = as_ids(ids, where)
        check_count(len(self.ids), int(shape[0]), where)
        self.n_rows, self.dim, self.dtype = int(shape[0]), int(shape[1]), np.dtype(dtype)
        # rows an exported file marks missing (its ``missing`` mask) are not in it
        self._rowmap = None
        if missing is not None and np.asarray(missing, dtype=bool).any():
            keep = ~np.asarray(missing, dtype=bool).reshape(-1)
            check_count(len(keep), self.n_rows, f"{where}: its missing-rows mask")
            self._rowmap, self.ids = np.flatnonzero(keep), self.ids[keep]

    def _read(self, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` in the given order, array of shape (len(index), dim)."""
        index = np.asarray(index, dtype=np.int64)
        if self._rowmap is not None:
            index = self._rowmap[index]
        uniq, inverse = np.unique(index, return_inverse=True)  # readers want sorted indices
        return np.asarray(self._read(uniq))[inverse.reshape(-1)]

    def blocks(self) -> Iterator[np.ndarray]:
        step = block_rows(self.dim)
        for a in range(0, self.n_rows, step):
            yield self._read(np.arange(a, min(a + step, self.n_rows)))

    def close(self) -> None:
        """Release open files (readers that hold one override this)."""

    def __enter__(self) -> FileRows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def need_file(path: Path, what: str) -> None:
    if not path.exists():
        raise SourceError(f"{what} '{path}' does not exist; pass the path with --from")


def bad_key(where: str, key: str, found: list[str], option: str) -> InvalidDataError:
    return InvalidDataError(
        f"{where} has no '{key}' (found: {', '.join(found) or 'nothing'}); name the right one "
        f"with {option}"
    )
