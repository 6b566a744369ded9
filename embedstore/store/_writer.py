"""Writing one backbone's embeddings chunk by chunk, resumable after an interruption."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from embedstore.errors import InvalidDataError
from embedstore.store._validate import _jsonable


class EmbeddingWriter:
    """Writes one backbone's rows in order, chunk by chunk, so an interrupted run can resume.

    Rows are buffered until a whole chunk is ready; ``rows_written`` (stored in the array's
    attributes after every chunk) is always a chunk boundary, the point a resumed run starts from.
    """

    def __init__(self, group: zarr.Group, *, n_rows: int, dim: int) -> None:
        self._group = group
        self._array = group["embeddings"]
        self.n_rows = n_rows
        self.dim = dim
        self.chunk_rows = int(self._array.chunks[0])
        self.rows_written = int(group.attrs.get("rows_written", 0))
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        # Rows recorded missing beyond the resume point were never written: they are redone.
        self._missing: list[dict[str, Any]] = [
            m for m in group.attrs.get("missing", []) if m["row"] < self.rows_written
        ]

    @property
    def next_row(self) -> int:
        """Index of the next row :meth:`write` expects."""
        return self.rows_written + self._buffered

    def write(self, block: np.ndarray) -> None:
        """Append rows, array of shape (n, dim); NaN or Inf rows are refused and named."""
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise InvalidDataError(
                f"embedding block must have shape (n, {self.dim}), got {block.shape}"
            )
        start = self.next_row
        if start + len(block) > self.n_rows:
            raise InvalidDataError(
                f"writing {len(block)} rows at row {start} exceeds the dataset's "
                f"{self.n_rows} samples"
            )
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if len(bad):
            shown = ", ".join(str(start + int(i)) for i in bad[:20])
            more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
            raise InvalidDataError(
                f"embeddings contain NaN or Inf in row(s) {shown}{more}; nothing from this block "
                "was written. Check the backbone's weights and the input images"
            )
        self._buffer.append(block.astype(self._array.dtype, copy=False))
        self._buffered += len(block)
        while self._buffered >= self.chunk_rows:
            self._flush(self.chunk_rows)

    def mark_missing(self, row: int, sample_id: str, reason: str) -> None:
        """Record a row whose image could not be read; write zeros for it as usual."""
        self._missing.append({"row": int(row), "id": str(sample_id), "reason": str(reason)})

    def _flush(self, n: int) -> None:
        data = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        head, tail = data[:n], data[n:]
        start = self.rows_written
        self._array[start : start + n] = head
        self._buffer = [tail] if len(tail) else []
        self._buffered = len(tail)
        self.rows_written = start + n
        self._group.attrs.update({"rows_written": self.rows_written, "missing": self._missing})

    def finish(self, provenance: dict[str, Any]) -> None:
        """Write the last partial chunk, check every row is present, and mark the array complete."""
        if self._buffered:
            self._flush(self._buffered)
        if self.rows_written != self.n_rows:
            raise InvalidDataError(
                f"an embeddings array needs exactly one row per sample: {self.n_rows} expected, "
                f"{self.rows_written} written; the array stays incomplete"
            )
        if self._missing:
            mask = np.zeros(self.n_rows, dtype=bool)
            mask[[m["row"] for m in self._missing]] = True
            if "missing" in self._group.array_keys():
                del self._group["missing"]
            self._group.create_array("missing", shape=mask.shape, dtype=bool)[...] = mask
        self._group.attrs.update(
            {"provenance": _jsonable(provenance), "missing": self._missing, "complete": True}
        )
