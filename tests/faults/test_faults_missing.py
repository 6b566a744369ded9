"""Arrays gone from a store (an array's folder deleted, or left behind by a kill while an earlier
version created or deleted a backbone): every command answers in one line or a clear status, never
with a traceback, and what a rerun of `extract` can repair without losing a computed row, it does.

- API, every subset of a backbone group's six arrays, in three states (complete; incomplete with
  chunks written; incomplete with none): reads raise one CorruptStoreError, or (an incomplete
  group with no row stored) the group is "creation interrupted", not listed, and the next writer
  recreates it.
- CLI, a real store of the tiny test backbone with single arrays and pairs gone, and each dataset
  array gone: ls, info, probe, sweep, extract, verify, export and analyze similarity; a plain
  rerun of extract restores a dataset's labels or split when the source gives back the bytes
  recorded when they were written (their sha256), and --overwrite replaces a damaged backbone.
"""

from __future__ import annotations

import itertools
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store, open_store
from embedstore.cli.main import app
from embedstore.errors import ArrayNotFoundError, ConflictError, CorruptStoreError
from tests.conftest import make_dataset
from tests.extraction.helpers import TINY, cli_args, one_thread, register_tiny, unregister_tiny
from tests.extraction.helpers import write_images as write_tiny_images

ARRAYS = ("embeddings", "progress", "checksums", "chunk_nbytes", "missing", "missing_reason")
REQUIRED = {"embeddings", "progress", "missing", "missing_reason"}


def _group(tmp_path: Path, chunks_written: int, complete: bool) -> Path:
    """A store whose backbone 'bb' (40 rows, 8-row chunks) has ``chunks_written`` chunks done."""
    store = create_store(tmp_path / "s.zarr")
    make_dataset(store, n=40)
    w = store.writer("toy", "bb", dim=4, dtype="float32", chunk_rows=8)
    X = np.arange(160, dtype=np.float32).reshape(40, 4)
    w.mark_missing(3, "x", "unreadable")
    if chunks_written:
        w.write(X[: 8 * chunks_written])
    if complete:
        assert w.finish({"name": "bb"})
    return tmp_path / "s.zarr"


@pytest.mark.parametrize("state", ["complete", "incomplete", "created"])
def test_every_subset_of_arrays_gone_is_refused_or_recreated(state, tmp_path):
    chunks, complete = {"complete": (5, True), "incomplete": (2, False), "created": (0, False)}[
        state
    ]
    template = _group(tmp_path / "template", chunks, complete)
    tried = 0
    for r in range(1, len(ARRAYS) + 1):
        for gone in itertools.combinations(ARRAYS, r):
            path = tmp_path / f"s{tried}.zarr"
            shutil.copytree(template, path)
            for name in gone:
                shutil.rmtree(path / "toy" / "bb" / name)
            tried += 1
            s = open_store(path, mode="r+")
            needed = REQUIRED & set(gone)
            if not needed:  # only the optional per-chunk checksums gone: still usable
                assert s.backbones("toy") == ["bb"]
                info = s.array_info("toy", "bb")
                assert not info.chunk_checksums and info.complete == complete
                if complete:
                    assert s.embeddings("toy", "bb").shape == (40, 4)
                continue
            no_rows = state == "created" or {"embeddings", "progress"} <= set(gone)
            if not complete and no_rows:  # no row stored: interrupted, recreated by the writer
                assert s.backbones("toy") == [] and s.interrupted_backbones("toy") == ["bb"]
                with pytest.raises(ArrayNotFoundError, match="creation was interrupted"):
                    s.array_info("toy", "bb")
                w = s.writer("toy", "bb", dim=4, dtype="float32", chunk_rows=8)
                assert w.rows_written == 0 and s.backbones("toy") == ["bb"]
                continue
            assert s.backbones("toy") == ["bb"] and s.interrupted_backbones("toy") == []
            for read in (
                lambda s=s: s.array_info("toy", "bb"),
                lambda s=s: s.embeddings("toy", "bb", allow_incomplete=True),
                lambda s=s: s.chunks_done("toy", "bb"),
                lambda s=s: s.valid_rows("toy", "bb"),
                lambda s=s: s.missing("toy", "bb"),
                lambda s=s: s.writer("toy", "bb", dim=4, dtype="float32"),
            ):
                with pytest.raises(CorruptStoreError, match="is damaged.*--overwrite"):
                    read()
            # --overwrite replaces it (the user's choice: its rows are recomputed)
            w = s.writer("toy", "bb", dim=4, dtype="float32", chunk_rows=8, overwrite=True)
            assert w.rows_written == 0
            assert open_store(path).array_info("toy", "bb").rows_written == 0
    assert tried == 63


