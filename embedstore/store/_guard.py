"""Turning what the storage underneath raises into one clear embedstore error.

Zarr passes up whatever its store raises: ``OSError`` from the local file system (a full disk,
a quota, a file size limit, permissions), ``zipfile.BadZipFile`` from a damaged archive member,
and decoder errors from a damaged or truncated chunk. :func:`writing` and :func:`reading` wrap a
block of store work and re-raise those as :class:`StorageError`, :class:`ArchiveError` or
:class:`CorruptStoreError`, saying what was being done and what to do next.
"""

from __future__ import annotations

import errno
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from embedstore.errors import ArchiveError, CorruptStoreError, EmbedstoreError, StorageError

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@contextmanager
def writing(location: str, what: str, *, resumable: bool = True) -> Iterator[None]:
    """Re-raise an ``OSError`` of the storage as :class:`StorageError`."""
    try:
        yield
    except EmbedstoreError:
        raise
    except OSError as exc:
        raise StorageError(write_failure(exc, location, what, resumable=resumable)) from None


def write_failure(exc: OSError, location: str, what: str, *, resumable: bool = True) -> str:
    """The message for a failed write: what happened, what is kept, what to do."""
    code = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc) or type(exc).__name__
    after = (
        "the array stays incomplete and the chunks already on disk are kept; rerun the same "
        "command once the problem is fixed: it resumes from the last chunk written"
        if resumable
        else "nothing was marked complete; rerun once the problem is fixed"
    )
    if exc.errno in _FULL:
        limit = {
            errno.ENOSPC: "the disk holding it is full",
            errno.EDQUOT: "the disk quota is exhausted",
            errno.EFBIG: "a file size limit was reached",
        }[exc.errno]
        return (
            f"could not write {what} to '{location}': {limit} ({reason}, {code}); {after}. "
            "Free some space (or write the store elsewhere)"
        )
    return (
        f"could not write {what} to '{location}': {reason} ({code or type(exc).__name__}); {after}"
    )


@contextmanager
def reading(location: str, what: str) -> Iterator[None]:
    """Re-raise a damaged archive member, chunk or file met while reading as one clear error.

    A node whose ``zarr.json`` is gone (zarr raises ``KeyError``) is damage too.
    Zarr's warnings about files it does not recognise (left by damage) are silenced here: the
    damage is reported once, by the error or by ``embedstore verify``.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not recognized as a component")
            yield
    except EmbedstoreError:
        raise
    except zipfile.BadZipFile as exc:
        member = _first_bad_member(location)
        where = f"member '{member}'" if member else "a member"
        raise ArchiveError(
            f"archive '{location}' is damaged: {where} cannot be read ({exc}) while reading "
            f"{what}; nothing was changed. Ask for a fresh copy; `embedstore verify {location}` "
            "lists every damaged member"
        ) from None
    except KeyError as exc:  # zarr's group[name] for a node whose zarr.json is gone
        raise CorruptStoreError(
            f"{what} in '{location}' cannot be read: {exc} is gone (no zarr.json); the store is "
            f"damaged. `embedstore verify {location}` lists every damage; extract the array "
            "again (--overwrite) or import a good copy"
        ) from None
    except (OSError, ValueError, RuntimeError, TypeError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            if exc.errno not in (errno.EIO, None):
                raise StorageError(
                    f"could not read {what} from '{location}': {exc.strerror or exc}"
                ) from None
        raise CorruptStoreError(
            f"{what} in '{location}' cannot be read: {type(exc).__name__}: {exc}; the store is "
            f"damaged. `embedstore verify {location}` names every damaged chunk"
        ) from None


def _first_bad_member(location: str) -> str | None:
    """The first member of a zip archive whose bytes fail their CRC (reads the whole archive)."""
    path = Path(location)
    if not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED:  # never inflate: refused at open
                    continue
                try:
                    with zf.open(info) as fh:
                        while fh.read(2**20):
                            pass
                except (zipfile.BadZipFile, OSError, ValueError, EOFError):
                    return info.filename
    except (zipfile.BadZipFile, OSError):
        return None
    return None
