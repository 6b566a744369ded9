from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from embedstore import create_store, open_store
from embedstore.errors import (
    ArrayNotFoundError,
    ConflictError,
    DatasetNotFoundError,
    FormatVersionError,
    IncompleteArrayError,
    InvalidDataError,
    ReadOnlyError,
    StoreNotFoundError,
)
from embedstore.store import FORMAT_VERSION, default_chunk_rows
from tests.conftest import make_dataset, write_embeddings


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_single_label(tmp_path, dtype):
    store = create_store(tmp_path / "s.zarr")
    ids, labels, split = make_dataset(store, n=50, classes=("x", "y", "z"))
    X = np.random.default_rng(0).normal(size=(50, 12)).astype(np.float32)
    write_embeddings(store, "toy", "bb", X, dtype=dtype, chunk_rows=8)

    s = open_store(tmp_path / "s.zarr")
    expected = X.astype(dtype).astype(np.float32)
    got = s.embeddings("toy", "bb")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(s.ids("toy"), ids)
    np.testing.assert_array_equal(s.labels("toy"), labels)
    np.testing.assert_array_equal(s.split("toy"), split)
    np.testing.assert_array_equal(s.embeddings("toy", "bb", split="test"), expected[split == 2])
    rows = np.array([49, 3, 17, 3])
    np.testing.assert_array_equal(s.embeddings("toy", "bb", rows=rows), expected[rows])
    np.testing.assert_array_equal(s.embeddings("toy", "bb", rows=slice(5, 9)), expected[5:9])
    info = s.array_info("toy", "bb")
    assert info.shape == (50, 12) and info.dtype == dtype and info.complete
    assert info.chunk_rows == 8 and info.nbytes_stored > 0
    assert s.dataset_info("toy").split_counts == {"train": 30, "val": 10, "test": 10}


def test_round_trip_multilabel(tmp_path):
    store = create_store(tmp_path / "m.zarr")
    rng = np.random.default_rng(3)
    labels = (rng.random((20, 4)) > 0.5).astype(np.uint8)
    store.add_dataset(
        "chest",
        ids=[str(i) for i in range(20)],
        labels=labels,
        split=["train"] * 20,
        task="multilabel",
        class_names=["a", "b", "c", "d"],
        group=[f"p{i // 2}" for i in range(20)],
    )
    s = open_store(tmp_path / "m.zarr")
    assert s.labels("chest").dtype == np.uint8
    np.testing.assert_array_equal(s.labels("chest"), labels)
    assert s.group("chest")[3] == "p1"
    assert s.dataset_info("chest").has_group


def test_plain_zarr_reads_documented_layout(toy_store):
    store, X = toy_store
    root = zarr.open_group(store.location, mode="r")
    assert root.attrs["embedstore_format"] == FORMAT_VERSION
    ds = root["toy"]
    assert ds.attrs["task"] == "binary" and ds.attrs["class_names"] == ["a", "b"]
    assert (
        ds["ids"].shape[0] == 40 and ds["ids"].dtype == np.uint8 and ds["split"].dtype == np.uint8
    )
    assert bytes(ds["ids"][3]).rstrip(b"\0").decode() == "img_0003.png"
    emb = ds["bb"]["embeddings"]
    assert emb.shape == (40, 8) and emb.chunks == (16, 8)
    assert ds["bb"].attrs["complete"] is True
    np.testing.assert_array_equal(emb[:], X)


def test_dataset_is_write_once(toy_store):
    store, _ = toy_store
    ids = store.ids("toy")
    labels, split = store.labels("toy"), store.split("toy")
    # Same content again: a no-op.
    store.add_dataset(
        "toy", ids=ids, labels=labels, split=split, task="binary", class_names=["a", "b"]
    )
    changed = labels.copy()
    changed[0] = 1 - changed[0]
    with pytest.raises(ConflictError, match="already exists"):
        store.add_dataset(
            "toy", ids=ids, labels=changed, split=split, task="binary", class_names=["a", "b"]
        )
    np.testing.assert_array_equal(store.labels("toy"), labels)
    # Explicit overwrite with the same ids keeps the embeddings.
    store.add_dataset(
        "toy",
        ids=ids,
        labels=changed,
        split=split,
        task="binary",
        class_names=["a", "b"],
        overwrite=True,
    )
    np.testing.assert_array_equal(store.labels("toy"), changed)
    assert store.backbones("toy") == ["bb"]
    # New ids would misalign the embeddings: refused even with overwrite.
    with pytest.raises(ConflictError, match="misalign"):
        store.add_dataset(
            "toy",
            ids=[f"n{i}" for i in range(40)],
            labels=changed,
            split=split,
            task="binary",
            class_names=["a", "b"],
            overwrite=True,
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ids": ["a", "a", "b"]}, "unique"),
        ({"labels": [0, 1, 2]}, r"\[0, 1\]"),
        ({"labels": [0, 1]}, "shape"),
        ({"split": ["train", "dev", "test"]}, "train/val/test"),
        ({"task": "regression"}, "task must be one of"),
        ({"class_names": ["a", "b", "c"]}, "exactly 2"),
    ],
)
def test_add_dataset_validates(tmp_path, kwargs, match):
    store = create_store(tmp_path / "v.zarr")
    args = dict(
        ids=["a", "b", "c"],
        labels=[0, 1, 0],
        split=["train", "val", "test"],
        task="binary",
        class_names=["n", "y"],
    )
    args.update(kwargs)
    with pytest.raises(InvalidDataError, match=match):
        store.add_dataset("d", **args)
    assert store.datasets() == []


