"""The extraction pipeline: images from a source -> each backbone -> one embeddings array per
backbone in the store, written block by block so that an interrupted run resumes bit-identically.

Per backbone: a torch DataLoader (worker processes decode and preprocess with the backbone's own
``spec.preprocess``), eval + inference mode, channels_last for CNNs, bf16/fp16 autocast on CUDA,
and a background thread that hands finished batches to the store's chunk writer so that
compression and disk writes overlap the forward passes.

Resume: chunks hold a whole number of batches, and a run starts at the writer's last complete
chunk (``writer.rows_written``), so it recomputes exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset

from embedstore._version import __version__
from embedstore.backbones import BackboneSpec, LoadedBackbone, get_backbone, load_model
from embedstore.backbones.userfile import load_backbones_file
from embedstore.data import ImageTransform, Source, open_source
from embedstore.errors import BadImageError, InvalidDataError
from embedstore.store import Store, create_store, default_chunk_rows

__all__ = ["ExtractProgress", "ExtractSummary", "extract", "default_workers"]


@dataclass(frozen=True)
class ExtractProgress:
    """Passed to the ``progress`` callback after every batch (and once when a backbone starts).

    ``done`` counts rows of this backbone present in the store or in flight, of ``total``;
    ``start_row`` is where this run began (non-zero when resuming).
    """

    backbone: str
    index: int
    n_backbones: int
    done: int
    total: int
    start_row: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        """Images processed by this run per second of this backbone's pass."""
        return (self.done - self.start_row) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ExtractSummary:
    """What one backbone's pass did. ``status`` is 'written', 'resumed' or 'skipped'."""

    dataset: str
    backbone: str
    rows: int
    dim: int
    dtype: str
    status: str
    start_row: int
    rows_extracted: int
    n_missing: int
    seconds: float
    writer_seconds: float
    device: str

    @property
    def images_per_s(self) -> float:
        """Images extracted by this run per second (0 for a skipped backbone)."""
        return self.rows_extracted / self.seconds if self.seconds > 0 else 0.0


def default_workers() -> int:
    """Loader worker processes for ``workers="auto"``: one core left for the main process, max 8."""
    return min(8, max(0, (os.cpu_count() or 1) - 1))


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InvalidDataError(f"device must be 'cpu', 'cuda' or 'auto', got '{device}'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidDataError(
            f"device '{device}' was asked for but torch sees no CUDA GPU "
            "(torch.cuda.is_available() is False); use --device cpu or --device auto"
        )
    return torch.device(device)


def _aligned_batch_size(chunk_rows: int, batch_size: int) -> int:
    """The largest batch size <= the asked one that divides the chunk (resume granularity)."""
    return max(d for d in range(1, min(batch_size, chunk_rows) + 1) if chunk_rows % d == 0)


class _Rows(Dataset):
    """Row index -> (preprocessed image (3, H, W), row, '' or why the image could not be read)."""

    def __init__(self, source: Source, transform: ImageTransform, shape: tuple[int, int, int]):
        self.source = source
        self.transform = transform
        self.shape = shape

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, row: int) -> tuple[torch.Tensor, int, str]:
        try:
            x = self.transform(self.source.load(row))
        except Exception as exc:  # any undecodable image is reported with its file, not raised here
            return torch.zeros(self.shape), row, f"{type(exc).__name__}: {exc}"
        if tuple(x.shape) != self.shape:
            return (
                torch.zeros(self.shape),
                row,
                f"preprocessed to {tuple(x.shape)}, not {self.shape}",
            )
        return x, row, ""


