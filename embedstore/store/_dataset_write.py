"""Writing a dataset's ids, labels, splits and groups, so that a kill at any moment leaves a
dataset that is either complete or not listed, and that the next write completes.

The order makes it atomic: the arrays and their checksums first, the dataset's attributes
(``n_samples`` among them) last; a group without ``n_samples`` is not a dataset yet. Replacing a
dataset hides it first (``n_samples`` removed, the digest of its old ids kept as
``pending_ids``), so that the write that completes it keeps the backbone arrays only when the ids,
to which their rows are aligned, are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from embedstore.errors import ConflictError
from embedstore.store._info import ids_digest
from embedstore.store._integrity import record_dataset_checksums
from embedstore.store._layout import create_data_array
from embedstore.store._strings import read_text
from embedstore.store._validate import _DATA_ARRAYS, _iter_dataset_differences

if TYPE_CHECKING:
    from embedstore.store._store import Store


def write_dataset(
    store: Store, name: str, data: dict[str, Any], attrs: dict[str, Any], *, overwrite: bool
) -> None:
    """Write (or complete, or replace) dataset ``name``; an identical one is left as it is."""
    root, location = store.zarr_group, store.location
    if name in store.datasets():
        g = root[name]
        gone = gone_arrays(g)
        if not gone and same_dataset(g, data, attrs):
            return
        if not overwrite:
            what = (
                f"is damaged: its {', '.join(repr(k) for k in gone)} array(s) are gone"
                if gone
                else "already exists with different ids, labels, splits or classes"
            )
            raise ConflictError(
                f"dataset '{name}' in '{location}' {what}; nothing was changed. Pass "
                "overwrite=True (--overwrite) to write it from this source (its backbone arrays "
                "are kept when the ids are unchanged), or use another dataset name"
            )
        n_backbones = len(store.backbones(name))
        old_ids = read_text(g["ids"][:]) if "ids" not in gone else None
        if n_backbones and (old_ids is None or not np.array_equal(old_ids, data["ids"])):
            why = "new ids would misalign them" if old_ids is not None else "its ids are gone"
            raise ConflictError(
                f"dataset '{name}' has embeddings for {n_backbones} backbone(s) aligned to its "
                f"current ids; {why}. Delete the dataset first (Store.delete_dataset) to replace "
                "its samples"
            )
        # Hidden until rewritten: a kill from here on leaves a dataset that is not listed and
        # that the next write completes, keeping backbones only for equal ids.
        hidden = {k: v for k, v in g.attrs.asdict().items() if k != "n_samples"}
        g.attrs.put({**hidden, "pending_ids": ids_digest(old_ids if old_ids is not None else [])})
        for key in _DATA_ARRAYS:
            if key in g.array_keys():
                del g[key]
    elif name in root.group_keys():  # an interrupted write: finish it
        g = root[name]
        keep = g.attrs.get("pending_ids") == ids_digest(data["ids"])
        for key in list(g.array_keys()):
            del g[key]
        for key in list(g.group_keys()):
            if not keep:  # aligned to ids that are gone: they cannot be trusted
                del g[key]
    else:
        g = root.create_group(name, overwrite=True)  # clears a folder left without zarr.json
    for key, value in data.items():
        if value is not None:
            create_data_array(g, key, value)
    record_dataset_checksums(g, [k for k, v in data.items() if v is not None])
    # last, in one write (zarr's attrs.update writes once per key): a dataset from here on
    done = {k: v for k, v in g.attrs.asdict().items() if k != "pending_ids"}
    g.attrs.put({**done, **attrs})


def gone_arrays(g: zarr.Group) -> list[str]:
    """The data arrays a listed dataset should hold but does not (``group`` only if recorded)."""
    present, recorded = set(g.array_keys()), g.attrs.get("checksums") or {}
    return [k for k in _DATA_ARRAYS if k not in present and (k != "group" or k in recorded)]


def same_dataset(g: zarr.Group, data: dict[str, np.ndarray | None], attrs: dict) -> bool:
    """Whether a stored dataset has exactly these arrays and identity attributes."""

    def stored(key: str) -> np.ndarray | None:
        if key not in g.array_keys():
            return None
        value, arr = data[key], g[key][:]
        return read_text(arr) if value is not None and value.dtype.kind in "OUT" else arr

    differences = _iter_dataset_differences(g.attrs.asdict(), stored, attrs, data.get)
    return next(differences, None) is None
