"""A tiny registered backbone for the extraction tests of this folder, and image-file helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedstore.backbones import BackboneSpec, Preprocess, register, unregister

TINY = "tinydata.test"


def _tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 6),
    )


@pytest.fixture(scope="package", autouse=True)
def tiny_backbone():
    """``tinydata.test``: a seeded 2-layer CNN, 6-d output, 20 px crop (no weights file)."""
    spec = BackboneSpec(TINY, "tinydata", 6, _tiny, None, dict, Preprocess(resize=24, crop=20))
    register(spec)
    yield spec
    unregister(TINY)


def save_png(path: Path, value: int, size: tuple[int, int] = (12, 10), mode: str = "RGB") -> Path:
    """A uniform image of ``value`` (RGB or grey) at ``path``, parents created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)
    return path


def good_folder(root: Path, per_class: int = 3) -> Path:
    """root/{neg,pos}/{i}.png with distinct pixel values: 2 classes x ``per_class`` images."""
    rng = np.random.default_rng(3)
    for c in ("neg", "pos"):
        for i in range(per_class):
            arr = rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)
            (root / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def mixed_folder(root: Path) -> Path:
    """root/{benign,malignant,normal}/NN.{png,jpg}: 3 classes x 4 images, RGB and grey, sizes
    16-30 px, seeded: the folder that tar shards and URL manifests are compared against."""
    rng = np.random.default_rng(11)
    for c in ("benign", "malignant", "normal"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            h, w = (int(v) for v in rng.integers(16, 31, size=2))
            if i % 2:
                img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
            else:
                img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            img.save(root / c / f"{i:02d}.{'jpg' if i == 3 else 'png'}")
    return root
