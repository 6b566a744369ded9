"""Own entries: ``register_backbone`` (Python) and backbones files (TOML, for
``--backbones-file``). Plugins (the ``embedstore.backbones`` entry-point group) are read by
``registry.py``.

A backbones file names entries under ``[backbones."<name>"]``::

    [backbones."mylab_vits16.cxr_dino"]
    arch = "timm/vit_small_patch16_224"   # any timm name, or resnet18/resnet50/densenet121/mobilenet_v2
    weights = "checkpoints/teacher.pth"   # relative to this file
    format = "auto"                       # converter: auto, dino, moco, sparsam, torchvision, ...
    recipe = "cls"                        # pooled, cls, mean, cls_mean, last4, gap
    sha256 = "..."                        # optional: a published hash the file must match
    preprocess = { resize = 256, crop = 224, interpolation = "bicubic" }  # default: timm's
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from embedstore.backbones.convert import CONVERTERS
from embedstore.backbones.registry import _REGISTRY, register
from embedstore.backbones.specs import BackboneSpec, Preprocess, WeightsSource
from embedstore.backbones.zoo import _TORCHVISION, IMAGENET
from embedstore.errors import InvalidDataError, SourceError
from embedstore.names import TIMM_PREFIX

__all__ = ["register_backbone", "load_backbones_file"]
_KEYS = {"arch", "weights", "format", "recipe", "sha256", "preprocess", "description", "licence",
         "method", "gated"}  # fmt: skip


def _preprocess(value: Preprocess | Mapping[str, Any] | None) -> Preprocess | None:
    if value is None or isinstance(value, Preprocess):
        return value
    allowed = {f.name for f in fields(Preprocess)}
    bad = sorted(set(value) - allowed)
    if bad:
        raise InvalidDataError(
            f"preprocess keys {bad} are unknown; expected some of {sorted(allowed)}"
        )
    kw = dict(value)
    for key in ("mean", "std"):
        if kw.get(key) is not None:
            kw[key] = tuple(float(v) for v in kw[key])
    return Preprocess(**kw)


def register_backbone(
    name: str,
    arch: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    format: str = "auto",
    recipe: str | None = None,
    sha256: str | None = None,
    preprocess: Preprocess | Mapping[str, Any] | None = None,
    description: str = "",
    licence: str | None = None,
    method: str = "own",
    gated: bool = False,
) -> BackboneSpec:
    """Register an own backbone: an architecture (any timm name, ``timm/`` optional, or a
    torchvision arch of the zoo), a local checkpoint in any supported format, a preprocessing
    (default: timm's for the architecture) and an embedding recipe. Returns the spec."""
    if format not in CONVERTERS:
        raise InvalidDataError(
            f"checkpoint format {format!r} is unknown; expected one of {sorted(CONVERTERS)}"
        )
    src = None
    if weights is not None:
        path = Path(weights).expanduser().resolve()
        src = WeightsSource(url=None, filename=path.name, sha256=sha256, file=str(path))
    pre = _preprocess(preprocess)
    timm_name = arch.removeprefix(TIMM_PREFIX)
    if timm_name in _TORCHVISION and not arch.startswith(TIMM_PREFIX):
        builder, dim, layer = _TORCHVISION[timm_name]
        if recipe not in (None, "gap", "pooled"):
            raise InvalidDataError(
                f"torchvision arch '{arch}' gives the global average pool only; recipe {recipe!r} "
                f"needs a timm model (arch = 'timm/...')"
            )
        spec = BackboneSpec(
            name, timm_name, dim, builder, src, CONVERTERS[format], pre or IMAGENET,
            layer=layer, method=method, description=description or f"own {timm_name}",
            recipe="gap", licence=licence, gated=gated,
        )  # fmt: skip
    else:
        from embedstore.backbones.timm_models import named_timm_spec  # timm, torch: only here

        spec = named_timm_spec(
            name, timm_name, weights=src, convert=CONVERTERS[format], preprocess=pre,
            recipe=recipe or "pooled", method=method, licence=licence, gated=gated,
            description=description or f"own checkpoint on timm {timm_name}",
        )  # fmt: skip
    existing = _REGISTRY.get(name)
    if existing is not None and existing.config() == spec.config():
        return existing  # the same file loaded twice in one process
    return register(spec)


def load_backbones_file(path: str | os.PathLike[str]) -> list[BackboneSpec]:
    """Register every entry of a TOML backbones file; paths are relative to the file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"backbones file {path} does not exist; expected a TOML file")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"backbones file {path} is not valid TOML: {exc}") from None
    table = doc.get("backbones")
    if not isinstance(table, dict) or not table:
        raise SourceError(
            f'backbones file {path} has no [backbones."<name>"] tables; expected e.g. '
            '[backbones."mylab_vit.cxr"] with arch = "timm/vit_small_patch16_224"'
        )
    specs = []
    for name, entry in table.items():
        if not isinstance(entry, dict) or "arch" not in entry:
            raise SourceError(f"{path}: backbone '{name}' needs at least arch = \"...\"")
        bad = sorted(set(entry) - _KEYS)
        if bad:
            raise SourceError(
                f"{path}: backbone '{name}' has unknown keys {bad}; expected {sorted(_KEYS)}"
            )
        kw = dict(entry)
        if kw.get("weights") is not None:
            kw["weights"] = str((path.parent / Path(kw["weights"]).expanduser()).resolve())
        try:
            specs.append(register_backbone(name, kw.pop("arch"), **kw))
        except InvalidDataError as exc:
            raise SourceError(f"{path}: backbone '{name}': {exc}") from None
    return specs
