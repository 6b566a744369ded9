"""Verifying a store, archive or URL: checksums against its manifest and layout rules."""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from embedstore.archive._checksums import (
    CHECKSUM_SCHEME,
    MANIFEST_KEY,
    _check_manifest,
    _Layout,
)
from embedstore.archive._damage import check_dataset
from embedstore.archive._members import _open_raw, _Raw
from embedstore.errors import ArchiveError, EmbedstoreError
from embedstore.store import (
    FORMAT_VERSION,
    _is_remote,
    open_store,
)
from embedstore.store._zipcheck import chunk_nbytes, zstd_declared_size
from embedstore.store._zipcheck import metadata_problems as _metadata_problems


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
    elif not isinstance(attrs["embedstore_format"], int) or isinstance(
        attrs["embedstore_format"], bool
    ):
        problems.append(f"format version {attrs['embedstore_format']!r} is not an integer")
    elif attrs["embedstore_format"] > FORMAT_VERSION:
        problems.append(
            f"format version {attrs['embedstore_format']} is newer than this embedstore "
            f"understands ({FORMAT_VERSION}); upgrade embedstore"
        )
    problems += _stray_problems(layout.stray)
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
    legacy = isinstance(attrs.get("embedstore_format"), int) and attrs["embedstore_format"] < 2
    for node, meta in layout.meta.items():
        mp = _metadata_problems(meta, legacy=legacy) if meta is not None else []
        unsafe |= bool(mp) or meta is None
        if mp and node:
            found.setdefault(node, []).extend(mp)
        elif mp:
            problems.extend(f"root: {p}" for p in mp)
    if manifest is not None:
        _check_manifest(layout, manifest, found, status)
    else:
        status = dict.fromkeys(layout.arrays, "unchecked")
    if not unsafe:
        for path, msg in _oversized_chunks(layout):
            found.setdefault(path, []).append(msg)
            unsafe = True
    if unsafe:
        problems.append("layout not checked: some metadata is unsafe or unreadable (see above)")
    elif not problems or all("unexpected file" in p for p in problems):
        try:
            store = open_store(location, storage_options=storage_options)
        except EmbedstoreError as exc:
            problems.append(f"cannot open as a store: {exc}")
        else:
            for ds in store.datasets():
                with warnings.catch_warnings():  # zarr's note on stray files: reported here
                    warnings.filterwarnings("ignore", message=".*not recognized as a component")
                    msgs_by_path, verified = check_dataset(store, ds, layout)
                for path, msgs in msgs_by_path.items():
                    found.setdefault(path, []).extend(msgs)
                for path in verified:  # checked against the checksums recorded at write time
                    if status.get(path) in (None, "unchecked"):
                        status[path] = "ok"
                for path, msgs in msgs_by_path.items():
                    if (
                        msgs
                        and status.get(path) in (None, "unchecked", "ok")
                        and "sha256" in (" ".join(msgs))
                    ):
                        status[path] = "mismatch"
    paths = sorted(set(layout.arrays) | set(found) | set(status))
    checks = tuple(ArrayCheck(p, status.get(p, "-"), tuple(found.get(p, ()))) for p in paths)
    return VerifyReport(location, raw.kind, manifest is not None, checks, tuple(problems))


def _stray_problems(stray: list[str]) -> list[str]:
    """Files outside every array, one line per folder (an array whose zarr.json is gone leaves
    all its chunks stray)."""
    by_folder: dict[str, list[str]] = {}
    for k in stray:
        head, sep, _ = k.partition("/c/")
        by_folder.setdefault(head if sep else k, []).append(k)
    out = []
    for folder, keys in sorted(by_folder.items()):
        if len(keys) == 1 and keys[0] == folder:
            out.append(f"{folder}: unexpected file, not part of any Zarr array")
        else:
            out.append(
                f"{folder}: {len(keys)} chunk file(s) but no zarr.json: the array's metadata "
                "was deleted (unexpected file, not part of any Zarr array)"
            )
    return out


def _oversized_chunks(layout: _Layout) -> list[tuple[str, str]]:
    """Chunks whose zstd frame declares more bytes than the chunk can hold: decoding one would
    allocate what it declares (a bomb inside a chunk). Read from each frame's header only."""
    out = []
    for array in layout.arrays:
        meta = layout.meta[array]
        codecs = [c.get("name") if isinstance(c, dict) else c for c in meta.get("codecs") or []]
        if "zstd" not in codecs or meta.get("data_type") == "string":  # variable length
            continue
        limit = chunk_nbytes(meta)
        for key in layout.chunks[array]:
            try:
                declared = zstd_declared_size(layout.raw.read(key))
            except EmbedstoreError:
                continue  # unreadable: reported by the checksums
            if declared is not None and declared > limit:
                out.append(
                    (array, f"chunk '{key}' declares {declared:,} bytes when decompressed, more "
                     f"than its {limit:,}-byte chunk: refused before decoding (a zstd bomb?)")
                )  # fmt: skip
    return out
