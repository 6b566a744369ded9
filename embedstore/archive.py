"""Sharing stores: export to one archive file, verify checksums and layout, import, merge.

An archive is a Zarr v3 zip store (``ZIP_STORED`` members, one per stored file of the store) that
:func:`embedstore.open_store` reads directly. Its root attributes hold the store's format version
and a manifest, ``attrs["embedstore_manifest"]``::

    {"manifest_version": 1, "checksum": "sha256-chunks-v1", "embedstore_version": "0.1.0",
     "embedstore_format": 1, "created_at": "...Z", "source": "...",
     "datasets": {"<dataset>": ["<backbone>", ...]},
     "nodes":  {"<node path>": {"metadata_sha256": "..."}},          # every group and array
     "arrays": {"<array path>": {"sha256": "...", "n_chunks": int, "nbytes": int,
                                 "shape": [...], "dtype": "...", "chunk_shape": [...]}}}

Checksums (``sha256-chunks-v1``):

- ``arrays[p]["sha256"]`` is the sha256 of the array's stored chunk files, exactly as stored
  (compressed), taken in chunk-grid order (integer chunk coordinates, row-major; the key
  ``c/10/0`` comes after ``c/9/0``). Each chunk contributes ``key + b"\\0" + size + bytes``, where
  ``key`` is its path relative to the array (``c/3/0``, UTF-8) and ``size`` its length as 8 bytes
  big-endian, so moving, dropping or renaming a chunk changes the digest. Chunks never written
  (all fill value) are absent and contribute nothing.
- ``nodes[p]["metadata_sha256"]`` is the sha256 of the node's ``zarr.json`` as canonical JSON
  (``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)``): it covers
  shape, dtype, codecs and attributes (labels' class names, provenance), independent of
  formatting. The root node, which holds the manifest itself, is not covered.

Safety: member names are checked before anything is read (no absolute paths, ``..``, backslashes,
control characters or hidden parts); only Zarr v3 metadata with numeric/bool/string dtypes and
a fixed list of codecs is accepted, so nothing from an archive is ever unpickled or executed.
This module reads stored files as bytes; decoding goes through :mod:`embedstore.store`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from embedstore._version import __version__
from embedstore.errors import (
    ArchiveError,
    ArrayNotFoundError,
    ConflictError,
    EmbedstoreError,
    InvalidDataError,
    StoreExistsError,
    StoreNotFoundError,
)
from embedstore.store import (
    FORMAT_VERSION,
    SPLIT_CODES,
    Store,
    _is_remote,
    _remote_storage_options,
    create_store,
    open_store,
)

__all__ = [
    "CHECKSUM_SCHEME",
    "MANIFEST_KEY",
    "ArrayCheck",
    "ExportResult",
    "ImportResult",
    "VerifyReport",
    "array_sha256",
    "export_archive",
    "import_archive",
    "merge_stores",
    "verify",
]

MANIFEST_KEY = "embedstore_manifest"
MANIFEST_VERSION = 1
CHECKSUM_SCHEME = "sha256-chunks-v1"
ON_CONFLICT = ("fail", "skip", "rename")
_META = "zarr.json"
_DATA_ARRAYS = ("ids", "labels", "split", "group")
_SAFE_DTYPES = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 string".split()
)
_SAFE_CODECS = frozenset({"bytes", "zstd", "gzip", "blosc", "crc32c", "vlen-utf8", "transpose"})
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# ------------------------------------------------------------------------------ result types


@dataclass(frozen=True)
class ArrayCheck:
    """Verification of one array (or group, for group-level problems) of a store."""

    path: str
    checksum: str  # "ok", "mismatch", "missing", "unlisted" or "unchecked" (no manifest)
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found: per-array checks and problems of the store as a whole."""

    location: str
    kind: str  # "archive", "store" or "remote"
    has_manifest: bool
    checks: tuple[ArrayCheck, ...]
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.checks)

    def problem_lines(self) -> list[str]:
        """Every problem as one line, store-level first."""
        return list(self.problems) + [f"{c.path}: {p}" for c in self.checks for p in c.problems]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_archive` wrote."""

    archive: str
    datasets: dict[str, tuple[str, ...]]
    skipped: tuple[str, ...]  # "dataset/backbone: reason"
    n_arrays: int
    nbytes: int


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_archive` (or :func:`merge_stores`) added to the target store."""

    source: str
    target: str
    datasets_added: tuple[str, ...] = ()
    renamed: dict[str, str] = field(default_factory=dict)
    datasets_skipped: tuple[str, ...] = ()
    backbones_added: tuple[str, ...] = ()  # "dataset/backbone" in the target
    backbones_replaced: tuple[str, ...] = ()
    backbones_skipped: tuple[str, ...] = ()  # "dataset/backbone: reason"


# ------------------------------------------------------------------------------ raw files


def check_member_name(name: str) -> None:
    """Refuse a stored key that could escape the target folder or is not a plain store path."""
    bad = None
    if not name:
        bad = "empty name"
    elif "\\" in name:
        bad = "backslash in name"
    elif name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        bad = "absolute path"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        bad = "control character in name"
    else:
        parts = name.rstrip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            bad = "'.', '..' or empty path component"
        elif any(p.startswith(".") for p in parts):
            bad = "hidden component (starting with '.'; Zarr v2 metadata is not accepted)"
    if bad:
        raise ArchiveError(
            f"archive member '{name}' is refused ({bad}); nothing was read or written. "
            "An embedstore archive holds only relative Zarr v3 keys such as 'dataset/ids/c/0'"
        )


class _Raw:
    """The stored files of a store as bytes, keyed by path relative to the store root."""

    location: str
    kind: str

    def keys(self) -> list[str]:
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _DirRaw(_Raw):
    kind = "store"

    def __init__(self, path: Path) -> None:
        self.location, self._root = str(path), path

    def keys(self) -> list[str]:
        out = []
        for dirpath, dirnames, files in os.walk(self._root):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self._root).as_posix()
            out += [f for f in sorted(files)] if rel == "." else [f"{rel}/{f}" for f in files]
        return sorted(out)

    def read(self, key: str) -> bytes:
        return (self._root / key).read_bytes()


class _ZipRaw(_Raw):
    kind = "archive"

    def __init__(self, path: Path) -> None:
        self.location = str(path)
        try:
            self._zf = zipfile.ZipFile(path, "r")
        except zipfile.BadZipFile as exc:
            raise ArchiveError(f"'{path}' is not a readable zip archive: {exc}") from None
        names = self._zf.namelist()
        for name in names:  # central directory only: no member content read yet
            check_member_name(name)
        dups = (
            sorted({n for n in names if names.count(n) > 1}) if len(set(names)) < len(names) else []
        )
        if dups:
            self._zf.close()
            raise ArchiveError(
                f"archive '{path}' holds member '{dups[0]}' more than once; it was tampered "
                "with or built by another tool. Export it again with `embedstore export`"
            )
        self._names = sorted(n for n in names if not n.endswith("/"))

    def keys(self) -> list[str]:
        return list(self._names)

    def read(self, key: str) -> bytes:
        try:
            return self._zf.read(key)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:  # e.g. CRC mismatch
            raise ArchiveError(f"member '{key}' cannot be read: {exc}") from None

    def close(self) -> None:
        self._zf.close()


class _FsspecRaw(_Raw):
    kind = "remote"

    def __init__(self, url: str, storage_options: dict[str, Any] | None) -> None:
        from fsspec.core import url_to_fs

        self.location = url
        self._fs, self._root = url_to_fs(
            url.rstrip("/"), **_remote_storage_options(url, storage_options)
        )
        self._root = self._root.rstrip("/")

    def keys(self) -> list[str]:
        found = self._fs.find(self._root)
        prefix = self._root + "/"
        return sorted(p[len(prefix) :] for p in found if p.startswith(prefix))

    def read(self, key: str) -> bytes:
        return self._fs.cat_file(f"{self._root}/{key}")


def _open_raw(location: str, storage_options: dict[str, Any] | None = None) -> _Raw:
    if _is_remote(location):
        return _FsspecRaw(location, storage_options)
    path = Path(location.removeprefix("file://"))
    if path.is_file():
        return _ZipRaw(path)
    if (path / _META).is_file():
        return _DirRaw(path)
    raise StoreNotFoundError(
        f"no store or archive at '{location}'; pass a store folder (.zarr), an archive made by "
        "`embedstore export`, or a URL"
    )


# ------------------------------------------------------------------------------ metadata, digests


def _canonical_sha256(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _metadata_problems(meta: Any) -> list[str]:
    """Why a node's zarr.json is not a safe, plain embedstore node (empty when it is)."""
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
        return ["metadata is not Zarr v3 (zarr_format 3)"]
    node_type = meta.get("node_type")
    if node_type == "group":
        return []
    if node_type != "array":
        return [f"unknown node_type {node_type!r}"]
    problems = []
    if meta.get("data_type") not in _SAFE_DTYPES:
        problems.append(f"data type {meta.get('data_type')!r} is not numeric, bool or string")
    codecs = meta.get("codecs") or []
    names = [c.get("name") if isinstance(c, dict) else c for c in codecs]
    unsafe = [str(n) for n in names if n not in _SAFE_CODECS]
    if unsafe:
        problems.append(
            f"codec(s) {', '.join(unsafe)} not accepted "
            f"(allowed: {', '.join(sorted(_SAFE_CODECS))})"
        )
    if (meta.get("chunk_grid") or {}).get("name") != "regular":
        problems.append("chunk grid is not 'regular'")
    if (meta.get("chunk_key_encoding") or {}).get("name") not in ("default", "v2"):
        problems.append("chunk key encoding is not 'default' or 'v2'")
    if meta.get("storage_transformers"):
        problems.append("storage transformers are not accepted")
    return problems


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


