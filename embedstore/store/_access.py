"""Typed access to zarr nodes: zarr types ``group[name]`` as an array or a group and ``array[sel]``
as any JSON-like value; the layout knows which each one is, and says so here, once."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr
from zarr.core.metadata import ArrayV3Metadata


def array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group`` (the layout has an array there)."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise TypeError(f"'{group.path}/{name}' is a group where the layout has an array")
    return node


def subgroup(group: zarr.Group, name: str) -> zarr.Group:
    """The group ``name`` of ``group`` (a dataset of the root, a backbone of a dataset)."""
    node = group[name]
    if not isinstance(node, zarr.Group):
        raise TypeError(f"'{group.path}/{name}' is an array where the layout has a group")
    return node


def stored_keys(arr: zarr.Array) -> set[str]:
    """The keys stored under an array's folder (one listing, no chunk read)."""
    from zarr.core.sync import sync

    async def collect() -> list[str]:
        return [k async for k in arr.store.list_prefix(f"{arr.path}/".lstrip("/"))]

    return set(sync(collect()))


def values(arr: zarr.Array, sel: Any = slice(None)) -> np.ndarray:
    """``arr[sel]`` as an ndarray (a selection of rows, not of one element)."""
    return np.asarray(arr[sel])


def v3_metadata(arr: zarr.Array) -> ArrayV3Metadata | None:
    """The array's Zarr v3 metadata (None for a Zarr v2 array, which the layout never writes)."""
    meta = arr.metadata
    return meta if isinstance(meta, ArrayV3Metadata) else None
