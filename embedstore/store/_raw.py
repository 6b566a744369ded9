"""The stored files of a store as bytes: the one raw reader of chunk files and metadata.

A store lives in a folder, a zip archive (``embedstore export``) or at a URL; :func:`open_raw`
gives a :class:`RawStore` over any of them whose keys are paths relative to the store root
(``dataset/backbone/embeddings/c/0/0``, ``zarr.json``) and whose ``read`` returns a file's bytes
exactly as stored (chunks still compressed). ``verify``, ``import`` and ``export`` read stores
this way, never through zarr; the fast float32 read (``_fastread``) reads its chunk files through
:class:`DirRaw`. Archive member names are checked from the zip's central directory before any
member is read (``_zipcheck``).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from embedstore.errors import ArchiveError, StoreNotFoundError
from embedstore.store._zipcheck import check_zip_members

META = "zarr.json"


def is_remote(location: str) -> bool:
    """Whether ``location`` is a URL read through fsspec (``file://`` is a local path)."""
    return "://" in location and not location.startswith("file://")


def remote_storage_options(location: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """fsspec options for a URL: the caller's, plus an S3 endpoint from the environment.

    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (the AWS CLI's variables) point ``s3://`` at an
    S3-compatible server (MinIO, moto, Ceph) when ``storage_options`` names no endpoint.
    """
    opts = dict(storage_options or {})
    if location.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        client_kwargs = dict(opts.get("client_kwargs") or {})
        if endpoint and "endpoint_url" not in opts and "endpoint_url" not in client_kwargs:
            client_kwargs["endpoint_url"] = endpoint
            opts["client_kwargs"] = client_kwargs
    return opts


class RawStore:
    """The stored files of a store as bytes, keyed by path relative to the store root."""

    location: str
    kind: str  # "store" (a folder), "archive" (a zip file) or "remote" (a URL)

    def keys(self) -> list[str]:
        """Every stored file, sorted (no folders)."""
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        """One file's bytes as stored; a file that does not exist raises (FileNotFoundError for
        a folder)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class DirRaw(RawStore):
    """A store folder on the local file system."""

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


class ZipRaw(RawStore):
    """An archive: its member names are checked when it is opened, before any is read."""

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


class FsspecRaw(RawStore):
    """A store at a URL (https://, s3://), read through fsspec."""

    kind = "remote"

    def __init__(self, url: str, storage_options: dict[str, Any] | None) -> None:
        from fsspec.core import url_to_fs

        self.location = url
        self._fs, root = url_to_fs(url.rstrip("/"), **remote_storage_options(url, storage_options))
        self._root: str = root.rstrip("/")
        self._keys: list[str] | None = None

    def keys(self) -> list[str]:
        if self._keys is None:
            try:
                found = self._fs.find(self._root)
            except FileNotFoundError:
                found = []
            prefix = self._root + "/"
            self._keys = sorted(p[len(prefix) :] for p in found if p.startswith(prefix))
            if not self._keys and self._fs.exists(f"{self._root}/{META}"):
                raise ArchiveError(
                    f"cannot list the store at '{self.location}': its server does not list "
                    "folders, though its zarr.json is there; nothing can be checked without "
                    "the list of its files. Serve it from a server that lists folders or an "
                    "s3:// bucket, or export it to one archive file and verify that"
                )
        return self._keys

    def read(self, key: str) -> bytes:
        data: bytes = self._fs.cat_file(f"{self._root}/{key}")
        return data


def open_raw(location: str, storage_options: dict[str, Any] | None = None) -> RawStore:
    """The raw files of the store folder, archive or URL at ``location``."""
    if is_remote(location):
        return FsspecRaw(location, storage_options)
    path = Path(location.removeprefix("file://"))
    if path.is_file():
        return ZipRaw(path)
    if (path / META).is_file():
        return DirRaw(path)
    raise StoreNotFoundError(
        f"no store or archive at '{location}'; pass a store folder (.zarr), an archive made by "
        "`embedstore export`, or a URL"
    )
