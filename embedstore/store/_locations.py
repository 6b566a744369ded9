"""Where a store lives: a local folder, an archive (Zarr zip store), or an fsspec URL."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import zarr
from zarr.core.common import JSON

from embedstore._version import __version__
from embedstore.errors import (
    ArchiveError,
    InvalidDataError,
    ReadOnlyError,
    StoreExistsError,
    StoreNotFoundError,
)
from embedstore.store._audit import parse
from embedstore.store._guard import writing
from embedstore.store._layout import FORMAT_VERSION
from embedstore.store._nodes import check_root
from embedstore.store._raw import is_remote, remote_storage_options
from embedstore.store._store import Store
from embedstore.store._zipcheck import check_zip_members, check_zip_metadata

_REMOTE_SCHEMES = ("http", "https", "s3")


def _fsspec_store(
    location: str, storage_options: dict[str, Any] | None, needs: str, *, read_only: bool = True
) -> Any:
    """zarr's FsspecStore for ``location`` (endpoint from the environment as for every s3 URL);
    a missing fsspec backend is one error starting with ``needs``."""
    opts = remote_storage_options(location, storage_options)
    try:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(location.rstrip("/"), storage_options=opts, read_only=read_only)
    except ImportError as exc:
        raise StoreNotFoundError(
            f"{needs} ({exc.name or exc}); install them with `pip install 'embedstore[remote]'`"
        ) from None


def _open_remote_root(
    location: str, mode: str, storage_options: dict[str, Any] | None
) -> zarr.Group:
    """Open the root group of a store at an fsspec URL (https://, http://, s3://), read-only."""
    scheme = location.split("://", 1)[0].lower()
    if scheme not in _REMOTE_SCHEMES:
        raise StoreNotFoundError(
            f"cannot read '{location}': URL scheme '{scheme}' is not supported; "
            f"use one of {', '.join(s + '://' for s in _REMOTE_SCHEMES)}, or a local path"
        )
    if mode != "r":
        raise ReadOnlyError(
            f"remote store '{location}' can only be opened read-only (mode='r'); "
            "import it into a local store with `embedstore import URL STORE` to modify it"
        )
    fs_store = _fsspec_store(
        location, storage_options, f"reading '{location}' needs fsspec and its {scheme} backend"
    )
    try:
        root = zarr.open_group(fs_store, mode="r", zarr_format=3)
        if scheme in ("http", "https"):
            _check_listable(fs_store, location)
        return root
    except StoreNotFoundError:
        raise
    except FileNotFoundError:
        raise StoreNotFoundError(
            f"no Zarr v3 store at '{location}' (no zarr.json there); check the URL, "
            "and that the store folder itself (the one holding zarr.json) was uploaded"
        ) from None
    except Exception as exc:  # network and permission errors come in many types
        raise StoreNotFoundError(
            f"could not read the store at '{location}': {type(exc).__name__}: {exc}; "
            "check the URL, the network, and credentials or endpoint (storage_options, "
            "AWS_ENDPOINT_URL)"
        ) from None


def _check_listable(fs_store: Any, location: str) -> None:
    """A store over HTTP is read through folder listings (its datasets, arrays, and which chunks
    exist: a chunk that is absent would read as zeros). A server that answers folder URLs with
    an error (a static host, a bucket's website endpoint) cannot list: say so, in one line,
    instead of showing an empty or damaged store."""
    from zarr.core.sync import sync

    async def first() -> list[str]:
        out = []
        async for key in fs_store.list_dir(""):
            out.append(key)
            break
        return out

    try:
        listed = sync(first())
        why = "it lists nothing in the store's folder" if not listed else ""
    except Exception as exc:  # the HTTP errors come in many types
        why = f"{type(exc).__name__}: {str(exc)[:120]}"
    if why:
        raise StoreNotFoundError(
            f"cannot read the store at '{location}': its server does not list folders ({why}), "
            "and a store is read through its folder listings (datasets, arrays, and which "
            "chunks exist); serve it from a server that lists folders or an s3:// bucket, or "
            "export it to one archive file (`embedstore export`) and read that"
        )


def _open_zip_root(path: Path, mode: str) -> zarr.Group:
    """Open the root group of an archive (a Zarr zip store), read-only."""
    if not zipfile.is_zipfile(path):
        raise StoreNotFoundError(
            f"'{path}' is a file but not a zip archive; pass a store folder (.zarr) or an "
            "archive made by `embedstore export`"
        )
    if mode != "r":
        raise ReadOnlyError(
            f"archive '{path}' can only be opened read-only (mode='r'); import it into a "
            "local store with `embedstore import ARCHIVE STORE` to modify it"
        )
    from zarr.storage import ZipStore

    try:
        with zipfile.ZipFile(path) as zf:  # its directory, then its zarr.json members
            check_zip_metadata(zf, check_zip_members(zf, path), path)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"'{path}' is not a readable zip archive: {exc}") from None
    with zipfile.ZipFile(path) as zf:
        if "zarr.json" in zf.namelist():
            check_root(parse(zf.read("zarr.json")), str(path))
    try:
        return zarr.open_group(ZipStore(path, mode="r"), mode="r", zarr_format=3)
    except FileNotFoundError:
        raise StoreNotFoundError(
            f"'{path}' is a zip file but not a Zarr store (no zarr.json member at its root); "
            "pass an archive made by `embedstore export`"
        ) from None


