"""Image preprocessing, implemented once: any image -> RGB -> resize -> crop -> float tensor in
[0, 1] -> normalise. The parameters come from a backbone's ``spec.preprocess``; the resize and
crop modes are timm's eval transform (``timm.data.transforms_imagenet_eval``): ``center``
(short side, centre crop), ``squash`` (both sides, aspect not kept) and ``border`` (long side,
pad with the mean colour, centre crop).
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


def _crop_or_pad(img: Image.Image, size: int, fill: list[int]) -> Image.Image:
    """Pad (with ``fill``) to at least ``size`` on each side, then centre-crop to ``size``
    (timm.data.transforms.center_crop_or_pad)."""
    w, h = img.size
    if size > w or size > h:
        left = (size - w) // 2 if size > w else 0
        top = (size - h) // 2 if size > h else 0
        right = (size - w + 1) // 2 if size > w else 0
        bottom = (size - h + 1) // 2 if size > h else 0
        img = F.pad(img, [left, top, right, bottom], fill=tuple(fill))
        w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return F.crop(img, top, left, size, size)


class ImageTransform:
    """Callable: image -> float32 tensor of shape (3, crop, crop), from a ``Preprocess``.

    Args:
        preprocess: object with ``resize`` (target size, or None to keep), ``crop`` (square
            centre crop, or None), ``mean`` / ``std`` (3-tuples, or None for no normalisation),
            ``interpolation`` ('bilinear', 'bicubic', 'nearest', ...) and optionally
            ``crop_mode`` ('center' (default), 'squash', 'border').
    """

    def __init__(self, preprocess: Any) -> None:
        self.resize = preprocess.resize
        self.crop = preprocess.crop
        self.mean = tuple(preprocess.mean) if preprocess.mean is not None else None
        self.std = tuple(preprocess.std) if preprocess.std is not None else None
        self.interpolation = InterpolationMode(str(preprocess.interpolation).lower())
        self.crop_mode = str(getattr(preprocess, "crop_mode", "center") or "center")

    def _resize(self, img: Image.Image) -> Image.Image:
        size = int(self.resize)
        if self.crop_mode == "squash":
            return F.resize(img, [size, size], interpolation=self.interpolation, antialias=True)
        if self.crop_mode == "border":  # timm ResizeKeepRatio(longest=1): long side to size
            w, h = img.size
            ratio = max(h / size, w / size)
            target = [round(h / ratio), round(w / ratio)]
            return F.resize(img, target, interpolation=self.interpolation, antialias=True)
        return F.resize(img, size, interpolation=self.interpolation, antialias=True)

    def __call__(self, image: Image.Image | np.ndarray) -> torch.Tensor:
        img = to_rgb(image)
        if self.resize is not None:
            img = self._resize(img)
        if self.crop is not None:
            if self.crop_mode == "border":
                fill = [round(255 * v) for v in (self.mean or (0.0, 0.0, 0.0))]
                img = _crop_or_pad(img, int(self.crop), fill)
            else:
                img = F.center_crop(img, [int(self.crop), int(self.crop)])
        x = F.pil_to_tensor(img).to(torch.float32).div_(255.0)  # (3, H, W)
        if self.mean is not None and self.std is not None:
            x = F.normalize(x, self.mean, self.std)
        return x

    def __repr__(self) -> str:
        return (
            f"ImageTransform(resize={self.resize}, crop={self.crop}, mean={self.mean}, "
            f"std={self.std}, interpolation={self.interpolation.value}, "
            f"crop_mode={self.crop_mode})"
        )
