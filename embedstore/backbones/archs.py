"""Convolutional architectures as embedding models: torchvision's code with the classifier removed.

Every builder returns a module whose ``forward`` maps (B, 3, H, W) float images to (B, dim)
globally average-pooled penultimate features, and whose ``state_dict`` keys are torchvision's
minus the classifier head (``fc.*`` for ResNets, ``classifier.*`` for DenseNet / MobileNetV2).
"""

from __future__ import annotations

from torch import nn
from torchvision import models

__all__ = ["resnet", "densenet121", "mobilenet_v2", "RESNET_DIMS"]

RESNET_DIMS = {18: 512, 34: 512, 50: 2048, 101: 2048, 152: 2048}


def resnet(depth: int = 50) -> nn.Module:
    """torchvision ResNet-``depth`` with ``fc`` = Identity: (B, 3, H, W) -> (B, 512 | 2048)."""
    if depth not in RESNET_DIMS:
        raise ValueError(f"resnet depth must be one of {sorted(RESNET_DIMS)}, got {depth}")
    model = getattr(models, f"resnet{depth}")(weights=None)
    model.fc = nn.Identity()
    return model


def densenet121() -> nn.Module:
    """torchvision DenseNet-121, features -> ReLU -> global avg pool: (B, 3, H, W) -> (B, 1024)."""
    model = models.densenet121(weights=None)
    model.classifier = nn.Identity()
    return model


def mobilenet_v2() -> nn.Module:
    """torchvision MobileNetV2, features -> global average pool: (B, 3, H, W) -> (B, 1280)."""
    model = models.mobilenet_v2(weights=None)
    model.classifier = nn.Identity()
    return model
