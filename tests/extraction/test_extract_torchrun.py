"""`torchrun ... --no-python embedstore extract`: real ranks (gloo on CPU, OMP_NUM_THREADS=1)
share the chunks; the result is the single-process store bit for bit, after kills and reruns
with another number of processes too, locally and in an s3:// store served by moto.

The ranks run ``python -m tests.extraction.helpers``: the ``embedstore`` command of this checkout
with the tiny test backbones registered.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.cli.main import app
from embedstore.errors import StoreBusyError
from embedstore.store import writer_lock
from tests.extraction.helpers import (
    SLOW,
    TINY,
    TINY2,
    chunk_bytes,
    reference_store,
    write_images,
)
from tests.store.servers import moto_s3

pytestmark = pytest.mark.slow  # torchrun ranks, kills, a moto S3 server

pytest.importorskip("torch.distributed")
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _command(nproc: int, store: str, images: Path, *backbones: str) -> list[str]:
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              f"--nproc-per-node={nproc}", "--no-python"] if nproc else []  # fmt: skip
    args = [store, "-d", "ds", "--source", str(images), "--batch-size", "4", "--chunk-rows",
            "8", "--workers", "0", "--device", "cpu", "--dtype", "float32"]  # fmt: skip
    for name in backbones:
        args += ["-b", name]
    return [*launch, sys.executable, "-m", "tests.extraction.helpers", "extract", *args]


def _start(cmd: list[str], **env: str) -> subprocess.Popen:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen(cmd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _run(cmd: list[str], **env: str) -> str:
    proc = _start(cmd, **env)
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """42 images and the single-process reference store (one thread, like the ranks)."""
    root = tmp_path_factory.mktemp("torchrun")
    images = write_images(root / "images")
    reference = reference_store(root / "reference.zarr", images)
    return images, reference


def _same(store: Path, reference: Path, backbone: str, as_backbone: str | None = None) -> bool:
    info = open_store(store).array_info("ds", backbone)
    mine = chunk_bytes(store, "ds", backbone)
    return info.complete and mine == chunk_bytes(reference, "ds", as_backbone or backbone)


def test_two_ranks_write_the_single_process_store_bit_for_bit(tmp_path, setting):
    images, reference = setting
    store = tmp_path / "s.zarr"
    out = _run(_command(2, str(store), images, TINY, TINY2))
    # the table's title wraps with the length of the temporary path: read it as words
    assert "2 processes" in " ".join(out.split()) and out.count("written") == 2  # from rank 0
    for name in (TINY, TINY2):
        assert _same(store, reference, name)
        prov = open_store(store).array_info("ds", name).provenance
        assert prov["world_size"] == 2 and prov["n_images"] == 42
    ref = open_store(reference)
    assert (open_store(store).ids("ds") == ref.ids("ds")).all()


def test_a_killed_rank_resumes_with_one_or_two_processes_bit_identical(tmp_path, setting):
    images, reference = setting
    store, pids = tmp_path / "s.zarr", tmp_path / "pids"
    pids.mkdir()
    job = _start(
        _command(2, str(store), images, SLOW), EMBEDSTORE_TEST_SLOW="0.4",
        EMBEDSTORE_TEST_PIDS=str(pids),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (store / "ds" / SLOW / "progress" / "c" / "3").exists():  # rank 1's first chunk
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[0].decode()
        time.sleep(0.05)
    os.kill(int((pids / "rank1.pid").read_text()), signal.SIGKILL)
    out = job.communicate(timeout=120)[0].decode()
    assert job.returncode != 0, out
    info = open_store(store).array_info("ds", SLOW)
    assert not info.complete and 8 <= info.rows_written < 42
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    # the same store, rerun by one plain process: the dead job's lock is stale and taken over
    out1 = _run(_command(0, str(store), images, SLOW))
    assert "resumed" in out1
    out2 = _run(_command(2, str(copy), images, SLOW))
    assert "resumed" in out2
    for s in (store, copy):  # tinyslow.test has tinyconv.test's architecture and weights
        assert _same(s, reference, SLOW, as_backbone=TINY)


def test_a_failing_rank_stops_the_other_naming_the_rank_and_cause(tmp_path, setting):
    images, _ = setting
    bad = tmp_path / "images"
    shutil.copytree(images, bad)
    (bad / "normal" / "10.png").write_bytes(b"")  # row 38: in rank 1's share
    job = _start(_command(2, str(tmp_path / "s.zarr"), bad, SLOW), EMBEDSTORE_TEST_SLOW="0.3")
    out = job.communicate(timeout=300)[0].decode()
    assert job.returncode != 0
    assert "normal/10.png" in out and "rank 1 failed: BadImageError" in out, out
    assert "so rank 0 stopped too" in out and "run the same command again" in out, out
    assert not open_store(tmp_path / "s.zarr").array_info("ds", SLOW).complete


# ------------------------------------------------------------------------ s3:// on moto


@pytest.fixture(scope="module")
def s3_env():
    with moto_s3("embeddings") as server:
        yield server.env


def _probe(store: str) -> list[dict]:
    result = runner.invoke(
        app, ["probe", store, "-d", "ds", "-b", TINY, "-b", TINY2, "--method", "knn",
              "--device", "cpu", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    for r in records:
        r.pop("store", None)
        r.pop("seconds", None)
        r.pop("record_id", None)  # a cell id names its store
        r.pop("created_at", None)
        r.pop("provenance", None)  # the extraction runs differ: world size, time
    return records


def test_two_ranks_into_s3_then_probe_equals_the_local_store(setting, s3_env, monkeypatch):
    images, reference = setting
    url = "s3://embeddings/runs/s.zarr"
    out = _run(_command(2, url, images, TINY, TINY2), **s3_env)
    assert "2 processes" in " ".join(out.split())  # the title wraps with the path's length
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    remote = open_store(url)
    for name in (TINY, TINY2):
        info = remote.array_info("ds", name)
        assert info.complete and info.provenance["world_size"] == 2
        assert (remote.embeddings("ds", name) == open_store(reference).embeddings("ds", name)).all()
    local, remote_records = _probe(str(reference)), _probe(url)
    assert len(local) == len(remote_records) == 2
    differences = [
        {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        for a, b in zip(local, remote_records, strict=True)
    ]
    assert differences == [{}] * 2
    with writer_lock(url, ["ds/x"]):  # the lock beside an s3 store: a conditional put
        with pytest.raises(StoreBusyError, match="being written by another process"):
            with writer_lock(url, ["ds/x"]):
                pass


@pytest.mark.slow
def test_a_resume_runs_with_the_recorded_threads_or_is_refused(tmp_path, setting):
    """CPU threads change the last bits: an array records them at creation; a resume under
    torchrun (OMP_NUM_THREADS=1) computes with the recorded count and ends bit-identical to an
    uninterrupted run with that count; asking for another count is refused in one line."""
    images, _ = setting
    store = tmp_path / "s.zarr"
    job = _start(_command(0, str(store), images, SLOW), EMBEDSTORE_TEST_SLOW="0.3",
                 OMP_NUM_THREADS="2")  # fmt: skip
    deadline = time.monotonic() + 120
    while not (store / "ds" / SLOW / "progress" / "c" / "1").exists():
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[0].decode()
        time.sleep(0.05)
    job.kill()
    job.communicate(timeout=60)
    info = open_store(store).array_info("ds", SLOW)
    assert not info.complete and info.numerics["threads"] == 2 and info.numerics["device"] == "cpu"
    proc = _start(_command(0, str(store), images, SLOW) + ["--threads", "1"])
    out = proc.communicate(timeout=300)[0].decode()
    lines = [line for line in out.strip().splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in out, out
    assert "threads 2" in out and "threads 1" in out and "--threads 2" in out
    assert "--overwrite" in out
    out = _run(_command(2, str(store), images, SLOW))  # torchrun sets OMP_NUM_THREADS=1
    assert "resumed" in out
    full = tmp_path / "full.zarr"
    _run(_command(0, str(full), images, SLOW) + ["--threads", "2"])
    assert open_store(store).array_info("ds", SLOW).complete
    assert chunk_bytes(store, "ds", SLOW) == chunk_bytes(full, "ds", SLOW)
