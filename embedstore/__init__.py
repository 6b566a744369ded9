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
    "EmbedstoreError",
    "SPLIT_CODES",
    "TASK_KINDS",
    "ArrayInfo",
    "DatasetInfo",
    "Store",
    "create_store",
    "open_store",
]
