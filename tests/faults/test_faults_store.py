"""Store promises under bad data: float16 overflow, core data types, dimension names (xarray),
format-1 stores, per-row selectors, damaged archive members."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from embedstore import create_store, open_store
from embedstore.archive import export_archive, import_archive, verify
from embedstore.cli.main import app
from embedstore.errors import InvalidDataError
from embedstore.store import FORMAT_VERSION
from tests.conftest import make_dataset, write_embeddings

CORE_TYPES = {
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
}  # fmt: skip  (Zarr v3 core spec, plus raw bits r<N>)


def _arrays_meta(path):
    for meta_path in sorted(path.rglob("zarr.json")):
        meta = json.loads(meta_path.read_text())
        if meta["node_type"] == "array":
            yield meta_path.parent.relative_to(path).as_posix(), meta


def _store_with_everything(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    n = 40
    store.add_dataset(
        "toy",
        ids=[f"patient_ü{i // 2}/img_{i:03d}.png" for i in range(n)],
        labels=np.arange(n) % 3,
        split=np.repeat([0, 1, 2], [24, 8, 8]),
        task="multiclass",
        class_names=["a", "b", "c"],
        group=[f"p{i // 2}" for i in range(n)],
    )
    X = np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32)
    w = store.writer("toy", "bb", dim=6, dtype="float16", chunk_rows=16)
    w.mark_missing(5, "x", "truncated JPEG — cannot decode")
    w.write(X)
    w.finish({"name": "bb"})
    return store, X


def test_float16_overflow_is_refused_and_the_array_stays_incomplete(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    make_dataset(store, n=40)
    w = store.writer("toy", "bb", dim=4, dtype="float16", chunk_rows=8)
    w.write(np.ones((16, 4), np.float32))
    big = np.ones((8, 4), np.float32)
    big[3, 2] = 70000.0  # finite in float32, Inf once cast to float16 (max 65,504)
    with _no_runtime_warning():
        with pytest.raises(
            InvalidDataError, match=r"overflow float16 in row\(s\) 19.*--dtype float32"
        ):
            w.write(big)
    info = open_store(tmp_path / "s.zarr").array_info("toy", "bb")
    assert not info.complete and info.rows_written == 16
    stored = open_store(tmp_path / "s.zarr").embeddings("toy", "bb", allow_incomplete=True)
    assert np.isfinite(stored).all()  # what is on disk never holds Inf
    # float32 holds the same values
    w32 = store.writer("toy", "bb32", dim=4, dtype="float32", chunk_rows=8)
    w32.write(np.concatenate([np.ones((16, 4), np.float32), big, np.ones((16, 4), np.float32)]))
    assert w32.finish({})
    assert open_store(tmp_path / "s.zarr").embeddings("toy", "bb32")[19, 2] == 70000.0


class _no_runtime_warning:
    """NumPy's 'overflow encountered in cast' must not leak: the error says it instead."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings(record=True)
        self._seen = self._ctx.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        assert not [w for w in self._seen if issubclass(w.category, RuntimeWarning)]


def test_every_array_is_a_core_data_type_with_dimension_names(tmp_path):
    store, _ = _store_with_everything(tmp_path)
    seen = {}
    for name, meta in _arrays_meta(tmp_path / "s.zarr"):
        assert meta["data_type"] in CORE_TYPES, (name, meta["data_type"])
        assert "vlen-utf8" not in json.dumps(meta["codecs"])
        seen[name] = tuple(meta["dimension_names"])
    assert seen["toy/ids"][0] == "sample" and seen["toy/group"][0] == "sample"
    assert seen["toy/labels"] == ("sample",) and seen["toy/split"] == ("sample",)
    assert seen["toy/bb/embeddings"] == ("sample", "feature")
    assert seen["toy/bb/missing"] == ("sample",) and seen["toy/bb/missing_reason"][0] == "sample"
    assert seen["toy/bb/progress"] == ("chunk",)
    root = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert root.attrs["embedstore_format"] == FORMAT_VERSION == 2
    # the text survives the uint8 encoding, non-ASCII included
    s = open_store(tmp_path / "s.zarr")
    assert s.ids("toy")[3] == "patient_ü1/img_003.png" and s.group("toy")[39] == "p19"
    assert s.missing("toy", "bb") == [
        {"row": 5, "id": "patient_ü2/img_005.png", "reason": "truncated JPEG — cannot decode"}
    ]


