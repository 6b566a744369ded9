"""Everything checked before the store is touched: options, device, backbones and their weights.

A failed extraction must not leave an empty store behind, so every model is built and its
checkpoint found, hashed, converted and loaded strictly here, before anything is created.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from embedstore.backbones import (
    BackboneSpec,
    LoadedBackbone,
    get_backbone,
    load_backbones_file,
    load_model,
    store_name,
)
from embedstore.data import ImageTransform
from embedstore.devices import resolve_device
from embedstore.errors import InvalidDataError, WeightsNotFoundError

__all__ = ["Options", "Prepared", "check_options", "default_workers", "prepare_backbones"]

DTYPES = ("float16", "float32")


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


def numerics(device: torch.device, dtype: str, threads: int) -> dict:
    """What determines an array's bits besides its inputs and weights, recorded when the array
    is created: a resume under another configuration is refused (see ``Store.writer``). CPU
    intra-op threads change how reductions are split, so they count on the CPU only."""
    from embedstore.extract._pass import autocast_name

    cuda = device.type == "cuda"
    return {
        "torch": torch.__version__.split("+")[0],
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "dtype": dtype,
        "autocast": autocast_name(device),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32) if cuda else None,
        "threads": None if cuda else int(threads),
    }


def is_cnn(model: torch.nn.Module) -> bool:
    """Whether convolutions hold at least half of the model's parameters (channels_last pays).

    A ViT's single patch-embedding convolution holds ~1% of its weights; a ResNet's or an
    EfficientNet's convolutions hold most of them.
    """
    total = sum(p.numel() for p in model.parameters())
    conv = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
        for p in m.parameters(recurse=False)
    )
    return total > 0 and 2 * conv >= total


@dataclass(frozen=True)
class Prepared:
    """One backbone ready to run: the loaded model (on CPU), its preprocessing and input shape."""

    spec: BackboneSpec
    loaded: LoadedBackbone
    transform: ImageTransform
    shape: tuple[int, int, int]
    channels_last: bool
    nbytes: int

    @property
    def name(self) -> str:
        """The array's name in the store (``/`` of ``timm/...`` names spelled ``--``)."""
        return store_name(self.spec.name)


def prepare_backbones(
    names: Sequence[str],
    weights: dict[str, str] | None,
    *,
    unverified_weights: bool = False,
    backbones_file: str | os.PathLike[str] | None = None,
) -> list[Prepared]:
    """Look up every name and load every model with its weights (hash-checked), in order.

    ``backbones_file`` (TOML entries of own checkpoints) is registered first;
    ``unverified_weights`` accepts a ``weights`` file whose sha256 differs from the published one.
    """
    if backbones_file is not None:
        load_backbones_file(backbones_file)
    names = list(names)
    if not names:
        raise InvalidDataError("no backbone given; pass at least one (--backbone NAME)")
    if len(set(names)) != len(names):
        raise InvalidDataError(f"backbones must not repeat, got {names}")
    specs = [get_backbone(n) for n in names]
    weights = dict(weights or {})
    stray = sorted(set(weights) - set(names) - {spec.name for spec in specs})
    if stray:
        raise InvalidDataError(
            f"weights were given for {stray}, which are not among the backbones {names}; "
            "use --weights NAME=PATH with a NAME also passed to --backbone"
        )
    for name, path in weights.items():
        if not os.path.isfile(path):
            raise WeightsNotFoundError(
                f"--weights {name}={path}: no such file; pass the path of a checkpoint file "
                "(.pth / .pt / .ckpt / .safetensors) on this machine"
            )
    for spec in specs:
        if spec.preprocess.crop is None:
            raise InvalidDataError(
                f"backbone '{spec.name}' has no preprocess.crop; batching needs a fixed image size"
            )
    prepared = []
    for name, spec in zip(names, specs, strict=True):
        path = weights.get(name, weights.get(spec.name))
        loaded = load_model(spec, weights=path, unverified_weights=unverified_weights)
        model = loaded.model.eval()
        crop = int(spec.preprocess.crop)
        nbytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        prepared.append(
            Prepared(
                spec=spec,
                loaded=loaded,
                transform=ImageTransform(spec.preprocess),
                shape=(3, crop, crop),
                channels_last=is_cnn(model),
                nbytes=nbytes,
            )
        )
    return prepared
