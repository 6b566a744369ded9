"""Raw ``zarr.json`` of a store's nodes, read without zarr (so that damaged metadata is a finding,
not an exception inside zarr), and the child nodes of a group."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import zarr

from embedstore.store._audit import GONE, identity, metadata_sha256, parse


class RawMeta:
    """``meta(path)``: the parsed zarr.json of the node at ``path`` ('' the root), :data:`GONE`
    or :data:`INVALID`. Local files are re-read only when they change (size, mtime); archives and
    URLs are read-only, read once."""

    def __init__(self, root: zarr.Group) -> None:
        store = root.store
        folder = getattr(store, "root", None)
        self._dir: Path | None = folder if isinstance(folder, Path) else None
        path = getattr(store, "path", None)
        is_zip = self._dir is None and type(store).__name__ == "ZipStore"
        self._zip = Path(path) if is_zip and isinstance(path, str | Path) else None
        self._store = store
        self._dir_s = str(self._dir) if self._dir is not None else ""
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._names: list[str] | None = None

    def __call__(self, node: str) -> Any:
        key = f"{node}/zarr.json".lstrip("/")
        if self._dir is not None:
            try:
                st = os.stat(f"{self._dir_s}/{key}")
            except OSError:
                self._cache.pop(key, None)
                return GONE
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            try:
                data = (self._dir / key).read_bytes()
            except OSError:
                return GONE
            value = parse(data)
            self._cache[key] = (stamp, value)
            return value
        if key in self._cache:
            return self._cache[key][1]
        value = parse(self._read_other(key))
        self._cache[key] = (None, value)
        return value

    def stamp(self, nodes: tuple[str, ...]) -> tuple:
        """Changes whenever one of these nodes' zarr.json changes (read afresh if it did)."""
        out = []
        for node in nodes:
            value = self(node)
            hit = self._cache.get(f"{node}/zarr.json".lstrip("/"))
            out.append((id(value), hit[0] if hit else None))
        return tuple(out)

    def _read_other(self, key: str) -> bytes | None:
        if self._zip is not None:
            try:
                with zipfile.ZipFile(self._zip) as zf:
                    return zf.read(key)
            except KeyError:
                return None
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync

        buf = sync(self._store.get(key, prototype=default_buffer_prototype()))
        return None if buf is None else buf.to_bytes()

    def children(self, node: str) -> list[str] | None:
        """Names of the child nodes of a group (folders holding, or meant to hold, a zarr.json);
        None where the storage cannot list (a URL: zarr lists it)."""
        if self._dir is not None:
            base = self._dir / node if node else self._dir
            try:
                return sorted(
                    e.name for e in os.scandir(base)
                    if e.is_dir() and not e.name.startswith(".") and e.name != "c"
                    and (Path(e.path) / "zarr.json").exists()
                )  # fmt: skip
            except OSError:
                return []
        if self._zip is not None:
            if self._names is None:
                with zipfile.ZipFile(self._zip) as zf:
                    self._names = zf.namelist()
            prefix = f"{node}/" if node else ""
            found = {
                n[len(prefix) :].split("/", 1)[0]
                for n in self._names
                if n.startswith(prefix) and n[len(prefix) :].count("/") == 1
                and n.endswith("/zarr.json")
            }  # fmt: skip
            return sorted(found)
        return None


def record_digests(group: zarr.Group, arrays: list[str], attrs: dict, keys: tuple) -> dict:
    """What a group records of itself when written (see ``_audit``): the sha256 of each of its
    ``arrays``' zarr.json as stored, and of its identity ``attrs`` (those of ``keys``)."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    record = {}
    for name in arrays:
        key = f"{group.path}/{name}/zarr.json".lstrip("/")
        buf = sync(group.store.get(key, prototype=default_buffer_prototype()))
        if buf is not None:
            record[name] = metadata_sha256(json.loads(buf.to_bytes()))
    record["attributes"] = identity(attrs, keys)
    return record
