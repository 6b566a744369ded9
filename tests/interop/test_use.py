"""An imported array is a first-class array: probed, fused with an extracted one, exported in an
archive that verifies, and exported to Parquet / .npz / HDF5 and added back bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore import create_store, export_archive, extract, open_store, verify
from embedstore.cli.main import app
from embedstore.engine.probe import evaluate_probes
from embedstore.interop import add_file, export_features
from embedstore.probes.options import ProbeOptions
from tests.conftest import make_dataset, write_embeddings
from tests.extraction.helpers import TINY, register_tiny, unregister_tiny, write_images

FAST = ProbeOptions(n_episodes=50, n_bootstrap=100)
runner = CliRunner()


@pytest.fixture
def extracted(tmp_path):
    """A store with a real extraction of the tiny conv backbone over 42 images."""
    register_tiny()
    try:
        images = write_images(tmp_path / "images")
        extract(tmp_path / "s.zarr", dataset="ds", source=images, backbones=[TINY],
                workers=0, device="cpu", batch_size=8)  # fmt: skip
        yield create_store(tmp_path / "s.zarr")
    finally:
        unregister_tiny()


def test_imported_probed_fused_and_archived(extracted, tmp_path):
    s = extracted
    ids, labels = s.ids("ds"), s.labels("ds")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(ids), 12)) + 2.0 * np.eye(3)[labels] @ rng.normal(size=(3, 12))
    X = X.astype(np.float32)
    perm = rng.permutation(len(ids))
    np.savez(tmp_path / "mine.npz", embeddings=X[perm], ids=ids[perm])
    add_file(s, "ds", "mine", tmp_path / "mine.npz", model_name="my-vit", note="CLS token")
    # the same array written as an extraction writes it: the probes must not tell them apart
    write_embeddings(s, "ds", "reference", X)
    results = evaluate_probes(
        s, "ds", [["mine"], ["reference"], [TINY, "mine"]], ["knn", "proto"], FAST
    )
    by = {(r.feature_name, r.method): r for r in results}
    for m in ("knn", "proto"):
        assert by[("mine", m)].metrics == by[("reference", m)].metrics
        assert (f"{TINY}+mine", m) in by
    assert by[("mine", "knn")].metrics["accuracy"]["value"] > 0.6  # the signal is there
    out = export_archive(s.location, tmp_path / "share.zip")
    assert "mine" in out.datasets["ds"]
    report = verify(tmp_path / "share.zip")
    assert report.ok, report.problems
    shared = open_store(tmp_path / "share.zip")
    prov = shared.array_info("ds", "mine").provenance
    assert prov["computed_by"] == "external" and prov["imported"]["model_name"] == "my-vit"
    assert np.array_equal(shared.embeddings("ds", "mine"), X)


@pytest.mark.parametrize("suffix", [".parquet", ".npz", ".h5"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_export_then_add_bit_for_bit(tmp_path, suffix, dtype):
    s = create_store(tmp_path / "a.zarr")
    ids, labels, split = make_dataset(s, n=50)
    X = np.random.default_rng(2).normal(size=(50, 8)).astype(np.float32)
    X[[3, 47]] = 0  # missing rows hold zeros, as extraction writes them
    w = s.writer("toy", "bb", dim=8, dtype=dtype, chunk_rows=16)
    for r in (3, 47):  # they travel as a mask and come back as missing rows
        w.mark_missing(r, str(ids[r]), "unreadable")
    w.write(X)
    w.finish({"name": "bb"})
    out = export_features(s, "toy", tmp_path / f"f{suffix}")
    assert out.n_samples == 50 and out.backbones == ("bb",)
    t = create_store(tmp_path / "b.zarr")
    make_dataset(t, n=50)
    info = add_file(t, "toy", "bb", tmp_path / f"f{suffix}", allow_missing=True)
    assert info.dtype == dtype
    src = s.zarr_group["toy/bb/embeddings"][...]
    back = t.zarr_group["toy/bb/embeddings"][...]
    assert src.dtype == back.dtype and src.tobytes() == back.tobytes()
    assert [m["id"] for m in t.missing("toy", "bb")] == [str(ids[3]), str(ids[47])]


def test_parquet_export_reads_in_pandas_shape(tmp_path):
    import pyarrow.parquet as pq

    s = create_store(tmp_path / "a.zarr")
    ids, labels, split = make_dataset(s, n=20)
    X = np.random.default_rng(2).normal(size=(20, 4)).astype(np.float32)
    s.add_embeddings("toy", "x", X, ids=ids)
    export_features(s, "toy", tmp_path / "f.parquet")
    t = pq.read_table(tmp_path / "f.parquet")
    assert t.column_names == ["id", "label", "label_name", "split", "x"]
    assert t.column("id").to_pylist() == ids.tolist()
    assert t.column("label").to_pylist() == labels.tolist()
    assert t.column("split").to_pylist() == np.array(["train", "val", "test"])[split].tolist()
    assert np.array_equal(np.array(t.column("x").to_pylist(), dtype=np.float32), X)


def test_cli_dataset_from_table_then_export(tmp_path):
    """`add --labels` makes a dataset without images (the manifest rules); export-features."""
    ids = [f"s{i:02d}" for i in range(24)]
    rows = [f"{sid},{'tumour' if i % 2 else 'normal'},P{i // 2}" for i, sid in enumerate(ids)]
    (tmp_path / "t.csv").write_text("id,diagnosis,patient\n" + "\n".join(rows) + "\n")
    X = np.random.default_rng(0).normal(size=(24, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    store = str(tmp_path / "n.zarr")
    args = ["add", store, "-d", "cohort", "-b", "uni", "--from", str(tmp_path / "x.npy"),
            "--ids", str(tmp_path / "ids.txt"), "--labels", str(tmp_path / "t.csv"),
            "--label-column", "diagnosis", "--group-column", "patient", "--model-name", "UNI"]  # fmt: skip
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "computed_by external" in result.output
    s = open_store(store)
    info = s.dataset_info("cohort")
    assert info.class_names == ("normal", "tumour") and info.has_group
    assert np.array_equal(s.embeddings("cohort", "uni"), X)
    shown = runner.invoke(app, ["info", store, "-d", "cohort", "-b", "uni"], env={"COLUMNS": "300"})
    assert "imported, not computed by embedstore" in shown.output
    out = runner.invoke(
        app, ["export-features", store, "-d", "cohort", "-o", str(tmp_path / "c.h5")]
    )
    assert out.exit_code == 0, out.output
    import h5py

    with h5py.File(tmp_path / "c.h5") as f:
        assert np.array_equal(f["features"][()], X)
        assert [v.decode() for v in f["group"][()]] == [f"P{i // 2}" for i in range(24)]
