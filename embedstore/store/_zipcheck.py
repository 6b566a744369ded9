"""What an archive (a Zarr zip store) may hold, checked from its central directory alone, before
any member is read: so that a hostile file is refused before it can do anything.

Refused: member names that could escape a target folder or are not plain Zarr v3 keys (absolute
paths, ``..``, backslashes, drive letters, control characters, hidden parts), names given twice,
symbolic links, and members that are compressed. ``embedstore export`` stores every member
uncompressed (``ZIP_STORED``: the chunks are zstd-compressed already), so a compressed member is
foreign; refusing it means nothing is ever inflated, which rules out a zip bomb (a small member
that inflates to gigabytes): the bytes read are bounded by the archive's own size.
"""

from __future__ import annotations

import json
import stat
import zipfile
from typing import Any, TypeGuard

from embedstore.errors import ArchiveError
from embedstore.store._shapes import shape_problems

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
MAX_ATTRIBUTE_BYTES = 16 * 2**20  # one node's zarr.json: 16 MiB (a dataset of 10^5 classes: ~2 MiB)


def member_name_problem(name: str) -> str | None:
    """Why a stored key is not a plain relative store path (None when it is)."""
    if not name:
        return "empty name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "control character in name"
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "'.', '..' or empty path component"
    if any(p.startswith(".") for p in parts):
        return "hidden component (starting with '.'; Zarr v2 metadata is not accepted)"
    return None


def _refuse(path: object, name: str, why: str) -> ArchiveError:
    return ArchiveError(
        f"archive '{path}': member '{name}' is refused ({why}); nothing was read or written. "
        "An embedstore archive holds only uncompressed, relative Zarr v3 keys such as "
        "'dataset/ids/c/0' and plain metadata; export it again with `embedstore export`"
    )


def check_zip_members(zf: zipfile.ZipFile, path: object) -> list[str]:
    """Check every member of an open zip from its directory; returns the names (files only)."""
    names = []
    seen: set[str] = set()
    for info in zf.infolist():
        name = info.filename
        why = member_name_problem(name)
        if why is None and name in seen:
            why = "the name appears more than once (tampered with, or built by another tool)"
        mode = info.external_attr >> 16
        if why is None and stat.S_ISLNK(mode):
            why = "a symbolic link"
        if why is None and info.compress_type != zipfile.ZIP_STORED:
            why = (
                f"compressed ({_METHODS.get(info.compress_type, info.compress_type)}, "
                f"{info.compress_size:,} bytes claiming {info.file_size:,}): members are never "
                "inflated (zip bomb guard)"
            )
        if why is None and info.file_size != info.compress_size:
            why = f"stored size {info.compress_size:,} differs from its size {info.file_size:,}"
        if why:
            raise _refuse(path, name, why)
        seen.add(name)
        if not name.endswith("/"):
            names.append(name)
    return names


_METHODS = {
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}


def metadata_problems(meta: Any, *, legacy: bool = False) -> list[str]:
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
    if not all(isinstance(meta.get(k, {}), dict) for k in ("chunk_grid", "chunk_key_encoding")):
        return ["chunk_grid / chunk_key_encoding are not objects"]
    if not isinstance(meta.get("codecs", []), list):
        return ["codecs is not a list"]
    problems = []
    dtypes = _SAFE_DTYPES | (_LEGACY_DTYPES if legacy else frozenset())
    allowed_codecs = _SAFE_CODECS | (_LEGACY_CODECS if legacy else frozenset())
    if not isinstance(meta.get("data_type"), str) or meta.get("data_type") not in dtypes:
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
    config = (meta.get("chunk_grid") or {}).get("configuration") or {}
    chunks = config.get("chunk_shape") if isinstance(config, dict) else None

    def ints(v: Any, low: int) -> TypeGuard[list[int]]:
        return (
            isinstance(v, list)
            and 1 <= len(v) <= 3
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= low for x in v)
        )

    if not ints(shape, 0) or not ints(chunks, 1) or len(shape) != len(chunks):
        return [f"shape {shape!r} / chunk shape {chunks!r} are not 1 to 3 non-negative integers"]
    size = _ITEMSIZE.get(str(meta.get("data_type")), 8)
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


def check_zip_metadata(zf: zipfile.ZipFile, names: list[str], path: object) -> None:
    """Every node's zarr.json must be safe (core data types, known codecs, sane shapes) before
    zarr parses it: no pickle/object codec, no shape that would exhaust memory."""
    metas = {}
    for name in names:
        if name == "zarr.json" or name.endswith("/zarr.json"):
            size = zf.getinfo(name).file_size
            if size > MAX_ATTRIBUTE_BYTES:
                raise _refuse(path, name, f"{size:,} bytes of metadata, over the "
                              f"{MAX_ATTRIBUTE_BYTES:,} accepted (metadata size limit)")  # fmt: skip
            try:
                metas[name] = json.loads(zf.read(name))
            except (ValueError, UnicodeDecodeError) as exc:
                raise _refuse(path, name, f"not valid JSON: {exc}") from None
    root = metas.get("zarr.json") or {}
    fmt = (
        (root.get("attributes") or {}).get("embedstore_format") if isinstance(root, dict) else None
    )
    legacy = isinstance(fmt, int) and fmt < 2
    for name, meta in metas.items():
        problems = metadata_problems(meta, legacy=legacy)
        if problems:
            raise _refuse(path, name, "; ".join(problems))
    nodes = {name[: -len("zarr.json")].rstrip("/"): meta for name, meta in metas.items()}
    stored = dict.fromkeys(nodes, 0)
    for name in names:  # an upper bound of each array's chunks: files under its folder
        head, _, tail = name.rpartition("/")
        while head and tail != "zarr.json":
            if head in stored:
                stored[head] += 1
                break
            head = head.rpartition("/")[0]
    for node, why in shape_problems(nodes, stored):
        raise _refuse(path, f"{node}/zarr.json", why)


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_declared_size(data: bytes) -> int | None:
    """The content size a zstd frame declares in its header (RFC 8878, 3.1.1.1), or None when
    it declares none or ``data`` is not a zstd frame. Read before anything is decompressed."""
    if len(data) < 6 or data[:4] != _ZSTD_MAGIC:
        return None
    fhd = data[4]
    fcs_flag, single = fhd >> 6, (fhd >> 5) & 1
    did_size = (0, 1, 2, 4)[fhd & 3]
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if fcs_size == 0:
        return None
    start = 5 + (0 if single else 1) + did_size
    field = data[start : start + fcs_size]
    if len(field) < fcs_size:
        return None
    value = int.from_bytes(field, "little")
    return value + 256 if fcs_size == 2 else value


def chunk_nbytes(meta: dict) -> int:
    """Bytes one chunk of an array decodes to, from its metadata (already checked sane)."""
    chunks = ((meta.get("chunk_grid") or {}).get("configuration") or {}).get("chunk_shape") or []
    n = _ITEMSIZE.get(str(meta.get("data_type")), 8)
    for c in chunks:
        n *= int(c)
    return n