# ------------------------------------------------------------------------------ verify


def verify(
    location: str | os.PathLike[str], *, storage_options: dict | None = None
) -> VerifyReport:
    """Recompute checksums (when there is a manifest) and check the layout rules of every array.

    Works on an archive, a store folder (an unzipped archive keeps its manifest; a store without
    one gets layout checks only) or a URL. Never raises for a problem it finds: read
    :attr:`VerifyReport.ok` and the per-array :attr:`VerifyReport.checks`.
    """
    location = str(location)
    kind = (
        "remote" if _is_remote(location) else ("archive" if Path(location).is_file() else "store")
    )
    try:
        raw = _open_raw(location, storage_options)
    except ArchiveError as exc:
        return VerifyReport(location, kind, False, (), (str(exc),))
    try:
        return _verify_raw(raw, location, storage_options)
    finally:
        raw.close()


def _verify_raw(raw: _Raw, location: str, storage_options: dict | None) -> VerifyReport:
    layout = _Layout(raw)
    problems = list(layout.problems)
    root = layout.meta.get("")
    attrs = root.get("attributes", {}) if isinstance(root, dict) else {}
    if not isinstance(root, dict):
        problems.append("no readable zarr.json at the root: not a Zarr v3 store")
    elif "embedstore_format" not in attrs:
        problems.append("root has no 'embedstore_format' attribute: not an embedstore store")
    elif int(attrs["embedstore_format"]) > FORMAT_VERSION:
        problems.append(
            f"format version {attrs['embedstore_format']} is newer than this embedstore "
            f"understands ({FORMAT_VERSION}); upgrade embedstore"
        )
    problems += [f"{k}: unexpected file, not part of any Zarr array" for k in layout.stray]
    manifest = attrs.get(MANIFEST_KEY)
    if manifest is not None and not (
        isinstance(manifest, dict)
        and isinstance(manifest.get("arrays"), dict)
        and isinstance(manifest.get("nodes"), dict)
        and manifest.get("checksum") == CHECKSUM_SCHEME
    ):
        problems.append(
            "the manifest is malformed or uses an unknown checksum scheme "
            f"(expected {CHECKSUM_SCHEME})"
        )
        manifest = None

    found: dict[str, list[str]] = {}
    status: dict[str, str] = {}
    unsafe = False
    for node, meta in layout.meta.items():
        mp = _metadata_problems(meta) if meta is not None else []
        unsafe |= bool(mp) or meta is None
        if mp and node:
            found.setdefault(node, []).extend(mp)
        elif mp:
            problems.extend(f"root: {p}" for p in mp)
    if manifest is not None:
        _check_manifest(layout, manifest, found, status)
    else:
        status = dict.fromkeys(layout.arrays, "unchecked")
    if unsafe:
        problems.append("layout not checked: some metadata is unsafe or unreadable (see above)")
    elif not problems or all("unexpected file" in p for p in problems):
        try:
            store = open_store(location, storage_options=storage_options)
        except EmbedstoreError as exc:
            problems.append(f"cannot open as a store: {exc}")
        else:
            for ds in store.datasets():
                for path, msgs in _check_dataset(store, ds).items():
                    found.setdefault(path, []).extend(msgs)
    paths = sorted(set(layout.arrays) | set(found) | set(status))
    checks = tuple(ArrayCheck(p, status.get(p, "-"), tuple(found.get(p, ()))) for p in paths)
    return VerifyReport(location, raw.kind, manifest is not None, checks, tuple(problems))


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


