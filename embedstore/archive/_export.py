"""Exporting a store's datasets and complete arrays into one archive (a Zarr zip store)."""

from __future__ import annotations

import glob
import json
import os
import re
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from embedstore._version import __version__
from embedstore.archive._checksums import (
    CHECKSUM_SCHEME,
    MANIFEST_KEY,
    MANIFEST_VERSION,
    _array_entry,
    _Layout,
)
from embedstore.archive._members import file_sha256
from embedstore.errors import (
    ArchiveError,
    ArrayNotFoundError,
    InvalidDataError,
    StoreExistsError,
)
from embedstore.store import Store, is_data_array, open_store, writer_lock
from embedstore.store.layout import META as _META
from embedstore.store.layout import is_remote, metadata_problems, metadata_sha256, open_raw

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_LOCK = "export"  # the writer lock of the archive path, held while its temporary file exists


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_archive` wrote."""

    archive: str
    datasets: dict[str, tuple[str, ...]]
    skipped: tuple[str, ...]  # "dataset/backbone: reason"
    n_arrays: int
    nbytes: int
    sha256: str = ""  # of the archive file: send it through a trusted channel beside the file
    stale_partials_removed: tuple[str, ...] = ()  # "PATH (N MiB)": left by killed exports


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
    leaves a valid-looking archive; the temporary files of killed exports to the same path are
    removed (the archive path's ``export`` lock tells them from a running export's, which is
    refused with :class:`StoreBusyError`). Incomplete arrays are skipped and listed.

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
        not is_remote(store)
        and Path(store).is_dir()
        and out.resolve().is_relative_to(Path(store).resolve())
    ):
        raise InvalidDataError(f"the archive '{out}' must be outside the store '{store}'")

    raw = open_raw(store, storage_options)
    try:
        keys = [k for k in raw.keys() if _exported(k, plan)]
        layout = _Layout(raw, keys)
        for node, meta in layout.meta.items():
            problems = metadata_problems(meta, legacy=src.format_version < 2)
            if problems:
                raise ArchiveError(f"'{store}/{node}' cannot be exported: {problems[0]}")
        # Held while the temporary file exists, so the files of killed exports (and only
        # those) can be told apart from a running one's and removed.
        with writer_lock(str(out.absolute()), [_LOCK], folder=False):
            removed = _remove_stale_partials(out)
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
        sha256=file_sha256(out),
        stale_partials_removed=tuple(removed),
    )


def _remove_stale_partials(out: Path) -> list[str]:
    """Remove the temporary files that killed exports to ``out`` left (the export lock held)."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[0-9a-f]{{8}}\.partial")
    removed = []
    for p in sorted(out.absolute().parent.glob(f".{glob.escape(out.name)}.*.partial")):
        if p.is_file() and pattern.fullmatch(p.name):
            size = p.stat().st_size
            p.unlink()
            removed.append(f"{p} ({size / 2**20:.1f} MiB)")
    return removed


def _exported(key: str, plan: dict[str, list[str]]) -> bool:
    parts = key.split("/")
    if len(parts) < 2 or parts[0] not in plan:
        return False
    return (len(parts) == 2 and parts[1] == _META) or (
        len(parts) > 2 and (is_data_array(parts[1]) or parts[1] in plan[parts[0]])
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
                nodes[node] = {"metadata_sha256": metadata_sha256(layout.meta[node])}
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