def test_xarray_opens_the_store_aligned_by_sample(tmp_path):
    xr = pytest.importorskip("xarray")
    store, X = _store_with_everything(tmp_path)
    tree = xr.open_datatree(tmp_path / "s.zarr", engine="zarr", consolidated=False)
    ds, bb = tree["toy"].to_dataset(), tree["toy/bb"].to_dataset()
    assert ds.sizes["sample"] == bb.sizes["sample"] == 40
    assert bb["embeddings"].dims == ("sample", "feature") and bb.sizes["feature"] == 6
    np.testing.assert_array_equal(bb["embeddings"].values, X.astype(np.float16))
    np.testing.assert_array_equal(ds["labels"].values, np.arange(40) % 3)
    # rows line up across nodes: select test rows by the dataset's split, read the backbone's
    test = ds["split"].values == 2
    picked = bb["embeddings"].isel(sample=np.flatnonzero(test)).values
    np.testing.assert_array_equal(
        picked,
        open_store(tmp_path / "s.zarr").embeddings("toy", "bb", split="test").astype(np.float16),
    )


def test_per_row_accessors_take_rows_and_split(tmp_path):
    store, X = _store_with_everything(tmp_path)
    s = open_store(tmp_path / "s.zarr")
    test = np.flatnonzero(s.split("toy") == 2)
    all_ids, all_labels, all_groups = s.ids("toy"), s.labels("toy"), s.group("toy")
    np.testing.assert_array_equal(s.labels("toy", split="test"), all_labels[test])
    np.testing.assert_array_equal(s.ids("toy", split="test"), all_ids[test])
    np.testing.assert_array_equal(
        s.group("toy", split="val"), all_groups[s.split_rows("toy", "val")]
    )
    np.testing.assert_array_equal(s.split("toy", split="train"), np.zeros(24, np.uint8))
    rows = np.array([39, 0, 7, 7])
    np.testing.assert_array_equal(s.labels("toy", rows=rows), all_labels[rows])
    np.testing.assert_array_equal(s.ids("toy", rows=rows), all_ids[rows])
    np.testing.assert_array_equal(s.labels("toy", rows=slice(3, 9)), all_labels[3:9])
    assert s.missing("toy", "bb", split="test") == []
    assert [m["row"] for m in s.missing("toy", "bb", rows=[5, 6])] == [5]
    assert s.valid_rows("toy", "bb", rows=[4, 5]).tolist() == [True, False]
    with pytest.raises(InvalidDataError, match=r"rows must be in \[0, 40\)"):
        s.labels("toy", rows=[40])
    with pytest.raises(InvalidDataError, match="rows or split, not both"):
        s.ids("toy", rows=[1], split="test")
    with pytest.raises(InvalidDataError, match="split must be one of"):
        s.labels("toy", split="testing")


def _format1_store(path):
    """A store exactly as embedstore 0.1 (format 1) wrote it: text in the `string` type."""
    root = zarr.open_group(str(path), mode="w")
    root.attrs.update({"embedstore_format": 1, "created_by": "embedstore 0.1.0"})
    g = root.create_group("toy")
    ids = np.array([f"img_{i}.png" for i in range(20)])
    g.create_array("ids", shape=(20,), dtype=str)[...] = ids
    g.create_array("labels", shape=(20,), dtype="int64")[...] = np.arange(20) % 2
    g.create_array("split", shape=(20,), dtype="uint8")[...] = np.repeat([0, 1, 2], [12, 4, 4])
    g.create_array("group", shape=(20,), dtype=str)[...] = np.array(
        [f"p{i // 4}" for i in range(20)]
    )
    g.attrs.update(
        {"task": "binary", "class_names": ["a", "b"], "source": "", "n_samples": 20,
         "split_codes": {"train": 0, "val": 1, "test": 2}}
    )  # fmt: skip
    bg = g.create_group("bb")
    X = np.random.default_rng(2).normal(size=(20, 4)).astype(np.float32)
    bg.create_array("embeddings", shape=(20, 4), chunks=(8, 4), dtype="float32", fill_value=0.0)[
        ...
    ] = X
    bg.create_array("progress", shape=(3,), chunks=(1,), dtype="uint8", fill_value=0)[...] = 1
    miss = bg.create_array("missing", shape=(20,), chunks=(8,), dtype="bool", fill_value=False)
    reason = bg.create_array("missing_reason", shape=(20,), chunks=(8,), dtype=str)
    miss[2] = True
    reason[2] = "unreadable"
    bg.attrs.update({"complete": True, "provenance": {}})
    return ids, X


