"""Copying an import into a staging folder beside the target, moving it into place, and cleaning
up the staging folders of imports that were killed.

An import writes everything under ``<parent>/.<target name>.import-<8 hex>`` and then moves it
into place. A killed import (SIGKILL, a power cut) leaves that folder behind, with up to a whole
archive in it. Every import holds the target's ``import`` writer lock
(:func:`embedstore.store.writer_lock`: a file naming its pid, host and process start time) from
before it stages anything until its staging folder is gone, so while one import holds the lock
no other import's staging folder of that target can be live: the next import, once it holds the
lock, removes them all. A running import keeps the lock, so its folder is never touched; the
lock of a killed one is recognised as stale and taken over (one left by another host is never
judged: that import is refused, naming the holder). A folder left by an import killed while it
moved replaced backbones aside (``replaced/<dataset>/<backbone>``) first puts back those whose
replacement never arrived, so the target keeps every backbone it had.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from embedstore.archive._checksums import _Layout
from embedstore.archive._export import _exported
from embedstore.errors import ArchiveError
from embedstore.store import create_store
from embedstore.store.layout import META as _META

LOCK = "import"  # the target's writer lock held by every import (no dataset/backbone lock has
# this name: those are "setup" and "<dataset>/<backbone>")
_TRASH = "replaced"


@dataclass(frozen=True)
class Copy:
    """One group to copy: a whole dataset (with some backbones) or one backbone."""

    src: str  # "dataset" or "dataset/backbone"
    dst: str
    backbones: tuple[str, ...] = ()  # for a dataset copy
    replace: bool = False  # dst exists in the target and is replaced

    def takes(self, key: str) -> bool:
        if "/" in self.src:
            return key.startswith(self.src + "/")
        return _exported(key, {self.src: list(self.backbones)})


def _pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(target.name)}\.import-[0-9a-f]{{8}}")


def stage_path(target: Path) -> Path:
    return target.parent / f".{target.name}.import-{uuid.uuid4().hex[:8]}"


def stale_stages(target: Path) -> list[Path]:
    """Staging folders of imports into ``target`` (call with the target's import lock held:
    then every one of them is stale)."""
    target = target.absolute()
    if not target.parent.is_dir():
        return []
    pattern = _pattern(target)
    return sorted(
        p for p in target.parent.iterdir() if p.is_dir() and pattern.fullmatch(p.name) is not None
    )


def remove_stale_stages(target: Path) -> list[str]:
    """Remove the staging folders that killed imports left beside ``target``, after moving back
    the backbones they had set aside; returns 'PATH (N MiB)' for each. The target's import
    lock must be held."""
    removed = []
    for stage in stale_stages(target):
        _restore_replaced(stage, target.absolute())
        size = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file())
        shutil.rmtree(stage)
        removed.append(f"{stage} ({size / 2**20:.1f} MiB)")
    return removed


def _restore_replaced(stage: Path, target: Path) -> None:
    """Put back a replaced backbone whose replacement was never moved in (killed in between)."""
    trash = stage / _TRASH
    if not trash.is_dir():
        return
    for old in sorted(trash.glob("*/*")):
        dst = target / old.relative_to(trash)
        if old.is_dir() and dst.parent.is_dir() and not dst.exists():
            os.replace(old, dst)


def commit(
    layout: _Layout, copies: list[Copy], target: Path, *, new_store: bool, expected: dict
) -> None:
    """Copy into a staging folder beside ``target``, then move into place (rolled back on error)."""
    target = target.absolute()
    stage = stage_path(target)
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
        trash = stage / _TRASH
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


def _copy_group(layout: _Layout, c: Copy, base: Path, expected: dict) -> None:
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