def test_nan_rows_refused_and_named(tmp_path):
    store = create_store(tmp_path / "n.zarr")
    make_dataset(store, n=20)
    w = store.writer("toy", "bb", dim=4, dtype="float32", chunk_rows=4)
    w.write(np.zeros((6, 4)))
    bad = np.zeros((5, 4))
    bad[2, 1] = np.nan
    bad[4, 0] = np.inf
    with pytest.raises(InvalidDataError, match=r"row\(s\) 8, 10"):
        w.write(bad)
    assert w.next_row == 6
    assert not store.array_info("toy", "bb").complete


def test_incomplete_array_is_listed_and_refused(tmp_path):
    store = create_store(tmp_path / "i.zarr")
    make_dataset(store, n=20)
    w = store.writer("toy", "bb", dim=4, dtype="float32", chunk_rows=8)
    w.write(np.ones((10, 4)))  # one chunk of 8 flushed, 2 rows buffered and lost
    info = store.array_info("toy", "bb")
    assert not info.complete and info.rows_written == 8
    with pytest.raises(IncompleteArrayError, match="8 of 20 rows"):
        store.embeddings("toy", "bb")
    partial = store.embeddings("toy", "bb", allow_incomplete=True)
    assert partial[:8].sum() == 32 and partial[8:].sum() == 0
    with pytest.raises(InvalidDataError, match="exactly one row per sample"):
        w.finish({})
    assert not store.array_info("toy", "bb").complete


def test_resume_from_last_chunk_is_bit_identical(tmp_path):
    X = np.random.default_rng(5).normal(size=(30, 6)).astype(np.float32)
    clean = create_store(tmp_path / "clean.zarr")
    make_dataset(clean, n=30)
    write_embeddings(clean, "toy", "bb", X, dtype="float16", chunk_rows=8)

    store = create_store(tmp_path / "resumed.zarr")
    make_dataset(store, n=30)
    w = store.writer("toy", "bb", dim=6, dtype="float16", chunk_rows=8)
    w.write(X[:13])  # interrupted: rows 8..12 never reach disk
    w2 = open_store(tmp_path / "resumed.zarr", mode="r+").writer(
        "toy", "bb", dim=6, dtype="float16"
    )
    assert w2.rows_written == 8
    w2.write(X[8:])
    w2.finish({"name": "bb"})
    np.testing.assert_array_equal(
        open_store(tmp_path / "resumed.zarr").embeddings("toy", "bb"),
        clean.embeddings("toy", "bb"),
    )


def test_complete_array_needs_overwrite(toy_store):
    store, X = toy_store
    with pytest.raises(ConflictError, match="--overwrite"):
        store.writer("toy", "bb", dim=8)
    w = store.writer("toy", "bb", dim=8, dtype="float32", overwrite=True)
    assert w.rows_written == 0
    assert not store.array_info("toy", "bb").complete


def test_write_past_end_refused(tmp_path):
    store = create_store(tmp_path / "e.zarr")
    make_dataset(store, n=10)
    w = store.writer("toy", "bb", dim=3)
    with pytest.raises(InvalidDataError, match="exceeds"):
        w.write(np.zeros((11, 3)))
    with pytest.raises(InvalidDataError, match=r"shape \(n, 3\)"):
        w.write(np.zeros((2, 4)))


def test_missing_rows_recorded(tmp_path):
    store = create_store(tmp_path / "mr.zarr")
    make_dataset(store, n=10)
    w = store.writer("toy", "bb", dim=2, dtype="float32")
    w.mark_missing(3, "img_0003.png", "truncated JPEG")
    w.write(np.ones((10, 2)))
    w.finish({})
    mask = store.valid_rows("toy", "bb")
    assert mask.sum() == 9 and not mask[3]
    assert store.missing("toy", "bb") == [
        {"row": 3, "id": "img_0003.png", "reason": "truncated JPEG"}
    ]
    assert store.array_info("toy", "bb").n_missing == 1