def test_format_1_stores_are_read_and_migrated_on_write(tmp_path):
    ids, X = _format1_store(tmp_path / "old.zarr")
    chunk = (tmp_path / "old.zarr/toy/bb/embeddings/c/1/0").read_bytes()
    s = open_store(tmp_path / "old.zarr")  # read-only: read as it is, nothing rewritten
    assert s.format_version == 1
    np.testing.assert_array_equal(s.ids("toy"), ids)
    assert s.group("toy")[5] == "p1" and s.missing("toy", "bb")[0]["reason"] == "unreadable"
    np.testing.assert_array_equal(s.embeddings("toy", "bb"), X)
    assert zarr.open_group(tmp_path / "old.zarr", mode="r").attrs["embedstore_format"] == 1
    # an archive of a format-1 store verifies and imports into a format-2 store
    export_archive(tmp_path / "old.zarr", tmp_path / "old.zip")
    assert verify(tmp_path / "old.zip").ok
    import_archive(tmp_path / "old.zip", tmp_path / "imported.zarr")
    for name, meta in _arrays_meta(tmp_path / "imported.zarr"):
        assert meta["data_type"] in CORE_TYPES, name
    np.testing.assert_array_equal(open_store(tmp_path / "imported.zarr").ids("toy"), ids)
    # opening for writing migrates in place: core types, dimension names, same chunk bytes
    s = open_store(tmp_path / "old.zarr", mode="r+")
    assert s.format_version == 2
    for name, meta in _arrays_meta(tmp_path / "old.zarr"):
        assert meta["data_type"] in CORE_TYPES and meta.get("dimension_names"), name
    assert (tmp_path / "old.zarr/toy/bb/embeddings/c/1/0").read_bytes() == chunk
    s = open_store(tmp_path / "old.zarr")
    np.testing.assert_array_equal(s.ids("toy"), ids)
    assert s.missing("toy", "bb") == [{"row": 2, "id": "img_2.png", "reason": "unreadable"}]
    assert verify(tmp_path / "old.zarr").ok


def _damaged_member_archive(tmp_path):
    store = create_store(tmp_path / "s.zarr")
    make_dataset(store, n=60)
    X = np.random.default_rng(1).normal(size=(60, 8)).astype(np.float32)
    write_embeddings(store, "toy", "bb", X, chunk_rows=16)
    export_archive(tmp_path / "s.zarr", tmp_path / "a.zip")
    member = "toy/bb/embeddings/c/1/0"
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        info = zf.getinfo(member)
    data = bytearray((tmp_path / "a.zip").read_bytes())
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + 5] ^= 0xFF
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    return tmp_path / "bad.zip", member


@pytest.mark.parametrize(
    "args",
    [
        ["probe", "{a}", "-d", "toy", "-b", "bb", "--method", "knn"],
        ["import", "{a}", "{t}"],
    ],
)
def test_damaged_archive_member_is_one_line_naming_it(tmp_path, args):
    archive, member = _damaged_member_archive(tmp_path)
    target = tmp_path / "target.zarr"
    argv = [a.format(a=archive, t=target) for a in args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert member in lines[0]
    assert not target.exists()  # import changed nothing


@pytest.mark.slow  # the CLI in real processes
def test_extract_of_a_backbone_overflowing_float16_is_one_line_and_float32_works(tmp_path):
    """The real `embedstore extract` in a child process, with a backbone whose outputs reach 1e7."""
    from embedstore.testing.harness import ROOT, env, write_images

    images = write_images(tmp_path / "images", 16)
    base = [
        "-m", "embedstore.testing.fault_cli", "extract", str(tmp_path / "s.zarr"), "-d", "ds", "--source",
        str(images), "-b", "huge.test", "--workers", "0", "--device", "cpu", "--batch-size", "8",
    ]  # fmt: skip
    failed = subprocess.run(
        [sys.executable, *base], cwd=ROOT, env=env(), capture_output=True, text=True
    )
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert failed.returncode == 1 and len(errors) == 1 and "Traceback" not in failed.stderr
    assert "overflow float16" in errors[0] and "--dtype float32" in errors[0]
    info = open_store(tmp_path / "s.zarr").array_info("ds", "huge.test")
    assert not info.complete and info.rows_written == 0
    done = subprocess.run([sys.executable, *base, "--dtype", "float32", "--overwrite"], cwd=ROOT,
                          env=env(), capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    X = open_store(tmp_path / "s.zarr").embeddings("ds", "huge.test")
    assert np.isfinite(X).all() and np.abs(X).max() > 65504
