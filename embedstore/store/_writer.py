"""Writing one backbone's embeddings chunk by chunk: resumable, and safe for disjoint row blocks.

Every piece of progress lives in per-chunk storage, never in shared attributes, so that several
processes (one per GPU under torchrun) can each fill their own chunk-aligned row block of one array
at once without touching the same file:

- ``checksums`` (n_chunks, 32) uint8 and ``chunk_nbytes`` (n_chunks,) uint64, one storage chunk
  per embeddings chunk: the sha256 and size of that chunk's stored bytes, read back after the
  write, so that ``embedstore verify`` finds a flipped byte, a truncated or a deleted chunk in a
  plain store, not only in an archive.
- ``progress`` (n_chunks,) uint8: 1 once a chunk's rows and checksum are on disk. A writer resumes
  at the first chunk of its block that is not done.
- ``missing`` (N,) bool and ``missing_reason`` (N, width) UTF-8 bytes, chunked like the
  embeddings: rows whose image could not be read, written together with their chunk.

Each file is written whole to a temporary name and renamed (zarr's local store does this), so a
killed process leaves at most an orphaned ``*.partial`` file, never a half-written chunk; a resumed
writer removes the orphans of its own block. Only marking the whole array complete touches the
group's attributes, once, when every chunk is done. Any ``OSError`` of the storage (a full disk)
becomes one :class:`StorageError`; the array stays incomplete and a rerun resumes it.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from embedstore.errors import InvalidDataError
from embedstore.store._access import array, values
from embedstore.store._audit import BACKBONE_ARRAYS, BACKBONE_KEYS, RECORD
from embedstore.store._guard import writing
from embedstore.store._rawmeta import record_digests
from embedstore.store._strings import REASON_BYTES, encode_text
from embedstore.store._validate import _jsonable

_NOT_RECORDED = bytes(32)


def rows_done(group: zarr.Group) -> int:
    """Rows in chunks marked done (all rows, for an array marked complete)."""
    emb = array(group, "embeddings")
    n, chunk_rows = int(emb.shape[0]), int(emb.chunks[0])
    done = np.flatnonzero(values(array(group, "progress")))
    return sum(min(chunk_rows, n - int(i) * chunk_rows) for i in done)


def stored_chunk(array: zarr.Array, index: int) -> bytes | None:
    """The stored (compressed) bytes of row-chunk ``index`` of a 2-D array, None if absent."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    key = f"{array.path}/{array.metadata.encode_chunk_key((index, 0))}".lstrip("/")
    buf = sync(array.store.get(key, prototype=default_buffer_prototype()))
    return None if buf is None else buf.to_bytes()


def chunk_sha256(data: bytes | None) -> bytes:
    """What ``checksums`` records for a chunk's stored bytes (a digest of b'' when absent)."""
    return hashlib.sha256(b"" if data is None else data).digest()


