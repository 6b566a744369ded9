"""EfficientNet-Lite0 with the parameter names of ``efficientnet-lite-pytorch`` (Apache-2.0).

Written after that package's ``model.py`` / ``utils.py`` (itself after
lukemelas/EfficientNet-PyTorch and TensorFlow's ``efficientnet_lite_builder.py``): MBConv
blocks without squeeze-excitation, ReLU6, TensorFlow "SAME" padding, BatchNorm eps 1e-3, stem
and head not width-scaled. Keys:
``_conv_stem``, ``_bn0``, ``_blocks.N.{_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv,
_bn2}``, ``_conv_head``, ``_bn1`` (``_fc`` is the dropped ImageNet classifier).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientNetLite", "efficientnet_lite0"]

# (repeats, kernel, stride, expand ratio, in channels, out channels) for Lite0 (width = depth = 1.0)
LITE0_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS = 1e-3


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric, extra pixel bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _MBConv(nn.Module):
    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv2d(c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._depthwise_conv = _SameConv2d(
            hidden, hidden, kernel, stride=stride, groups=hidden, bias=False
        )
        self._bn1 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._project_conv = _SameConv2d(hidden, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite trunk + global average pool: (B, 3, H, W) -> (B, 1280)."""

    def __init__(self, blocks=LITE0_BLOCKS, stem: int = 32, head: int = 1280) -> None:
        super().__init__()
        self._conv_stem = _SameConv2d(3, stem, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(stem, eps=_BN_EPS)
        layers = []
        for repeats, kernel, stride, expand, c_in, c_out in blocks:
            layers.append(_MBConv(kernel, stride, expand, c_in, c_out))
            layers += [_MBConv(kernel, 1, expand, c_out, c_out) for _ in range(repeats - 1)]
        self._blocks = nn.ModuleList(layers)
        self._conv_head = _SameConv2d(blocks[-1][-1], head, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(head, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, h, w)
        return x.mean(dim=(2, 3))  # (B, 1280)


def efficientnet_lite0() -> EfficientNetLite:
    """EfficientNet-Lite0 (224 px native): (B, 3, H, W) -> (B, 1280)."""
    return EfficientNetLite()
