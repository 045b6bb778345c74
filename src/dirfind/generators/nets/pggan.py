"""PGGAN generator blocks in genforce's layout (Karras et al. 2018; genforce/genforce).

Every conv block starts with pixel norm, uses equalised learning rate (weight x gain/sqrt(fan_in))
and, except the to-RGB convs, leaky ReLU 0.2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_PIXEL_NORM_EPS = 1e-8


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Normalise each position's feature vector (dim 1) to unit root-mean-square."""
    return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + _PIXEL_NORM_EPS)


class ConvBlock(nn.Module):
    """Pixel norm -> (nearest 2x upsample) -> conv with equalised learning rate -> (leaky ReLU)."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int, upsample: bool, gain: float, act: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.wscale = gain / math.sqrt(cin * kernel * kernel)
        self.padding, self.upsample, self.act = padding, upsample, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.conv2d(x, self.weight * self.wscale, self.bias, padding=self.padding)
        return F.leaky_relu(x, 0.2) if self.act else x
