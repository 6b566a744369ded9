"""Stratified / group-disjoint splits, and the one preprocessing transform, against hand values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from embedstore.backbones import Preprocess
from embedstore.data import ImageTransform, make_splits, to_rgb
from embedstore.errors import SourceError


def test_stratified_splits_follow_fractions_per_class_and_seed():
    labels = np.repeat([0, 1, 2], [100, 50, 20])
    split = make_splits(labels, seed=0)
    assert np.bincount(split[labels == 0], minlength=3).tolist() == [70, 10, 20]
    assert np.bincount(split[labels == 1], minlength=3).tolist() == [35, 5, 10]
    assert np.bincount(split[labels == 2], minlength=3).tolist() == [14, 2, 4]
    assert np.array_equal(split, make_splits(labels, seed=0))
    assert not np.array_equal(split, make_splits(labels, seed=1))
    custom = make_splits(labels, fractions=(0.5, 0.0, 0.5))
    assert np.bincount(custom, minlength=3).tolist() == [85, 0, 85]


def test_group_splits_never_share_a_group():
    rng = np.random.default_rng(0)
    group = rng.integers(0, 60, 600).astype(str)
    labels = rng.integers(0, 2, 600)
    split = make_splits(labels, group=group, seed=4)
    for g in np.unique(group):
        assert len(np.unique(split[group == g])) == 1
    frac = np.bincount(split, minlength=3) / 600
    assert abs(frac[0] - 0.7) < 0.1 and abs(frac[2] - 0.2) < 0.1


def test_multilabel_strata_and_bad_fractions():
    labels = np.array([[1, 0], [0, 1]] * 20)
    split = make_splits(labels)
    assert np.bincount(split[labels[:, 0] == 1], minlength=3).tolist() == [14, 2, 4]
    with pytest.raises(SourceError, match="summing to 1"):
        make_splits(labels, fractions=(0.5, 0.5, 0.5))


def test_transform_matches_hand_computation():
    img = Image.fromarray(np.full((20, 40), 51, dtype=np.uint8), mode="L")
    pre = Preprocess(resize=10, crop=8, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.2))
    x = ImageTransform(pre)(img)
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    expected = [(0.2 - 0.1) / 0.5, (0.2 - 0.2) / 0.25, (0.2 - 0.3) / 0.2]
    assert torch.allclose(x.mean(dim=(1, 2)), torch.tensor(expected), atol=1e-6)


def test_transform_crops_the_centre():
    arr = np.zeros((32, 32, 3), dtype=np.uint8)
    arr[8:24, 8:24] = 255
    x = ImageTransform(Preprocess(resize=None, crop=16, mean=None, std=None))(arr)
    assert bool((x == 1.0).all())


def test_to_rgb_handles_16_bit_rgba_and_palette():
    deep = np.array([[1000, 3000]], dtype=np.uint16)
    assert np.asarray(to_rgb(deep)).tolist() == [[[0, 0, 0], [255, 255, 255]]]
    rgba = Image.fromarray(np.full((2, 2, 4), 7, dtype=np.uint8), mode="RGBA")
    assert to_rgb(rgba).mode == "RGB" and np.asarray(to_rgb(rgba))[0, 0].tolist() == [7, 7, 7]
    grey16 = Image.fromarray(np.array([[0, 500]], dtype=np.uint16))
    assert np.asarray(to_rgb(grey16))[0, 1].tolist() == [255, 255, 255]
    assert to_rgb(Image.new("P", (3, 3))).mode == "RGB"
