"""A full disk, for real: a store on a small tmpfs (when this process may mount one), or a file
size limit (RLIMIT_FSIZE: the kernel refuses the write with EFBIG) in a child process otherwise.

Either way the write fails inside zarr's local store with a real OSError; the store must turn it
into one StorageError, keep the array incomplete, and a resumed run must end bit-identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from embedstore import create_store, open_store
from embedstore.errors import StorageError
from tests.conftest import make_dataset

pytestmark = pytest.mark.slow  # mounts a small tmpfs and fills it

ROOT = Path(__file__).resolve().parents[2]
N, DIM, CHUNK = 1280, 256, 64


def _data() -> np.ndarray:
    """First half zeros (chunks compress to almost nothing), second half noise (~60 KiB chunks)."""
    X = np.zeros((N, DIM), np.float32)
    X[N // 2 :] = np.random.default_rng(0).normal(size=(N // 2, DIM))
    return X


def _write(store_path: Path, X: np.ndarray, start: int | None = None) -> int:
    store = create_store(store_path)
    make_dataset(store, n=N)
    w = store.writer("toy", "bb", dim=DIM, dtype="float32", chunk_rows=CHUNK)
    first = w.rows_written if start is None else start
    for i in range(first, N, 32):
        w.write(X[i : i + 32])
    w.finish({"name": "bb"})
    return first


def _chunks(store_path: Path) -> dict[str, bytes]:
    base = store_path / "toy" / "bb" / "embeddings" / "c"
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def _resize_tmpfs(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def test_full_disk_is_one_clear_error_and_the_resumed_run_is_bit_identical(tmp_path):
    X = _data()
    _write(tmp_path / "clean.zarr", X)
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    if _mount_tmpfs(disk, "400k"):  # a real full file system (ENOSPC)
        try:
            with pytest.raises(StorageError) as err:
                _write(disk / "s.zarr", X)
            assert "disk holding it is full" in str(err.value) and "ENOSPC" in str(err.value)
            assert "rerun the same command" in str(err.value)
            info = open_store(disk / "s.zarr").array_info("toy", "bb")
            assert not info.complete and N // 2 <= info.rows_written < N
            assert not list((disk / "s.zarr").rglob("*.partial"))
            _resize_tmpfs(disk, "32m")  # space freed
            assert _write(disk / "s.zarr", X) == info.rows_written  # resumed, not restarted
            assert _chunks(disk / "s.zarr") == _chunks(tmp_path / "clean.zarr")
            assert np.array_equal(open_store(disk / "s.zarr").embeddings("toy", "bb"), X)
        finally:
            subprocess.run(["umount", str(disk)], check=False)
        return
    # No mount allowed: a per-process file size limit (the kernel answers EFBIG).
    script = textwrap.dedent(
        f"""
        import resource, sys
        import numpy as np
        from tests.faults.test_faults_disk import _data, _write
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, resource.RLIM_INFINITY))
        from embedstore.errors import StorageError
        try:
            _write(__import__("pathlib").Path({str(tmp_path / "s.zarr")!r}), _data())
        except StorageError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr
    assert "file size limit" in done.stdout and "EFBIG" in done.stdout
    info = open_store(tmp_path / "s.zarr").array_info("toy", "bb")
    assert not info.complete and N // 2 <= info.rows_written < N
    assert _write(tmp_path / "s.zarr", X) == info.rows_written
    assert _chunks(tmp_path / "s.zarr") == _chunks(tmp_path / "clean.zarr")


def test_file_size_limit_is_one_clear_error(tmp_path):
    """RLIMIT_FSIZE in a child process, whatever the test above could use."""
    script = textwrap.dedent(
        f"""
        import resource, sys
        from pathlib import Path
        from tests.faults.test_faults_disk import _data, _write
        from embedstore.errors import StorageError
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, resource.RLIM_INFINITY))
        try:
            _write(Path({str(tmp_path / "s.zarr")!r}), _data())
        except StorageError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr
    assert "a file size limit was reached" in done.stdout and "EFBIG" in done.stdout
    assert "Traceback" not in done.stderr
    info = open_store(tmp_path / "s.zarr").array_info("toy", "bb")
    assert not info.complete and info.rows_written == N // 2


def test_extract_on_a_full_disk_says_so_in_one_line_and_resumes_bit_identical(tmp_path):
    """The real `embedstore extract` (a child process) runs out of space part-way."""
    import resource

    from embedstore.testing.harness import chunk_files, command, env, run, write_images

    images = write_images(tmp_path / "images", 384)  # 6 chunks of ~4 MiB
    assert run(tmp_path / "clean.zarr", images).returncode == 0
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mounted = _mount_tmpfs(disk, "10m")
    store = disk / "s.zarr"

    def limit_file_size() -> None:  # without a mount: the kernel refuses big files (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, resource.RLIM_INFINITY))

    try:
        failed = subprocess.run(
            command(store, images), cwd=ROOT, env=env(), capture_output=True, text=True,
            preexec_fn=None if mounted else limit_file_size,
        )  # fmt: skip
        errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
        assert failed.returncode == 1 and len(errors) == 1, failed.stderr
        assert "Traceback" not in failed.stderr
        assert ("disk holding it is full" if mounted else "file size limit") in errors[0]
        assert "resumes from the last chunk written" in errors[0]
        info = open_store(store).array_info("ds", "wide.test")
        assert not info.complete
        if mounted:
            assert 0 < info.rows_written < 384  # part-way
            _resize_tmpfs(disk, "64m")
        resumed = run(store, images)
        assert resumed.returncode == 0, resumed.stderr
        assert chunk_files(store) == chunk_files(tmp_path / "clean.zarr")
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)
