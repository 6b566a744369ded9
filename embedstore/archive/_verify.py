"""Verifying a store, archive or URL: checksums against its manifest and layout rules."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedstore.archive._checksums import (
    CHECKSUM_SCHEME,
    MANIFEST_KEY,
    _check_manifest,
    _Layout,
    _metadata_problems,
)
from embedstore.archive._members import _open_raw, _Raw
from embedstore.errors import ArchiveError, EmbedstoreError
from embedstore.store import (
    EMBEDDING_DTYPES,
    FORMAT_VERSION,
    SPLIT_CODES,
    Store,
    _is_remote,
    open_store,
)


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
        if a.dtype not in EMBEDDING_DTYPES:
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
