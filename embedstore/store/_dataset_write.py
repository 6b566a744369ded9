"""Writing a dataset's ids, labels, splits and groups, so that a kill at any moment leaves a
dataset that is either complete or not listed, and that the next write completes.

The order makes it atomic: the arrays and their checksums first, the dataset's attributes
(``n_samples`` among them) last; a group without ``n_samples`` is not a dataset yet. Replacing a
dataset hides it first (``n_samples`` removed, the digest of its old ids kept as
``pending_ids``), so that the write that completes it keeps the backbone arrays only when the ids,
to which their rows are aligned, are the same. A data array gone from a dataset (deleted by hand)
is written again from the source only if it comes out byte-identical to the one recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zarr

from embedstore.errors import ConflictError
from embedstore.store._access import array, subgroup, values
from embedstore.store._audit import DATASET_KEYS, GONE, RECORD
from embedstore.store._info import ids_digest
from embedstore.store._integrity import array_digest, record_dataset_checksums
from embedstore.store._layout import DatasetAttrs, create_data_array
from embedstore.store._rawmeta import RawMeta, record_digests
from embedstore.store._strings import read_text
from embedstore.store._validate import DATA_ARRAYS, iter_dataset_differences


class DatasetHost(Protocol):
    """What :func:`write_dataset` needs of the :class:`~embedstore.store.Store` it writes into
    (a protocol: this module is below ``_store``, which calls it)."""

    location: str
    _meta: RawMeta

    @property
    def zarr_group(self) -> zarr.Group: ...

    def datasets(self) -> list[str]: ...

    def backbones(self, dataset: str) -> list[str]: ...

    def _audit_dataset(self, name: str) -> None: ...

    def _data_arrays(self, dataset: str) -> set[str]: ...


def write_dataset(
    store: DatasetHost, name: str, data: dict[str, Any], attrs: dict[str, Any], *, overwrite: bool
) -> None:
    """Write (or complete, or replace) dataset ``name``; an identical one is left as it is."""
    root, location = store.zarr_group, store.location
    remove_metadata_orphans(root, "", name)
    if name in store.datasets():
        store._audit_dataset(name)  # damaged metadata: one line (zarr cannot open it)
        g = subgroup(root, name)
        present = store._data_arrays(name)
        gone = gone_arrays(g, present)
        if not gone and same_dataset(g, data, attrs, present):
            return
        if gone and restored(g, gone, data, attrs, present):
            return
        if not overwrite:
            what = (
                f"is damaged: its {', '.join(repr(k) for k in gone)} array(s) are gone"
                if gone
                else "already exists with different ids, labels, splits or classes"
            )
            raise ConflictError(
                f"dataset '{name}' in '{location}' {what}"
                f"{' (this source does not give them back as they were written)' if gone else ''}"
                "; nothing was changed. Pass overwrite=True (--overwrite) to write it from this "
                "source (its backbone arrays are kept when the ids are unchanged), or use another "
                "dataset name"
            )
        n_backbones = len(store.backbones(name))
        old_ids = read_text(values(array(g, "ids"))) if "ids" not in gone else None
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
        for key in DATA_ARRAYS:
            if key in present:
                del g[key]
    elif store._meta(name) is not GONE:  # an interrupted write: finish it
        g = subgroup(root, name)
        keep = DatasetAttrs.of(g).pending_ids == ids_digest(data["ids"])
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
    done = {k: v for k, v in g.attrs.asdict().items() if k not in ("pending_ids", RECORD)}
    final = {**done, **attrs}
    names = [k for k, v in data.items() if v is not None]
    g.attrs.put({**final, RECORD: record_digests(g, names, final, DATASET_KEYS)})


def restored(
    g: zarr.Group, gone: list[str], data: dict[str, Any], attrs: dict, present: set[str]
) -> bool:
    """Write the arrays ``gone`` from a damaged dataset again from ``data`` if they come out
    byte-identical to what was written first (their ``sha256-chunks-v1`` digests, recorded with
    the dataset) and everything else is the same: nothing is changed, only restored. Otherwise
    leave the dataset as found and return False."""
    recorded = DatasetAttrs.of(g).checksums
    if "ids" in gone or any(k not in recorded or data.get(k) is None for k in gone):
        return False
    for key in gone:
        create_data_array(g, key, data[key])
    if all(array_digest(array(g, k)) == recorded[k] for k in gone) and same_dataset(
        g, data, attrs, present | set(gone)
    ):
        return True
    for key in gone:
        del g[key]
    return False


def gone_arrays(g: zarr.Group, present: set[str] | None = None) -> list[str]:
    """The data arrays a listed dataset should hold but does not (``group`` only if recorded);
    ``present``: its data arrays, when known without zarr listing every child."""
    present = set(g.array_keys()) if present is None else present
    recorded = DatasetAttrs.of(g).checksums
    return [k for k in DATA_ARRAYS if k not in present and (k != "group" or k in recorded)]


def same_dataset(
    g: zarr.Group, data: dict[str, np.ndarray | None], attrs: dict, present: set | None = None
) -> bool:
    """Whether a stored dataset has exactly these arrays and identity attributes."""
    present = set(g.array_keys()) if present is None else present

    def stored(key: str) -> np.ndarray | None:
        if key not in present:
            return None
        value, arr = data[key], values(array(g, key))
        return read_text(arr) if value is not None and value.dtype.kind in "OUT" else arr

    differences = iter_dataset_differences(g.attrs.asdict(), stored, attrs, data.get)
    return next(differences, None) is None


def remove_metadata_orphans(root: zarr.Group, *paths: str) -> None:
    """Delete the ``zarr.<uuid>.partial`` files a kill left beside the ``zarr.json`` of these
    groups (zarr's local store writes each file to such a name and renames it; zarr warns of
    every leftover on each read). Local stores only; call it holding the writer lock of what
    writes that ``zarr.json`` (extraction's setup lock for the root and a dataset, an array's
    lock for its backbone group)."""
    base = getattr(root.store, "root", None)
    if not isinstance(base, Path):
        return  # remote stores write whole objects
    for path in paths:
        for leftover in (base / path).glob("zarr.*.partial"):
            leftover.unlink(missing_ok=True)
