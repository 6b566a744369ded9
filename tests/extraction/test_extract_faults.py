"""A disk that fills up in the middle of `embedstore extract`: one clear line saying the run
resumes once space is freed, every finished chunk kept, and the rerun bit-identical.

The disk is a real 2 MiB tmpfs filled up by a file while the extraction runs (ENOSPC), where this
process may mount one; otherwise the running process gets a file size limit (``prlimit``: the
kernel answers EFBIG), the other way a write can run out of room.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from embedstore import open_store
from tests.extraction.helpers import (
    SLOW,
    TINY,
    chunk_bytes,
    cli_args,
    cli_process,
    reference_store,
    wait_for,
    write_images,
)

pytestmark = pytest.mark.slow  # mounts a small tmpfs and fills it


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def _fill(disk: Path) -> None:
    with open(disk / "filler", "wb", buffering=0) as f:  # unbuffered: nothing left to flush
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.mark.skipif(sys.platform != "linux", reason="tmpfs or prlimit: Linux only")
def test_a_full_disk_keeps_the_chunks_and_the_rerun_is_bit_identical(tmp_path):
    images = write_images(tmp_path / "images")
    reference = reference_store(tmp_path / "reference.zarr", images)
    disk = tmp_path / "disk"
    mounted = _mount_tmpfs(disk, "2m")
    try:
        store = disk / "s.zarr"
        job = cli_process(*cli_args(store, images, SLOW), slow=0.3)
        wait_for(store / "ds" / SLOW / "progress" / "c" / "1", job)  # two chunks on disk
        if mounted:
            _fill(disk)
        else:
            resource.prlimit(job.pid, resource.RLIMIT_FSIZE, (64, 64))
        out = job.communicate(timeout=120)[0].decode()
        assert job.returncode == 1 and "Traceback" not in out, out
        limit = "the disk holding it is full" if mounted else "a file size limit was reached"
        assert limit in out and "resumes from the last chunk written" in out, out
        info = open_store(store).array_info("ds", SLOW)
        assert not info.complete and 16 <= info.rows_written < 42
        (disk / "filler").unlink(missing_ok=True)  # space freed
        again = cli_process(*cli_args(store, images, SLOW))
        out = again.communicate(timeout=120)[0].decode()
        assert again.returncode == 0 and "resumed" in out, out
        assert chunk_bytes(store, "ds", SLOW) == chunk_bytes(reference, "ds", TINY)
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)
