"""The declared shapes of a store's arrays against its layout and the chunks actually stored.

Zarr allocates and iterates in proportion to an array's *declared* shape: ``array[...]`` of an
array declaring ``[120, 1000000000]`` asks for 240 GB whatever the store holds, and a grid of
small chunks over such a shape is iterated chunk by chunk. So before any chunk is decoded,
``verify`` and ``import`` check every array's metadata against the layout (read from metadata
alone, no chunk decoded):

- a dataset's ``n_samples`` is backed by its ``ids``: ids are never all zeros, so every chunk of
  their grid is stored; ``ids`` (and ``group``) declaring more chunks than are stored is refused;
- every other array's shape follows from ``n_samples`` and the dataset's attributes: ``labels``
  ``(n,)`` or ``(n, classes)``, ``split`` ``(n,)``, per backbone ``embeddings`` ``(n, dim)``
  chunked by rows only, ``progress``/``chunk_nbytes`` ``(n_chunks,)``, ``checksums``
  ``(n_chunks, 32)``, ``missing`` ``(n,)``, ``missing_reason`` ``(n, width)``;
- with each chunk bounded in size by the metadata rules (``_zipcheck``), memory and time are then
  bounded by the chunks that exist, not by what a hostile ``zarr.json`` declares.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from embedstore.store._strings import REASON_BYTES

_SAMPLE_ARRAYS = ("labels", "split", "missing", "missing_reason", "embeddings")
_CHUNK_ARRAYS = {"progress": (), "chunk_nbytes": (), "checksums": (32,)}


def _chunk_shape(meta: Mapping[str, Any]) -> list[int]:
    return list(((meta.get("chunk_grid") or {}).get("configuration") or {}).get("chunk_shape", []))


def grid_chunks(meta: Mapping[str, Any]) -> int:
    """How many chunks an array's grid declares (arithmetic only: nothing is iterated)."""
    n = 1
    for size, chunk in zip(meta.get("shape") or [], _chunk_shape(meta), strict=False):
        n *= -(-int(size) // max(1, int(chunk)))
    return n


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def shape_problems(
    metas: Mapping[str, Any], stored: Mapping[str, int]
) -> Iterator[tuple[str, str]]:
    """(node, problem) for every array whose declared shape the layout or the stored chunks do
    not back; ``metas``: parsed zarr.json by node path ('' the root), ``stored``: chunk files
    stored per array path. Reads no chunk; call before anything decodes one."""
    for ds, meta in metas.items():
        if "/" in ds or not ds or not isinstance(meta, dict) or meta.get("node_type") != "group":
            continue
        attrs = meta.get("attributes") or {}
        if not isinstance(attrs, dict) or "n_samples" not in attrs:
            continue  # not a dataset (or an interrupted one): nothing is read from it
        n = _int(attrs.get("n_samples"))
        if n is None:
            yield ds, f"n_samples {attrs.get('n_samples')!r} is not a non-negative integer"
            continue
        yield from _dataset_problems(ds, n, attrs, metas, stored)


def _array(metas: Mapping[str, Any], path: str) -> dict | None:
    meta = metas.get(path)
    return meta if isinstance(meta, dict) and meta.get("node_type") == "array" else None


def _dataset_problems(ds, n, attrs, metas, stored) -> Iterator[tuple[str, str]]:
    for name in ("ids", "group"):
        meta = _array(metas, f"{ds}/{name}")
        if meta is None:
            continue
        shape = meta.get("shape") or [None]
        if shape[0] != n:
            yield f"{ds}/{name}", f"shape {shape}: {shape[0]} rows, but n_samples is {n}"
        elif grid_chunks(meta) > stored.get(f"{ds}/{name}", 0):
            yield (
                f"{ds}/{name}",
                f"shape {shape} declares {grid_chunks(meta):,} chunks but "
                f"{stored.get(f'{ds}/{name}', 0):,} are stored: the shape is not backed by data",
            )
    classes = attrs.get("class_names")
    k = len(classes) if isinstance(classes, list) else None
    expected = {"split": [n], "labels": [n, k] if attrs.get("task") == "multilabel" else [n]}
    for name, want in expected.items():
        meta = _array(metas, f"{ds}/{name}")
        if meta is not None and meta.get("shape") != want:
            yield f"{ds}/{name}", f"shape {meta.get('shape')}, expected {want} (n_samples {n})"
    for node in metas:
        head, _, bb = node.rpartition("/")
        if head == ds and _array(metas, node) is None and isinstance(metas[node], dict):
            yield from _backbone_problems(node, n, metas)


def _backbone_problems(bg: str, n: int, metas) -> Iterator[tuple[str, str]]:
    emb = _array(metas, f"{bg}/embeddings")
    if emb is None:
        return
    shape, chunks = list(emb.get("shape") or []), _chunk_shape(emb)
    if len(shape) != 2 or shape[0] != n or chunks[1:] != shape[1:]:
        yield (
            f"{bg}/embeddings",
            f"shape {shape} chunked {chunks}: expected ({n}, dim) chunked by whole rows",
        )
        return
    n_chunks = -(-n // max(1, int(chunks[0])))
    wants: dict[str, list[list[int]]] = {
        name: [[n_chunks, *tail]] for name, tail in _CHUNK_ARRAYS.items()
    }
    wants["missing"] = [[n]]
    wants["missing_reason"] = [[n], [n, REASON_BYTES]]  # format 1 stored strings
    for name, allowed in wants.items():
        meta = _array(metas, f"{bg}/{name}")
        if meta is not None and meta.get("shape") not in allowed:
            yield (
                f"{bg}/{name}",
                f"shape {meta.get('shape')}, expected {' or '.join(map(str, allowed))}",
            )
