"""SIGKILL an extraction (a real `embedstore extract` child process) at random moments, resume it,
and compare with an uninterrupted run: rows lost 0, duplicated 0, every stored byte identical.
And read the store (ls, info, probe, the API) while another process writes it.

The long version, with many kills, is benchmarks/bench_faults.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.cli.main import app
from embedstore.errors import EmbedstoreError, IncompleteArrayError
from embedstore.testing.harness import (
    BACKBONE,
    ROOT,
    Stopped,
    chunk_files,
    command,
    env,
    kill_and_resume,
    run,
    stop_at_write,
    wait_for_path,
    write_images,
)
from tests.extraction.helpers import TINY, cli_args, one_thread, register_tiny, unregister_tiny
from tests.extraction.helpers import write_images as write_tiny_images
from tests.store.servers import moto_s3

pytestmark = pytest.mark.slow  # kills real processes; a moto S3 server

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


# ------------------------------------------------- every write of an extraction, one stop each


def _store_files(store: Path) -> dict[str, bytes]:
    """Every chunk file of the backbone group (zarr.json left out: provenance has a time)."""
    base = store / "ds" / TINY
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and "/c/" in p.as_posix()
    }


def _state(store: Path) -> str:
    """A fingerprint of everything on disk (paths and bytes; zarr.json included). A half-written
    metadata file (``zarr.<uuid>.partial``) that the stopped write's own clean-up removes while
    the fingerprint is taken is not part of the state (seen once: FileNotFoundError)."""
    h = hashlib.sha256()
    for p in sorted(store.rglob("*")) if store.exists() else ():
        try:
            data = p.read_bytes() if p.is_file() else None
        except FileNotFoundError:
            continue
        if data is not None:
            h.update(p.relative_to(store).as_posix().encode() + b"\0" + data)
    return h.hexdigest()


def _extract_args(store: Path | str, images: Path) -> list[str]:
    """The tiny backbone over 42 images in two chunks (24 rows, batches of 4), one thread."""
    args = cli_args(store, images, TINY)
    at = args.index("--chunk-rows") + 1
    return ["extract", *args[:at], "24", *args[at + 1 :]]


def _readers_show(store: Path) -> str:
    """ls and info after a stop: exit 0, no traceback; returns ls's output."""
    runner = CliRunner()
    ls = runner.invoke(app, ["ls", str(store)], env={"COLUMNS": "200"})
    if not (store / "zarr.json").exists():  # stopped before the store existed: one line
        assert ls.exit_code == 1 and "not a Zarr store yet" in ls.output, ls.output
        assert len(ls.output.strip().splitlines()) == 1, ls.output
        return ls.output
    assert ls.exit_code == 0 and ls.exception is None, ls.output
    info = runner.invoke(app, ["info", str(store)])
    assert info.exit_code == 0 and info.exception is None, info.output
    if (store / "ds" / "zarr.json").exists() and "n_samples" in (
        store / "ds/zarr.json"
    ).read_text():
        info = runner.invoke(app, ["info", str(store), "ds"], env={"COLUMNS": "200"})
        assert info.exit_code == 0 and info.exception is None, info.output
    return ls.output


@pytest.fixture(scope="module")
def tiny_clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stops")
    images = write_tiny_images(tmp / "images")
    register_tiny()
    try:
        with one_thread():
            ran = CliRunner().invoke(app, _extract_args(tmp / "clean.zarr", images))
        assert ran.exit_code == 0, ran.output
        yield images, _store_files(tmp / "clean.zarr")
    finally:
        unregister_tiny()


def test_a_stop_at_every_write_of_an_extraction_is_shown_and_repaired(tiny_clean, tmp_path):
    """Stop the extraction in place of each of its writes in turn (store, dataset, backbone
    group, each of its arrays, the mark, every chunk), as a SIGKILL there would: ls and info show
    the state without a traceback, the same command resumes it, and the result is bit-identical
    to the uninterrupted run's."""
    images, reference = tiny_clean
    runner = CliRunner()
    with stop_at_write(None) as writes:
        with one_thread():
            assert runner.invoke(app, _extract_args(tmp_path / "count.zarr", images)).exit_code == 0
    assert any(w.endswith(f"ds/{TINY}/zarr.json") for w in writes), writes
    seen_states, shown = set(), {"interrupted": 0, "incomplete": 0}
    for k in range(len(writes)):
        store = tmp_path / f"s{k}.zarr"
        with stop_at_write(k) as done, one_thread(), pytest.raises(Stopped):
            runner.invoke(app, _extract_args(store, images))
        assert len(done) == k
        state = _state(store)
        if state in seen_states:  # the write changed nothing (zarr re-creates parents): same state
            shutil.rmtree(store, ignore_errors=True)
            continue
        seen_states.add(state)
        out = _readers_show(store)
        if (store / "ds" / TINY / "zarr.json").exists():
            marked = '"complete"' in (store / "ds" / TINY / "zarr.json").read_text()
            expected = "incomplete" if marked else "creation interrupted"
            assert TINY in out and expected in out, (k, writes[k], out)
            shown["incomplete" if marked else "interrupted"] += 1
        with one_thread():
            again = runner.invoke(app, _extract_args(store, images))
        assert again.exit_code == 0, (k, writes[k], again.output)
        assert _store_files(store) == reference, (k, writes[k])
        assert open_store(store).array_info("ds", TINY).complete
        shutil.rmtree(store, ignore_errors=True)
    print(f"{len(writes)} writes, {len(seen_states)} distinct states after a stop, {shown}")
    assert shown["interrupted"] >= 8 and shown["incomplete"] >= 6, shown


