"""``sha256-chunks-v1`` digests, the metadata safety rules, and the manifest check."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from embedstore.archive._members import _META, _open_raw, _Raw
from embedstore.errors import ArchiveError, ArrayNotFoundError

MANIFEST_KEY = "embedstore_manifest"
MANIFEST_VERSION = 1
CHECKSUM_SCHEME = "sha256-chunks-v1"
# Zarr v3 core data types that embedstore writes (format 2); format 1 also used the `string`
# extension type with its `vlen-utf8` codec, accepted only in archives of format 1.
_ITEMSIZE = {
    "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "float16": 2,
    "int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8,
}  # fmt: skip
_SAFE_DTYPES = frozenset(_ITEMSIZE)
_SAFE_CODECS = frozenset({"bytes", "zstd", "gzip", "blosc", "crc32c", "transpose"})
_LEGACY_DTYPES, _LEGACY_CODECS = frozenset({"string"}), frozenset({"vlen-utf8"})
MAX_ARRAY_BYTES = 2**40  # 1 TiB: far beyond any embedding store, far below an overflow
MAX_CHUNK_BYTES = 2**28  # 256 MiB decoded per chunk (embedstore writes ~4 MiB chunks)


def _canonical_sha256(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _metadata_problems(meta: Any, *, legacy: bool = False) -> list[str]:
    """Why a node's zarr.json is not a safe, plain embedstore node (empty when it is).

    ``legacy``: the store is format 1, whose text arrays use the ``string`` extension type.
    """
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
        return ["metadata is not Zarr v3 (zarr_format 3)"]
    node_type = meta.get("node_type")
    if node_type == "group":
        return []
    if node_type != "array":
        return [f"unknown node_type {node_type!r}"]
    problems = []
    dtypes = _SAFE_DTYPES | (_LEGACY_DTYPES if legacy else frozenset())
    allowed_codecs = _SAFE_CODECS | (_LEGACY_CODECS if legacy else frozenset())
    if meta.get("data_type") not in dtypes:
        problems.append(
            f"data type {meta.get('data_type')!r} is not a Zarr v3 core bool, integer or float type"
        )
    codecs = meta.get("codecs") or []
    names = [c.get("name") if isinstance(c, dict) else c for c in codecs]
    unsafe = [str(n) for n in names if n not in allowed_codecs]
    if unsafe:
        problems.append(
            f"codec(s) {', '.join(unsafe)} not accepted "
            f"(allowed: {', '.join(sorted(allowed_codecs))})"
        )
    problems += _shape_problems(meta)
    if (meta.get("chunk_grid") or {}).get("name") != "regular":
        problems.append("chunk grid is not 'regular'")
    if (meta.get("chunk_key_encoding") or {}).get("name") not in ("default", "v2"):
        problems.append("chunk key encoding is not 'default' or 'v2'")
    if meta.get("storage_transformers"):
        problems.append("storage transformers are not accepted")
    return problems


def _shape_problems(meta: dict) -> list[str]:
    """A shape or chunk shape that is malformed, or so large that reading it would exhaust memory."""
    shape = meta.get("shape")
    chunks = ((meta.get("chunk_grid") or {}).get("configuration") or {}).get("chunk_shape")

    def ints(v: Any, low: int) -> bool:
        return (
            isinstance(v, list)
            and 1 <= len(v) <= 3
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= low for x in v)
        )

    if not ints(shape, 0) or not ints(chunks, 1) or len(shape) != len(chunks):
        return [f"shape {shape!r} / chunk shape {chunks!r} are not 1 to 3 non-negative integers"]
    size = _ITEMSIZE.get(meta.get("data_type"), 8)
    total, per_chunk = size, size
    for n, c in zip(shape, chunks, strict=True):
        total, per_chunk = total * n, per_chunk * min(c, max(n, 1))
    if total > MAX_ARRAY_BYTES:
        return [f"shape {shape} would hold {total:,} bytes, over the {MAX_ARRAY_BYTES:,} accepted"]
    if per_chunk > MAX_CHUNK_BYTES:
        return [
            f"chunk shape {chunks} would decode to {per_chunk:,} bytes per chunk, over the "
            f"{MAX_CHUNK_BYTES:,} accepted"
        ]
    return []


def _chunk_coords(rel: str, meta: dict) -> tuple[int, ...] | None:
    """Integer chunk coordinates of a chunk key relative to its array, None if not a chunk key."""
    enc = meta.get("chunk_key_encoding") or {}
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


def _chunk_keys(array: str, meta: dict, keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """(chunk keys in grid order, stray keys) of one array, keys relative to the store root."""
    prefix = array + "/"
    chunks, stray = [], []
    for k in keys:
        rel = k[len(prefix) :]
        if rel == _META:
            continue
        coords = _chunk_coords(rel, meta)
        if coords is None:
            stray.append(k)
        else:
            chunks.append((coords, k))
    return [k for _, k in sorted(chunks)], stray


class _Digest:
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


def array_sha256(location: str, array: str, *, storage_options: dict | None = None) -> str:
    """``sha256-chunks-v1`` digest of one array (path like 'dataset/backbone/embeddings')."""
    raw = _open_raw(str(location), storage_options)
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

    def __init__(self, raw: _Raw, keys: Sequence[str] | None = None) -> None:
        self.raw = raw
        self.keys = list(raw.keys() if keys is None else keys)
        self.meta: dict[str, Any] = {}
        self.problems: list[str] = []
        for k in self.keys:
            if k == _META or k.endswith("/" + _META):
                node = k[: -len(_META)].rstrip("/")
                try:
                    self.meta[node] = json.loads(raw.read(k))
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

    def digest(self, array: str, sink: Callable[[str, bytes], None] | None = None) -> _Digest:
        """Digest of one array's chunks; ``sink(key, data)`` sees every chunk as it is read."""
        d = _Digest()
        for k in self.chunks[array]:
            data = self.raw.read(k)
            d.add(k[len(array) + 1 :], data)
            if sink is not None:
                sink(k, data)
        return d


def _array_entry(meta: dict, digest: _Digest) -> dict[str, Any]:
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
        elif _canonical_sha256(layout.meta[node]) != nodes[node].get("metadata_sha256"):
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
