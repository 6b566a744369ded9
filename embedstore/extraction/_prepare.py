"""Everything checked before the store is touched: options, device, backbones and their weights.

A failed extraction must not leave an empty store behind, so every model is built and its
checkpoint found, hashed, converted and loaded strictly here, before anything is created.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from embedstore.backbones import (
    BackboneSpec,
    LoadedBackbone,
    get_backbone,
    load_model,
    store_name,
)
from embedstore.data import ImageTransform
from embedstore.errors import InvalidDataError
from embedstore.extraction._check import (
    Options,
    check_backbone_names,
    check_options,
    default_workers,
)

__all__ = [
    "Options",
    "Prepared",
    "autocast",
    "autocast_name",
    "check_options",
    "default_workers",
    "numerics",
    "prepare_backbones",
]


def autocast(device: torch.device) -> tuple[Any, torch.dtype | None]:
    """The autocast context a pass runs its models under on ``device``, and its dtype (None and
    a null context off CUDA)."""
    if device.type != "cuda":
        return contextlib.nullcontext(), None
    amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16  # GPU only
    return torch.autocast(device_type="cuda", dtype=amp), amp  # GPU only


def autocast_name(device: torch.device) -> str | None:
    """The autocast dtype used on this device ('bfloat16' / 'float16' on CUDA), or None."""
    return None if autocast(device)[1] is None else str(autocast(device)[1]).split(".")[-1]


def numerics(device: torch.device, dtype: str, threads: int) -> dict:
    """What determines an array's bits besides its inputs and weights, recorded when the array
    is created: a resume under another configuration is refused (see ``Store.writer``). CPU
    intra-op threads change how reductions are split, so they count on the CPU only."""
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
    check_backbone_names(names, weights, backbones_file)
    names = list(names)
    specs = [get_backbone(n) for n in names]
    weights = dict(weights or {})
    stray = sorted(set(weights) - set(names) - {spec.name for spec in specs})
    if stray:
        raise InvalidDataError(
            f"weights were given for {stray}, which are not among the backbones {names}; "
            "use --weights NAME=PATH with a NAME also passed to --backbone"
        )
    crops = []
    for spec in specs:
        if spec.preprocess.crop is None:
            raise InvalidDataError(
                f"backbone '{spec.name}' has no preprocess.crop; batching needs a fixed image size"
            )
        crops.append(int(spec.preprocess.crop))
    prepared = []
    for name, spec, crop in zip(names, specs, crops, strict=True):
        path = weights.get(name, weights.get(spec.name))
        loaded = load_model(spec, weights=path, unverified_weights=unverified_weights)
        model = loaded.model.eval()
        nbytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        prepared.append(
            Prepared(
                spec=loaded.spec,  # what was loaded: own weights drop timm's weights' description
                loaded=loaded,
                transform=ImageTransform(spec.preprocess),
                shape=(3, crop, crop),
                channels_last=is_cnn(model),
                nbytes=nbytes,
            )
        )
    return prepared
