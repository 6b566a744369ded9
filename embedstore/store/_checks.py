"""Cheap layout checks run on every read, so that a damaged store is refused, not misread.

What they cover without reading any chunk: an embeddings array with the wrong number of rows,
one marked complete whose chunks were not all written (``progress``), a chunk file that was
deleted (its zeros would otherwise read as data), labels outside the classes. What needs the
bytes is found as they are read (zstd's frame checksum fails on a flipped byte, a truncated chunk
fails to decode) or by ``embedstore verify``, which recomputes every chunk's sha256.
"""

from __future__ import annotations

import numpy as np
import zarr

from embedstore.errors import CorruptStoreError
from embedstore.store._access import array, stored_keys, values
from embedstore.store._layout import BackboneAttrs


def _corrupt(location: str, path: str, what: str) -> CorruptStoreError:
    return CorruptStoreError(
        f"'{path}' in store '{location}' is damaged: {what}; nothing was read. "
        f"`embedstore verify {location}` lists every damage; extract the array again "
        "(--overwrite) or import a good copy"
    )


def check_labels(values: np.ndarray, task: str, n_classes: int, location: str, dataset: str):
    """Labels must be class indices in [0, n_classes) (0/1 for multilabel)."""
    if not values.size:
        return
    if task == "multilabel":
        if values.ndim != 2 or values.shape[1] != n_classes or not np.isin(values, (0, 1)).all():
            raise _corrupt(
                location, f"{dataset}/labels", f"multilabel labels must be 0/1 per class"
                f" ({n_classes}), got shape {values.shape}, values {np.unique(values)[:5]}"
            )  # fmt: skip
    elif values.min() < 0 or values.max() >= n_classes:
        raise _corrupt(
            location,
            f"{dataset}/labels",
            f"labels in [{values.min()}, {values.max()}], outside the {n_classes} classes "
            f"[0, {n_classes - 1}]",
        )


def chunk_keys(array: zarr.Array) -> list[str]:
    """Keys (relative to the store root) of every row-chunk of a 1-D or 2-D array."""
    n_chunks = -(-array.shape[0] // array.chunks[0])
    tail = (0,) * (array.ndim - 1)
    return [
        f"{array.path}/{array.metadata.encode_chunk_key((i, *tail))}".lstrip("/")
        for i in range(n_chunks)
    ]


# Every backbone group holds these; ``checksums`` and ``chunk_nbytes`` (per-chunk sha256 and size)
# are optional: format-1 arrays have none, and reads never need them (``verify`` says so).
BACKBONE_ARRAYS = ("embeddings", "progress", "missing", "missing_reason")


def check_backbone_arrays(bg: zarr.Group, location: str, path: str) -> set[str]:
    """The group's array names (one listing); :class:`CorruptStoreError` when one it needs is
    gone (its ``zarr.json`` deleted, or a kill while an earlier version deleted the group)."""
    keys = set(bg.array_keys())
    gone = [name for name in BACKBONE_ARRAYS if name not in keys]
    if gone:
        names = ", ".join(f"'{name}'" for name in gone)
        raise _corrupt(location, path, f"its {names} array{'s are' if len(gone) > 1 else ' is'} "
                       "gone (no zarr.json)")  # fmt: skip
    return keys


def check_embeddings_readable(
    bg: zarr.Group, n_samples: int, location: str, path: str, keys: set[str]
) -> None:
    """Refuse a complete embeddings array that breaks the layout rules (no chunk is read);
    ``keys``: its arrays, as :func:`check_backbone_arrays` returned them."""
    arr = array(bg, "embeddings")
    if arr.ndim != 2 or arr.shape[0] != n_samples:
        raise _corrupt(
            location, f"{path}/embeddings", f"shape {arr.shape}, expected ({n_samples}, dim)"
        )
    progress = values(array(bg, "progress"))
    not_done = np.flatnonzero(progress != 1)
    if len(not_done):
        raise _corrupt(
            location,
            path,
            f"marked complete, but {len(not_done)} of {len(progress)} chunk(s) were never "
            f"written (first: chunk {int(not_done[0])}, rows from "
            f"{int(not_done[0]) * arr.chunks[0]})",
        )
    stored = stored_keys(arr)
    gone = [k for k in chunk_keys(arr) if k not in stored]
    if gone and "checksums" not in keys:
        # format 1 did not store a chunk of zeros (every row missing); format 2 stores each one
        missing, rows = values(array(bg, "missing")).astype(bool), int(arr.chunks[0])
        index = {k: i for i, k in enumerate(chunk_keys(arr))}
        gone = [k for k in gone if not missing[index[k] * rows : (index[k] + 1) * rows].all()]
    if gone:
        raise _corrupt(
            location,
            f"{path}/embeddings",
            f"{len(gone)} chunk file(s) are missing (first: '{gone[0]}')",
        )


def problems_of_embeddings(bg: zarr.Group, n_samples: int) -> list[str]:
    """Every layout problem of one backbone group, as lines (for ``verify``; reads no chunk)."""
    out: list[str] = []
    keys = set(bg.array_keys())
    for name in BACKBONE_ARRAYS:
        if name not in keys:
            out.append(f"its '{name}' array is gone (no zarr.json)")
    for have, lost in (("checksums", "chunk_nbytes"), ("chunk_nbytes", "checksums")):
        if have in keys and lost not in keys:  # format 1 has neither: one alone is damage
            out.append(f"its '{lost}' array is gone (no zarr.json): chunks cannot be checked")
    if "embeddings" not in keys or "progress" not in keys:
        return out
    arr, progress = array(bg, "embeddings"), values(array(bg, "progress"))
    complete = bool(BackboneAttrs.of(bg).complete)
    if arr.shape[0] != n_samples:
        out.append(f"{arr.shape[0]} rows, expected one per sample ({n_samples})")
    not_done = np.flatnonzero(progress != 1)
    if complete and len(not_done):
        out.append(
            f"marked complete, but {len(not_done)} of {len(progress)} chunk(s) were never "
            f"written (first: chunk {int(not_done[0])})"
        )
    elif not complete:
        out.append(
            f"incomplete ({len(progress) - len(not_done)} of {len(progress)} chunks written, "
            "complete=false): rerun the extraction to finish it"
        )
    return out