def test_a_stop_at_every_write_of_an_overwrite_never_leaves_a_damaged_array(tiny_clean, tmp_path):
    """``--overwrite`` of a complete array unmarks it (one write), removes it, then creates it
    again: a stop in place of each of those writes, up to the new array's first chunk, leaves
    the old array complete or a group that ls shows and that even a plain rerun repairs."""
    images, reference = tiny_clean
    runner = CliRunner()
    done, prefix = tmp_path / "done.zarr", f"ds/{TINY}"
    with one_thread():
        assert runner.invoke(app, _extract_args(done, images)).exit_code == 0
        shutil.copytree(done, tmp_path / "count.zarr")
        with stop_at_write(None, prefix) as writes:
            ran = runner.invoke(
                app, [*_extract_args(tmp_path / "count.zarr", images), "--overwrite"]
            )
    assert ran.exit_code == 0, ran.output
    assert writes[:2] == [f"set {prefix}/zarr.json", f"delete_dir {prefix}"], writes[:2]
    first_chunk = next(i for i, w in enumerate(writes) if "/c/" in w)
    for k in range(first_chunk + 1):
        store = tmp_path / f"o{k}.zarr"
        shutil.copytree(done, store)
        with stop_at_write(k, prefix), one_thread(), pytest.raises(Stopped):
            runner.invoke(app, [*_extract_args(store, images), "--overwrite"])
        out = _readers_show(store)
        assert "damaged" not in out, (k, writes[k], out)
        assert (TINY in out) == (store / "ds" / TINY / "zarr.json").exists(), (k, writes[k], out)
        with one_thread():
            plain = runner.invoke(app, _extract_args(store, images))  # not even --overwrite
        assert plain.exit_code == 0, (k, writes[k], plain.output)
        assert _store_files(store) == reference, (k, writes[k])
    print(f"--overwrite: {first_chunk + 1} stops, each repaired by a plain rerun")


def test_sigkill_as_the_backbone_group_appears_is_shown_and_repaired(tiny_clean, tmp_path):
    """A real SIGKILL, sent the moment STORE/ds/<backbone>/zarr.json appears (polled every half
    millisecond), three times: each store is listed without a traceback and the same command
    repairs it, bit-identical to an uninterrupted run."""
    images, reference = tiny_clean
    landed: dict[str, int] = {}
    runner = CliRunner()
    for attempt in range(3):
        store = tmp_path / f"k{attempt}.zarr"
        args = [sys.executable, "-m", "tests.extraction.helpers", *_extract_args(store, images)]
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        group = store / "ds" / TINY / "zarr.json"
        wait_for_path(proc, group.exists)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        text = group.read_text() if group.exists() else ""
        where = (
            "finished before the kill"
            if proc.returncode == 0
            else "before the group existed"
            if not text
            else "group created, not marked (creation interrupted)"
            if '"complete"' not in text
            else "marked, chunks being written"
            if '"complete": false' in text
            else "after the completion mark"
        )
        landed[where] = landed.get(where, 0) + 1
        out = _readers_show(store)
        if "not marked" in where:
            assert "creation interrupted" in out, out
        with one_thread():  # the tiny backbones are registered by the fixture
            again = runner.invoke(app, _extract_args(store, images))
        assert again.exit_code == 0, (where, again.output)
        assert _store_files(store) == reference, where
    print("SIGKILL at backbone creation landed:", landed)


# ------------------------------------------------------------ the same on s3:// (moto server)


@pytest.fixture(scope="module")
def s3_env():
    with moto_s3("stops") as server:
        yield server.env


def test_a_stop_at_every_write_of_backbone_creation_on_s3_is_repaired(
    tiny_clean, s3_env, tmp_path, monkeypatch
):
    """On s3:// each write is one PUT or DELETE of a whole object: stop after the backbone
    group's zarr.json, after each array's, and after the mark; ls shows it, the same command
    repairs it, and the embeddings equal those of an uninterrupted run."""
    images, _ = tiny_clean
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    prefix = f"ds/{TINY}/"
    with stop_at_write(None, prefix) as writes, one_thread():
        first = runner.invoke(app, _extract_args("s3://stops/count.zarr", images))
    assert first.exit_code == 0, first.output
    expected = open_store("s3://stops/count.zarr").embeddings("ds", TINY)
    mark = max(i for i, w in enumerate(writes) if w == f"set {prefix}zarr.json" and "/c/" not in w
               and i < next(j for j, v in enumerate(writes) if "/c/" in v))  # fmt: skip
    # after each object's first write (the group, each array) and after the mark: every state
    # of creation but a second write of an array's zarr.json (its attributes)
    stops = [k + 1 for k, w in enumerate(writes[:mark]) if w not in writes[:k]] + [mark + 1]
    states = 0
    for k in stops:
        url = f"s3://stops/s{k}.zarr"
        with stop_at_write(k, prefix), one_thread(), pytest.raises(Stopped):
            runner.invoke(app, _extract_args(url, images))
        ls = runner.invoke(app, ["ls", url], env={"COLUMNS": "200"})
        assert ls.exit_code == 0 and ls.exception is None, (k, writes[k], ls.output)
        if any(w.startswith("set") for w in writes[:k]):  # the group exists: listed
            assert TINY in ls.output and "incomplete" in ls.output, (k, writes[k], ls.output)
        with one_thread():
            again = runner.invoke(app, _extract_args(url, images))
        assert again.exit_code == 0, (k, writes[k], again.output)
        got = open_store(url).embeddings("ds", TINY)
        assert got.tobytes() == expected.tobytes(), (k, writes[k])
        states += 1
    print(f"s3: {states} stops in backbone creation, each repaired: {writes[: mark + 1]}")
    assert states == 8, stops  # group, 6 arrays, mark
