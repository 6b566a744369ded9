"""A SIGKILL during a large import (a real `embedstore add` process) is resumed by running the
same command again, ending bit-identical to an uninterrupted import."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedstore import create_store, open_store
from tests.conftest import make_dataset
from tests.interop.conftest import tree_digest

N, DIM, CHUNK = 30000, 32, 64


def _add(store: Path, data: Path) -> list[str]:
    return [sys.executable, "-m", "embedstore.cli.main", "add", str(store), "-d", "toy", "-b", "big",
            "--from", str(data / "x.npy"), "--ids", str(data / "ids.txt"),
            "--chunk-rows", str(CHUNK)]  # fmt: skip


def _done(store: Path) -> int:
    folder = store / "toy" / "big" / "progress" / "c"
    return (
        sum(1 for p in folder.glob("*") if not p.name.endswith(".partial"))
        if folder.is_dir()
        else 0
    )


@pytest.mark.slow
def test_sigkill_during_import_resumes_bit_identical(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, DIM)).astype(np.float32)
    perm = rng.permutation(N)
    for name in ("killed.zarr", "clean.zarr"):
        make_dataset(create_store(tmp_path / name), n=N)
    ids = open_store(tmp_path / "clean.zarr").ids("toy")
    np.save(tmp_path / "x.npy", X[perm])
    (tmp_path / "ids.txt").write_text("\n".join(ids[perm]))
    env = {**os.environ, "PYTHONPATH": str(Path.cwd()), "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed.zarr"
    proc = subprocess.Popen(_add(killed, tmp_path), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while _done(killed) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    n_chunks = -(-N // CHUNK)
    info = open_store(killed).array_info("toy", "big")
    assert not info.complete and 0 < info.rows_written < N  # it died midway
    assert 20 <= _done(killed) < n_chunks
    again = subprocess.run(_add(killed, tmp_path), env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    clean = subprocess.run(_add(tmp_path / "clean.zarr", tmp_path), env=env, capture_output=True)
    assert clean.returncode == 0
    resumed, reference = open_store(killed), open_store(tmp_path / "clean.zarr")
    assert resumed.array_info("toy", "big").complete
    assert np.array_equal(resumed.embeddings("toy", "big"), X)  # row i of the store is ids[i]
    arrays = ("embeddings", "checksums", "chunk_nbytes", "progress", "missing", "missing_reason")
    for name in arrays:
        a = tree_digest(killed / "toy" / "big" / name)
        b = tree_digest(tmp_path / "clean.zarr" / "toy" / "big" / name)
        assert a == b, name
    pa, pb = (s.array_info("toy", "big").provenance for s in (resumed, reference))
    assert pa["data_sha256"] == pb["data_sha256"]
