"""Hostile archives are refused by every entry point (open, probe, verify, import) before they
can write outside the target, inflate a bomb, or hand zarr unsafe metadata."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store, open_store
from embedstore.archive import export_archive, import_archive, verify
from embedstore.archive._staging import stale_stages
from embedstore.cli.main import app
from embedstore.errors import EmbedstoreError, StoreBusyError
from embedstore.testing.harness import ROOT, env
from embedstore.testing.hostile import HOSTILE, make_hostile
from tests.archive.test_archive import _snapshot
from tests.conftest import make_dataset

pytestmark = pytest.mark.slow  # imports killed mid-way in real processes


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it was asked for
        return make_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_archive_is_refused_everywhere(hostile, tmp_path, name):
    archive = hostile[name]
    tracemalloc.start()
    try:
        with pytest.raises(EmbedstoreError, match="refused"):
            open_store(archive)
        report = verify(archive)
        assert not report.ok and report.problem_lines()
        target = tmp_path / "target.zarr"
        with pytest.raises(EmbedstoreError):
            import_archive(archive, target)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB allocated: something was inflated"
    assert not target.exists() and not list(tmp_path.iterdir())
    assert not Path("/tmp/evil.txt").exists()
    for argv in (["probe", str(archive), "-d", "toy", "-b", "bb", "--method", "knn"],
                 ["import", str(archive), str(target)], ["ls", str(archive)]):  # fmt: skip
        result = CliRunner().invoke(app, argv)
        lines = [line for line in result.output.strip().splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1, (argv, result.output)
        assert "Traceback" not in result.output
    assert not target.exists()


def test_a_chunk_declaring_more_than_it_holds_is_refused_before_decoding(tmp_path):
    from embedstore.testing.hostile import chunk_bomb, good_archive

    archive = chunk_bomb(good_archive(tmp_path), tmp_path / "bomb.zip")
    tracemalloc.start()
    try:
        report = verify(archive)
        with pytest.raises(EmbedstoreError, match="zstd bomb"):
            import_archive(archive, tmp_path / "target.zarr")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any("declares 67,108,864 bytes" in line for line in report.problem_lines())
    assert peak < 32 * 2**20 and not (tmp_path / "target.zarr").exists()


# --------------------------------------------------- imports killed mid-way, and concurrent ones


def _big_archive(tmp: Path) -> Path:
    """About 16 MiB in 250 chunks: an import takes long enough to be caught while it copies."""
    store = create_store(tmp / "big.zarr")
    make_dataset(store, "toy", n=2000)
    X = np.random.default_rng(0).normal(size=(2000, 2048)).astype(np.float32)
    w = store.writer("toy", "bb", dim=2048, dtype="float32", chunk_rows=8)
    for i in range(0, 2000, 200):
        w.write(X[i : i + 200])
    w.finish({"name": "bb"})
    export_archive(tmp / "big.zarr", tmp / "big.zip")
    return tmp / "big.zip"


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    return _big_archive(tmp_path_factory.mktemp("big"))


def _start_import(archive: Path, target: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "embedstore.cli.main", "import", str(archive), str(target)],
        cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def _caught_staging(archive: Path, target: Path, sig: int, tries: int = 6) -> subprocess.Popen:
    """Start a real import and send ``sig`` to it as soon as its staging folder appears; retried
    (from scratch) when the import finished first."""
    for attempt in range(tries):
        proc = _start_import(archive, target)
        started = time.monotonic()
        while not stale_stages(target) and proc.poll() is None:
            if time.monotonic() - started > 120:
                break
            time.sleep(0.0005)
        time.sleep(random.Random(attempt).uniform(0, 0.01))
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            if sig == signal.SIGKILL:
                proc.wait()
            if stale_stages(target):
                return proc
        proc.wait()
        shutil.rmtree(target, ignore_errors=True)  # too late: again, from the same state
    pytest.fail(f"no import was caught while staging in {tries} tries")


@pytest.mark.parametrize("existing", [False, True], ids=["new-store", "existing-store"])
def test_a_killed_import_leaves_a_staging_folder_that_the_next_import_removes(
    big, tmp_path, existing
):
    target = tmp_path / "t.zarr"

    def prepare() -> None:
        if existing and not target.exists():
            make_dataset(create_store(target), "kept", n=10)

    prepare()
    before = _snapshot(target) if existing else None
    _caught_staging(big, target, signal.SIGKILL)
    (stage,) = stale_stages(target)
    assert sum(f.stat().st_size for f in stage.rglob("*") if f.is_file()) > 0
    if existing:  # the store is as it was, and ls/info neither show nor trip on the folder
        assert _snapshot(target) == before
        for argv in (["ls", str(target)], ["info", str(target), "kept"]):
            result = CliRunner().invoke(app, argv)
            assert result.exit_code == 0 and "import-" not in result.output, result.output
    else:
        assert not (target / "zarr.json").exists()
    result = CliRunner().invoke(app, ["import", str(big), str(target)])
    assert result.exit_code == 0, result.output
    assert f"interrupted import: {stage}" in " ".join(result.output.split())
    assert not stage.exists() and not stale_stages(target)
    assert not Path(f"{target}.locks").exists()  # the killed import's lock was taken over
    assert verify(target).ok
    np.testing.assert_array_equal(
        open_store(target).embeddings("toy", "bb"), open_store(big).embeddings("toy", "bb")
    )
    assert ("kept" in open_store(target).datasets()) == existing


def test_a_running_imports_staging_folder_is_left_alone(big, tmp_path):
    target = tmp_path / "t.zarr"
    proc = _caught_staging(big, target, signal.SIGSTOP)  # alive, holding its lock and folder
    try:
        (stage,) = stale_stages(target)
        files = sorted(stage.rglob("*"))
        with pytest.raises(StoreBusyError, match=f"pid {proc.pid}"):
            import_archive(big, target)
        result = CliRunner().invoke(app, ["import", str(big), str(target)])
        assert result.exit_code == 1 and "another process" in result.output
        assert stage.is_dir() and sorted(stage.rglob("*")) == files
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=120) == 0
    assert not stale_stages(target) and verify(target).ok
    np.testing.assert_array_equal(
        open_store(target).embeddings("toy", "bb"), open_store(big).embeddings("toy", "bb")
    )


def test_a_backbone_set_aside_by_a_killed_import_is_put_back(tmp_path):
    """The state a kill leaves between moving a replaced backbone aside and moving its
    replacement in (too brief to hit with a signal, so made by the same two renames)."""
    from embedstore.testing.hostile import good_archive

    archive = good_archive(tmp_path)
    target = tmp_path / "t.zarr"
    import_archive(archive, target)
    before = _snapshot(target)
    stage = tmp_path / ".t.zarr.import-0123abcd"
    (stage / "replaced" / "toy").mkdir(parents=True)
    os.replace(target / "toy" / "bb", stage / "replaced" / "toy" / "bb")
    assert "bb" not in open_store(target).backbones("toy")
    result = import_archive(archive, target)  # nothing to copy: bb is complete... once restored
    assert result.stale_stages_removed and not stage.exists()
    assert _snapshot(target) == before and verify(target).ok


def test_stale_stages_match_only_this_targets_staging_folders(tmp_path):
    for name in (
        ".t.zarr.import-0123abcd",
        ".t.zarr.import-0123abcd.import-89abcdef",
        ".tt.zarr.import-0123abcd",
        ".t.zarr.import-xyz",
        "t.zarr.import-0123abcd",
    ):
        (tmp_path / name).mkdir()  # fmt: skip
    assert [p.name for p in stale_stages(tmp_path / "t.zarr")] == [".t.zarr.import-0123abcd"]
    assert [p.name for p in stale_stages(tmp_path / "t.zarr.import-0123abcd")] == [
        ".t.zarr.import-0123abcd.import-89abcdef"
    ]


def test_a_killed_export_leaves_a_temporary_file_that_the_next_export_removes(big, tmp_path):
    out = tmp_path / "out.zip"
    argv = [
        sys.executable,
        "-m",
        "embedstore.cli.main",
        "export",
        str(big.parent / "big.zarr"),
        str(out),
    ]
    for _ in range(6):
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        started = time.monotonic()
        while not list(tmp_path.glob(".out.zip.*.partial")) and proc.poll() is None:
            if time.monotonic() - started > 120:
                break
            time.sleep(0.0005)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if list(tmp_path.glob(".out.zip.*.partial")) and not out.exists():
            break
        out.unlink(missing_ok=True)  # finished first: again
    else:
        pytest.fail("no export was caught while writing")
    (partial,) = tmp_path.glob(".out.zip.*.partial")
    result = CliRunner().invoke(app, argv[3:])
    assert result.exit_code == 0, result.output
    assert f"interrupted export: {partial}" in " ".join(result.output.split())
    assert not partial.exists() and not list(tmp_path.glob(".*partial"))
    assert not Path(f"{out}.locks").exists()
    assert verify(out).ok
    np.testing.assert_array_equal(
        open_store(out).embeddings("toy", "bb"), open_store(big).embeddings("toy", "bb")
    )


def test_import_never_moves_over_an_array_being_extracted(tmp_path):
    from embedstore.store import writer_lock
    from embedstore.testing.hostile import good_archive

    archive = good_archive(tmp_path)
    target = tmp_path / "t.zarr"
    import_archive(archive, target)
    before = _snapshot(target)
    with writer_lock(str(target), ["toy/bb"]):  # the lock a running `extract -d toy -b bb` holds
        with pytest.raises(StoreBusyError, match="'toy/bb' in store .* is being written"):
            import_archive(archive, target, overwrite=True)
        assert _snapshot(target) == before and not stale_stages(target)
    assert import_archive(archive, target, overwrite=True).backbones_replaced == ("toy/bb",)
    assert _snapshot(target) == before and not Path(f"{target}.locks").exists()


@pytest.mark.slow
def test_a_declared_shape_the_chunks_do_not_back_costs_bounded_memory(tmp_path):
    """verify and import refuse archives declaring a huge shape (manifest updated to match)
    without allocating or iterating in proportion to it: peak RSS of a fresh process < 256 MiB."""
    from embedstore.testing.hostile import VERIFY_IMPORT_PEAK, make_declared

    for name, archive in make_declared(tmp_path).items():
        target = tmp_path / "target.zarr"
        proc = subprocess.run(
            [sys.executable, "-c", VERIFY_IMPORT_PEAK, str(archive), str(target)],
            capture_output=True, text=True, timeout=120, env=env(),
            preexec_fn=lambda: __import__("resource").setrlimit(  # a runaway fails, not swaps
                __import__("resource").RLIMIT_AS, (4 * 2**30, 4 * 2**30)),
        )  # fmt: skip
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        ok, imported, peak = proc.stdout.split()
        assert (ok, imported) == ("False", "False"), name
        assert int(peak) < 256 * 2**20, f"{name}: {int(peak) / 2**20:.0f} MiB"
        assert not target.exists()
        result = CliRunner().invoke(app, ["verify", str(archive)])
        assert result.exit_code == 1 and "Traceback" not in result.output
