"""embedstore: extract pretrained-backbone embeddings once into Zarr; probe, sweep and fuse them
in seconds without touching a backbone again.

The public API is re-exported here; subpackages are the parts (see docs/architecture.md).

Every name but ``__version__`` and ``EmbedstoreError`` loads on first use (PEP 562), so that
``import embedstore`` (and every ``embedstore`` command) starts without importing torch, zarr,
scikit-learn or faiss. No public function shares its name with a subpackage (``extract`` lives in
``embedstore.extraction``, ``audit`` in ``embedstore.auditing``), so an import never shadows one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from embedstore._version import __version__
from embedstore.errors import EmbedstoreError

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from embedstore.archive import export_archive, import_archive, merge_stores, verify
    from embedstore.auditing import audit
    from embedstore.backbones import register_backbone
    from embedstore.data import open_source
    from embedstore.engine.probe import evaluate_probes
    from embedstore.engine.sweep import run_sweep
    from embedstore.extraction import extract
    from embedstore.store import (
        SPLIT_CODES,
        TASK_KINDS,
        ArrayInfo,
        DatasetInfo,
        Store,
        create_store,
        open_store,
    )

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
    "evaluate_probes": "embedstore.engine.probe",
    "run_sweep": "embedstore.engine.sweep",
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
    "extract": "embedstore.extraction",
    "audit": "embedstore.auditing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'embedstore' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
