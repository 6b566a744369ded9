"""Each layout, written by the real library, imported with shuffled ids: the stored array equals
the source rows in the dataset's order, exactly (float32 stored as float32)."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.interop import add_file
from tests.interop.conftest import write_eva


def _check(s, ids, X, name, fmt):
    info = s.array_info("toy", name)
    assert info.complete and info.shape == X.shape and info.dtype == "float32"
    assert np.array_equal(s.embeddings("toy", name), X)
    assert info.provenance["computed_by"] == "external"
    assert info.provenance["imported"]["format"] == fmt
    assert len(info.provenance["imported"]["sha256"]) == 64


def test_npy_with_ids_file(shuffled, tmp_path):
    s, ids, X, perm = shuffled
    np.save(tmp_path / "x.npy", X[perm])
    (tmp_path / "ids.txt").write_text("\n".join(ids[perm]) + "\n")
    add_file(s, "toy", "npy", tmp_path / "x.npy", ids=tmp_path / "ids.txt", chunk_rows=16)
    _check(s, ids, X, "npy", "npy")


def test_npy_with_ids_csv_column(shuffled, tmp_path):
    s, ids, X, perm = shuffled
    np.save(tmp_path / "x.npy", X[perm])
    rows = "\n".join(f"{i},{k}" for k, i in enumerate(ids[perm]))
    (tmp_path / "ids.csv").write_text("id,row\n" + rows + "\n")
    add_file(s, "toy", "npy", tmp_path / "x.npy", ids=tmp_path / "ids.csv")
    _check(s, ids, X, "npy", "npy")


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_keys_overridable(shuffled, tmp_path, compressed):
    s, ids, X, perm = shuffled
    save = np.savez_compressed if compressed else np.savez
    save(tmp_path / "f.npz", feats=X[perm], names=ids[perm])
    add_file(s, "toy", "npz", tmp_path / "f.npz", key="feats", ids_key="names", chunk_rows=16)
    _check(s, ids, X, "npz", "npz")


def test_trident_style_features_file(shuffled, tmp_path):
    """One HDF5 file: `features` (n, dim) and `names` as bytes, as h5py scripts write them."""
    import h5py

    s, ids, X, perm = shuffled
    with h5py.File(tmp_path / "cohort.h5", "w") as f:
        f.create_dataset("features", data=X[perm], chunks=(1, X.shape[1]))
        f.create_dataset("names", data=np.array([i.encode() for i in ids[perm]]))
    add_file(s, "toy", "h5", tmp_path / "cohort.h5", chunk_rows=16)
    _check(s, ids, X, "h5", "hdf5")


def test_pathobench_folder_of_h5(store, tmp_path):
    """A folder of <slide>.h5, each with `features` (dim,) and `coords`, as TRIDENT's
    extract_slide_features saves them; ids are the file names."""
    import h5py

    s, ids, X = store
    folder = tmp_path / "slide_features"
    folder.mkdir()
    for i, sid in enumerate(ids):
        with h5py.File(folder / f"{sid}.h5", "w") as f:
            f.create_dataset("features", data=X[i])
            f.create_dataset("coords", data=np.zeros((3, 2), dtype=np.int64))
    add_file(s, "toy", "slides", folder)
    _check(s, ids, X, "slides", "hdf5-folder")


def test_thunder_one_dataset_per_sample(store, tmp_path):
    """MICS-Lab/thunder's embeddings.h5: datasets '0', '1', ... one per sample."""
    import h5py

    s, ids, X = store
    with h5py.File(tmp_path / "embeddings.h5", "w") as f:
        for i in range(len(X)):
            f.create_dataset(str(i), data=X[i], dtype="float32")
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    add_file(s, "toy", "thunder", tmp_path / "embeddings.h5", ids=tmp_path / "ids.txt")
    _check(s, ids, X, "thunder", "hdf5")


