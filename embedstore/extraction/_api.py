"""``extract``: check every argument that can be checked without a model (no torch, no timm,
so that a mistake is answered in about a second), then hand over to ``_run``, which loads the
models and writes the store."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from embedstore.data import Source, open_source
from embedstore.data.splits import SmallClassWarning
from embedstore.extraction._check import check_backbone_names, check_options
from embedstore.extraction._records import ExtractProgress, ExtractSummary

__all__ = ["extract"]


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
    storage_options: dict[str, Any] | None = None,
    unverified_weights: bool = False,
    backbones_file: str | os.PathLike[str] | None = None,
    task: str | None = None,
    class_names: str | Sequence[str] | None = None,
    threads: int | None = None,
) -> list[ExtractSummary]:
    """Run backbones over a source's images and store the embeddings, resumably.

    Every image is read and decoded once for all backbones (each applies its own preprocessing);
    backbones that do not fit on the device together run in several passes. Under ``torchrun``
    each process (rank) computes a disjoint share of the chunks not yet done; a plain call is a
    world of one. Everything that can be checked without a model (options, the device, backbone
    names, weights paths, the source's listing or CSV header) is checked before torch is
    imported; the weights' hashes and the models are checked before the store is created.

    Creates the store if needed and writes the dataset (ids, labels, split, group) once: an
    identical dataset already there is kept, a different one raises ConflictError unless
    ``overwrite``. A backbone already complete is skipped (status 'skipped') unless
    ``overwrite``; an incomplete one is resumed from the chunks already written ('resumed').
    Another process writing the same array raises StoreBusyError.

    Args:
        store_path: the store (a .zarr folder or an ``s3://`` URL), created if missing.
        dataset: dataset name in the store.
        source: a :class:`~embedstore.data.Source`, or what ``--source`` takes (a folder, a .csv
            (local or URL), a .npz, tar shards, "demo").
        backbones: registered backbone names.
        weights: optional {backbone: local checkpoint path}.
        batch_size: images per forward pass; chunks hold a whole number of batches.
        workers: DataLoader worker processes per rank, or "auto".
        device: "cpu", "cuda" (this rank's GPU, ``cuda:LOCAL_RANK``) or "auto".
        dtype: stored dtype, "float16" or "float32".
        overwrite: replace a different dataset and re-extract complete backbones.
        skip_bad: write zeros for unreadable images and record them as missing rows, instead
            of stopping with :class:`BadImageError`.
        progress: called on rank 0 with an :class:`ExtractProgress` after every batch.
        chunk_rows: rows per stored chunk, the resume granularity; a multiple of batch_size
            (default: ~4 MiB, but at least 8 chunks when the dataset allows and never under 64
            rows, rounded to whole batches: :func:`~embedstore.store.default_chunk_rows`).
        storage_options: fsspec options for an ``s3://`` store (the ``AWS_*`` environment
            variables are used otherwise).
        unverified_weights: accept a ``weights`` file whose sha256 differs from the entry's
            published hash (an own fine-tuned checkpoint); recorded as ``verified: false``.
        backbones_file: a TOML file of backbone entries to register first (own checkpoints).
        task, class_names: for a ``source`` given as a path, as in
            :func:`~embedstore.data.open_source` (e.g. ``task="ordinal"``,
            ``class_names="none,mild,moderate,severe"``).
        threads: CPU intra-op threads of the forward pass (they change the last bits); default:
            the count recorded by the run a resume continues, else torch's. Pass the same
            number to a plain run and a ``torchrun`` job to make them bit-identical.

    Returns:
        One :class:`ExtractSummary` per backbone, in the order given, on every rank.
    """
    opts = check_options(
        dataset=dataset,
        batch_size=batch_size,
        workers=workers,
        device=device,
        dtype=dtype,
        overwrite=overwrite,
        skip_bad=skip_bad,
        chunk_rows=chunk_rows,
        threads=threads,
    )
    check_backbone_names(backbones, weights, backbones_file)
    src = open_source(source, task=task, class_names=class_names, skip_bad=skip_bad)
    _warn_split_gaps(src)
    from embedstore.extraction._run import run_extract  # heavy: torch, torchvision, timm

    return run_extract(
        store_path,
        opts=opts,
        src=src,
        backbones=list(backbones),
        weights=weights,
        unverified_weights=unverified_weights,
        progress=progress,
        storage_options=storage_options,
    )


def _warn_split_gaps(src: Source) -> None:
    """A SmallClassWarning naming each class missing from a split, before any model loads."""
    gaps = src.split_gaps()
    if not gaps:
        return
    how = "the source's own splits" if src.split_origin == "source" else src.split_origin
    warnings.warn(
        SmallClassWarning(
            f"{'; '.join(gaps)} (splits: {how}): a split without a class has no sample of it to "
            "learn or score, and per-class protocols leave it out there; add images to the "
            "class, or give the splits (a CSV --split-column, or train/val/test folders)"
        ),
        stacklevel=3,
    )
