"""Classes too small for the splits are named with where their images landed (issue 23, item 3)."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.data import ArraySource
from embedstore.data.splits import make_splits, split_gaps


def test_where_small_classes_land_under_the_default_split():
    """The default rule (stratified 70/10/20, seed 0, a unit goes to the split its midpoint falls
    in): 1 image -> train (midpoint 0.5); 2 -> train, val (0.25, 0.75); 3 -> train, train,
    test (1/6, 1/2, 5/6); 10 -> 7 / 1 / 2."""
    labels = np.repeat(np.arange(4), [10, 1, 2, 3])
    split = make_splits(labels)
    counts = [np.bincount(split[labels == c], minlength=3).tolist() for c in range(4)]
    assert counts == [[7, 1, 2], [1, 0, 0], [1, 1, 0], [2, 0, 1]]
    assert split_gaps(labels, split, ["a", "b", "c", "d"]) == [
        "class 'b' (1 image): train 1, val 0, test 0",
        "class 'c' (2 images): train 1, val 1, test 0",
        "class 'd' (3 images): train 2, val 0, test 1",
    ]


def test_a_split_the_source_does_not_have_is_not_a_gap():
    labels = np.array([0, 0, 1, 1])
    split = np.array([0, 2, 0, 2])  # no val at all: nothing is missing from it
    assert split_gaps(labels, split, ["a", "b"]) == []
    assert split_gaps(labels, np.array([0, 2, 0, 0]), ["a", "b"]) == [
        "class 'b' (2 images): train 2, test 0"
    ]


def test_multilabel_has_no_gaps_to_report():
    labels = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.uint8)
    assert split_gaps(labels, np.array([0, 1, 2]), ["x", "y"]) == []


def test_extract_warns_before_loading_a_model(tmp_path):
    """The library's warning (the CLI prints it as one line): SmallClassWarning from extract()."""
    from embedstore.data.splits import SmallClassWarning
    from embedstore.errors import EmbedstoreError
    from embedstore.extraction import extract

    src = ArraySource(
        np.zeros((11, 4, 4, 3), np.uint8), np.array([0] * 10 + [1]), class_names=["a", "b"]
    )
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.warns(SmallClassWarning, match=r"class 'b' \(1 image\): train 1, val 0, test 0"):
        with pytest.raises(EmbedstoreError):  # then stops at the model: the file is not weights
            extract(tmp_path / "s.zarr", dataset="d", source=src, backbones=["resnet18.tv_in1k"],
                    weights={"resnet18.tv_in1k": str(junk)}, device="cpu")  # fmt: skip
    assert not (tmp_path / "s.zarr").exists()
