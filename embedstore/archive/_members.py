"""Raw access to a store's stored files (folder, zip archive, URL) and member-name safety."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

from embedstore.errors import ArchiveError, StoreNotFoundError
from embedstore.store import _is_remote, _remote_storage_options
from embedstore.store._zipcheck import check_zip_members, member_name_problem

_META = "zarr.json"


def check_member_name(name: str) -> None:
    """Refuse a stored key that could escape the target folder or is not a plain store path."""
    bad = member_name_problem(name)
    if bad:
        raise ArchiveError(
            f"archive member '{name}' is refused ({bad}); nothing was read or written. "
            "An embedstore archive holds only relative Zarr v3 keys such as 'dataset/ids/c/0'"
        )


def file_sha256(path: Path) -> str:
    """sha256 of a whole file (an archive), as `sha256sum` prints it."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(2**20):
            h.update(block)
    return h.hexdigest()


class _Raw:
    """The stored files of a store as bytes, keyed by path relative to the store root."""

    location: str
    kind: str

    def keys(self) -> list[str]:
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _DirRaw(_Raw):
    kind = "store"

    def __init__(self, path: Path) -> None:
        self.location, self._root = str(path), path

    def keys(self) -> list[str]:
        out = []
        for dirpath, dirnames, files in os.walk(self._root):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self._root).as_posix()
            # *.partial: a temporary file of an interrupted write (zarr writes each file under a
            # temporary name, then renames it); never part of the store, removed on resume.
            files = [f for f in files if not f.endswith(".partial")]
            out += [f for f in sorted(files)] if rel == "." else [f"{rel}/{f}" for f in files]
        return sorted(out)

    def read(self, key: str) -> bytes:
        return (self._root / key).read_bytes()


class _ZipRaw(_Raw):
    kind = "archive"

    def __init__(self, path: Path) -> None:
        self.location = str(path)
        try:
            self._zf = zipfile.ZipFile(path, "r")
        except zipfile.BadZipFile as exc:
            raise ArchiveError(f"'{path}' is not a readable zip archive: {exc}") from None
        try:  # central directory only: no member content read yet
            self._names = sorted(check_zip_members(self._zf, path))
        except ArchiveError:
            self._zf.close()
            raise

    def keys(self) -> list[str]:
        return list(self._names)

    def read(self, key: str) -> bytes:
        try:
            return self._zf.read(key)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:  # e.g. CRC mismatch
            raise ArchiveError(f"member '{key}' cannot be read: {exc}") from None

    def close(self) -> None:
        self._zf.close()


class _FsspecRaw(_Raw):
    kind = "remote"

    def __init__(self, url: str, storage_options: dict[str, Any] | None) -> None:
        from fsspec.core import url_to_fs

        self.location = url
        self._fs, self._root = url_to_fs(
            url.rstrip("/"), **_remote_storage_options(url, storage_options)
        )
        self._root = self._root.rstrip("/")
        self._keys: list[str] | None = None

    def keys(self) -> list[str]:
        if self._keys is None:
            try:
                found = self._fs.find(self._root)
            except FileNotFoundError:
                found = []
            prefix = self._root + "/"
            self._keys = sorted(p[len(prefix) :] for p in found if p.startswith(prefix))
            if not self._keys and self._fs.exists(f"{self._root}/{_META}"):
                raise ArchiveError(
                    f"cannot list the store at '{self.location}': its server does not list "
                    "folders, though its zarr.json is there; nothing can be checked without "
                    "the list of its files. Serve it from a server that lists folders or an "
                    "s3:// bucket, or export it to one archive file and verify that"
                )
        return self._keys

    def read(self, key: str) -> bytes:
        return self._fs.cat_file(f"{self._root}/{key}")


def _open_raw(location: str, storage_options: dict[str, Any] | None = None) -> _Raw:
    if _is_remote(location):
        return _FsspecRaw(location, storage_options)
    path = Path(location.removeprefix("file://"))
    if path.is_file():
        return _ZipRaw(path)
    if (path / _META).is_file():
        return _DirRaw(path)
    raise StoreNotFoundError(
        f"no store or archive at '{location}'; pass a store folder (.zarr), an archive made by "
        "`embedstore export`, or a URL"
    )