def test_a_kill_while_a_group_was_deleted_leaves_no_marked_group(tmp_path):
    """Deletion unmarks the group first (one write): whatever the kill leaves under it is a group
    the next writer recreates, never a complete array with arrays gone."""
    path = _group(tmp_path, 5, True)
    s = open_store(path, mode="r+")
    from embedstore.store._create import drop_group

    g = s.zarr_group["toy"]
    bg = g["bb"]
    bg.attrs.put({k: v for k, v in bg.attrs.asdict().items() if k != "complete"})  # first step
    shutil.rmtree(path / "toy" / "bb" / "progress")  # as if the kill came midway through
    assert open_store(path).backbones("toy") == []
    assert open_store(path).interrupted_backbones("toy") == ["bb"]
    w = open_store(path, mode="r+").writer("toy", "bb", dim=4, dtype="float32", chunk_rows=8)
    assert w.rows_written == 0
    (path / "toy" / "bb" / "zarr.json").unlink()  # a folder without zarr.json is invisible...
    assert open_store(path).backbones("toy") == []
    w = open_store(path, mode="r+").writer("toy", "bb", dim=4, dtype="float32", chunk_rows=8)
    assert w.rows_written == 0  # ...and creating the group again clears what was left
    drop_group(open_store(path, mode="r+").zarr_group["toy"], "bb")
    assert not (path / "toy" / "bb").exists()


def test_metadata_half_written_by_a_kill_is_quiet_and_cleared_by_the_next_write(tmp_path):
    """A kill while a zarr.json was written leaves its temporary ``zarr.<uuid>.partial``: reads
    do not warn about it, and the next write of that dataset and array removes it."""
    path = _group(tmp_path, 2, False)
    for folder in (path, path / "toy", path / "toy" / "bb"):
        (folder / "zarr.0123abcd.partial").write_bytes(b'{"half')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = open_store(path)
        assert s.backbones("toy") == ["bb"] and s.array_info("toy", "bb").rows_written == 16
    s = open_store(path, mode="r+")
    make_dataset(s, n=40)  # the same dataset again: nothing changes but the leftovers
    w = s.writer("toy", "bb", dim=4, dtype="float32")
    assert w.rows_written == 16 and not list(path.rglob("zarr.*.partial"))


