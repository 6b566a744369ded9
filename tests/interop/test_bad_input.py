"""Every bad input is refused with one line naming what is wrong (and the first ids), before a
byte is written: the store's files are byte-identical afterwards. The CLI exits 1, no traceback."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from embedstore.cli.main import app
from embedstore.errors import EmbedstoreError
from embedstore.interop import add_file
from tests.interop.conftest import tree_digest, write_eva

runner = CliRunner()


def _npy(tmp_path, X, ids):
    np.save(tmp_path / "x.npy", X)
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    return {"path": tmp_path / "x.npy", "ids": tmp_path / "ids.txt"}


def _unknown(tmp_path, ids, X):
    bad = ids.copy()
    bad[[3, 9]] = ["ghost_1.png", "ghost_2.png"]
    return _npy(tmp_path, X, bad), ["2 id(s) are not samples", "'ghost_1.png'", "'ghost_2.png'"]


def _duplicate(tmp_path, ids, X):
    bad = ids.copy()
    bad[5] = bad[4]
    return _npy(tmp_path, X, bad), ["appear more than once", repr(str(ids[4]))]


def _count(tmp_path, ids, X):
    return _npy(tmp_path, X[:-1], ids), ["39 rows of embeddings but 40 ids"]


def _nan(tmp_path, ids, X):
    Y = X.copy()
    Y[7, 2] = np.nan
    return _npy(tmp_path, Y, ids), ["NaN or Inf", repr(str(ids[7]))]


def _inf(tmp_path, ids, X):
    Y = X.copy()
    Y[38, 0] = np.inf  # in the last chunk: found before the first one is written
    return _npy(tmp_path, Y, ids), ["NaN or Inf", repr(str(ids[38]))]


def _text(tmp_path, ids, X):
    return _npy(tmp_path, X.astype(str), ids), ["must be numbers", "dtype <U"]


def _three_d(tmp_path, ids, X):
    return _npy(tmp_path, np.stack([X, X], axis=1), ids), ["2-D array", "(40, 2, 8)", "pool"]


def _absent(tmp_path, ids, X):
    return _npy(tmp_path, X[:30], ids[:30]), [
        "10 of 40 samples",
        repr(str(ids[30])),
        "--allow-missing",
    ]


def _overflow(tmp_path, ids, X):
    spec = _npy(tmp_path, X * 1e6, ids)
    return {**spec, "dtype": "float16"}, ["beyond float16's range", "--dtype float32"]


def _eva_bag(tmp_path, ids, X):
    import torch

    folder = write_eva(tmp_path / "eva", ids, X, np.arange(len(ids)) % 2, ["train"] * len(ids))
    torch.save([torch.zeros(8), torch.zeros(8)], folder / "emb" / f"{ids[0][:-4]}.pt")
    return {"path": folder}, ["holds 2 tensors", "pool them first"]


def _patch_features(tmp_path, ids, X):
    import h5py

    folder = tmp_path / "h5"
    folder.mkdir()
    for i, sid in enumerate(ids):
        with h5py.File(folder / f"{sid}.h5", "w") as f:
            f.create_dataset("features", data=np.stack([X[i]] * (3 if i == 0 else 1)))
    return {"path": folder}, ["(3, 8)", "pooled"]


CASES = {
    "unknown ids": _unknown,
    "duplicate ids": _duplicate,
    "wrong row count": _count,
    "NaN": _nan,
    "Inf": _inf,
    "non-numeric dtype": _text,
    "3-D array": _three_d,
    "dataset ids absent": _absent,
    "float16 overflow": _overflow,
    "eva multi-instance .pt": _eva_bag,
    "patch features in a folder": _patch_features,
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_in_one_line_store_unchanged(store, tmp_path, case):
    s, ids, X = store
    spec, expected = CASES[case](tmp_path, ids, X)
    before = tree_digest(tmp_path / "s.zarr")
    path = spec.pop("path")
    with pytest.raises(EmbedstoreError) as err:
        add_file(s, "toy", "imported", path, chunk_rows=8, **spec)
    message = str(err.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, (part, message)
    assert tree_digest(tmp_path / "s.zarr") == before
    assert "imported" not in s.backbones("toy")


@pytest.mark.parametrize("case", ["unknown ids", "NaN", "3-D array"])
def test_cli_exit_1_one_line(store, tmp_path, case):
    s, ids, X = store
    spec, expected = CASES[case](tmp_path, ids, X)
    before = tree_digest(tmp_path / "s.zarr")
    args = ["add", s.location, "-d", "toy", "-b", "imported", "--from", str(spec["path"])]
    args += ["--ids", str(spec["ids"])]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert expected[0] in lines[0]
    assert tree_digest(tmp_path / "s.zarr") == before


def test_allow_missing_records_reason(store, tmp_path):
    s, ids, X = store
    spec = _npy(tmp_path, X[5:], ids[5:])
    info = add_file(s, "toy", "part", spec["path"], ids=spec["ids"], allow_missing=True)
    assert info.complete and info.n_missing == 5
    missing = s.missing("toy", "part")
    assert [m["id"] for m in missing] == list(ids[:5])
    assert {m["reason"] for m in missing} == {"not in the imported file"}
    got = s.embeddings("toy", "part")
    assert np.array_equal(got[5:], X[5:]) and not got[:5].any()


def test_complete_array_not_replaced_without_overwrite(store, tmp_path):
    s, ids, X = store
    s.add_embeddings("toy", "a", X, ids=ids)
    before = tree_digest(tmp_path / "s.zarr")
    with pytest.raises(EmbedstoreError, match="--overwrite"):
        s.add_embeddings("toy", "a", X + 1, ids=ids)
    assert tree_digest(tmp_path / "s.zarr") == before
    s.add_embeddings("toy", "a", X + 1, ids=ids, overwrite=True)
    assert np.array_equal(s.embeddings("toy", "a"), X + 1)


def test_refused_import_into_new_store_creates_nothing(tmp_path):
    ids = np.array([f"p{i}.png" for i in range(12)])
    X = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    X[11, 1] = np.nan
    folder = write_eva(tmp_path / "eva", ids, X, np.arange(12) % 2, ["train"] * 6 + ["test"] * 6)
    with pytest.raises(EmbedstoreError, match="NaN or Inf"):
        add_file(tmp_path / "new.zarr", "d", "b", folder)
    assert not (tmp_path / "new.zarr").exists()
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(EmbedstoreError, match="--labels"):
        add_file(tmp_path / "new.zarr", "d", "b", tmp_path / "x.npy", ids=list(ids))
    assert not (tmp_path / "new.zarr").exists()


def test_incomplete_array_of_other_data_not_resumed(store, tmp_path):
    """An interrupted extraction (rows written, no import named) is not completed with a file."""
    s, ids, X = store
    w = s.writer("toy", "half", dim=X.shape[1], dtype="float32", chunk_rows=8)
    w.write(X[:16])
    before = tree_digest(tmp_path / "s.zarr")
    with pytest.raises(EmbedstoreError, match="begun from an extraction or other data"):
        s.add_embeddings("toy", "half", X, ids=ids)
    assert tree_digest(tmp_path / "s.zarr") == before


def test_unknown_dataset_asks_for_a_table(store, tmp_path):
    s, ids, X = store
    spec = _npy(tmp_path, X, ids)
    with pytest.raises(EmbedstoreError, match="not in store .* --labels TABLE.csv"):
        add_file(s, "other", "b", spec["path"], ids=spec["ids"])
