"""Fixtures for backbone tests: a private torch hub dir, a URL nobody answers, tiny models."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models

from embedstore.backbones import BackboneSpec, WeightsSource


@pytest.fixture
def hub_dir(tmp_path: Path) -> Iterator[Path]:
    """torch.hub's cache redirected into tmp_path (restored afterwards)."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        yield tmp_path / "hub" / "checkpoints"
    finally:
        torch.hub.set_dir(old)


@pytest.fixture
def closed_url() -> str:
    """An http URL on 127.0.0.1 at a port that was free a moment ago: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights/tiny.pth"


def randomize_bn(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give BatchNorm layers non-trivial running stats so a lost buffer changes the output."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def tiny_resnet() -> nn.Module:
    """torchvision ResNet with one BasicBlock per stage: ResNet-18/50 key layout (conv1, bn1,
    layerN.M.convK/bnK, layerN.0.downsample), half the weights; ``fc`` = Identity, dim 512."""
    model = models.ResNet(models.resnet.BasicBlock, [1, 1, 1, 1])
    model.fc = nn.Identity()
    return model


def tiny_densenet() -> nn.Module:
    """A 2-block DenseNet with torchvision's key layout (features.denseblockN.denselayerM...)."""
    model = models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2)
    model.classifier = nn.Identity()
    return model


def tiny_densenet_with_head(n_out: int = 10) -> nn.Module:
    model = models.DenseNet(
        growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2, num_classes=n_out
    )
    return model


@pytest.fixture
def make_spec(closed_url: str) -> Callable[..., BackboneSpec]:
    """A spec for a tiny architecture whose weights URL is unreachable (so only files load)."""

    def _make(
        convert: Callable,
        builder: Callable[[], nn.Module] = tiny_resnet,
        dim: int = 512,
        name: str = "tiny.test",
        **weights: object,
    ) -> BackboneSpec:
        src = WeightsSource(url=closed_url, filename=f"{name}.pth", **weights)
        return BackboneSpec(
            name=name, arch="tiny", dim=dim, builder=builder, weights=src, convert=convert
        )

    return _make
