"""The backbone registry: names (``arch.tag``) to frozen entries (``specs.py``), as in timm's
model registry; the plugins that add entries (the ``embedstore.backbones`` entry-point group).

Names resolved by :func:`get_backbone`, besides registered entries:

- ``timm/<timm name>`` (``timm/convnext_tiny.fb_in22k``, ``timm/hf-hub:<org>/<repo>``): any model
  ``timm.create_model`` accepts, built on the fly (``embedstore.backbones.timm_models``);
- ``<name>@<recipe>``: the same backbone read with another embedding recipe (``recipes.py``).

A spec's ``name`` is also its array name in the store, so it never contains ``/``: ``timm/x/y``
becomes ``timm--x--y`` (the Hugging Face cache's spelling), and that spelling resolves too.

A plugin package declares ``[project.entry-points."embedstore.backbones"] name = "pkg.mod:func"``;
``func()`` returns a BackboneSpec or an iterable of them (or registers them itself).

Building a ``timm/`` or ``@recipe`` spec reads timm (``timm_models.py``, imported on first such
name only, so that listing names imports no torch).
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable

from embedstore.backbones.recipes import parse_recipe, split_recipe
from embedstore.backbones.specs import BackboneSpec
from embedstore.errors import EmbedstoreError, InvalidDataError, UnknownBackboneError
from embedstore.names import TIMM_PREFIX, store_name

__all__ = [
    "ENTRY_POINT_GROUP",
    "register",
    "register_lazy",
    "unregister",
    "check_name",
    "get_backbone",
    "list_backbones",
    "list_entries",
    "list_names",
    "load_entry_points",
]

ENTRY_POINT_GROUP = "embedstore.backbones"
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
        load_entry_points()


def load_entry_points() -> None:
    """Register the entries that installed packages declare in the ``embedstore.backbones``
    entry-point group."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            made = ep.load()()
        except Exception as exc:
            raise InvalidDataError(
                f"backbone plugin '{ep.name}' ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if made is None:
            continue
        for spec in [made] if isinstance(made, BackboneSpec) else list(made):
            if not isinstance(spec, BackboneSpec):
                raise InvalidDataError(
                    f"backbone plugin '{ep.name}' returned {type(spec).__name__}; expected "
                    "BackboneSpec objects"
                )
            if spec.name not in _REGISTRY:
                register(spec)


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
        base, recipe = split_recipe(name)
        if recipe is not None:
            from embedstore.backbones.timm_models import with_recipe  # timm, torch: on first use

            spec = with_recipe(get_backbone(base), recipe)
        elif name.startswith(TIMM_PREFIX) or name.startswith(store_name(TIMM_PREFIX)):
            from embedstore.backbones.timm_models import timm_spec  # timm, torch: on first use

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
    _load_plugins()
    out = []
    with _LOCK:
        for k in _known_names():
            # A lazy entry may carry its facts as plain data (``specs.LazyEntry``'s ``listing``)
            # or a ``stub`` for when its hub config is not on this machine.
            factory = _LAZY.get(k)
            listed = getattr(factory, "listing", None)
            stub = getattr(factory, "stub", None)
            if k not in _REGISTRY and listing and listed is not None:
                out.append(listed)
                continue
            is_cached = getattr(factory, "cached", lambda: True)
            if k not in _REGISTRY and stub is not None and not (cached and is_cached()):
                out.append(stub)  # a listing never goes online for a hub config
                continue
            try:
                out.append(get_backbone(k))
            except EmbedstoreError:
                if stub is None:
                    raise
                out.append(stub)
    return out


def list_names() -> list[str]:
    """Every registered name, without resolving lazy entries (no timm import)."""
    _load_plugins()
    return _known_names()
