"""Per-image predictions: written by pyarrow, read back by us and by pandas, atomically replaced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embedstore.errors import InvalidDataError
from embedstore.results.predictions import (
    predictions_folder,
    read_predictions,
    write_predictions,
)


def test_round_trip_and_pandas_reads_the_documented_columns(tmp_path):
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), 7)
    y = np.array([0, 1, 2, 0, 1, 2, 0])
    folder = predictions_folder(tmp_path / "runs" / "sweep.jsonl")
    assert folder == tmp_path / "runs" / "sweep.predictions"
    kw = dict(ids=[f"s{i}" for i in range(7)], y_true=y, proba=proba, class_names=["a", "b", "c"])
    write_predictions(folder, "d.dino.knn.s0", groups=list("ppqqrrs"), **kw)
    write_predictions(folder, "d.swav.knn.s0", groups=None, **kw)
    got = read_predictions(folder)
    assert sorted(got) == ["d.dino.knn.s0", "d.swav.knn.s0"]
    p = got["d.dino.knn.s0"]
    assert p.task == "multiclass" and p.class_names == ("a", "b", "c")
    np.testing.assert_array_equal(p.y_true, y)
    np.testing.assert_array_equal(p.y_pred, proba.argmax(1))
    np.testing.assert_array_equal(p.proba, proba)  # float64 kept exactly
    assert p.groups.tolist() == list("ppqqrrs") and got["d.swav.knn.s0"].groups is None
    df = pd.read_parquet(folder / "d.dino.knn.s0.parquet")
    assert list(df.columns) == ["id", "group", "y_true", "y_pred", "proba:a", "proba:b", "proba:c"]
    assert df["id"].tolist()[:2] == ["s0", "s1"]
    # writing a record again replaces its file whole; no temporary file is left behind
    write_predictions(folder, "d.dino.knn.s0", groups=None, **{**kw, "proba": proba[:, ::-1]})
    np.testing.assert_array_equal(read_predictions(folder)["d.dino.knn.s0"].proba, proba[:, ::-1])
    assert sorted(x.name for x in folder.iterdir()) == [
        "d.dino.knn.s0.parquet",
        "d.swav.knn.s0.parquet",
    ]


def test_multilabel_columns(tmp_path):
    y = np.array([[1, 0], [0, 1], [1, 1]])
    proba = np.array([[0.9, 0.2], [0.4, 0.6], [0.7, 0.3]])
    write_predictions(tmp_path, "r1", ids=["x", "y", "z"], groups=None, y_true=y, proba=proba,
                      class_names=["effusion", "mass"])  # fmt: skip
    p = read_predictions(tmp_path)["r1"]
    assert p.task == "multilabel"
    np.testing.assert_array_equal(p.y_true, y)
    np.testing.assert_array_equal(p.y_pred, [[1, 0], [0, 1], [1, 0]])
    cols = pd.read_parquet(tmp_path / "r1.parquet").columns.tolist()
    assert "y_true:mass" in cols and "y_pred:effusion" in cols and "proba:mass" in cols


def test_bad_input_is_refused_before_anything_is_written(tmp_path):
    kw = dict(ids=["a", "b"], groups=None, y_true=[0, 1], proba=np.eye(2), class_names=["n", "p"])
    with pytest.raises(InvalidDataError, match="record_id must be"):
        write_predictions(tmp_path, "../escape", **kw)
    with pytest.raises(InvalidDataError, match="class names"):
        write_predictions(tmp_path, "r", **{**kw, "class_names": ["n"]})
    with pytest.raises(InvalidDataError, match="one patient id per test row"):
        write_predictions(tmp_path, "r", **{**kw, "groups": ["g"]})
    assert list(tmp_path.iterdir()) == []
    assert read_predictions(tmp_path / "missing") == {}
