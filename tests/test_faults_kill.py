"""SIGKILL an extraction (a real `embedstore extract` child process) at random moments, resume it,
and compare with an uninterrupted run: rows lost 0, duplicated 0, every stored byte identical.
And read the store (ls, info, probe, the API) while another process writes it.

The long version, with many kills, is benchmarks/bench_faults.py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from embedstore import open_store
from embedstore.errors import EmbedstoreError, IncompleteArrayError

from .faults_harness import (
    BACKBONE,
    ROOT,
    chunk_files,
    command,
    env,
    kill_and_resume,
    run,
    write_images,
)

N_IMAGES = 384  # 6 chunks of 64 rows


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, Path, dict[str, bytes]]:
    tmp = tmp_path_factory.mktemp("kill")
    images = write_images(tmp / "images", N_IMAGES)
    done = run(tmp / "clean.zarr", images)
    assert done.returncode == 0, done.stderr
    return images, tmp / "clean.zarr", chunk_files(tmp / "clean.zarr")


def test_sigkill_at_random_moments_then_resume_is_bit_identical(clean, tmp_path):
    images, clean_store, reference = clean
    assert len([k for k in reference if k.startswith("embeddings/")]) == 6
    report = kill_and_resume(tmp_path / "s.zarr", images, reference, n_kills=3, window=0.4, seed=1)
    print(report)
    assert not report.failures, report.failures
    assert report.kills >= 1 and report.survived == report.kills, report
    s, ref = open_store(tmp_path / "s.zarr"), open_store(clean_store)
    np.testing.assert_array_equal(s.embeddings("ds", BACKBONE), ref.embeddings("ds", BACKBONE))
    np.testing.assert_array_equal(s.ids("ds"), ref.ids("ds"))
    assert open_store(tmp_path / "s.zarr").array_info("ds", BACKBONE).complete


def test_readers_see_an_incomplete_array_and_never_half_a_chunk(clean, tmp_path):
    images, clean_store, _ = clean
    final = open_store(clean_store).embeddings("ds", BACKBONE)
    store = tmp_path / "s.zarr"
    writer = subprocess.Popen(
        command(store, images), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    runner = CliRunner()
    seen_incomplete = reads = 0
    try:
        deadline = time.monotonic() + 120
        while writer.poll() is None and time.monotonic() < deadline:
            if not (store / "zarr.json").exists():
                time.sleep(0.01)
                continue
            try:
                s = open_store(store)
                if "ds" not in s.datasets() or BACKBONE not in s.backbones("ds"):
                    continue
                info = s.array_info("ds", BACKBONE)
                X = s.embeddings("ds", BACKBONE, allow_incomplete=True)
            except EmbedstoreError as exc:  # a reader must never meet a damaged store
                pytest.fail(f"reader failed while the writer ran: {exc}")
            reads += 1
            done = int(info.rows_written)
            np.testing.assert_array_equal(X[:done], final[:done])  # done chunks are whole
            if not info.complete:
                seen_incomplete += 1
                try:  # refused while incomplete; the writer may have completed it meanwhile
                    np.testing.assert_array_equal(
                        open_store(store).embeddings("ds", BACKBONE), final
                    )
                except IncompleteArrayError:
                    pass
                ls = runner.invoke(app, ["ls", str(store)])
                assert ls.exit_code == 0 and "Traceback" not in ls.output
                probe = runner.invoke(app, ["probe", str(store), "-d", "ds", "-b", BACKBONE,
                                            "--method", "knn"])  # fmt: skip
                assert probe.exit_code in (0, 1) and "Traceback" not in probe.output
                if probe.exit_code == 1:
                    assert "incomplete" in probe.output, probe.output
                info_out = runner.invoke(app, ["info", str(store), "ds", BACKBONE])
                assert info_out.exit_code == 0 and "Traceback" not in info_out.output, (
                    info_out.output
                )
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0
    assert reads >= 1 and seen_incomplete >= 1, (reads, seen_incomplete)
    assert open_store(store).array_info("ds", BACKBONE).complete
