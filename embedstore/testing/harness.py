"""Extractions in child processes, killed with SIGKILL at random moments and resumed; shared by
tests/faults/test_faults_kill.py (a few kills) and benchmarks/bench_faults.py (many)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
BACKBONE = "wide.test"


def write_images(root: Path, n: int, seed: int = 0) -> Path:
    """n tiny PNGs in two class folders."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        size = int(rng.integers(16, 33))
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            folder / f"{i:05d}.png"
        )
    return root


def command(store: Path, images: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "embedstore.testing.fault_cli", "extract", str(store), "--dataset", "ds",
        "--source", str(images), "--backbone", BACKBONE, "--batch-size", "8", "--workers", "0",
        "--device", "cpu", "--dtype", "float32", *extra,
    ]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def run(store: Path, images: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(store, images, *extra), cwd=ROOT, env=env(), capture_output=True, text=True
    )


def chunk_files(store: Path) -> dict[str, bytes]:
    """Every stored file of the backbone's embeddings and bookkeeping, by relative path."""
    base = store / "ds" / BACKBONE
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and "/c/" in p.as_posix()
    }


@dataclass
class KillReport:
    kills: int = 0  # SIGKILLs delivered while the extraction was running
    survived: int = 0  # ...after which the final resumed store was bit-identical
    finished_first: int = 0  # the process ended before the kill arrived (not counted)
    states: dict[str, int] = field(default_factory=dict)  # where the kills landed
    failures: list[str] = field(default_factory=list)


def _state(store: Path) -> str:
    """Where a kill landed, read from what it left on disk."""
    base = store / "ds" / BACKBONE
    if not (base / "zarr.json").exists():
        return "before the array existed"
    if (base / "zarr.json").exists() and '"complete": true' in (base / "zarr.json").read_text():
        return "after the completion mark"
    if list(base.rglob("*.partial")):
        return "a half-written file left (orphaned .partial)"
    progress = base / "progress" / "c"
    done = len(list(progress.glob("*"))) if progress.exists() else 0
    emb = base / "embeddings" / "c"
    written = sum(p.is_file() for p in emb.rglob("*")) if emb.exists() else 0
    if written > done:
        return "between a chunk and its progress mark"
    return "at a batch or chunk boundary"


def _check_after_kill(store: Path) -> str | None:
    """A killed store must open, list, and show the array incomplete (or complete if the kill came
    after the completion mark); every chunk marked done must decode."""
    from embedstore import open_store
    from embedstore.errors import EmbedstoreError

    if not (store / "zarr.json").exists():
        return None
    try:
        s = open_store(store)
        if "ds" not in s.datasets() or BACKBONE not in s.backbones("ds"):
            return None
        info = s.array_info("ds", BACKBONE)
        s.embeddings("ds", BACKBONE, allow_incomplete=True)  # every stored chunk decodes
    except EmbedstoreError as exc:
        return f"{type(exc).__name__}: {exc}"
    if info.complete and info.rows_written != info.shape[0]:
        return "marked complete with rows missing"
    return None


def wait_for_path(proc: subprocess.Popen, ready, limit: float = 120) -> None:
    """Poll ``ready()`` every half millisecond while ``proc`` runs (at most ``limit`` seconds)."""
    started = time.monotonic()
    while not ready() and proc.poll() is None and time.monotonic() - started < limit:
        time.sleep(0.0005)


def _partial_file(base: Path) -> bool:
    """A file is being written right now (zarr writes each to ``*.partial``, then renames)."""
    for sub in ("embeddings", "progress", "checksums"):
        folder = base / sub / "c"
        if folder.is_dir() and any(folder.rglob("*.partial")):
            return True
    return False


def _all_chunks_written(base: Path, n_chunks: int) -> bool:
    """Every embeddings chunk is on disk: the writer is finishing (last marks, completion)."""
    folder = base / "embeddings" / "c"
    return folder.is_dir() and sum(1 for _ in folder.glob("*/0")) >= n_chunks


MODES = ("random moment", "random moment", "inside a file write", "during finish")


def kill_and_resume(
    store: Path, images: Path, reference: dict[str, bytes], n_kills: int, window: float, seed: int
) -> KillReport:
    """Kill the extraction of ``store`` ``n_kills`` times, resuming each time; then finish it and
    compare. Each kill is aimed (drawn from :data:`MODES`): at a random moment in the ``window``
    seconds after the array appears, as soon as a file is seen half-written, or once every chunk
    is on disk (while the writer finishes)."""
    rng = random.Random(seed)
    report = KillReport()
    n_chunks = sum(k.startswith("embeddings/") for k in reference)
    base = store / "ds" / BACKBONE
    for _ in range(n_kills):
        mode = rng.choice(MODES)
        proc = subprocess.Popen(
            command(store, images), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_for_path(proc, (base / "zarr.json").exists)
        if mode == "random moment":
            time.sleep(rng.uniform(0, window))
        elif mode == "inside a file write":
            wait_for_path(proc, lambda: _partial_file(base))
        else:
            wait_for_path(proc, lambda: _all_chunks_written(base, n_chunks))
        if proc.poll() is not None:  # too late: start again from nothing, to have a run to kill
            report.finished_first += 1
            shutil.rmtree(store, ignore_errors=True)
            continue
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        report.kills += 1
        where = f"{mode}: {_state(store)}"
        report.states[where] = report.states.get(where, 0) + 1
        problem = _check_after_kill(store)
        if problem:
            report.failures.append(f"after a kill {where}: {problem}")
    done = run(store, images)
    if done.returncode != 0:
        report.failures.append(f"final resume failed: {done.stderr.strip()[-300:]}")
        return report
    if chunk_files(store) == reference:
        report.survived = report.kills
    else:
        report.failures.append("resumed store differs from the uninterrupted one")
    return report


# ------------------------------------------------------------- a stop at one chosen write

_WRITES = ("set", "set_if_not_exists", "delete", "delete_dir")


class Stopped(BaseException):  # noqa: N818 (not an error: the process "dies" here)
    """Raised in place of a chosen write; a BaseException, so that no handler of the code under
    test catches it, as none can catch a SIGKILL."""


@contextlib.contextmanager
def stop_at_write(stop: int | None, prefix: str = "") -> Iterator[list[str]]:
    """Count the writes (set, delete) of zarr's stores under ``prefix`` (a key of the store, e.g.
    ``ds/``); raise :class:`Stopped` in place of write number ``stop`` (0-based; None: never).

    Each write of zarr's local store replaces a whole file (written to ``*.partial``, renamed),
    so what is on disk when the write is refused is what a SIGKILL just before it leaves. Yields
    the list of ``"set KEY"`` / ``"delete KEY"`` done so far (for the count, and the report)."""
    from zarr.storage import FsspecStore, LocalStore

    seen: list[str] = []
    saved = {
        (cls, name): getattr(cls, name)
        for cls in (LocalStore, FsspecStore)
        for name in _WRITES
        if name in vars(cls)
    }  # fmt: skip  (FsspecStore's set_if_not_exists calls set)

    def wrap(cls, name):
        original = saved[(cls, name)]

        async def write(self, key, *args, **kwargs):
            if key.startswith(prefix) and not key.endswith(".lock"):
                if stop is not None and len(seen) == stop:
                    raise Stopped(f"stopped before write {stop}: {name} {key}")
                seen.append(f"{name} {key}")
            return await original(self, key, *args, **kwargs)

        return write

    for cls, name in saved:
        setattr(cls, name, wrap(cls, name))
    try:
        yield seen
    finally:
        for (cls, name), original in saved.items():
            setattr(cls, name, original)
