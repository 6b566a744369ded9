"""How :class:`Store` finds its nodes from their raw metadata (``_rawmeta``) and refuses damaged
ones (``_audit``), so that a damaged ``zarr.json`` is one line, not an exception inside zarr."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zarr

from embedstore._version import __version__
from embedstore.errors import CorruptStoreError, FormatVersionError, StoreNotFoundError
from embedstore.store._access import subgroup
from embedstore.store._audit import (
    BACKBONE_ARRAYS,
    DATA_ARRAYS,
    GONE,
    backbone_audit,
    dataset_audit,
    node_problems,
)
from embedstore.store._create import backbone_groups, marked_group
from embedstore.store._layout import FORMAT_VERSION, RootAttrs
from embedstore.store._rawmeta import RawMeta
from embedstore.store._validate import is_data_array


def check_root(meta: Any, location: str) -> None:
    """Refuse, in one line, a root zarr.json (parsed, ``_audit.parse``) that zarr could not
    parse or that is not a group."""
    problems = node_problems(meta, "root")
    if problems:
        raise CorruptStoreError(
            f"store '{location}' is damaged: its root metadata: {problems[0]}; nothing was "
            f"read. `embedstore verify {location}` lists every damage; import a good copy"
        )


def root_version(attrs: RootAttrs, location: str) -> int:
    """The store's format version; a Zarr group that is not a store, or a store of a newer
    format, is refused."""
    version = attrs.embedstore_format  # an integer: node_problems refused another
    if version is None:
        raise StoreNotFoundError(
            f"'{location}' is a Zarr group but not an embedstore store "
            "(no 'embedstore_format' attribute at its root)"
        )
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"store '{location}' has format version {version}, newer than this embedstore "
            f"understands ({FORMAT_VERSION}, embedstore {__version__}); "
            f"it was written by {attrs.created_by or 'a newer embedstore'}; "
            "upgrade embedstore to read it"
        )
    return version


class AuditedNodes:
    """A mixin of :class:`Store`: it needs ``_root``, ``_meta`` and ``location``."""

    _root: zarr.Group
    _meta: RawMeta
    location: str

    def _is_dataset(self, name: str) -> bool:
        meta = self._meta(name)
        if meta is GONE:
            return False
        attrs = meta.get("attributes") if isinstance(meta, dict) else None
        return (
            not isinstance(attrs, dict)
            or "n_samples" in attrs
            or bool(node_problems(meta, "dataset", legacy=self._legacy))
        )

    @property
    def _legacy(self) -> bool:
        return getattr(self, "format_version", FORMAT_VERSION) < 2

    def _damaged(self, path: str, problems: list[str]) -> CorruptStoreError:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        fix = (
            "extract it again (--overwrite)"
            if "/" in path
            else "delete the dataset's folder and extract it again"
        )
        return CorruptStoreError(
            f"'{path}' in store '{self.location}' is damaged: {problems[0]}{more}; nothing was "
            f"read. `embedstore verify {self.location}` lists every damage; {fix}, or import a "
            "good copy"
        )

    def _drop_if_damaged(self, dataset: str, backbone: str, overwrite: bool) -> None:
        """A backbone group whose own metadata zarr cannot parse: refused, or with ``overwrite``
        removed without zarr (its zarr.json first: a kill leaves an interrupted creation)."""
        path = f"{dataset}/{backbone}"
        meta = self._meta(path)
        if meta is GONE or not node_problems(meta, "backbone", legacy=self._legacy):
            return
        if not overwrite:
            raise self._damaged(path, node_problems(meta, "backbone", legacy=self._legacy))
        from zarr.core.sync import sync

        sync(self._root.store.delete(f"{path}/zarr.json"))
        sync(self._root.store.delete_dir(path))

    def _audit_dataset(self, name: str) -> None:
        if "/" in name or not name or self._meta(name) is GONE:
            return
        nodes = (name, *(f"{name}/{a}" for a in DATA_ARRAYS))
        problems = self._audited(
            nodes, lambda: dataset_audit(self._meta, name, legacy=self._legacy)
        )
        if problems:
            raise self._damaged(name, problems)

    def _audit_backbone(self, dataset: str, backbone: str) -> None:
        path = f"{dataset}/{backbone}"
        if "/" in backbone or not backbone or self._meta(path) is GONE:
            return
        nodes = (dataset, path, *(f"{path}/{a}" for a in BACKBONE_ARRAYS))
        problems = self._audited(
            nodes, lambda: backbone_audit(self._meta, dataset, backbone, legacy=self._legacy)
        )
        if problems:
            raise self._damaged(path, problems)

    def _audited(self, nodes: tuple[str, ...], audit: Callable[[], list[str]]) -> list[str]:
        """``audit()``, computed again only when one of these nodes' metadata changed."""
        cache = self.__dict__.setdefault("_audits", {})
        stamp = self._meta.stamp(nodes)
        hit = cache.get(nodes)
        if hit is None or hit[0] != stamp:
            hit = cache[nodes] = (stamp, audit())
        return hit[1]

    def _data_arrays(self, name: str) -> set[str]:
        """The data arrays (ids, labels, split, group) a dataset holds, from raw metadata."""
        if self._meta.children(name) is None:
            return set(subgroup(self._root, name).array_keys())
        return {
            a for a in ("ids", "labels", "split", "group") if self._meta(f"{name}/{a}") is not GONE
        }

    def _backbone_lists(self, g: zarr.Group, dataset: str) -> tuple[list[str], list[str]]:
        """(backbones, interrupted) of a dataset; one whose metadata is damaged is a backbone
        (listed, and refused when read)."""
        names = self._meta.children(dataset)
        if names is None:
            return backbone_groups(g)
        damaged = [
            n for n in names
            if not is_data_array(n)
            and node_problems(self._meta(f"{dataset}/{n}"), "backbone", legacy=self._legacy)
        ]  # fmt: skip
        if not damaged:
            return backbone_groups(g)
        done: list[str] = []
        interrupted: list[str] = []
        for n in names:
            if n in damaged:
                done.append(n)
            elif not is_data_array(n):
                (done if marked_group(g, n) is not None else interrupted).append(n)
        return sorted(done), sorted(interrupted)
