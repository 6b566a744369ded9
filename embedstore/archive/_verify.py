"""Verifying a store, archive or URL: checksums against its manifest and layout rules.

What it guarantees is integrity against accidents (a truncated or partial copy, bit rot, a deleted
file), not authenticity: the checksums travel with the data, so whoever can rewrite the data can
rewrite them too. An archive's own sha256 (:attr:`VerifyReport.sha256`), compared with one its
author sent through a trusted channel, is what shows that it is the file they exported.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from embedstore.archive._checksums import (
    CHECKSUM_SCHEME,
    MANIFEST_KEY,
    _check_manifest,
    _Layout,
)
from embedstore.archive._damage import check_dataset
from embedstore.archive._members import file_sha256
from embedstore.errors import ArchiveError, EmbedstoreError
from embedstore.store import FORMAT_VERSION, open_store
from embedstore.store.layout import (
    GONE,
    RawStore,
    backbone_audit,
    chunk_nbytes,
    dataset_audit,
    is_remote,
    node_problems,
    open_raw,
    shape_problems,
    zstd_declared_size,
)


@dataclass(frozen=True)
class ArrayCheck:
    """Verification of one array (or group, for group-level problems) of a store."""

    path: str
    checksum: str  # "ok", "mismatch", "missing", "unlisted", "unchecked" (no manifest) or
    # "interrupted" (an array of a backbone whose creation was interrupted: it holds no row)
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
    layout_only: bool = False  # the manifest was not checked (asked for)
    sha256: str | None = None  # of the archive file itself, to compare with its author's
    interrupted: tuple[str, ...] = ()  # "dataset/backbone" groups whose creation was interrupted

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.checks)

    @property
    def unrecorded(self) -> list[str]:
        """Data and embeddings arrays whose bytes no checksum covered (format-1 arrays, or ones
        whose record was deleted): only their layout was checked."""
        names = ("ids", "labels", "split", "group", "embeddings")
        return [
            c.path
            for c in self.checks
            if c.checksum == "unchecked" and c.path.rsplit("/", 1)[-1] in names
        ]

    @property
    def checked(self) -> str:
        """What was checked, in one line."""
        if self.layout_only:
            return (
                "layout rules and the chunk checksums recorded at write time only "
                "(--layout-only): the manifest's checksums were NOT checked"
            )
        if self.has_manifest:
            return (
                "checksums of every array and its metadata against the manifest, the chunk "
                "checksums recorded at write time, and the layout rules"
            )
        return "the chunk checksums recorded at write time and the layout rules (no manifest)"

    def problem_lines(self) -> list[str]:
        """Every problem as one line, store-level first."""
        return list(self.problems) + [f"{c.path}: {p}" for c in self.checks for p in c.problems]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "checked": self.checked, "guarantee": GUARANTEE}


GUARANTEE = (
    "verify detects accidents (truncation, bit rot, partial copies, deleted files), not "
    "tampering: anyone can rewrite data and checksums together; to know an archive is the one "
    "its author exported, compare its sha256 with one they sent through a trusted channel"
)


def verify(
    location: str | os.PathLike[str],
    *,
    layout_only: bool = False,
    storage_options: dict | None = None,
) -> VerifyReport:
    """Recompute checksums and check the layout rules of every array.

    Works on an archive, a store folder or a URL. An archive (a zip file, or any store whose
    root says it was exported) must carry its manifest: one without (stripped, or unreadable)
    fails, unless ``layout_only`` asks for the layout rules and the chunk checksums recorded at
    write time alone. A store folder has no manifest; its recorded chunk checksums are checked.
    Never raises for a problem it finds: read :attr:`VerifyReport.ok` and the per-array
    :attr:`VerifyReport.checks`. Integrity against accidents only, not authenticity (see
    :data:`GUARANTEE`).
    """
    location = str(location)
    kind = "remote" if is_remote(location) else ("archive" if Path(location).is_file() else "store")
    try:
        raw = open_raw(location, storage_options)
        raw.keys()  # a location that cannot be listed is one problem line
    except ArchiveError as exc:
        return VerifyReport(location, kind, False, (), (str(exc),))
    try:
        report = _verify_raw(raw, location, storage_options, layout_only=layout_only)
    finally:
        raw.close()
    if raw.kind == "archive":
        report = replace(report, sha256=file_sha256(Path(location)))
    return report


def _verify_raw(
    raw: RawStore, location: str, storage_options: dict | None, *, layout_only: bool = False
) -> VerifyReport:
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
    n_before = len(problems)
    manifest = None if layout_only else attrs.get(MANIFEST_KEY)
    if manifest is not None and not (
        isinstance(manifest, dict)
        and isinstance(manifest.get("arrays"), dict)
        and isinstance(manifest.get("nodes"), dict)
        and manifest.get("checksum") == CHECKSUM_SCHEME
    ):
        problems.append(
            "the manifest is malformed or uses an unknown checksum scheme "
            f"(expected {CHECKSUM_SCHEME}): nothing can be checked against what was exported; "
            f"{_REFETCH}"
        )
        manifest = None
    elif manifest is None and not layout_only and _claims_archive(raw, attrs):
        problems.append(
            f"the manifest is missing: this is an embedstore archive, but its root zarr.json "
            f"has no '{MANIFEST_KEY}', so nothing can be checked against what was exported "
            f"(it was stripped or rewritten after export); {_REFETCH}"
        )
    manifest_problems = problems[n_before:]  # they do not stop the layout checks

    found: dict[str, list[str]] = {}
    status: dict[str, str] = {}
    interrupted: list[str] = []
    unsafe: list[str] = []  # "path: why" of each node whose metadata stops the layout checks
    legacy = isinstance(attrs.get("embedstore_format"), int) and attrs["embedstore_format"] < 2
    for node, meta in layout.meta.items():
        mp = node_problems(meta, _kind(node, meta), legacy=legacy) if meta is not None else []
        if meta is None:
            unsafe.append(f"{node or 'root'}: zarr.json is not valid JSON")
        unsafe += [f"{node or 'root'}: {p}" for p in mp]
        if mp and node:
            found.setdefault(node, []).extend(mp)
        elif mp:
            problems.extend(f"root: {p}" for p in mp)
    if manifest is not None:
        _check_manifest(layout, manifest, found, status)
    else:
        status = dict.fromkeys(layout.arrays, "unchecked")
    if not unsafe:  # the digests of metadata recorded when each group was written
        for node, msg in _recorded_metadata_problems(layout, legacy):
            found.setdefault(node, []).append(msg)
            unsafe.append(f"{node}: {msg}")
    if not unsafe:  # shapes before chunks: nothing is read in proportion to a declared shape
        stored = {a: len(layout.chunks[a]) for a in layout.arrays}
        for path, msg in shape_problems(layout.meta, stored):
            found.setdefault(path, []).append(msg)
            unsafe.append(f"{path}: {msg}")
    if not unsafe:
        for path, msg in _oversized_chunks(layout):
            found.setdefault(path, []).append(msg)
            unsafe.append(f"{path}: {msg}")
    if unsafe:  # self-contained: this line may be the only one a caller shows
        more = f" and {len(unsafe) - 1} more" if len(unsafe) > 1 else ""
        problems.append(
            f"layout not checked, because metadata or a chunk is unsafe or unreadable "
            f"({min(unsafe, key=len)}{more})"
        )
    elif all("unexpected file" in p or p in manifest_problems for p in problems):
        try:
            store = open_store(location, storage_options=storage_options)
        except EmbedstoreError as exc:
            problems.append(f"cannot open as a store: {exc}")
        else:
            for ds in store.datasets():
                for bb in store.interrupted_backbones(ds):  # holds no row: not damage, no checksum
                    interrupted.append(f"{ds}/{bb}")
                    for path in layout.arrays:
                        if path.startswith(f"{ds}/{bb}/"):
                            status[path] = "interrupted"
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
    has_manifest = MANIFEST_KEY in attrs if layout_only else manifest is not None
    return VerifyReport(
        location,
        raw.kind,
        has_manifest,
        checks,
        tuple(problems),
        layout_only=layout_only,
        interrupted=tuple(interrupted),
    )


_REFETCH = (
    "get the archive again from its source (and compare its sha256 with theirs), or pass "
    "--layout-only (layout_only=True) to check the layout rules and the chunk checksums "
    "recorded at write time alone"
)


def _claims_archive(raw: RawStore, attrs: dict) -> bool:
    """An archive file, or a store whose root says `embedstore export` wrote it (unzipped)."""
    return raw.kind == "archive" or "exported_by" in attrs or MANIFEST_KEY in attrs


def _recorded_metadata_problems(layout: _Layout, legacy: bool) -> list[tuple[str, str]]:
    """Each dataset's and backbone's metadata against the digests recorded when written."""

    def get(path: str) -> object:
        return layout.meta.get(path, GONE)

    out = []
    for node, meta in layout.meta.items():
        attrs = meta.get("attributes") if isinstance(meta, dict) else None
        if node.count("/") == 0 and node and isinstance(attrs, dict) and "n_samples" in attrs:
            out += [(node, p) for p in dataset_audit(get, node, legacy=legacy)]
        elif node.count("/") == 1 and _kind(node, meta) == "backbone":
            ds, bb = node.split("/")
            out += [(node, p) for p in backbone_audit(get, ds, bb, legacy=legacy)]
    return out


def _kind(node: str, meta: object) -> str:
    """The layout's name for a node: root, dataset, backbone, array, or group (deeper)."""
    if isinstance(meta, dict) and meta.get("node_type") == "array":
        return "array"
    return (
        ("root", "dataset", "backbone")[node.count("/") + bool(node)]
        if node.count("/") < 2
        else "group"
    )


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
