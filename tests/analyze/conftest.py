"""Tiny backbones registered for the analysis tests, and a store extracted with them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from embedstore import extract
from embedstore.backbones import BackboneSpec, Preprocess, register, unregister
from embedstore.data import ArraySource

SIZE = 16  # images are SIZE×SIZE and the preprocessing keeps them so (PIL resize to the same
# size is a copy), so a flip of the raw image is exactly a flip of the model's input.


class FlipAveraged(nn.Module):
    """Averages an image with its horizontal, vertical and double mirror before a linear map:
    exactly invariant to both flips, not to 90° rotations."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * SIZE * SIZE, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + x.flip(-1) + x.flip(-2) + x.flip(-1, -2)) / 4
        return self.linear(x.flatten(1))


class RegionOnly(nn.Module):
    """Features from the pixels of rows 4..7, columns 8..11 only (a linear map of that patch)."""

    REGION = (slice(4, 8), slice(8, 12))

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[:, :, self.REGION[0], self.REGION[1]].flatten(1))


def _spec(name: str, builder, dim: int) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        arch="test",
        dim=dim,
        builder=builder,
        weights=None,
        convert=lambda sd: sd,
        preprocess=Preprocess(resize=SIZE, crop=SIZE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
    )


@pytest.fixture
def tiny_backbones() -> Iterator[tuple[str, str]]:
    names = ("flipavg.test", "region.test")
    register(_spec(names[0], FlipAveraged, 12))
    register(_spec(names[1], RegionOnly, 6))
    try:
        yield names
    finally:
        for n in names:
            unregister(n)


def images(n: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture
def extracted(tmp_path, tiny_backbones):
    """A store with both tiny backbones extracted (float32) over 24 random 16×16 images."""
    imgs = images()
    src = ArraySource(imgs, np.arange(len(imgs)) % 2)
    path = tmp_path / "a.zarr"
    extract(path, dataset="toy", source=src, backbones=list(tiny_backbones), dtype="float32",
            workers=0, device="cpu", batch_size=8)  # fmt: skip
    return path, src, imgs
