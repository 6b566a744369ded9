"""``load_model``: build a registered architecture and load its converted weights strictly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from embedstore.backbones.registry import BackboneSpec, get_backbone
from embedstore.backbones.weights import file_sha256, read_checkpoint, resolve_weights
from embedstore.errors import CheckpointError

__all__ = ["LoadedBackbone", "load_model", "load_state_dict_strict", "build_model"]

_SHOW = 5  # how many bad keys a message names


@dataclass(frozen=True)
class LoadedBackbone:
    """A ready model: eval mode, weights loaded; ``model(x)`` maps (B, 3, H, W) -> (B, spec.dim)."""

    spec: BackboneSpec
    model: nn.Module
    weights_path: str | None
    weights_sha256: str | None


def _few(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOW])
    more = f" … and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
    return f"{len(keys)}: {shown}{more}"


def load_state_dict_strict(model: nn.Module, sd: dict[str, Any], *, what: str = "") -> None:
    """Load ``sd`` into ``model`` requiring exactly its keys and shapes; else CheckpointError."""
    expected = model.state_dict()
    sd = dict(sd)
    for k, v in expected.items():  # files saved before PyTorch 0.4.1 have no BN step counter
        if k.endswith(".num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros_like(v)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and hasattr(sd[k], "shape") and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys ({_few(missing)})")
        if unexpected:
            parts.append(f"unexpected keys ({_few(unexpected)})")
        if wrong:
            parts.append(f"shape mismatches, checkpoint vs model ({_few(wrong)})")
        raise CheckpointError(
            f"checkpoint{f' for {what!r}' if what else ''} does not fit its architecture after "
            f"conversion: {'; '.join(parts)}. Expected the upstream file named in the registry "
            "(see `embedstore backbones`); a different architecture or format will not load"
        )
    model.load_state_dict(sd, strict=True)


def build_model(spec: BackboneSpec) -> nn.Module:
    """The bare architecture, built under ``torch.manual_seed(0)`` without touching global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return spec.builder()


def load_model(
    name_or_spec: str | BackboneSpec, weights: str | os.PathLike[str] | None = None
) -> LoadedBackbone:
    """Build a backbone and load its weights: ``weights`` (a local file) if given, else the
    registry's source (hub cache, package, download). A spec without a weights source is a
    random test backbone: built deterministically (seed 0), nothing loaded unless ``weights``.
    """
    spec = get_backbone(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    model = build_model(spec)
    path = digest = None
    if spec.weights is not None or weights is not None:
        if spec.weights is not None:
            resolved = resolve_weights(spec.weights, weights, name=spec.name)
            path, digest = resolved.path, resolved.sha256
        else:
            path, digest = os.fspath(weights), file_sha256(weights)
        ckpt = read_checkpoint(path)
        if not isinstance(ckpt, dict):
            raise CheckpointError(
                f"checkpoint {path} for '{spec.name}' holds a {type(ckpt).__name__}; "
                "expected a state dict or a dict wrapping one"
            )
        load_state_dict_strict(model, spec.convert(ckpt), what=spec.name)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedBackbone(spec=spec, model=model, weights_path=path, weights_sha256=digest)
