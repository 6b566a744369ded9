"""``sha256-chunks-v1`` digests, the metadata safety rules, and the manifest check."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from embedstore.errors import ArchiveError, ArrayNotFoundError
from embedstore.store.layout import CHECKSUM_SCHEME as CHECKSUM_SCHEME
from embedstore.store.layout import (
    MAX_ATTRIBUTE_BYTES,
    Digest,
    RawStore,
    chunk_coords,
    metadata_sha256,
    open_raw,
)
from embedstore.store.layout import META as _META

MANIFEST_KEY = "embedstore_manifest"
MANIFEST_VERSION = 1


def _chunk_keys(array: str, meta: dict, keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """(chunk keys in grid order, stray keys) of one array, keys relative to the store root."""
    prefix = array + "/"
    chunks, stray = [], []
    for k in keys:
        rel = k[len(prefix) :]
        if rel == _META:
            continue
        coords = chunk_coords(rel, meta)
        if coords is None or not _in_grid(coords, meta):
            stray.append(k)
        else:
            chunks.append((coords, k))
    return [k for _, k in sorted(chunks)], stray


def _in_grid(coords: tuple[int, ...], meta: dict) -> bool:
    """Whether chunk coordinates lie within the array's grid (a chunk beyond it is stray)."""
    grid = meta.get("chunk_grid")
    config = grid.get("configuration") if isinstance(grid, dict) else None
    shape = meta.get("shape")
    chunks = config.get("chunk_shape") if isinstance(config, dict) else None
    if not isinstance(shape, list) or not isinstance(chunks, list):
        return True  # malformed: the metadata rules report it
    if len(coords) != len(shape) or len(chunks) != len(shape):
        return False
    if not all(isinstance(v, int) for v in shape + chunks):
        return True
    return all(0 <= c < -(-s // max(1, k)) or (s == 0 and c == 0) for c, s, k in
               zip(coords, shape, chunks, strict=True))  # fmt: skip


def array_sha256(location: str, array: str, *, storage_options: dict | None = None) -> str:
    """``sha256-chunks-v1`` digest of one array (path like 'dataset/backbone/embeddings')."""
    raw = open_raw(str(location), storage_options)
    try:
        layout = _Layout(raw)
        if array not in layout.arrays:
            raise ArrayNotFoundError(
                f"no array '{array}' in '{location}' (arrays: {', '.join(layout.arrays)})"
            )
        return layout.digest(array).hexdigest()
    finally:
        raw.close()


class _Layout:
    """Nodes (groups and arrays) of a raw store with their parsed metadata and chunk keys."""

    def __init__(self, raw: RawStore, keys: Sequence[str] | None = None) -> None:
        self.raw = raw
        self.keys = list(raw.keys() if keys is None else keys)
        self.meta: dict[str, Any] = {}
        self.problems: list[str] = []
        for k in self.keys:
            if k == _META or k.endswith("/" + _META):
                node = k[: -len(_META)].rstrip("/")
                try:
                    data = raw.read(k)
                    too_large = len(data) > MAX_ATTRIBUTE_BYTES  # never parsed
                    self.meta[node] = {"_too_large": len(data)} if too_large else json.loads(data)
                except (ValueError, UnicodeDecodeError) as exc:
                    self.meta[node] = None
                    self.problems.append(f"{k}: not valid JSON ({exc})")
        self.arrays = sorted(
            n for n, m in self.meta.items() if isinstance(m, dict) and m.get("node_type") == "array"
        )
        by_array: dict[str, list[str]] = {a: [] for a in self.arrays}
        self.stray: list[str] = []
        for k in self.keys:
            if k == _META or k.endswith("/" + _META):
                continue
            owner = next((a for a in self.arrays if k.startswith(a + "/")), None)
            if owner is None:
                self.stray.append(k)
            else:
                by_array[owner].append(k)
        self.chunks: dict[str, list[str]] = {}
        for a in self.arrays:
            self.chunks[a], stray = _chunk_keys(a, self.meta[a], by_array[a])
            self.stray += stray

    def digest(self, array: str, sink: Callable[[str, bytes], None] | None = None) -> Digest:
        """Digest of one array's chunks; ``sink(key, data)`` sees every chunk as it is read."""
        d = Digest()
        for k in self.chunks[array]:
            data = self.raw.read(k)
            d.add(k[len(array) + 1 :], data)
            if sink is not None:
                sink(k, data)
        return d


def _array_entry(meta: dict, digest: Digest) -> dict[str, Any]:
    return {
        "sha256": digest.hexdigest(),
        "n_chunks": digest.n_chunks,
        "nbytes": digest.nbytes,
        "shape": list(meta.get("shape", [])),
        "dtype": meta.get("data_type"),
        "chunk_shape": list(
            ((meta.get("chunk_grid") or {}).get("configuration") or {}).get("chunk_shape", [])
        ),
    }


def _check_manifest(layout: _Layout, manifest: dict, found: dict, status: dict) -> None:
    nodes, arrays = manifest["nodes"], manifest["arrays"]
    for node in sorted(set(nodes) | {n for n in layout.meta if n}):
        if node not in layout.meta:
            found.setdefault(node, []).append("listed in the manifest but missing")
            if node in arrays:
                status[node] = "missing"
        elif node not in nodes:
            found.setdefault(node, []).append("not listed in the manifest (added after export?)")
        elif metadata_sha256(layout.meta[node]) != nodes[node].get("metadata_sha256"):
            found.setdefault(node, []).append("metadata (zarr.json) differs from the manifest")
    for a in layout.arrays:
        if a not in arrays:
            status[a] = "unlisted"
            continue
        expected = arrays[a]
        try:
            d = layout.digest(a)
        except (ArchiveError, OSError) as exc:
            status[a] = "mismatch"
            found.setdefault(a, []).append(f"stored chunks unreadable: {exc}")
            continue
        if d.hexdigest() == expected.get("sha256"):
            status[a] = "ok"
        else:
            status[a] = "mismatch"
            found.setdefault(a, []).append(
                f"checksum mismatch: its {d.n_chunks} stored chunk(s) hash to "
                f"{d.hexdigest()[:12]}…, "
                f"the manifest says {str(expected.get('sha256'))[:12]}… "
                f"({expected.get('n_chunks')} chunk(s)); the data was altered or corrupted"
            )