def _check_dataset(store: Store, ds: str) -> dict[str, list[str]]:
    """Layout rules of one dataset, as problems keyed by array (or group) path."""
    out: dict[str, list[str]] = {}

    def bad(path: str, msg: str) -> None:
        out.setdefault(path, []).append(msg)

    try:
        info = store.dataset_info(ds)
        n, k = info.n_samples, len(info.class_names)
    except Exception as exc:  # a missing attribute or array surfaces here
        bad(ds, f"dataset attributes or split unreadable: {type(exc).__name__}: {exc}")
        return out
    for name, read in (("ids", store.ids), ("labels", store.labels), ("split", store.split)):
        try:
            value = read(ds)
        except Exception as exc:
            bad(f"{ds}/{name}", f"missing or unreadable: {type(exc).__name__}: {exc}")
            continue
        for msg in _data_array_problems(name, value, n, k, info.task):
            bad(f"{ds}/{name}", msg)
        out.setdefault(f"{ds}/{name}", [])
    if info.has_group:
        g = store.group(ds)
        if g is None or g.shape != (n,):
            bad(f"{ds}/group", f"shape {None if g is None else g.shape}, expected ({n},)")
        out.setdefault(f"{ds}/group", [])
    for bb in store.backbones(ds):
        path = f"{ds}/{bb}/embeddings"
        out.setdefault(path, [])
        try:
            a = store.array_info(ds, bb)
        except Exception as exc:
            bad(path, f"missing or unreadable: {type(exc).__name__}: {exc}")
            continue
        if a.shape[0] != n:
            bad(path, f"{a.shape[0]} rows, expected one per sample ({n})")
        if a.dtype not in ("float16", "float32"):
            bad(path, f"dtype {a.dtype}, expected float16 or float32")
        if not a.complete or a.rows_written != a.shape[0]:
            bad(
                path,
                f"incomplete ({a.rows_written} of {a.shape[0]} rows written, "
                f"complete={a.complete})",
            )
        try:
            n_bad, first = _non_finite_rows(store, ds, bb, a.shape, a.chunk_rows)
        except Exception as exc:  # a corrupt chunk fails to decode
            bad(path, f"cannot be decoded: {type(exc).__name__}: {exc}")
            continue
        if n_bad:
            bad(path, f"{n_bad} row(s) contain NaN or Inf (first: {first})")
        if len(store.valid_rows(ds, bb)) != a.shape[0]:
            bad(
                f"{ds}/{bb}/missing",
                f"mask length {len(store.valid_rows(ds, bb))}, expected {a.shape[0]}",
            )
    return out