class EmbeddingWriter:
    """Writes rows ``[start, stop)`` of one backbone's embeddings in order, chunk by chunk.

    Rows are buffered until a whole chunk is ready; ``rows_written`` (absolute row index) is
    always a chunk boundary, the point a resumed run starts from. ``start`` must be a chunk
    boundary and ``stop`` one or the end, so that two writers never share a chunk.
    """

    def __init__(
        self,
        group: zarr.Group,
        *,
        dim: int,
        start: int = 0,
        stop: int | None = None,
        location: str = "",
    ):
        self._group = group
        # Every chunk is stored, even one of zeros (all rows missing), so that a deleted chunk
        # file is always damage, never "all fill value".
        # zarr merges a partial config with its defaults; its TypedDict says every key is required
        config = {"write_empty_chunks": True}
        self._array = array(group, "embeddings").with_config(config)  # type: ignore[call-overload]
        self.location = location or str(group.store)
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
        self._has_checksums = {"checksums", "chunk_nbytes"} <= set(group.array_keys())
        first, last = self.start // self.chunk_rows, -(-self.stop // self.chunk_rows)
        done = values(array(group, "progress"), slice(first, last)).astype(bool)
        todo = np.flatnonzero(~done)
        self.rows_written = (
            self.stop if not len(todo) else min(self.stop, (first + todo[0]) * self.chunk_rows)
        )
        if len(todo):
            self._remove_orphans(first, last)
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._missing: dict[int, str] = {}

    @property
    def next_row(self) -> int:
        """Index of the next row :meth:`write` expects."""
        return self.rows_written + self._buffered

    def write(self, block: np.ndarray) -> None:
        """Append rows, array of shape (n, dim); rows that are (or become, once cast to the
        stored dtype) NaN or Inf are refused and named, and nothing of the block is written."""
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
        bad = _non_finite(block)
        if len(bad):
            raise InvalidDataError(
                f"embeddings contain NaN or Inf in row(s) {_rows(bad, start)}; nothing from this "
                "block was written. Check the backbone's weights and the input images"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow: checked just below
            stored = block.astype(self._array.dtype, copy=False)
        bad = _non_finite(stored)  # what is actually stored: float16 overflows past ±65,504
        if len(bad):
            peak = float(np.abs(block[bad]).max())
            raise InvalidDataError(
                f"embeddings overflow {self._array.dtype} in row(s) {_rows(bad, start)} (largest "
                f"magnitude {peak:.4g}; {self._array.dtype} holds at most "
                f"{float(np.finfo(self._array.dtype).max):.6g}), so they would be stored as Inf; "
                "nothing from this block was written and the array stays incomplete. Extract "
                "with --dtype float32 (dtype='float32'; pass --overwrite to replace this "
                "float16 array), or check the backbone's weights and normalisation"
            )
        self._buffer.append(stored)
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
        reason = str(reason).replace("\0", " ") or "unreadable"
        if row < self.rows_written:  # its chunk is already on disk: record it there directly
            with writing(self.location, f"missing row {row}"):
                array(self._group, "missing")[row] = True
                array(self._group, "missing_reason")[row] = encode_text(
                    [reason], "reason", width=REASON_BYTES
                )[0]
        else:
            self._missing[int(row)] = reason

    def _flush(self, n: int) -> None:
        data = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        head, tail = data[:n], data[n:]
        start, stop = self.rows_written, self.rows_written + n
        index = start // self.chunk_rows
        with writing(self.location, f"embeddings rows {start}-{stop - 1}"):
            self._array[start:stop] = head
            rows = [r for r in self._missing if start <= r < stop]
            if rows:
                mask = np.zeros(n, dtype=bool)
                reasons = [""] * n
                for r in rows:
                    mask[r - start] = True
                    reasons[r - start] = self._missing.pop(r)
                array(self._group, "missing")[start:stop] = mask
                array(self._group, "missing_reason")[start:stop] = encode_text(
                    reasons, "reason", width=REASON_BYTES
                )
            if self._has_checksums:
                stored = stored_chunk(self._array, index)
                digest = chunk_sha256(stored)
                array(self._group, "checksums")[index] = np.frombuffer(digest, dtype=np.uint8)
                array(self._group, "chunk_nbytes")[index] = 0 if stored is None else len(stored)
            # The chunk's rows are on disk: only now is it marked done (its own storage chunk).
            array(self._group, "progress")[index] = 1
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
        if not values(array(self._group, "progress")).all():
            return False
        with writing(self.location, "the array's completion mark"):
            # one write of the group's zarr.json (zarr's attrs.update writes once per key)
            final = {**self._group.attrs.asdict(), "provenance": _jsonable(provenance)}
            final["complete"] = True
            arrays = sorted(set(self._group.array_keys()) & set(BACKBONE_ARRAYS))
            record = record_digests(self._group, arrays, final, BACKBONE_KEYS)
            self._group.update_attributes(
                {"provenance": final["provenance"], "complete": True, RECORD: record}
            )
        return True

    def _remove_orphans(self, first: int, last: int) -> None:
        """Delete ``*.partial`` files a killed writer left in this block's chunk folders."""
        root = getattr(self._group.store, "root", None)
        if not isinstance(root, Path):
            return  # not a local folder: remote stores write whole objects
        base = root / self._group.path
        for name in self._group.array_keys():
            folder = base / name / "c"
            if not folder.is_dir():
                continue
            for path in folder.rglob("*.partial"):  # e.g. c/3/0.<uuid>.partial, c/3.<uuid>.partial
                head = path.relative_to(folder).parts[0].split(".")[0]
                if head.isdigit() and first <= int(head) < last:  # chunk index: this block's
                    path.unlink(missing_ok=True)


def _non_finite(block: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.isfinite(block).all(axis=1))


def _rows(bad: np.ndarray, start: int) -> str:
    shown = ", ".join(str(start + int(i)) for i in bad[:20])
    return shown + (f" and {len(bad) - 20} more" if len(bad) > 20 else "")
