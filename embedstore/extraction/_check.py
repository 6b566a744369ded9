"""What extraction checks before torch or timm is imported: the options, the device, the
backbone names, the weights files, the backbones file. A mistake in any of them is answered in
about a second, before the heavy libraries load (``tests/cli/test_fast_errors.py``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from embedstore.devices import resolve_device
from embedstore.errors import InvalidDataError, WeightsNotFoundError

__all__ = [
    "DTYPES",
    "Options",
    "check_backbone_names",
    "check_options",
    "default_workers",
    "is_main_process",
]

DTYPES = ("float16", "float32")


def is_main_process() -> bool:
    """True in a plain process and in torchrun's rank 0 (the one that prints)."""
    return int(os.environ.get("RANK", "0")) == 0


def default_workers() -> int:
    """Loader worker processes for ``workers="auto"``: the cores of this machine shared by its
    torchrun ranks (``LOCAL_WORLD_SIZE``), one left for each rank's main process, at most 8."""
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return min(8, max(0, (os.cpu_count() or 1) // local_ranks - 1))


@dataclass(frozen=True)
class Options:
    """The validated scalar options of one extraction."""

    dataset: str
    batch_size: int
    workers: int
    device: str
    dtype: str
    overwrite: bool
    skip_bad: bool
    chunk_rows: int | None
    threads: int | None = (
        None  # CPU intra-op threads; None: a resume's recorded count, else torch's
    )


def check_options(
    *,
    dataset: str,
    batch_size: int,
    workers: int | str,
    device: str,
    dtype: str,
    overwrite: bool,
    skip_bad: bool,
    chunk_rows: int | None,
    threads: int | None = None,
) -> Options:
    """Check every option against what it may be; raise one InvalidDataError naming it."""
    if not dataset or "/" in dataset or dataset.startswith("."):
        raise InvalidDataError(
            f"dataset name must be non-empty, without '/' and not start with '.', got '{dataset}'"
        )
    if int(batch_size) < 1:
        raise InvalidDataError(f"batch_size must be >= 1, got {batch_size}")
    if chunk_rows is not None and (chunk_rows < 1 or chunk_rows % batch_size):
        raise InvalidDataError(
            f"chunk_rows must be a positive multiple of batch_size ({batch_size}) so that a "
            f"resumed run recomputes the same batches, got {chunk_rows}"
        )
    if dtype not in DTYPES:
        raise InvalidDataError(f"dtype must be 'float16' or 'float32', got '{dtype}'")
    if workers == "auto":
        workers = default_workers()
    if not isinstance(workers, int) or workers < 0:
        raise InvalidDataError(f"workers must be a non-negative integer or 'auto', got {workers!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidDataError(f"threads must be a positive integer, got {threads!r}")
    resolve_device(device)  # the one check of every --device; this rank's GPU is taken later
    return Options(
        dataset=dataset,
        batch_size=int(batch_size),
        workers=workers,
        device=device,
        dtype=dtype,
        overwrite=bool(overwrite),
        skip_bad=bool(skip_bad),
        chunk_rows=chunk_rows,
        threads=threads,
    )


def check_backbone_names(
    names: Sequence[str],
    weights: dict[str, str] | None,
    backbones_file: str | os.PathLike[str] | None = None,
) -> None:
    """Names given, none repeated, each one an entry (or ``timm/...``, ``...@recipe``); every
    ``weights`` path of a given name an existing file. ``backbones_file`` is registered first. No torch, no timm:
    a ``timm/<name>`` is checked against timm's list when the model is built."""
    from embedstore.backbones import check_name, load_backbones_file

    if backbones_file is not None:
        load_backbones_file(backbones_file)
    names = list(names)
    if not names:
        raise InvalidDataError("no backbone given; pass at least one (--backbone NAME)")
    if len(set(names)) != len(names):
        raise InvalidDataError(f"backbones must not repeat, got {names}")
    for name in names:
        check_name(name)
    for name, path in (weights or {}).items():
        if name in names and not os.path.isfile(path):  # other names: checked once resolved
            raise WeightsNotFoundError(
                f"--weights {name}={path}: no such file; pass the path of a checkpoint file "
                "(.pth / .pt / .ckpt / .safetensors) on this machine"
            )
