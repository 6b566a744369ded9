"""Checksums written with the data, so that damage to a plain store is found, not only in archives.

- Dataset arrays (ids, labels, split, group), written once: their ``sha256-chunks-v1`` digest
  (the archive manifest's scheme, below) in the dataset's attributes, ``checksums``.
- Embeddings, written chunk by chunk by possibly several processes: per chunk, in the backbone's
  ``checksums`` (n_chunks, 32) and ``chunk_nbytes`` (n_chunks,) arrays, written by the writer
  right after the chunk (see ``_writer``).

``sha256-chunks-v1`` of an array: sha256 over its stored chunk files, exactly as stored
(compressed), in chunk-grid order (integer coordinates, row-major); each chunk contributes
``key + b"\\0" + size (8 bytes, big-endian) + bytes``, ``key`` relative to the array (``c/3/0``).
Chunks never written are absent and contribute nothing.
"""

from __future__ import annotations

import hashlib

import zarr

from embedstore.store._access import array, stored_keys

CHECKSUM_SCHEME = "sha256-chunks-v1"


def chunk_coords(rel: str, meta: dict) -> tuple[int, ...] | None:
    """Integer chunk coordinates of a chunk key relative to its array, None if not a chunk key."""
    enc = meta.get("chunk_key_encoding") or {}
    if not isinstance(enc, dict) or not isinstance(enc.get("configuration") or {}, dict):
        return None
    default_sep = "/" if enc.get("name") == "default" else "."
    sep = (enc.get("configuration") or {}).get("separator", default_sep)
    if enc.get("name") == "default":
        if rel == "c":
            return ()
        if not rel.startswith("c" + sep):
            return None
        rel = rel[2:]
    try:
        return tuple(int(p) for p in rel.split(sep))
    except ValueError:
        return None


class Digest:
    """Accumulates ``sha256-chunks-v1`` over an array's chunks, fed in grid order."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.n_chunks = 0
        self.nbytes = 0

    def add(self, rel_key: str, data: bytes) -> None:
        self._h.update(rel_key.encode() + b"\0" + len(data).to_bytes(8, "big"))
        self._h.update(data)
        self.n_chunks += 1
        self.nbytes += len(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def array_digest(array: zarr.Array) -> str:
    """``sha256-chunks-v1`` of an array, from its stored chunk files."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    prefix = f"{array.path}/".lstrip("/")
    meta = array.metadata.to_dict()
    found = []
    for key in stored_keys(array):
        rel = key[len(prefix) :]
        coords = chunk_coords(rel, meta) if rel != "zarr.json" else None
        if coords is not None:
            found.append((coords, key, rel))
    d = Digest()
    for _, key, rel in sorted(found):
        buf = sync(array.store.get(key, prototype=default_buffer_prototype()))
        d.add(rel, b"" if buf is None else buf.to_bytes())
    return d.hexdigest()


def record_dataset_checksums(group: zarr.Group, names: list[str]) -> None:
    """Write the digests of a dataset's data arrays into its attributes."""
    group.update_attributes(
        {
            "checksum": CHECKSUM_SCHEME,
            "checksums": {name: array_digest(array(group, name)) for name in names},
        }
    )
