"""Writer locks: one process (or one torchrun job) writes a store's dataset or array at a time.

A lock is a small JSON file created atomically beside the store, like the ``<resource>.lock``
files of mahmoodlab/TRIDENT (``trident/IO.py``: ``create_lock`` / ``is_locked`` /
``remove_lock``), with what TRIDENT's lacks: who holds it (pid, hostname, the process's start
time, the torchrun run id) so that a lock left by a killed process is recognised and taken over.

- Local stores: ``<store>.locks/<name>.lock`` created with ``O_CREAT | O_EXCL``; the folder sits
  beside the store, so the store's own files (checksums, archives, zarr listings) never see it.
- ``s3://`` stores: the same key beside the store, created with a conditional put
  (``If-None-Match: *``, s3fs ``pipe_file(mode="create")``).

A lock is stale when its holder ran on this host and that process is gone (its pid is dead, or
now belongs to a process that started at another time); a stale lock is replaced. A lock held on
another host is never judged: remove its file by hand once that job is known to be dead. Holders
with the same run id (the ranks of one torchrun job, or its restart) share the lock.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from embedstore.errors import StorageError, StoreBusyError, StoreExistsError
from embedstore.store._raw import remote_storage_options

__all__ = ["writer_lock"]


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    now = _process_start(pid)
    return started is None or now is None or now == started


def _holder(run_id: str | None) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_start": _process_start(os.getpid()),
        "run_id": run_id,
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


class _Files:
    """Create-if-absent, read and delete of small files, local or through fsspec."""

    def __init__(self, folder: str, storage_options: dict[str, Any] | None) -> None:
        self.folder = folder
        self.fs = None
        if "://" in folder:
            import fsspec

            # the store's own options, endpoint from AWS_ENDPOINT_URL included: without it, s3fs
            # would reuse a cached client made for whatever endpoint the environment named first
            opts = remote_storage_options(folder, storage_options)
            self.fs, self.root = fsspec.core.url_to_fs(folder, **opts)
        else:
            self.root = folder

    def path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def create(self, name: str, data: bytes) -> bool:
        """Write ``data`` to a new file; False if the file already exists."""
        if self.fs is None:  # written in full under a private name, then linked: atomic
            Path(self.root).mkdir(parents=True, exist_ok=True)
            private = self.path(f"{name}.{os.getpid()}.new")
            Path(private).write_bytes(data)
            try:
                os.link(private, self.path(name))
            except FileExistsError:
                return False
            finally:
                os.unlink(private)
            return True
        try:
            self.fs.pipe_file(self.path(name), data, mode="create")
        except FileExistsError:
            return False
        return True

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            raw = (
                Path(self.path(name)).read_bytes()
                if self.fs is None
                else self.fs.cat_file(self.path(name))
            )
        except FileNotFoundError:
            return None
        try:
            return dict(json.loads(raw))
        except ValueError:  # damaged (locks are written whole): nobody can be said to hold it
            return {}

    def break_stale(self, name: str, judged: dict[str, Any]) -> None:
        """Remove a lock judged stale, unless another process replaced it meanwhile.

        Locally the file is first renamed to a private name and read back: when it is no longer
        the record that was judged (a live process took over in between), it is put back.
        On object storage the check-then-delete is not atomic: two processes breaking the same
        stale lock at the same instant may both proceed (documented in the README).
        """
        if self.fs is not None:
            if self.read(name) == judged:
                self.delete(name)
            return
        private = self.path(f"{name}.{os.getpid()}.breaking")
        try:
            os.rename(self.path(name), private)
        except FileNotFoundError:
            return
        try:
            if json.loads(Path(private).read_bytes() or b"{}") != judged:
                with contextlib.suppress(FileExistsError):
                    os.link(private, self.path(name))
        except ValueError:
            pass
        finally:
            os.unlink(private)

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.fs is None:
                os.unlink(self.path(name))
            else:
                self.fs.rm_file(self.path(name))
        if self.fs is None:
            with contextlib.suppress(OSError):
                os.rmdir(self.root)  # only when no other lock is left in it


def _stale(holder: dict[str, Any], run_id: str | None) -> bool:
    if not holder:
        return True  # a damaged record: its writer cannot be identified, let alone alive
    if run_id is not None and holder.get("run_id") == run_id:
        return True  # our own job (another rank's earlier attempt, or an elastic restart)
    if holder.get("host") != socket.gethostname() or "pid" not in holder:
        return False
    return not _alive(int(holder["pid"]), holder.get("process_start"))


def _describe(holder: dict[str, Any]) -> str:
    parts = [f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"]
    if holder.get("run_id"):
        parts.append(f"torchrun run {holder['run_id']}")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return ", ".join(parts)


@contextlib.contextmanager
def writer_lock(
    store_location: str,
    names: list[str],
    *,
    run_id: str | None = None,
    wait: float = 0.0,
    storage_options: dict[str, Any] | None = None,
    what: str | None = None,
    folder: bool = True,
) -> Iterator[None]:
    """Hold the locks ``names`` (e.g. ``["setup"]`` or ``["ds/resnet50.dino"]``) of a store, or
    raise :class:`StoreBusyError` naming the holder, after waiting up to ``wait`` seconds for it
    to let go. Locks are taken in sorted order and released on exit, also on error; a stale lock
    (its holder on this host is dead) is replaced. ``what`` names the locked thing in the busy
    message (default: the lock's name in the store), e.g. "results file runs.jsonl".
    """
    deadline = time.monotonic() + wait
    if folder:  # the locks of a store (not of an archive file's path)
        _check_target(str(store_location))
    files = _Files(str(store_location).rstrip("/") + ".locks", storage_options)
    keys = sorted({n.replace("/", "--") + ".lock" for n in names})
    data = json.dumps(_holder(run_id)).encode()
    held: list[str] = []
    try:
        for key in keys:
            for _attempt in itertools.count():
                if _attempt >= 3 and time.monotonic() >= deadline:
                    raise StoreBusyError(
                        f"could not take the lock {files.path(key)} of store '{store_location}': "
                        "other processes keep taking it; run again"
                    )
                try:
                    created = files.create(key, data)
                except OSError as exc:
                    raise StorageError(
                        f"cannot write to store '{store_location}': creating its lock folder "
                        f"{files.root} failed ({exc.strerror or exc}); nothing was written. Choose "
                        "a path in a folder you can write to"
                    ) from None
                if created:
                    held.append(key)
                    break
                holder = files.read(key)
                if holder is None:
                    continue  # released between our two calls
                if not _stale(holder, run_id):
                    if time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    subject = what or (
                        f"'{key[:-5].replace('--', '/')}' in store '{store_location}'"
                    )
                    raise StoreBusyError(
                        f"{subject} is being written by another process ({_describe(holder)}); wait for it to finish, "
                        f"or, if that process is dead on another host, delete "
                        f"{files.path(key)} and run again"
                    )
                files.break_stale(key, holder)
        yield
    finally:
        for key in reversed(held):
            files.delete(key)


def _check_target(location: str) -> None:
    """A local store path must be a folder (or not exist yet): a file there is refused."""
    if "://" in location and not location.startswith("file://"):
        return
    path = Path(location.removeprefix("file://"))
    if path.exists() and not path.is_dir():
        kind = "an archive (read-only; import it first)" if zipfile.is_zipfile(path) else "a file"
        raise StoreExistsError(
            f"cannot write a store at '{path}': it is {kind}, not a store folder; nothing was "
            "written. Pass a new path or an existing .zarr folder"
        )
