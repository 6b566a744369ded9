"""Writer locks: one process per array at a time, stale locks of killed processes taken over,
and real concurrent `embedstore extract` processes on one store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from embedstore import open_store
from embedstore.errors import StoreBusyError
from embedstore.store import writer_lock
from tests.extraction.helpers import (
    SLOW,
    TINY,
    TINY2,
    chunk_bytes,
    cli_args,
    cli_process,
    reference_store,
    wait_for,
    write_images,
)

ROOT = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(store: Path, name: str, record: dict) -> Path:
    lock = Path(f"{store}.locks") / (name.replace("/", "--") + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps(record))
    return lock


def test_a_held_lock_refuses_a_second_writer_and_names_the_holder(tmp_path):
    store = str(tmp_path / "s.zarr")
    with writer_lock(store, ["ds/bb"]):
        record = json.loads((tmp_path / "s.zarr.locks" / "ds--bb.lock").read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(StoreBusyError, match=r"being written by another process \(pid \d+"):
            with writer_lock(store, ["ds/bb"]):
                pass
        with writer_lock(store, ["ds/other"]):  # another array of the same store: no conflict
            pass
    assert not (tmp_path / "s.zarr.locks").exists()  # nothing left behind


def test_stale_locks_are_taken_over(tmp_path):
    store = tmp_path / "s.zarr"
    host = socket.gethostname()
    dead = _plant(store, "ds/a", {"pid": _dead_pid(), "host": host, "process_start": None})
    reused = _plant(store, "ds/b", {"pid": os.getpid(), "host": host, "process_start": "1"})
    damaged = Path(f"{store}.locks") / "ds--c.lock"
    damaged.write_text("{not json")
    with writer_lock(str(store), ["ds/a", "ds/b", "ds/c"]):
        assert json.loads(dead.read_text())["pid"] == os.getpid()
        assert json.loads(reused.read_text())["process_start"] != "1"
    assert not Path(f"{store}.locks").exists()


def test_locks_of_other_hosts_are_respected_and_a_run_id_shares_one(tmp_path):
    store = tmp_path / "s.zarr"
    elsewhere = {"pid": _dead_pid(), "host": "another-node", "run_id": "job-7"}
    _plant(store, "ds/a", elsewhere)
    with pytest.raises(StoreBusyError, match="another-node.*job-7"):
        with writer_lock(str(store), ["ds/a"]):
            pass
    with writer_lock(str(store), ["ds/a"], run_id="job-7"):  # the same torchrun job, restarted
        pass


def test_a_waiting_lock_gets_it_once_released(tmp_path):
    store = str(tmp_path / "s.zarr")
    taken, order = threading.Event(), []

    def hold():
        with writer_lock(store, ["setup"]):
            taken.set()
            time.sleep(0.5)
            order.append("released")

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait(5)
    with writer_lock(store, ["setup"], wait=10):
        order.append("taken")
    thread.join()
    assert order == ["released", "taken"]


# ------------------------------------------------------------------ real concurrent processes


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrent")
    images = write_images(root / "images")
    reference = reference_store(root / "reference.zarr", images)
    return images, reference


@pytest.mark.slow  # real extract processes
def test_a_second_process_on_the_same_array_is_refused(tmp_path, setting):
    images, reference = setting
    store = tmp_path / "s.zarr"
    gate = tmp_path / "go"
    first = cli_process(
        *cli_args(store, images, SLOW), gate=gate
    )  # holds its first batch until `go`
    wait_for(Path(f"{store}.locks") / f"ds--{SLOW}.lock", first)
    second = cli_process(*cli_args(store, images, SLOW))
    out = second.communicate(timeout=120)[0].decode()
    gate.touch()
    assert second.returncode == 1 and "being written by another process" in out, out
    assert "Traceback" not in out
    assert first.wait(120) == 0, first.communicate()[0].decode()
    # the slow backbone is tinyconv's architecture and weights: the same bytes
    assert chunk_bytes(store, "ds", SLOW) == chunk_bytes(reference, "ds", TINY)
    assert open_store(store).array_info("ds", SLOW).complete


@pytest.mark.slow  # real extract processes
def test_a_killed_writer_leaves_a_stale_lock_that_the_next_run_takes_over(tmp_path, setting):
    images, reference = setting
    store = tmp_path / "s.zarr"
    first = cli_process(*cli_args(store, images, SLOW), slow=0.5)
    wait_for(store / "ds" / SLOW / "progress" / "c" / "1", first)  # two chunks on disk
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert (Path(f"{store}.locks") / f"ds--{SLOW}.lock").exists()
    again = cli_process(*cli_args(store, images, SLOW))
    out = again.communicate(timeout=120)[0].decode()
    assert again.returncode == 0 and "resumed" in out, out
    assert chunk_bytes(store, "ds", SLOW) == chunk_bytes(reference, "ds", TINY)
    assert not Path(f"{store}.locks").exists()


@pytest.mark.slow  # real extract processes
def test_two_processes_on_different_backbones_both_succeed(tmp_path, setting):
    images, reference = setting
    store = tmp_path / "s.zarr"
    procs = [cli_process(*cli_args(store, images, name), slow=0.05) for name in (TINY, TINY2)]
    outs = [p.communicate(timeout=180)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for name in (TINY, TINY2):
        assert chunk_bytes(store, "ds", name) == chunk_bytes(reference, "ds", name)