@pytest.mark.parametrize("layout", ["fixed", "list", "columns"])
def test_parquet_layouts_in_row_batches(shuffled, tmp_path, layout):
    import pyarrow as pa
    import pyarrow.parquet as pq

    s, ids, X, perm = shuffled
    Xp = X[perm]
    if layout == "columns":
        cols = {f"f{j}": Xp[:, j] for j in range(X.shape[1])}
    else:
        flat = pa.array(Xp.reshape(-1))
        offsets = pa.array(np.arange(0, Xp.size + 1, X.shape[1], dtype=np.int32))
        emb = (
            pa.FixedSizeListArray.from_arrays(flat, X.shape[1])
            if layout == "fixed"
            else pa.ListArray.from_arrays(offsets, flat)
        )
        cols = {"emb": emb}
    table = pa.table({"sample": ids[perm].tolist(), **cols})
    pq.write_table(table, tmp_path / "f.parquet", row_group_size=7)  # many row groups
    add_file(s, "toy", "pq", tmp_path / "f.parquet", id_column="sample", chunk_rows=16)
    _check(s, ids, X, "pq", "parquet")


def test_parquet_in_dataset_order_streams(store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    s, ids, X = store
    emb = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])
    pq.write_table(pa.table({"id": ids.tolist(), "e": emb}), tmp_path / "f.parquet",
                   row_group_size=5)  # fmt: skip
    add_file(s, "toy", "pq", tmp_path / "f.parquet", chunk_rows=16)
    _check(s, ids, X, "pq", "parquet")


@pytest.mark.parametrize("as_list", [True, False])
def test_eva_offline_layout_creates_dataset(tmp_path, as_list):
    """eva's manifest + .pt files into a new store: the dataset comes from the manifest (origin
    ids, target labels, split), the array from the tensors (torch.load weights_only)."""
    from embedstore import open_store

    rng = np.random.default_rng(0)
    n = 30
    ids = np.array([f"patch_{i:03d}.png" for i in range(n)])
    X = rng.normal(size=(n, 6)).astype(np.float32)
    targets = np.arange(n) % 3
    k = np.arange(n)
    splits = np.where(k % 5 == 0, "val", np.where(k % 4 == 3, "test", "train"))
    perm = rng.permutation(n)
    folder = write_eva(tmp_path / "eva", ids[perm], X[perm], targets[perm], splits[perm], as_list)
    add_file(tmp_path / "new.zarr", "eva", "kaiko", folder, model_name="vits16")
    s = open_store(tmp_path / "new.zarr")
    assert sorted(s.ids("eva")) == sorted(ids)
    stored_ids = s.ids("eva")
    expect = X[np.searchsorted(ids, stored_ids)]
    assert np.array_equal(s.embeddings("eva", "kaiko"), expect)
    assert s.dataset_info("eva").class_names == ("0", "1", "2")
    assert np.array_equal(s.labels("eva"), targets[np.searchsorted(ids, stored_ids)])
    names = np.array(["train", "val", "test"])[s.split("eva")]
    assert np.array_equal(names, splits[np.searchsorted(ids, stored_ids)])
    prov = s.array_info("eva", "kaiko").provenance
    assert prov["imported"]["model_name"] == "vits16" and prov["computed_by"] == "external"


def test_float16_source_stays_float16(store, tmp_path):
    s, ids, X = store
    X16 = X.astype(np.float16)
    np.savez(tmp_path / "h.npz", embeddings=X16, ids=ids)
    info = add_file(s, "toy", "h", tmp_path / "h.npz")
    assert info.dtype == "float16"
    assert np.array_equal(s.embeddings("toy", "h"), X16.astype(np.float32))


def test_api_add_embeddings_in_memory(shuffled):
    s, ids, X, perm = shuffled
    info = s.add_embeddings("toy", "mem", X[perm], ids=ids[perm], provenance={"note": "nb"})
    assert np.array_equal(s.embeddings("toy", "mem"), X)
    assert info.provenance["note"] == "nb" and info.provenance["computed_by"] == "external"
    again = s.add_embeddings("toy", "mem", X[perm], ids=ids[perm])  # the same import: a no-op
    assert again.provenance["data_sha256"] == info.provenance["data_sha256"]
