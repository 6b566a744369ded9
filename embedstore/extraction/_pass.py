"""One pass over the images on one rank: each image read and decoded once, then every backbone
of the pass runs on the same batch with its own preprocessing, and a background thread hands
the finished blocks to the store's chunk writers so that compression overlaps the forward passes.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from embedstore.data import Source
from embedstore.errors import BadImageError, InvalidDataError
from embedstore.extraction._plan import Job, Share
from embedstore.extraction._prepare import Options, Prepared, autocast
from embedstore.extraction._world import World
from embedstore.store import EmbeddingWriter, Store

__all__ = ["PassResult", "run_pass"]

_EMPTY = torch.zeros(0)


class _Decoded(Dataset):
    """(row, which backbones want it) -> (one tensor per backbone, row, one reason per backbone).

    The image is read and decoded once; each backbone that wants the row gets its own
    preprocessing of it. A row that cannot be read gets zeros and the reason, reported by the
    caller with the file's name (or recorded as missing with ``skip_bad``).
    """

    def __init__(self, source: Source, prepared: Sequence[Prepared]) -> None:
        self.source = source
        self.prepared = list(prepared)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item: tuple[int, tuple[bool, ...]]) -> tuple[Any, int, Any]:
        row, wanted = item
        try:
            image = self.source.load_rgb(row)
        except Exception as exc:  # reported with its file by the caller, not raised in a worker
            # a bad image's own reason, without the data layer's advice (the caller gives a run's)
            detail = exc.reason if isinstance(exc, BadImageError) else str(exc)
            why = f"{type(exc).__name__}: {detail}"
            xs = [
                torch.zeros(p.shape) if w else _EMPTY
                for p, w in zip(self.prepared, wanted, strict=True)
            ]
            return tuple(xs), row, tuple(why if w else "" for w in wanted)
        xs, reasons = [], []
        for p, w in zip(self.prepared, wanted, strict=True):
            x, why = _EMPTY, ""
            if w:
                try:
                    x = p.transform(image)
                except Exception as exc:
                    why = f"{type(exc).__name__}: {exc}"
                else:
                    if tuple(x.shape) != p.shape:
                        why = f"preprocessed to {tuple(x.shape)}, not {p.shape}"
                x = torch.zeros(p.shape) if why else x
            xs.append(x)
            reasons.append(why)
        return tuple(xs), row, tuple(reasons)


class _BackgroundWriter:
    """Feeds blocks to EmbeddingWriters from one thread, so compression overlaps compute.

    The queue is short (memory stays bounded); an error in the thread (e.g. a full disk) is
    re-raised in the caller at the next ``put`` or at ``close``; blocks queued after it are
    dropped, every chunk written before it stays. ``close`` writes what was queued first.
    """

    def __init__(self, depth: int = 4) -> None:
        self.seconds = 0.0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="embedstore-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue
            writer, block, missing = item
            t0 = time.perf_counter()
            try:
                for row, sample_id, reason in missing:
                    writer.mark_missing(row, sample_id, reason)
                writer.write(block)
            except BaseException as exc:  # handed to the main thread
                self._error = exc
            self.seconds += time.perf_counter() - t0

    def put(self, writer: EmbeddingWriter, block: np.ndarray, missing: list) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((writer, block, missing))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


@dataclass
class PassResult:
    """What one rank did in one pass: rows and missing rows per backbone, its open writers."""

    rows: dict[str, int]
    missing: dict[str, int]
    seconds: float = 0.0
    writer_seconds: float = 0.0
    writers: dict[str, list[EmbeddingWriter]] = field(default_factory=dict)


def _embed(
    p: Prepared, model: torch.nn.Module, x: torch.Tensor, device: torch.device
) -> np.ndarray:
    """(B, 3, H, W) preprocessed images -> (B, dim) float32 embeddings on the CPU."""
    x = x.to(device, non_blocking=True)
    if p.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device)[0]:
        out = model(x)
    if out.ndim != 2 or out.shape[1] != p.spec.dim:
        raise InvalidDataError(
            f"backbone '{p.name}' returned embeddings of shape {tuple(out.shape)}; "
            f"its registry entry says (batch, {p.spec.dim})"
        )
    return out.float().cpu().numpy()


def _check_rows(src: Source, p: Prepared, rows: list[int], reasons: Sequence[str], skip: bool):
    bad = [i for i, r in enumerate(reasons) if r]
    if bad and not skip:
        row = rows[bad[0]]
        why = reasons[bad[0]]
        raise BadImageError(
            f"cannot read image '{src.locate(row)}' (row {row}, id '{src.ids[row]}'): "
            f"{why}. Nothing was marked complete; fix or remove the file "
            "and rerun to resume, or pass --skip-bad (skip_bad=True) to record it as "
            "a missing row"
        )
    return bad


def run_pass(
    *,
    store: Store,
    src: Source,
    opts: Options,
    prepared: Sequence[Prepared],
    jobs: dict[str, Job],
    share: Share,
    world: World,
    device: torch.device,
    report: Callable[[], None],
) -> PassResult:
    """Compute this rank's share of one pass and queue every block to its writer.

    The writers' last partial chunk stays buffered: the caller finishes them (``finish``) once
    every rank is done, with the provenance that counts all ranks.
    """
    result = PassResult(rows={p.name: 0 for p in prepared}, missing={p.name: 0 for p in prepared})
    for p in prepared:
        result.writers[p.name] = [
            store.writer(opts.dataset, p.name, dim=jobs[p.name].dim, dtype=opts.dtype, rows=run)
            for run in share.runs.get(p.name, ())
        ]
    models = [p.loaded.model.to(device) for p in prepared]
    for p, model in zip(prepared, models, strict=True):
        if p.channels_last:
            model.to(memory_format=torch.channels_last)
    wanted = [tuple(share.needs(p.name, a) for p in prepared) for a, _ in share.batches]
    loader = DataLoader(
        _Decoded(src, prepared),
        batch_sampler=[
            [(r, w) for r in range(a, b)] for (a, b), w in zip(share.batches, wanted, strict=True)
        ],
        num_workers=opts.workers,
        pin_memory=device.type == "cuda",
    )
    sink = _BackgroundWriter()
    t0 = time.perf_counter()
    try:
        report()
        with torch.inference_mode():
            for xs, rows, reasons in loader:
                world.check()
                rows = rows.tolist()
                for p, model, x, why in zip(prepared, models, xs, reasons, strict=True):
                    if x.numel() == 0:
                        continue
                    bad = _check_rows(src, p, rows, why, opts.skip_bad)
                    block = _embed(p, model, x, device)
                    if bad:
                        block[bad] = 0.0
                    _check_finite(src, p, block, rows)
                    writer = next(w for w in result.writers[p.name] if w.start <= rows[0] < w.stop)
                    missing = [(rows[i], str(src.ids[rows[i]]), why[i]) for i in bad]
                    sink.put(writer, block, missing)
                    result.rows[p.name] += len(rows)
                    result.missing[p.name] += len(bad)
                    world.add(f"rows/{p.name}", len(rows))
                report()
    except BaseException:
        with contextlib.suppress(Exception):
            sink.close()  # keep the chunks already computed: the next run resumes after them
        raise
    sink.close()
    if device.type == "cuda":
        for p in prepared:  # GPU only: free the device for the next pass
            p.loaded.model.to("cpu")
    result.seconds = time.perf_counter() - t0
    result.writer_seconds = sink.seconds
    return result


def _check_finite(src: Source, p: Prepared, block: np.ndarray, rows: list[int]) -> None:
    nonfinite = np.flatnonzero(~np.isfinite(block).all(axis=1))
    if len(nonfinite):
        shown = [str(src.ids[rows[i]]) for i in nonfinite[:5]]
        raise InvalidDataError(
            f"backbone '{p.name}' produced NaN or Inf embeddings for "
            f"{len(nonfinite)} image(s) of this batch (e.g. {shown}); nothing was "
            "marked complete. Check the weights (--weights) and the input images"
        )