def _data_array_problems(name: str, value: np.ndarray, n: int, k: int, task: str) -> list[str]:
    if name == "ids":
        if value.shape != (n,):
            return [f"shape {value.shape}, expected ({n},)"]
        if len(np.unique(value)) != n or (value == "").any():
            return ["ids must be unique non-empty strings"]
    elif name == "split":
        if value.shape != (n,) or value.dtype != np.uint8:
            return [f"shape {value.shape} {value.dtype}, expected ({n},) uint8"]
        if not np.isin(value, list(SPLIT_CODES.values())).all():
            return ["split codes outside 0 (train), 1 (val), 2 (test)"]
    elif task == "multilabel":
        if value.shape != (n, k) or value.dtype != np.uint8:
            return [f"shape {value.shape} {value.dtype}, expected ({n}, {k}) uint8"]
        if not np.isin(value, (0, 1)).all():
            return ["multilabel labels must be 0 or 1"]
    else:
        if value.shape != (n,) or value.dtype.kind not in "iu":
            return [f"shape {value.shape} {value.dtype}, expected ({n},) integer"]
        if n and (value.min() < 0 or value.max() >= k):
            return [
                f"labels in [{value.min()}, {value.max()}], outside the {k} classes [0, {k - 1}]"
            ]
    return []


