"""Importing an archive (or store, or URL) into a local store, and merging two stores.

Everything is staged beside the target and moved into place at the end, rolled back on error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from embedstore.archive._checksums import MANIFEST_KEY, _Layout
from embedstore.archive._staging import LOCK, Copy, commit, remove_stale_stages
from embedstore.archive._verify import VerifyReport, _verify_raw
from embedstore.errors import (
    ArchiveError,
    ConflictError,
    InvalidDataError,
    StoreExistsError,
)
from embedstore.store import Store, create_store, open_store, writer_lock
from embedstore.store.layout import META as _META
from embedstore.store.layout import (
    RawStore,
    is_remote,
    iter_dataset_differences,
    migrate_folder,
    open_raw,
)

ON_CONFLICT = ("fail", "skip", "rename")
_SETUP_WAIT_S = 120.0  # as extract: a store or dataset being set up holds "setup" for seconds


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
    stale_stages_removed: tuple[str, ...] = ()  # "PATH (N MiB)": left by killed imports


def import_archive(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    on_conflict: str = "fail",
    overwrite: bool = False,
    layout_only: bool = False,
    storage_options: dict | None = None,
) -> ImportResult:
    """Add the datasets and complete backbones of an archive (or any store or URL) to a local store.

    The source is verified first (as :func:`verify` does: an archive without its manifest is
    refused unless ``layout_only``) and every copied chunk is hashed again against the manifest
    while it is copied; files are copied
    byte for byte, so imported arrays are bit-identical to the source (dtype, chunks, codecs,
    values). Everything is written to a staging folder beside ``target`` and moved into place
    at the end: a failed import leaves ``target`` as it was. ``target`` is created if missing.
    The import holds the target's ``import`` lock (a second import into the same target raises
    :class:`StoreBusyError` naming the first) and removes the staging folders that killed
    imports left beside it (listed in :attr:`ImportResult.stale_stages_removed`).

    Args:
        on_conflict: a dataset of the same name with different ids, labels, splits, groups or
            classes: 'fail' (raise :class:`ConflictError`), 'skip' it, or 'rename' it to
            ``<name>-2``, ``<name>-3``, ... (reusing one that agrees).
        overwrite: replace backbones already complete in the target (default: skip them).
        layout_only: do not check the source's manifest (for an archive whose manifest is
            missing): only the layout rules and the chunk checksums recorded at write time.
    """
    if on_conflict not in ON_CONFLICT:
        raise InvalidDataError(
            f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got '{on_conflict}'"
        )
    source, target_path = str(source), Path(target)
    if is_remote(str(target)):
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
    raw = open_raw(source, storage_options)  # archive member names are checked here, first
    try:
        report = _verify_raw(raw, source, storage_options, layout_only=layout_only)
        if report.problems:  # store-level ones, each line self-contained
            raise ArchiveError(_failed(source, report.problem_lines()))
        src = open_store(source, storage_options=storage_options)
        with writer_lock(str(target_path), [LOCK]):  # held until the staging folder is gone
            removed = remove_stale_stages(target_path)
            result = _import_locked(
                src, raw, report, target_path, on_conflict, overwrite, layout_only, source
            )
        return replace(result, stale_stages_removed=tuple(removed))
    finally:
        raw.close()


def _import_locked(
    src: Store,
    raw: RawStore,
    report: VerifyReport,
    target_path: Path,
    on_conflict: str,
    overwrite: bool,
    layout_only: bool,
    source: str,
) -> ImportResult:
    is_store = (target_path / _META).is_file()
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
    manifest = None if layout_only else manifest
    expected = {a: e.get("sha256") for a, e in manifest["arrays"].items()} if manifest else {}
    if copies:
        # the locks `extract` takes: never move over an array being extracted, nor add a
        # dataset while an extraction sets one up
        arrays = [f"{c.dst}/{b}" for c in copies for b in c.backbones] + [
            c.dst for c in copies if "/" in c.dst
        ]
        with (
            writer_lock(str(target_path), arrays),
            writer_lock(str(target_path), ["setup"], wait=_SETUP_WAIT_S),
        ):
            commit(layout, copies, target_path, new_store=not is_store, expected=expected)
        if src.format_version < 2:  # its text arrays use the `string` extension type
            migrate_folder(target_path)
    elif not is_store:
        create_store(target_path)
    return result


def _failed(source: str, problems: Sequence[str]) -> str:
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return (
        f"'{source}' failed verification, nothing was imported: {'; '.join(problems[:3])}{more}. "
        f"See `embedstore verify {source}`"
    )


def _plan(
    src: Store, tgt: Store | None, on_conflict: str, overwrite: bool, source: str, target: str
) -> tuple[list[Copy], ImportResult]:
    copies: list[Copy] = []
    added: list[str] = []
    skipped_ds: list[str] = []
    bb_added: list[str] = []
    bb_replaced: list[str] = []
    bb_skipped: list[str] = []
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
        if tgt is not None and d in existing and (diff := _dataset_differences(src, d, tgt, d)):
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
        if tgt is not None and dst in existing:
            have = tgt.backbones(dst)
            for b in bbs:
                if b in have and tgt.array_info(dst, b).complete and not overwrite:
                    bb_skipped.append(
                        f"{dst}/{b}: already complete in the target (--overwrite replaces it)"
                    )
                    continue
                copies.append(Copy(f"{d}/{b}", f"{dst}/{b}", replace=b in have))
                (bb_replaced if b in have else bb_added).append(f"{dst}/{b}")
        else:
            taken.add(dst)
            copies.append(Copy(d, dst, backbones=tuple(bbs)))
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
    return list(
        iter_dataset_differences(
            vars(ia), lambda name: getattr(a, name)(da), vars(ib), lambda name: getattr(b, name)(db)
        )
    )


def merge_stores(
    store_a: str | os.PathLike[str],
    store_b: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    layout_only: bool = False,
    storage_options: dict | None = None,
) -> ImportResult:
    """Combine two stores (or archives, or URLs) into a new local store ``out``.

    Each is verified as :func:`import_archive` does (``layout_only`` as there).

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
        ra = import_archive(a, out_path, layout_only=layout_only, storage_options=storage_options)
        rb = import_archive(b, out_path, layout_only=layout_only, storage_options=storage_options)
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
