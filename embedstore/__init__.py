"""embedstore: extract pretrained-backbone embeddings once into Zarr; probe, sweep and fuse them
in seconds without touching a backbone again.

The public API is re-exported here; submodules are the parts (store, archive, data, backbones,
extract, probes, sweep, report).

Every name but ``__version__`` and ``EmbedstoreError`` loads on first use (PEP 562), so that
``import embedstore`` (and every ``embedstore`` command) starts without importing torch, zarr,
scikit-learn or faiss. ``embedstore.extract`` (and ``embedstore.audit``) is both a submodule and the function of that
name: the submodule, once imported, is made callable (``embedstore.extract(...)`` calls
``embedstore.extract.extract(...)``), so neither import order can shadow the function.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from embedstore._version import __version__
from embedstore.errors import EmbedstoreError

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from embedstore.archive import export_archive, import_archive, merge_stores, verify
    from embedstore.audit import audit
    from embedstore.backbones import register_backbone
    from embedstore.data import open_source
    from embedstore.extract import extract
    from embedstore.probes.evaluate import evaluate_probes
    from embedstore.store import (
        SPLIT_CODES,
        TASK_KINDS,
        ArrayInfo,
        DatasetInfo,
        Store,
        create_store,
        open_store,
    )
    from embedstore.sweep import run_sweep

__all__ = [
    "__version__",
    "extract",
    "open_source",
    "evaluate_probes",
    "run_sweep",
    "audit",
    "export_archive",
    "import_archive",
    "verify",
    "merge_stores",
    "register_backbone",
    "EmbedstoreError",
    "SPLIT_CODES",
    "TASK_KINDS",
    "ArrayInfo",
    "DatasetInfo",
    "Store",
    "create_store",
    "open_store",
]

# public name -> the module that defines it; imported on first attribute access.
_LAZY = {
    "evaluate_probes": "embedstore.probes.evaluate",
    "run_sweep": "embedstore.sweep",
    "export_archive": "embedstore.archive",
    "import_archive": "embedstore.archive",
    "verify": "embedstore.archive",
    "merge_stores": "embedstore.archive",
    **dict.fromkeys(
        ("SPLIT_CODES", "TASK_KINDS", "ArrayInfo", "DatasetInfo", "Store", "create_store"),
        "embedstore.store",
    ),
    "open_store": "embedstore.store",
    "register_backbone": "embedstore.backbones",
    "open_source": "embedstore.data",
}


_CALLABLE_MODULES = ("extract", "audit")  # submodules that are also the function of their name


class _CallableModule(types.ModuleType):
    """The ``embedstore.extract`` (``embedstore.audit``) module; calling it calls its function of
    the same name."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


class _Package(types.ModuleType):
    """``embedstore`` itself: the import system binds each imported submodule on the package with
    setattr; the ``extract`` submodule is made callable as it is bound."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE_MODULES and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _CALLABLE_MODULES:
        importlib.import_module(f"embedstore.{name}")  # binds the callable module (above)
        return globals()[name]
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'embedstore' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