def test_lookup_errors(toy_store, tmp_path):
    store, _ = toy_store
    with pytest.raises(DatasetNotFoundError, match="datasets: toy"):
        store.embeddings("nope", "bb")
    with pytest.raises(ArrayNotFoundError, match="extracted: bb"):
        store.embeddings("toy", "resnet50.dino")
    with pytest.raises(StoreNotFoundError, match="no store at"):
        open_store(tmp_path / "absent.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreNotFoundError, match="not a Zarr store yet"):
        open_store(tmp_path / "plain")


def test_read_only_store_refuses_writes(toy_store):
    store, _ = toy_store
    ro = open_store(store.location)
    with pytest.raises(ReadOnlyError, match="read-only"):
        ro.writer("toy", "other", dim=3)
    with pytest.raises(ReadOnlyError):
        ro.delete_embeddings("toy", "bb")


def test_newer_format_refused(toy_store):
    store, _ = toy_store
    path = f"{store.location}/zarr.json"
    meta = json.load(open(path))
    meta["attributes"]["embedstore_format"] = FORMAT_VERSION + 1
    json.dump(meta, open(path, "w"))
    with pytest.raises(FormatVersionError, match="upgrade embedstore"):
        open_store(store.location)


def test_create_refuses_foreign_folder(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        create_store(tmp_path / "stuff")
    assert (tmp_path / "stuff" / "notes.txt").read_text() == "mine"


def test_resumed_writer_forgets_missing_rows_past_the_resume_point(tmp_path):
    store = create_store(tmp_path / "rm.zarr")
    make_dataset(store, n=20)
    w = store.writer("toy", "bb", dim=2, dtype="float32", chunk_rows=8)
    w.mark_missing(2, "img_0002.png", "bad")
    w.mark_missing(10, "img_0010.png", "bad")
    w.write(np.ones((12, 2)))  # chunk 0..7 flushed; row 10 still buffered when interrupted
    w2 = store.writer("toy", "bb", dim=2, dtype="float32")
    assert w2.rows_written == 8
    w2.mark_missing(10, "img_0010.png", "bad")
    w2.write(np.ones((12, 2)))
    w2.finish({})
    assert [m["row"] for m in store.missing("toy", "bb")] == [2, 10]


def test_disjoint_row_blocks_fill_one_array_like_a_single_writer(tmp_path):
    """Two writers (as two processes would) each fill their own chunk-aligned block."""
    X = np.random.default_rng(7).normal(size=(30, 5)).astype(np.float32)
    single = create_store(tmp_path / "single.zarr")
    make_dataset(single, n=30)
    write_embeddings(single, "toy", "bb", X, dtype="float16", chunk_rows=8)

    store = create_store(tmp_path / "blocks.zarr")
    make_dataset(store, n=30)
    store.writer("toy", "bb", dim=5, dtype="float16", chunk_rows=8, rows=(0, 16))
    a = open_store(store.location, mode="r+").writer(
        "toy", "bb", dim=5, dtype="float16", rows=(0, 16)
    )
    b = open_store(store.location, mode="r+").writer(
        "toy", "bb", dim=5, dtype="float16", rows=(16, 30)
    )
    b.mark_missing(20, "img_0020.png", "truncated")
    b.write(X[16:])
    assert b.finish({"name": "bb"}) is False  # block a is still running
    assert not store.array_info("toy", "bb").complete
    assert store.array_info("toy", "bb").rows_written == 14
    a.write(X[:16])
    assert a.finish({"name": "bb"}) is True
    got = open_store(store.location).embeddings("toy", "bb")
    np.testing.assert_array_equal(got, single.embeddings("toy", "bb"))
    assert store.missing("toy", "bb") == [{"row": 20, "id": "img_0020.png", "reason": "truncated"}]
    with pytest.raises(InvalidDataError, match="aligned"):
        store.writer("toy", "other", dim=5, chunk_rows=8, rows=(4, 16))


def test_public_api_names_are_the_functions():
    import embedstore
    import embedstore.auditing  # noqa: F401  (a subpackage import must not shadow a function)
    import embedstore.extraction  # noqa: F401

    for name in ("extract", "audit", "evaluate_probes", "run_sweep", "export_archive", "verify"):
        assert callable(getattr(embedstore, name)), name


def test_default_chunk_rows_gives_a_small_dataset_several_resume_points(tmp_path):
    # ~4 MiB chunks: 4 MiB / (1280 x 2 bytes) = 1638.4 rows, rounded to whole 64-row batches
    assert default_chunk_rows(1280, "float16") == 1664
    assert default_chunk_rows(1280, "float16", 64, n_rows=100_000) == 1664  # large: unchanged
    # 3,000 rows (BR35H at 1,280-d) fit in 2 such chunks; capped to ~n/8 = 375, whole batches: 384
    assert default_chunk_rows(1280, "float16", 64, n_rows=3000) == 384
    assert -(-3000 // 384) == 8
    assert default_chunk_rows(1280, "float16", 256, n_rows=3000) == 512  # whole 256-batches
    assert default_chunk_rows(1280, "float16", 256, n_rows=900) == 256  # a batch at least
    assert default_chunk_rows(16, "float32", 4, n_rows=300) == 64  # never below 64 rows
    assert default_chunk_rows(16, "float32", 48, n_rows=300) == 96  # ... rounded up to batches
    store = create_store(tmp_path / "s.zarr")
    make_dataset(store, n=1000)
    w = store.writer("toy", "bb", dim=1280)  # the API's default, float16: ceil(1000/8) -> 128
    assert w.chunk_rows == 128
