"""embedstore: extract pretrained-backbone embeddings once into Zarr; probe, sweep and fuse them
in seconds without touching a backbone again.

The public API is re-exported here; submodules are the parts (store, archive, data, backbones,
extract, probes, sweep, report).
"""

from __future__ import annotations

from embedstore._version import __version__
from embedstore.errors import EmbedstoreError
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
    "evaluate_probes",
    "run_sweep",
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

# `embedstore.extract` is the function (it shares its name with its module, so it is bound
# eagerly: a lazy binding would be replaced by the module on first import). The other heavy
# parts (faiss, the probes, the archive machinery) load on first use.
from embedstore.extract import extract  # noqa: E402

_LAZY = {
    "evaluate_probes": "embedstore.probes.evaluate",
    "run_sweep": "embedstore.sweep",
    "export_archive": "embedstore.archive",
    "import_archive": "embedstore.archive",
    "verify": "embedstore.archive",
    "merge_stores": "embedstore.archive",
    "register_backbone": "embedstore.backbones",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedstore' has no attribute '{name}'")