def _open_root(
    location: str | os.PathLike[str],
    mode: str,
    storage_options: dict[str, Any] | None = None,
) -> zarr.Group:
    """Open the root group of a store folder, an archive file, or a remote URL.

    Archives and URLs open read-only and only as Zarr v3 (whose codecs never unpickle).
    """
    location = str(location)
    if location.startswith("file://"):
        location = location[len("file://") :]
    if is_remote(location):
        return _open_remote_root(location, mode, storage_options)
    path = Path(location)
    if path.is_file():
        return _open_zip_root(path, mode)
    if not (path / "zarr.json").is_file():
        if path.is_dir() and all(p.name.endswith(".partial") for p in path.iterdir()):
            raise StoreNotFoundError(
                f"'{path}' is not a Zarr store yet (an empty folder, no zarr.json): an "
                "extraction may have stopped before it created the store; rerun `embedstore "
                "extract` into it, or pass the path of a store made by embedstore"
            )
        if path.exists():
            raise StoreNotFoundError(
                f"'{path}' exists but is not a Zarr v3 store (no zarr.json); "
                "pass the path of a store made by embedstore"
            )
        raise StoreNotFoundError(
            f"no store at '{path}'; check the path, or create one with `embedstore extract`"
        )
    check_root(parse((path / "zarr.json").read_bytes()), str(path))
    return zarr.open_group(str(path), mode="r+" if mode == "r+" else "r")  # open_store checked


def _create_remote(location: str, storage_options: dict[str, Any] | None) -> Store:
    """Open or create a store at an ``s3://`` URL for writing, through zarr's FsspecStore."""
    if not location.startswith("s3://"):
        raise ReadOnlyError(
            f"cannot write a store at '{location}': only s3:// URLs (and local paths) are "
            "writable; http(s) URLs are read-only"
        )
    fs_store = _fsspec_store(
        location, storage_options, f"writing '{location}' needs fsspec and s3fs", read_only=False
    )
    try:
        root = zarr.open_group(fs_store, mode="a", zarr_format=3)
        if "embedstore_format" not in root.attrs and not list(root.keys()):
            root.update_attributes(
                {"embedstore_format": FORMAT_VERSION, "created_by": f"embedstore {__version__}"}
            )
    except Exception as exc:  # network and permission errors come in many types
        raise StoreNotFoundError(
            f"could not create or open the store at '{location}' for writing: "
            f"{type(exc).__name__}: {exc}; check the URL, the bucket, and credentials or endpoint "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)"
        ) from None
    return Store(root, location, read_only=False)


def create_store(
    location: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None
) -> Store:
    """Create a store at a local path or an ``s3://`` URL, or open the one there for writing.

    ``storage_options`` go to fsspec for ``s3://`` (credentials, ``client_kwargs``);
    ``AWS_ENDPOINT_URL`` and the usual ``AWS_*`` variables are honoured.
    """
    location = str(location)
    if is_remote(location):
        return _create_remote(location, storage_options)
    path = Path(location)
    if (path / "zarr.json").is_file():
        return open_store(path, mode="r+")
    if path.is_dir():  # a kill while the root zarr.json was written leaves only its temp file
        for leftover in path.glob("zarr.*.partial"):
            leftover.unlink(missing_ok=True)
    if path.exists() and any(path.iterdir()):
        raise StoreExistsError(
            f"'{path}' exists and is not an empty folder or a Zarr store; choose another path"
        )
    # One write of the root zarr.json with its attributes: a reader never sees a bare Zarr group.
    attrs: dict[str, JSON] = {
        "embedstore_format": FORMAT_VERSION,
        "created_by": f"embedstore {__version__}",
    }
    with writing(str(path), "the new store", resumable=False):
        root = zarr.open_group(str(path), mode="w", attributes=attrs)
    return Store(root, str(path), read_only=False)


def open_store(
    location: str | os.PathLike[str],
    *,
    mode: str = "r",
    storage_options: dict[str, Any] | None = None,
) -> Store:
    """Open an existing store; ``mode`` is 'r' (read-only, the default) or 'r+'.

    ``location`` is a store folder, an archive file made by ``embedstore export`` (a Zarr zip
    store), or a URL (``https://``, ``http://``, ``s3://``; needs ``embedstore[remote]``).
    Archives and URLs are read-only. ``storage_options`` go to fsspec for URLs (credentials,
    ``client_kwargs={"endpoint_url": ...}``); ``AWS_ENDPOINT_URL`` is honoured for ``s3://``.
    """
    if mode not in ("r", "r+"):
        raise InvalidDataError(f"mode must be 'r' or 'r+', got '{mode}'")
    location = str(location)
    root = _open_root(location, mode, storage_options)
    return Store(root, location, read_only=mode == "r")
