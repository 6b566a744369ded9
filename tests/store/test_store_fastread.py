"""The threaded float32 read of local stores (store/_fastread.py) against zarr's own read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from embedstore import create_store, export_archive, open_store
from embedstore.errors import CorruptStoreError
from embedstore.store._fastread import read_float32
from tests.conftest import make_dataset, write_embeddings

N, DIM = 55, 6  # 55 rows in chunks of 8: a padded last chunk


def _zarr_reference(store_path: Path) -> np.ndarray:
    """zarr's own full read of the stored array (the independent reference)."""
    return zarr.open_array(store_path / "toy" / "bb" / "embeddings", mode="r")[...].astype(
        np.float32
    )


@pytest.fixture(params=["float16", "float32"])
def stored(tmp_path, request):
    store = create_store(tmp_path / "s.zarr")
    make_dataset(store, n=N, classes=("x", "y", "z"))
    X = np.random.default_rng(1).normal(size=(N, DIM)).astype(np.float32)
    write_embeddings(store, "toy", "bb", X, dtype=request.param, chunk_rows=8)
    return tmp_path / "s.zarr", X.astype(request.param).astype(np.float32)


def test_every_selection_equals_zarrs_read(stored):
    path, expected = stored
    ref = _zarr_reference(path)
    np.testing.assert_array_equal(ref, expected)
    s = open_store(path)
    arr = zarr.open_array(path / "toy" / "bb" / "embeddings", mode="r")
    rows = np.array([54, 0, 7, 8, 8, 51, 3, 40], dtype=np.int64)  # any order, repeats, edges
    for sel in (
        None,
        slice(5, 50, 3),
        slice(48, None),
        slice(54, 55),
        rows,
        np.array([], dtype=np.int64),
    ):
        got = read_float32(arr, sel)
        assert got is not None and got.dtype == np.float32
        np.testing.assert_array_equal(got, ref if sel is None else ref[sel])
    np.testing.assert_array_equal(s.embeddings("toy", "bb"), ref)
    np.testing.assert_array_equal(s.embeddings("toy", "bb", rows=rows), ref[rows])
    test = s.split("toy") == 2
    np.testing.assert_array_equal(s.embeddings("toy", "bb", split="test"), ref[test])


def test_unwritten_chunks_read_as_zeros_like_zarr(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    make_dataset(store, n=N)
    w = store.writer("toy", "bb", dim=DIM, dtype="float16", chunk_rows=8)
    w.write(np.ones((16, DIM), np.float32))  # two chunks of seven; never finished
    s = open_store(tmp_path / "s.zarr")
    got = s.embeddings("toy", "bb", allow_incomplete=True)
    np.testing.assert_array_equal(got, _zarr_reference(tmp_path / "s.zarr"))
    assert got[:16].min() == 1 and not got[16:].any()


def test_damaged_chunk_is_one_clear_error(stored):
    path, _ = stored
    chunk = path / "toy" / "bb" / "embeddings" / "c" / "2" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-9])  # truncated: the zstd frame fails its check
    with pytest.raises(CorruptStoreError, match="embedstore verify"):
        open_store(path).embeddings("toy", "bb")


def test_other_layouts_fall_back_to_zarr(stored, tmp_path):
    path, expected = stored
    export_archive(path, tmp_path / "a.esz")
    archive = open_store(tmp_path / "a.esz")  # read in place from the zip: zarr reads it
    np.testing.assert_array_equal(archive.embeddings("toy", "bb"), expected)
    other = zarr.create_array(
        zarr.storage.LocalStore(tmp_path / "plain.zarr"),
        shape=(10, 4),
        chunks=(5, 4),
        dtype="float32",
        compressors=None,
    )
    assert read_float32(other, None) is None  # no zstd: not this package's layout