def _non_finite_rows(
    store: Store, ds: str, bb: str, shape: tuple, chunk_rows: int
) -> tuple[int, int | None]:
    step = max(1, (2**26 // max(1, 4 * shape[1])) // chunk_rows) * chunk_rows  # ~64 MiB blocks
    n_bad, first = 0, None
    for start in range(0, shape[0], step):
        block = store.embeddings(ds, bb, rows=slice(start, start + step), allow_incomplete=True)
        rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if len(rows) and first is None:
            first = start + int(rows[0])
        n_bad += len(rows)
    return n_bad, first


# ------------------------------------------------------------------------------ export


def export_archive(
    store: str | os.PathLike[str],
    archive: str | os.PathLike[str],
    *,
    datasets: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
    overwrite: bool = False,
    storage_options: dict | None = None,
) -> ExportResult:
    """Write the chosen datasets and complete backbone arrays of ``store`` into one archive.

    Stored files are copied byte for byte (no re-encoding) into a zip written to a temporary
    name beside ``archive`` and renamed into place when complete, so an interrupted export never
    leaves a valid-looking archive. Incomplete arrays are skipped and listed in the result.

    Args:
        datasets: dataset names to export; default all.
        backbones: backbone names to export (from every chosen dataset that has them);
            default all complete ones.
        overwrite: replace an existing archive file.
    """
    store = str(store)
    src = open_store(store, storage_options=storage_options)
    names = src.datasets()
    chosen = list(dict.fromkeys(datasets)) if datasets else names
    for d in chosen:
        src.dataset_info(d)  # raises DatasetNotFoundError naming the known ones
    if backbones:
        present = {b for d in chosen for b in src.backbones(d)}
        unknown = [b for b in backbones if b not in present]
        if unknown:
            raise ArrayNotFoundError(
                f"backbone(s) {', '.join(unknown)} not extracted for dataset(s) "
                f"{', '.join(chosen)} (extracted: {', '.join(sorted(present)) or 'none'}); "
                "see `embedstore ls STORE`"
            )
    plan: dict[str, list[str]] = {}
    skipped = []
    for d in chosen:
        plan[d] = []
        for b in src.backbones(d):
            if backbones and b not in backbones:
                continue
            info = src.array_info(d, b)
            if info.complete:
                plan[d].append(b)
            else:
                skipped.append(
                    f"{d}/{b}: incomplete ({info.rows_written} of {info.shape[0]} rows written); "
                    "finish it with `embedstore extract` to export it"
                )
    out = Path(archive)
    if out.is_dir() or (out.exists() and not overwrite):
        raise StoreExistsError(
            f"'{out}' already exists; pass overwrite=True (--overwrite) to replace it, "
            "or choose another archive path"
        )
    if (
        not _is_remote(store)
        and Path(store).is_dir()
        and out.resolve().is_relative_to(Path(store).resolve())
    ):
        raise InvalidDataError(f"the archive '{out}' must be outside the store '{store}'")

    raw = _open_raw(store, storage_options)
    try:
        keys = [k for k in raw.keys() if _exported(k, plan)]
        layout = _Layout(raw, keys)
        for node, meta in layout.meta.items():
            if _metadata_problems(meta):
                raise ArchiveError(
                    f"'{store}/{node}' cannot be exported: {_metadata_problems(meta)[0]}"
                )
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            nodes, arrays = _write_archive(layout, tmp, src, plan, store)
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        raw.close()
    return ExportResult(
        archive=str(out),
        datasets={d: tuple(bbs) for d, bbs in plan.items()},
        skipped=tuple(skipped),
        n_arrays=len(arrays),
        nbytes=out.stat().st_size,
    )


def _exported(key: str, plan: dict[str, list[str]]) -> bool:
    parts = key.split("/")
    if len(parts) < 2 or parts[0] not in plan:
        return False
    return (len(parts) == 2 and parts[1] == _META) or (
        len(parts) > 2 and (parts[1] in _DATA_ARRAYS or parts[1] in plan[parts[0]])
    )


def _write_archive(
    layout: _Layout, tmp: Path, src: Store, plan: dict, store: str
) -> tuple[dict, dict]:
    nodes: dict[str, dict] = {}
    arrays: dict[str, dict] = {}
    with open(tmp, "wb") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:

            def put(key: str, data: bytes) -> None:
                info = zipfile.ZipInfo(key, date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)

            for node in sorted(layout.meta):
                meta_key = f"{node}/{_META}"
                put(meta_key, layout.raw.read(meta_key))
                nodes[node] = {"metadata_sha256": _canonical_sha256(layout.meta[node])}
                if node in layout.arrays:
                    arrays[node] = _array_entry(layout.meta[node], layout.digest(node, sink=put))
            manifest = {
                "manifest_version": MANIFEST_VERSION,
                "checksum": CHECKSUM_SCHEME,
                "embedstore_version": __version__,
                "embedstore_format": src.format_version,
                "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "source": store,
                "datasets": plan,
                "nodes": nodes,
                "arrays": arrays,
            }
            root = {
                "attributes": {
                    "embedstore_format": src.format_version,
                    "created_by": src.created_by,
                    "exported_by": f"embedstore {__version__}",
                    MANIFEST_KEY: manifest,
                },
                "zarr_format": 3,
                "node_type": "group",
            }
            put(_META, json.dumps(root, indent=2).encode())
        fh.flush()
        os.fsync(fh.fileno())
    return nodes, arrays


# ------------------------------------------------------------------------------ import, merge


@dataclass(frozen=True)
class _Copy:
    """One group to copy: a whole dataset (with some backbones) or one backbone."""

    src: str  # "dataset" or "dataset/backbone"
    dst: str
    backbones: tuple[str, ...] = ()  # for a dataset copy
    replace: bool = False  # dst exists in the target and is replaced

    def takes(self, key: str) -> bool:
        if "/" in self.src:
            return key.startswith(self.src + "/")
        return _exported(key, {self.src: list(self.backbones)})


def import_archive(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    on_conflict: str = "fail",
    overwrite: bool = False,
    storage_options: dict | None = None,
) -> ImportResult:
    """Add the datasets and complete backbones of an archive (or any store or URL) to a local store.

    The source is verified first (checksums when it has a manifest, layout rules always) and
    every copied chunk is hashed again against the manifest while it is copied; files are copied
    byte for byte, so imported arrays are bit-identical to the source (dtype, chunks, codecs,
    values). Everything is written to a staging folder beside ``target`` and moved into place
    at the end: a failed import leaves ``target`` as it was. ``target`` is created if missing.

    Args:
        on_conflict: a dataset of the same name with different ids, labels, splits, groups or
            classes: 'fail' (raise :class:`ConflictError`), 'skip' it, or 'rename' it to
            ``<name>-2``, ``<name>-3``, ... (reusing one that agrees).
        overwrite: replace backbones already complete in the target (default: skip them).
    """
    if on_conflict not in ON_CONFLICT:
        raise InvalidDataError(
            f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got '{on_conflict}'"
        )
    source, target_path = str(source), Path(target)
    if _is_remote(str(target)):
        raise InvalidDataError(f"the import target must be a local folder, got '{target}'")
    is_store = (target_path / _META).is_file()
    if (
        not is_store
        and target_path.exists()
        and (target_path.is_file() or any(target_path.iterdir()))
    ):
        raise StoreExistsError(
            f"'{target_path}' exists and is neither an embedstore store nor an empty folder; "
            "choose another target"
        )
    raw = _open_raw(source, storage_options)  # archive member names are checked here, first
    try:
        report = _verify_raw(raw, source, storage_options)
        if report.problems:
            raise ArchiveError(_failed(source, report.problems))
        src = open_store(source, storage_options=storage_options)
        tgt = open_store(target_path, mode="r+") if is_store else None
        copies, result = _plan(src, tgt, on_conflict, overwrite, source, str(target_path))
        layout = _Layout(raw)
        copied_nodes = {n for c in copies for n in layout.meta if n and c.takes(f"{n}/{_META}")}
        blocking = [
            f"{c.path}: {p}" for c in report.checks if c.path in copied_nodes for p in c.problems
        ]
        if blocking:
            raise ArchiveError(_failed(source, blocking))
        manifest = (layout.meta.get("") or {}).get("attributes", {}).get(MANIFEST_KEY)
        expected = {a: e.get("sha256") for a, e in manifest["arrays"].items()} if manifest else {}
        if copies:
            _commit(layout, copies, target_path, new_store=not is_store, expected=expected)
        elif not is_store:
            create_store(target_path)
        return result
    finally:
        raw.close()


def _failed(source: str, problems: Sequence[str]) -> str:
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return (
        f"'{source}' failed verification, nothing was imported: {'; '.join(problems[:3])}{more}. "
        f"See `embedstore verify {source}`"
    )


def _plan(
    src: Store, tgt: Store | None, on_conflict: str, overwrite: bool, source: str, target: str
) -> tuple[list[_Copy], ImportResult]:
    copies: list[_Copy] = []
    added, skipped_ds, bb_added, bb_replaced, bb_skipped = [], [], [], [], []
    renamed: dict[str, str] = {}
    existing = set(tgt.datasets()) if tgt is not None else set()
    taken = set(existing)
    for d in src.datasets():
        bbs = []
        for b in src.backbones(d):
            if src.array_info(d, b).complete:
                bbs.append(b)
            else:
                bb_skipped.append(f"{d}/{b}: incomplete in the source")
        dst = d
        if d in existing and (diff := _dataset_differences(src, d, tgt, d)):
            if on_conflict == "fail":
                raise ConflictError(
                    f"dataset '{d}' in '{source}' differs from the one in '{target}' in: "
                    f"{', '.join(diff)}; nothing was imported. Pass --on-conflict rename to import "
                    f"it as '{d}-2', or --on-conflict skip to leave it out"
                )
            if on_conflict == "skip":
                skipped_ds.append(d)
                bb_skipped += [
                    f"{d}/{b}: dataset skipped (conflict: {', '.join(diff)})" for b in bbs
                ]
                continue
            k = 2
            while True:
                dst = f"{d}-{k}"
                if dst in existing and not _dataset_differences(src, d, tgt, dst):
                    break
                if dst not in taken:
                    break
                k += 1
            renamed[d] = dst
        if dst in existing:
            have = tgt.backbones(dst)
            for b in bbs:
                if b in have and tgt.array_info(dst, b).complete and not overwrite:
                    bb_skipped.append(
                        f"{dst}/{b}: already complete in the target (--overwrite replaces it)"
                    )
                    continue
                copies.append(_Copy(f"{d}/{b}", f"{dst}/{b}", replace=b in have))
                (bb_replaced if b in have else bb_added).append(f"{dst}/{b}")
        else:
            taken.add(dst)
            copies.append(_Copy(d, dst, backbones=tuple(bbs)))
            added.append(dst)
            bb_added += [f"{dst}/{b}" for b in bbs]
    result = ImportResult(
        source=source,
        target=target,
        datasets_added=tuple(added),
        renamed=renamed,
        datasets_skipped=tuple(skipped_ds),
        backbones_added=tuple(bb_added),
        backbones_replaced=tuple(bb_replaced),
        backbones_skipped=tuple(bb_skipped),
    )
    return copies, result


def _dataset_differences(a: Store, da: str, b: Store, db: str) -> list[str]:
    """Fields in which dataset ``da`` of ``a`` and ``db`` of ``b`` differ (empty: they agree)."""
    ia, ib = a.dataset_info(da), b.dataset_info(db)
    diffs = [f for f in ("task", "class_names", "n_samples") if getattr(ia, f) != getattr(ib, f)]
    for name in ("ids", "labels", "split", "group"):
        va, vb = getattr(a, name)(da), getattr(b, name)(db)
        if (va is None) != (vb is None) or (
            va is not None and (va.shape != vb.shape or not np.array_equal(va, vb))
        ):
            diffs.append(name)
    return diffs


def _commit(
    layout: _Layout, copies: list[_Copy], target: Path, *, new_store: bool, expected: dict
) -> None:
    """Copy into a staging folder beside ``target``, then move into place (rolled back on error)."""
    target = target.absolute()
    stage = target.parent / f".{target.name}.import-{uuid.uuid4().hex[:8]}"
    stage.mkdir(parents=True)
    moved: list[tuple[Path | None, Path]] = []
    try:
        if new_store:
            create_store(stage)
        for c in copies:
            _copy_group(layout, c, stage, expected)
        if new_store:
            if target.exists():
                target.rmdir()  # an empty folder, checked before
            os.replace(stage, target)
            return
        trash = stage / "replaced"
        for c in copies:
            dst = target / c.dst
            if c.replace:
                (trash / c.dst).parent.mkdir(parents=True, exist_ok=True)
                os.replace(dst, trash / c.dst)
                moved.append((trash / c.dst, dst))
            os.replace(stage / c.dst, dst)
            moved.append((None, dst))
    except BaseException:
        for old, dst in reversed(moved):
            if old is None:
                shutil.rmtree(dst, ignore_errors=True)
            else:
                os.replace(old, dst)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _copy_group(layout: _Layout, c: _Copy, base: Path, expected: dict) -> None:
    root = base.resolve()

    def put(key: str, data: bytes) -> None:
        out = (base / c.dst / key[len(c.src) + 1 :]).resolve()
        if not out.is_relative_to(root):  # names were checked; this is the last line of defence
            raise ArchiveError(f"member '{key}' would be written outside the target; refused")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)

    for node in sorted(layout.meta):
        if not node or not c.takes(f"{node}/{_META}"):
            continue
        put(f"{node}/{_META}", layout.raw.read(f"{node}/{_META}"))
        if node in layout.arrays:
            digest = layout.digest(node, sink=put)
            if expected.get(node) and digest.hexdigest() != expected[node]:
                raise ArchiveError(
                    f"array '{node}' changed while it was imported (checksum mismatch); "
                    "nothing was imported"
                )


def merge_stores(
    store_a: str | os.PathLike[str],
    store_b: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    storage_options: dict | None = None,
) -> ImportResult:
    """Combine two stores (or archives, or URLs) into a new local store ``out``.

    Datasets present in both must agree (ids, labels, splits, groups, classes) and a backbone
    present in both must hold the same embeddings; otherwise :class:`ConflictError` names the
    dataset and field, and nothing is written.
    """
    a, b, out_path = str(store_a), str(store_b), Path(out)
    if out_path.exists() and (out_path.is_file() or any(out_path.iterdir())):
        raise StoreExistsError(
            f"'{out_path}' already exists; merge writes a new store, choose another path"
        )
    sa = open_store(a, storage_options=storage_options)
    sb = open_store(b, storage_options=storage_options)
    for d in sorted(set(sa.datasets()) & set(sb.datasets())):
        diff = _dataset_differences(sa, d, sb, d)
        if diff:
            raise ConflictError(
                f"cannot merge: dataset '{d}' differs between '{a}' and '{b}' in: "
                f"{', '.join(diff)}; "
                "nothing was written. Rename it in one store, or import with --on-conflict rename"
            )
        for bb in sorted(set(sa.backbones(d)) & set(sb.backbones(d))):
            if (
                sa.array_info(d, bb).complete
                and sb.array_info(d, bb).complete
                and not _same_embeddings(sa, sb, d, bb)
            ):
                raise ConflictError(
                    f"cannot merge: dataset '{d}', backbone '{bb}': embeddings differ between "
                    f"'{a}' and '{b}'; nothing was written. Export one side without it "
                    f"(`embedstore export ... --backbone`) first"
                )
    created = not out_path.exists()
    try:
        ra = import_archive(a, out_path, storage_options=storage_options)
        rb = import_archive(b, out_path, storage_options=storage_options)
    except BaseException:
        if created:
            shutil.rmtree(out_path, ignore_errors=True)
        raise
    return ImportResult(
        source=f"{a} + {b}",
        target=str(out_path),
        datasets_added=ra.datasets_added + rb.datasets_added,
        backbones_added=ra.backbones_added + rb.backbones_added,
        backbones_skipped=ra.backbones_skipped + rb.backbones_skipped,
    )


def _same_embeddings(sa: Store, sb: Store, d: str, bb: str) -> bool:
    ia, ib = sa.array_info(d, bb), sb.array_info(d, bb)
    if ia.shape != ib.shape or ia.dtype != ib.dtype:
        return False
    step = max(ia.chunk_rows, 2**24 // max(1, 4 * ia.shape[1]))
    for start in range(0, ia.shape[0], step):
        rows = slice(start, start + step)
        if not np.array_equal(sa.embeddings(d, bb, rows=rows), sb.embeddings(d, bb, rows=rows)):
            return False
    return np.array_equal(sa.valid_rows(d, bb), sb.valid_rows(d, bb))
