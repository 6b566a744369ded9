"""Writing one backbone's embeddings chunk by chunk: resumable, and safe for disjoint row blocks.

Every piece of progress lives in per-chunk storage, never in shared attributes, so that several
processes (one per GPU under torchrun) can each fill their own chunk-aligned row block of one array
at once without touching the same file:

- ``progress`` (n_chunks,) uint8, one storage chunk per embeddings chunk: 1 once that chunk's rows
  are on disk. A writer resumes at the first chunk of its block that is not done.
- ``missing`` (N,) bool and ``missing_reason`` (N,) str, chunked like the embeddings: rows whose
  image could not be read, written together with their chunk.

Only marking the whole array complete touches the group's attributes, once, when every chunk is done.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from embedstore.errors import InvalidDataError
from embedstore.store._validate import _jsonable


def create_progress_arrays(group: zarr.Group, n_rows: int, chunk_rows: int) -> None:
    """Create the per-chunk bookkeeping arrays beside a new embeddings array."""
    n_chunks = -(-n_rows // chunk_rows)
    group.create_array("progress", shape=(n_chunks,), chunks=(1,), dtype="uint8", fill_value=0)
    group.create_array(
        "missing", shape=(n_rows,), chunks=(chunk_rows,), dtype="bool", fill_value=False
    )
    group.create_array("missing_reason", shape=(n_rows,), chunks=(chunk_rows,), dtype=str)


def rows_done(group: zarr.Group) -> int:
    """Rows in chunks marked done (all rows, for an array marked complete)."""
    n, chunk_rows = group["embeddings"].shape[0], group["embeddings"].chunks[0]
    done = np.flatnonzero(group["progress"][:])
    return int(sum(min(chunk_rows, n - i * chunk_rows) for i in done))


class EmbeddingWriter:
    """Writes rows ``[start, stop)`` of one backbone's embeddings in order, chunk by chunk.

    Rows are buffered until a whole chunk is ready; ``rows_written`` (absolute row index) is
    always a chunk boundary, the point a resumed run starts from. ``start`` must be a chunk
    boundary and ``stop`` one or the end, so that two writers never share a chunk.
    """

    def __init__(self, group: zarr.Group, *, dim: int, start: int = 0, stop: int | None = None):
        self._group = group
        self._array = group["embeddings"]
        self.n_rows = int(self._array.shape[0])
        self.dim = dim
        self.chunk_rows = int(self._array.chunks[0])
        self.start = int(start)
        self.stop = self.n_rows if stop is None else int(stop)
        if (
            not (0 <= self.start < self.stop <= self.n_rows)
            or self.start % self.chunk_rows
            or (self.stop % self.chunk_rows and self.stop != self.n_rows)
        ):
            raise InvalidDataError(
                f"a writer's rows must be a non-empty block aligned to the array's "
                f"{self.chunk_rows}-row chunks within [0, {self.n_rows}); got [{start}, {stop})"
            )
        first, last = self.start // self.chunk_rows, -(-self.stop // self.chunk_rows)
        done = group["progress"][first:last].astype(bool)
        todo = np.flatnonzero(~done)
        self.rows_written = (
            self.stop if not len(todo) else min(self.stop, (first + todo[0]) * self.chunk_rows)
        )
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._missing: dict[int, str] = {}

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
        if start + len(block) > self.stop:
            limit = "the dataset's" if self.stop == self.n_rows else "this writer's block of"
            raise InvalidDataError(
                f"writing {len(block)} rows at row {start} exceeds {limit} {self.stop} rows"
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
        """Record a row whose image could not be read; write zeros for it as usual.

        ``sample_id`` is accepted for the caller's convenience; the store keeps ids once per
        dataset and :meth:`Store.missing` joins them back.
        """
        if not self.start <= row < self.stop:
            raise InvalidDataError(
                f"row {row} is outside this writer's rows [{self.start}, {self.stop})"
            )
        reason = str(reason) or "unreadable"
        if row < self.rows_written:  # its chunk is already on disk: record it there directly
            self._group["missing"][row] = True
            self._group["missing_reason"][row] = reason
        else:
            self._missing[int(row)] = reason

    def _flush(self, n: int) -> None:
        data = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        head, tail = data[:n], data[n:]
        start, stop = self.rows_written, self.rows_written + n
        self._array[start:stop] = head
        rows = [r for r in self._missing if start <= r < stop]
        if rows:
            mask = np.zeros(n, dtype=bool)
            reasons = np.full(n, "", dtype=object)
            for r in rows:
                mask[r - start] = True
                reasons[r - start] = self._missing.pop(r)
            self._group["missing"][start:stop] = mask
            self._group["missing_reason"][start:stop] = reasons.astype(str)
        # The chunk's rows are on disk: only now is it marked done (its own storage chunk).
        self._group["progress"][start // self.chunk_rows] = 1
        self._buffer = [tail] if len(tail) else []
        self._buffered = len(tail)
        self.rows_written = stop

    def finish(self, provenance: dict[str, Any]) -> bool:
        """Write the last partial chunk; mark the array complete if every chunk is now done.

        Returns whether the array is complete. A block writer whose siblings are still running
        returns False; the last one to finish (or a coordinator calling this again) completes it.
        """
        if self._buffered:
            self._flush(self._buffered)
        if self.rows_written != self.stop:
            raise InvalidDataError(
                f"an embeddings array needs exactly one row per sample: rows up to {self.stop} "
                f"expected, {self.rows_written} written; the array stays incomplete"
            )
        if not self._group["progress"][:].all():
            return False
        self._group.attrs.update({"provenance": _jsonable(provenance), "complete": True})
        return True