class _BackgroundWriter:
    """Feeds blocks to an EmbeddingWriter from one thread, so compression overlaps compute.

    The queue is short (memory stays bounded); an error in the thread is re-raised in the caller
    at the next ``put`` or at ``close``. ``close`` always writes what was queued before returning.
    """

    def __init__(self, writer: Any, depth: int = 4) -> None:
        self.writer = writer
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
            block, missing = item
            t0 = time.perf_counter()
            try:
                for row, sample_id, reason in missing:
                    self.writer.mark_missing(row, sample_id, reason)
                self.writer.write(block)
            except BaseException as exc:  # handed to the main thread
                self._error = exc
            self.seconds += time.perf_counter() - t0

    def put(self, block: np.ndarray, missing: list[tuple[int, str, str]]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((block, missing))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _provenance(
    spec: BackboneSpec, loaded: LoadedBackbone, device: torch.device, **extra: Any
) -> dict[str, Any]:
    device_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    )
    return {
        "backbone": spec.config(),
        "weights_path": str(loaded.weights_path) if loaded.weights_path else None,
        "weights_sha256": loaded.weights_sha256,
        **loaded.provenance(),
        "software": {
            "embedstore": __version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "python": platform.python_version(),
        },
        "device": str(device),
        "device_name": device_name or platform.machine(),
        "extracted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def extract(
    store_path: str | os.PathLike[str],
    *,
    dataset: str,
    source: str | Path | Source,
    backbones: Sequence[str],
    weights: dict[str, str] | None = None,
    batch_size: int = 64,
    workers: int | str = "auto",
    device: str = "auto",
    dtype: str = "float16",
    overwrite: bool = False,
    skip_bad: bool = False,
    progress: Callable[[ExtractProgress], None] | None = None,
    chunk_rows: int | None = None,
    unverified_weights: bool = False,
    backbones_file: str | os.PathLike[str] | None = None,
) -> list[ExtractSummary]:
    """Run each backbone over a source's images and store the embeddings, resumably.

    Creates the store if needed and writes the dataset (ids, labels, split, group) once: an
    identical dataset already there is kept, a different one raises ConflictError unless
    ``overwrite``. A backbone already complete is skipped (status 'skipped') unless
    ``overwrite``; an incomplete one is resumed from its last complete chunk ('resumed').

    Args:
        store_path: the store (a .zarr folder), created if missing.
        dataset: dataset name in the store.
        source: a :class:`~embedstore.data.Source`, or a folder / .csv / .npz path / "demo".
        backbones: registered backbone names, extracted one after the other.
        weights: optional {backbone: local checkpoint path}.
        batch_size: images per forward pass; chunks hold a whole number of batches.
        workers: DataLoader worker processes, or "auto" (:func:`default_workers`).
        device: "cpu", "cuda" or "auto".
        dtype: stored dtype, "float16" or "float32".
        overwrite: replace a different dataset and re-extract complete backbones.
        skip_bad: write zeros for unreadable images and record them as missing rows, instead
            of stopping with :class:`BadImageError`.
        progress: called with an :class:`ExtractProgress` after every batch.
        chunk_rows: rows per stored chunk, the resume granularity; a multiple of batch_size
            (default: ~4 MiB rounded to whole batches).
        unverified_weights: accept a ``weights`` file whose sha256 differs from the entry's
            published hash (an own fine-tuned checkpoint); recorded as ``verified: false``.
        backbones_file: a TOML file of backbone entries to register first (own checkpoints).

    Returns:
        One :class:`ExtractSummary` per backbone, in the order given.
    """
    if backbones_file is not None:
        load_backbones_file(backbones_file)
    names = list(backbones)
    if not names:
        raise InvalidDataError("no backbone given; pass at least one (--backbone NAME)")
    if len(set(names)) != len(names):
        raise InvalidDataError(f"backbones must not repeat, got {names}")
    specs = [get_backbone(n) for n in names]
    weights = dict(weights or {})
    stray = sorted(set(weights) - set(names))
    if stray:
        raise InvalidDataError(
            f"weights were given for {stray}, which are not among the backbones {names}; "
            "use --weights NAME=PATH with a NAME also passed to --backbone"
        )
    if int(batch_size) < 1:
        raise InvalidDataError(f"batch_size must be >= 1, got {batch_size}")
    if chunk_rows is not None and (chunk_rows < 1 or chunk_rows % batch_size):
        raise InvalidDataError(
            f"chunk_rows must be a positive multiple of batch_size ({batch_size}) so that a "
            f"resumed run recomputes the same batches, got {chunk_rows}"
        )
    if dtype not in ("float16", "float32"):
        raise InvalidDataError(f"dtype must be 'float16' or 'float32', got '{dtype}'")
    if workers == "auto":
        workers = default_workers()
    if not isinstance(workers, int) or workers < 0:
        raise InvalidDataError(f"workers must be a non-negative integer or 'auto', got {workers!r}")
    dev = _resolve_device(device)
    src = open_source(source)
    store = create_store(store_path)
    store.add_dataset(dataset, **src.dataset_fields(), overwrite=overwrite)
    summaries = []
    for index, spec in enumerate(specs):
        summaries.append(
            _extract_one(
                store, dataset, src, spec, weights.get(names[index], weights.get(spec.name)), index=index,
                n_backbones=len(specs), batch_size=int(batch_size), workers=workers, device=dev,
                dtype=dtype, overwrite=overwrite, skip_bad=skip_bad, progress=progress,
                chunk_rows=chunk_rows, unverified_weights=unverified_weights,
            )
        )  # fmt: skip
    return summaries


