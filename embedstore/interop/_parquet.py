"""Parquet: an id column and the embeddings as one fixed-size (or plain) list column, or as one
numeric column per dimension. Read with pyarrow in row batches: the id column first (small), then
the values once in file order; rows asked for out of order come from a temporary memory-mapped
copy in file order (read with ``pread``), made on first use, so that peak memory stays bounded."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from embedstore.errors import InvalidDataError
from embedstore.interop._base import FileRows, RawRows, bad_key, need_file, require, sha256_file

_BATCH_ROWS = 2048


class ParquetRows(FileRows):
    """Ids in ``id_column`` (default ``id``); embeddings in list column ``key`` (default: the
    only list column), or, with no list column, every floating-point column in order."""

    format = "parquet"

    def __init__(self, path: Path, *, key: str | None = None, id_column: str | None = None):
        pa = require("pyarrow", "Parquet files")
        pq = require("pyarrow.parquet", "Parquet files")
        need_file(path, "Parquet file")
        where = f"Parquet file '{path}'"
        try:
            # pages streamed 8 MiB at a time: a row group may be as large as the whole file
            self._pf = pq.ParquetFile(path, buffer_size=8 << 20, pre_buffer=False)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise InvalidDataError(f"{where} is not a readable Parquet file ({exc})") from None
        schema = self._pf.schema_arrow
        names = schema.names
        id_column = id_column or "id"
        if id_column not in names:
            raise bad_key(where, id_column, names, "--id-column")
        lists = [f.name for f in schema if pa.types.is_list(f.type) or _fixed(pa, f.type)]
        if key is not None:
            if key not in names:
                raise bad_key(where, key, names, "--key")
            self.columns = [key]
        elif len(lists) > 1:
            raise InvalidDataError(
                f"{where} has several list columns ({', '.join(lists)}); choose one with --key"
            )
        elif lists:
            self.columns = lists
        else:
            self.columns = [
                f.name for f in schema if f.name != id_column and pa.types.is_floating(f.type)
            ]
            if not self.columns:
                raise InvalidDataError(
                    f"{where} has no list column and no floating-point columns besides "
                    f"'{id_column}' (columns: {', '.join(names)}); store the embeddings as a "
                    "fixed-size list column or one float column per dimension"
                )
        self._list = self.columns[0] in lists
        ids = self._pf.read(columns=[id_column]).column(0).to_pylist()
        field = schema.field(self.columns[0])
        if self._list:
            value_type = field.type.value_type
            dim = field.type.list_size if _fixed(pa, field.type) else self._list_width(pa)
        else:
            value_type, dim = field.type, len(self.columns)
        dtype = np.dtype(value_type.to_pandas_dtype()) if _numeric(pa, value_type) else object
        mask = f"{self.columns[0]}:missing"  # written by export-features
        missing = None
        if self._list and mask in names:
            missing = self._pf.read(columns=[mask]).column(0).to_numpy(zero_copy_only=False)
        self._copy: RawRows | None = None
        self._cursor = 0
        self._stream: Iterator[np.ndarray] | None = None
        sha = sha256_file(path)
        super().__init__(path, ids, (len(ids), dim), dtype, sha, where, missing)

    def _list_width(self, pa) -> int:
        """The width of a variable-size list column: every row must have the same."""
        widths = set()
        for batch in self._pf.iter_batches(batch_size=_BATCH_ROWS, columns=self.columns):
            lengths = batch.column(0).value_lengths().to_numpy(zero_copy_only=False)
            widths.update(np.unique(lengths).tolist())
        if len(widths) != 1:
            raise InvalidDataError(
                f"Parquet file: list column '{self.columns[0]}' has rows of different lengths "
                f"({sorted(widths)[:5]}); every embedding must have the same width"
            )
        return int(widths.pop())

    def blocks(self) -> Iterator[np.ndarray]:
        for batch in self._pf.iter_batches(batch_size=_BATCH_ROWS, columns=self.columns):
            yield self._values(batch)

    def _values(self, batch) -> np.ndarray:
        if not self._list:
            return np.stack(
                [c.to_numpy(zero_copy_only=False) for c in batch.columns], axis=1
            ).astype(self.dtype, copy=False)
        col = batch.column(0)
        if col.null_count:
            raise InvalidDataError(
                f"{self.description}: {col.null_count} row(s) have no embedding (null); drop "
                "those rows (absent ids become missing rows with --allow-missing)"
            )
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(col), self.dim).astype(self.dtype, copy=False)

    def _read(self, index: np.ndarray) -> np.ndarray:
        k = len(index)
        if (
            self._copy is None
            and k
            and index[0] == self._cursor
            and index[-1] == self._cursor + k - 1
        ):
            return self._next(k)  # in file order: straight from the stream
        if self._copy is None:  # out of order: one pass in file order into a temporary file
            fd, name = tempfile.mkstemp(suffix=".raw")
            with os.fdopen(fd, "wb") as f:
                for block in self.blocks():
                    f.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
            self._copy = RawRows(Path(name), 0, self.dtype, (self.n_rows, self.dim))
        return np.asarray(self._copy[index])

    def _next(self, k: int) -> np.ndarray:
        """The next ``k`` rows of the file-order stream."""
        if self._stream is None:
            self._stream, self._buffer = self.blocks(), np.empty((0, self.dim), self.dtype)
        while len(self._buffer) < k:
            self._buffer = np.concatenate([self._buffer, next(self._stream)])
        out, self._buffer = self._buffer[:k], self._buffer[k:]
        self._cursor += k
        return out

    def close(self) -> None:
        if self._copy is not None:
            self._copy.close()
            self._copy.path.unlink(missing_ok=True)
            self._copy = None


def _fixed(pa, t) -> bool:
    return pa.types.is_fixed_size_list(t)


def _numeric(pa, t) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)