def test_a_dataset_array_gone_is_restored_only_as_it_was_written(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    ids, labels, split = make_dataset(store, n=40)
    fields = {"ids": ids, "split": split, "task": "binary", "class_names": ["a", "b"]}
    shutil.rmtree(tmp_path / "s.zarr" / "toy" / "labels")
    with pytest.raises(CorruptStoreError, match="'labels' array.*gone"):
        open_store(tmp_path / "s.zarr").dataset_info("toy")
    with pytest.raises(ConflictError, match="damaged.*does not give them back"):
        store.add_dataset("toy", labels=1 - labels, **fields)  # other labels: not a restore
    assert not (tmp_path / "s.zarr" / "toy" / "labels").exists()  # left as it was found
    store.add_dataset("toy", labels=labels, **fields)  # the same bytes as recorded: restored
    np.testing.assert_array_equal(open_store(tmp_path / "s.zarr").labels("toy"), labels)


# ---------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gone")
    images = write_tiny_images(tmp / "images")
    register_tiny()
    try:
        with one_thread():
            ran = CliRunner().invoke(app, ["extract", *cli_args(tmp / "s.zarr", images, TINY)])
        assert ran.exit_code == 0, ran.output
        yield images, tmp / "s.zarr"
    finally:
        unregister_tiny()


CASES = [
    *[(f"{TINY}/{a}",) for a in ARRAYS],
    (f"{TINY}/embeddings", f"{TINY}/progress"),
    (f"{TINY}/missing", f"{TINY}/missing_reason"),
    (f"{TINY}/checksums", f"{TINY}/chunk_nbytes"),
    ("ids",),
    ("labels",),
    ("split",),
]


@pytest.mark.parametrize("gone", CASES, ids=["+".join(c) for c in CASES])
def test_no_command_answers_an_array_gone_with_a_traceback(gone, extracted, tmp_path):
    images, template = extracted
    store = tmp_path / "s.zarr"
    shutil.copytree(template, store)
    for name in gone:
        shutil.rmtree(store / "ds" / name)
    s, b = str(store), TINY
    commands = {
        "ls": ["ls", s],
        "info": ["info", s],
        "info ds": ["info", s, "ds"],
        "info bb": ["info", s, "ds", b],
        "probe": ["probe", s, "-d", "ds", "-b", b, "--method", "knn", "--device", "cpu"],
        "sweep": ["sweep", s, "-d", "ds", "-b", b, "--method", "knn", "--fractions", "1.0",
                  "--seeds", "1", "--device", "cpu"],
        "analyze similarity": ["analyze", "similarity", s, "-d", "ds"],
        "verify": ["verify", s],
        "export": ["export", s, str(tmp_path / "out.zip")],
        "extract": ["extract", *cli_args(store, images, b)],
    }  # fmt: skip
    usable = set(gone) <= {f"{TINY}/checksums", f"{TINY}/chunk_nbytes"}
    runner = CliRunner()  # the tiny backbones are registered by the fixture
    for what, args in commands.items():
        with one_thread():
            result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            what,
            result.exception,
        )
        assert "Traceback" not in result.output, (what, result.output)
        if result.exit_code:
            assert result.exit_code == 1, (what, result.output)
            assert "error:" in result.output, (what, result.output)
        restorable = gone in (("labels",), ("split",))  # the source gives them back as written
        if what == "extract" and restorable:
            assert result.exit_code == 0, result.output
            for read in ("labels", "split"):
                np.testing.assert_array_equal(
                    getattr(open_store(store), read)("ds"),
                    getattr(open_store(template), read)("ds"),
                )
            assert open_store(store).array_info("ds", TINY).complete
        elif what in ("probe", "extract") and not usable:
            assert result.exit_code == 1 and "damaged" in result.output, (what, result.output)
        if what == "ls" and not usable or what == "info" and not gone[0].startswith(TINY):
            assert result.exit_code == 0 and "damaged" in result.output, (what, result.output)
        if what == "verify" and not usable:
            assert result.exit_code == 1, result.output
    if not usable and gone[0].startswith(TINY):  # --overwrite, as the message says, repairs it
        with one_thread():
            again = runner.invoke(app, [*commands["extract"], "--overwrite"])
        assert again.exit_code == 0, again.output
        assert open_store(store).array_info("ds", TINY).complete


def test_verify_names_an_interrupted_creation_and_passes(tmp_path):
    from embedstore import verify

    path = _group(tmp_path, 0, False)
    shutil.rmtree(path / "toy" / "bb" / "embeddings")  # stopped before the arrays were all made
    report = verify(path)
    assert report.ok and report.interrupted == ("toy/bb",)
    assert report.unrecorded == []  # not the "format-1 array, no checksum" note
    assert {c.checksum for c in report.checks if c.path.startswith("toy/bb/")} == {"interrupted"}
    out = CliRunner().invoke(app, ["verify", str(path)])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "toy/bb: its creation was interrupted" in text and "no checksum covers" not in text