def _extract_one(
    store: Store,
    dataset: str,
    src: Source,
    spec: BackboneSpec,
    weights: str | None,
    *,
    index: int,
    n_backbones: int,
    batch_size: int,
    workers: int,
    device: torch.device,
    dtype: str,
    overwrite: bool,
    skip_bad: bool,
    progress: Callable[[ExtractProgress], None] | None,
    chunk_rows: int | None,
    unverified_weights: bool = False,
) -> ExtractSummary:
    n = len(src)
    if spec.name in store.backbones(dataset) and not overwrite:
        info = store.array_info(dataset, spec.name)
        if info.complete:
            return ExtractSummary(
                dataset, spec.name, n, info.shape[1], info.dtype, "skipped", n, 0,
                info.n_missing, 0.0, 0.0, str(device),
            )  # fmt: skip
    crop = spec.preprocess.crop
    if crop is None:
        raise InvalidDataError(
            f"backbone '{spec.name}' has no preprocess.crop; batching needs a fixed image size"
        )
    loaded = load_model(spec, weights=weights, unverified_weights=unverified_weights)
    model = loaded.model.eval().to(device)
    is_cnn = "vit" not in spec.arch.lower() and any(
        isinstance(m, torch.nn.Conv2d) for m in model.modules()
    )
    if is_cnn:
        model = model.to(memory_format=torch.channels_last)
    amp_dtype = None
    if device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    writer = store.writer(
        dataset, spec.name, dim=spec.dim, dtype=dtype,
        chunk_rows=chunk_rows or default_chunk_rows(spec.dim, dtype, multiple_of=batch_size), overwrite=overwrite,
    )  # fmt: skip
    start = writer.rows_written
    bs = batch_size
    if writer.chunk_rows < n and writer.chunk_rows % batch_size:
        bs = _aligned_batch_size(writer.chunk_rows, batch_size)
    loader = DataLoader(
        _Rows(src, ImageTransform(spec.preprocess), (3, int(crop), int(crop))),
        batch_size=bs,
        sampler=range(start, n),
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    sink = _BackgroundWriter(writer)
    n_missing = len(store.missing(dataset, spec.name)) if start else 0
    t0 = time.perf_counter()
    done = start

    def report() -> None:
        if progress is not None:
            progress(
                ExtractProgress(
                    spec.name, index, n_backbones, done, n, start, time.perf_counter() - t0
                )
            )

    autocast = (
        torch.autocast(device_type="cuda", dtype=amp_dtype)
        if amp_dtype is not None
        else contextlib.nullcontext()
    )
    try:
        report()
        with torch.inference_mode(), autocast:
            for x, rows, reasons in loader:
                rows = rows.tolist()
                bad = [i for i, r in enumerate(reasons) if r]
                if bad and not skip_bad:
                    row = rows[bad[0]]
                    raise BadImageError(
                        f"cannot read image '{src.locate(row)}' (row {row}, id '{src.ids[row]}'): "
                        f"{reasons[bad[0]]}. Nothing was marked complete; fix or remove the file "
                        "and rerun to resume, or pass --skip-bad (skip_bad=True) to record it as "
                        "a missing row"
                    )
                x = x.to(device, non_blocking=True)
                if is_cnn:
                    x = x.contiguous(memory_format=torch.channels_last)
                out = model(x)
                if out.ndim != 2 or out.shape[1] != spec.dim:
                    raise InvalidDataError(
                        f"backbone '{spec.name}' returned embeddings of shape {tuple(out.shape)}; "
                        f"its registry entry says (batch, {spec.dim})"
                    )
                block = out.float().cpu().numpy()
                if bad:
                    block[bad] = 0.0
                nonfinite = np.flatnonzero(~np.isfinite(block).all(axis=1))
                if len(nonfinite):
                    shown = [src.ids[rows[i]] for i in nonfinite[:5]]
                    raise InvalidDataError(
                        f"backbone '{spec.name}' produced NaN or Inf embeddings for "
                        f"{len(nonfinite)} image(s) of this batch (e.g. {shown}); nothing was "
                        "marked complete. Check the weights (--weights) and the input images"
                    )
                sink.put(block, [(rows[i], str(src.ids[rows[i]]), reasons[i]) for i in bad])
                n_missing += len(bad)
                done += len(rows)
                report()
    except BaseException:
        with contextlib.suppress(Exception):
            sink.close()  # keep the chunks already computed: the next run resumes after them
        raise
    sink.close()
    seconds = time.perf_counter() - t0
    writer.finish(
        _provenance(
            spec, loaded, device, dtype=dtype, autocast=str(amp_dtype).replace("torch.", "")
            if amp_dtype else None, channels_last=is_cnn, batch_size=bs, n_images=n,
            n_missing=n_missing, resumed_from_row=start, seconds=round(seconds, 3),
            source=src.description,
        )
    )  # fmt: skip
    return ExtractSummary(
        dataset, spec.name, n, spec.dim, dtype, "resumed" if start else "written", start,
        n - start, n_missing, seconds, sink.seconds, str(device),
    )  # fmt: skip
