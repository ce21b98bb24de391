"""A MobileNetV2-style backbone written here (no torchvision on these machines; arXiv 1801.04381).

Inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project, ReLU6, residual when shapes match),
with a width multiplier. Output stride 32 (8 x 6 cells for a 256 x 192 crop); the stride-8 map is also
returned for the auxiliary heatmap head. Every op (Conv, BN folded at export, Clip) maps to TensorRT/INT8.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, channels c, repeats n, first stride s) of MobileNetV2, Table 2.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of 8 (fast on every accelerator), never below 90% of v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, H / stride, W / stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers = [conv_bn(c_in, hidden, 1)] if expansion != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, c_out, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    """Image (B, 3, H, W) normalised -> (stride-8 map (B, C8, H/8, W/8), stride-32 map (B, C32, H/32, W/32))."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = _divisible(32 * width)
        layers: list[nn.Module] = [conv_bn(3, c, 3, 2)]
        stride, self.stride8_index = 2, 0
        for t, ch, n, s in _SETTINGS:
            c_out = _divisible(ch * width)
            for i in range(n):
                layers.append(InvertedResidual(c, c_out, s if i == 0 else 1, t))
                c = c_out
            stride *= s
            if stride == 8 and not self.stride8_index:
                self.stride8_index, self.channels8 = len(layers), c
        self.features = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x8 = self.features[: self.stride8_index](x)
        return x8, self.features[self.stride8_index:](x8)
