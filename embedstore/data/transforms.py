"""Image preprocessing, implemented once: any image -> RGB -> resize short side -> centre crop ->
float tensor in [0, 1] -> normalise. The parameters come from a backbone's ``spec.preprocess``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from embedstore.data.images import to_rgb

__all__ = ["to_rgb", "ImageTransform"]


class ImageTransform:
    """Callable: image -> float32 tensor of shape (3, crop, crop), from a ``Preprocess``.

    Args:
        preprocess: object with ``resize`` (short side, or None to keep), ``crop`` (square
            centre crop, or None), ``mean`` / ``std`` (3-tuples, or None for no normalisation)
            and ``interpolation`` ('bilinear', 'bicubic', 'nearest', ...).
    """

    def __init__(self, preprocess: Any) -> None:
        self.resize = preprocess.resize
        self.crop = preprocess.crop
        self.mean = tuple(preprocess.mean) if preprocess.mean is not None else None
        self.std = tuple(preprocess.std) if preprocess.std is not None else None
        self.interpolation = InterpolationMode(str(preprocess.interpolation).lower())

    def __call__(self, image: Image.Image | np.ndarray) -> torch.Tensor:
        img = to_rgb(image)
        if self.resize is not None:
            img = F.resize(img, int(self.resize), interpolation=self.interpolation, antialias=True)
        if self.crop is not None:
            img = F.center_crop(img, [int(self.crop), int(self.crop)])
        x = F.pil_to_tensor(img).to(torch.float32).div_(255.0)  # (3, H, W)
        if self.mean is not None and self.std is not None:
            x = F.normalize(x, self.mean, self.std)
        return x

    def __repr__(self) -> str:
        return (
            f"ImageTransform(resize={self.resize}, crop={self.crop}, mean={self.mean}, "
            f"std={self.std}, interpolation={self.interpolation.value})"
        )
