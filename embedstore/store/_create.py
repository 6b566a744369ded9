"""Creating, resuming and deleting one backbone group, so that a kill at any moment leaves a state
that readers show and that the next extraction repairs by itself.

Creation is made atomic by its order: the group's ``zarr.json`` (no attributes), then every array,
then the mark ``complete: false`` in the group's attributes, one write. Until the mark is there
the group is not a backbone (:func:`creation_interrupted`): :meth:`Store.backbones` leaves it out,
``embedstore ls`` shows it as "creation interrupted", and the next writer for that backbone
deletes and recreates it (it cannot hold a row: rows are written only after the mark).

Deletion runs the same order backwards: the mark is removed first (one write), then the arrays.
A kill in between leaves a group without the mark, which the next writer recreates, instead of a
marked group with arrays gone. A folder left with no ``zarr.json`` at all (a kill during the
removal of the folder) is invisible to zarr; creating the group again clears it.
"""

from __future__ import annotations

import warnings
from typing import Any

import zarr

from embedstore.errors import ConflictError
from embedstore.store._checks import BACKBONE_ARRAYS
from embedstore.store._info import ArrayInfo, child_group
from embedstore.store._layout import BackboneAttrs

MARK = "complete"  # the attribute whose presence makes a group a backbone


def rows_stored(bg: zarr.Group) -> bool:
    """Whether any embeddings chunk or progress mark of a backbone group is stored: a listing of
    raw keys, so that it answers even when an array's ``zarr.json`` is gone."""
    from zarr.core.sync import sync

    async def any_chunk() -> bool:
        for name in ("embeddings", "progress"):
            prefix = f"{bg.path}/{name}/".lstrip("/")
            async for key in bg.store.list_prefix(prefix):
                if not key.endswith((".partial", "zarr.json")):
                    return True
        return False

    return bool(sync(any_chunk()))


def creation_interrupted(bg: zarr.Group) -> bool:
    """Whether a backbone group's creation (or deletion) stopped before it held anything: it is
    not a backbone, and the next extraction of it recreates it (nothing computed is lost).

    A group without the mark was interrupted. A marked, incomplete group that lacks an array but
    has no row stored (left by a version that marked the group first) is treated the same. A
    group with rows stored is never one: an array gone there is damage, which reads refuse.
    """
    complete = BackboneAttrs.of(bg).complete  # MARK
    if complete is None:
        return True
    if complete:
        return False
    if set(BACKBONE_ARRAYS) <= set(bg.array_keys()):
        return False
    return not rows_stored(bg)


def backbone_groups(g: zarr.Group) -> tuple[list[str], list[str]]:
    """(backbones, groups whose creation was interrupted) of a dataset group, each sorted."""
    done: list[str] = []
    interrupted: list[str] = []
    for name, bg in g.groups():
        (interrupted if creation_interrupted(bg) else done).append(name)
    return sorted(done), sorted(interrupted)


def marked_group(g: zarr.Group, name: str) -> zarr.Group | None:
    """The backbone group ``name`` if it is one (see :func:`creation_interrupted`), else None."""
    bg = child_group(g, name, MARK)  # one metadata read (cheap on s3://)
    return None if bg is None or creation_interrupted(bg) else bg


def has_group(g: zarr.Group, name: str) -> bool:
    """Whether ``g`` has a subgroup ``name`` (zarr warns of a folder left without zarr.json, which
    :func:`create_group` clears: no warning for it here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component")
        return name in g.group_keys()


def drop_group(g: zarr.Group, name: str) -> None:
    """Delete a backbone group: its mark first (one write), then everything under it."""
    bg = g[name]
    if MARK in bg.attrs:
        bg.attrs.put({k: v for k, v in bg.attrs.asdict().items() if k != MARK})  # one write
    del g[name]


def create_group(
    g: zarr.Group, name: str, make_arrays, attrs: dict[str, Any] | None = None
) -> zarr.Group:
    """A new backbone group: ``make_arrays(group)`` creates every array, then the mark is set.

    Whatever is left under ``name`` is cleared first: an unmarked group (checked by the caller)
    or a folder without ``zarr.json`` (a kill while a group was being removed).
    """
    bg = g.create_group(name, overwrite=True)
    make_arrays(bg)
    # last, in one write (zarr's attrs.update writes once per key): a backbone from here on
    bg.update_attributes({**(attrs or {}), MARK: False, "provenance": {}})
    return bg


def check_numerics(recorded: Any, current: dict[str, Any] | None, what: str) -> None:
    """A resume must compute the remaining rows as the first run did: same numeric
    configuration (``numerics``: threads, device, dtype, autocast, deterministic flags, torch)."""
    if current is None or not isinstance(recorded, dict) or recorded == current:
        return
    keys = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
    was = ", ".join(f"{k} {recorded.get(k)!r}" for k in keys)
    now = ", ".join(f"{k} {current.get(k)!r}" for k in keys)
    match = (
        f"rerun with --threads {recorded['threads']}"
        if keys == ["threads"] and isinstance(recorded.get("threads"), int)
        else "rerun with the recorded configuration"
    )
    raise ConflictError(
        f"the incomplete {what} array was started with {was}, but this run has {now}: rows "
        f"computed under the two would differ in their last bits; {match}, or pass --overwrite "
        "to start again under this one"
    )


def check_resumable(info: ArrayInfo, shape: tuple[int, int], dtype: str) -> None:
    """An existing array is resumed only if it is incomplete and of this run's shape and dtype."""
    what = f"'{info.backbone}' for '{info.dataset}'"
    if info.complete:
        raise ConflictError(
            f"embeddings of {what} are already complete; pass --overwrite to extract them again"
        )
    if info.shape != shape or info.dtype != dtype:
        raise ConflictError(
            f"an incomplete {what} array has shape {info.shape} {info.dtype}, but this run "
            f"writes {shape} {dtype}; pass --overwrite to discard it and start again"
        )
