"""BigGAN-deep network blocks in the pytorch-pretrained-BigGAN layout (Brock et al. 2019).

Spectrally normalised layers evaluated as in eval mode from the stored ``weight_u``/``weight_v``,
conditional batch norm with stored per-truncation statistics, bottleneck residual blocks and
SAGAN self-attention; see :mod:`dirfind.generators.biggan` for the whole network.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class SN(nn.Module):
    """Spectrally normalised weight: ``weight_orig`` divided by ``u · (W_mat v)`` (stored u, v)."""

    def __init__(self, shape: tuple[int, ...], bias: bool):
        super().__init__()
        self.weight_orig = nn.Parameter(torch.zeros(shape))
        self.register_buffer("weight_u", torch.zeros(shape[0]))
        self.register_buffer("weight_v", torch.zeros(int(np.prod(shape[1:]))))
        self.bias = nn.Parameter(torch.zeros(shape[0])) if bias else None

    def sigma(self) -> torch.Tensor:
        w = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        return torch.dot(self.weight_u, torch.mv(w, self.weight_v))

    def weight(self) -> torch.Tensor:
        return self.weight_orig / self.sigma()

    @torch.no_grad()
    def power_iteration(self, eps: float) -> None:
        """One power-iteration step on the stored vectors, as torch's spectral norm does in
        training mode: ``v = normalize(Wᵀu)``, ``u = normalize(W v)``."""
        w = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        self.weight_v.copy_(F.normalize(torch.mv(w.t(), self.weight_u), dim=0, eps=eps))
        self.weight_u.copy_(F.normalize(torch.mv(w, self.weight_v), dim=0, eps=eps))


class SNLinear(SN):
    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__((cout, cin), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)


class SNConv(SN):
    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True):
        super().__init__((cout, cin, kernel, kernel), bias)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


def _stats_row(table: torch.Tensor, truncation: float) -> torch.Tensor:
    """The reference's statistics for ``truncation``: row i when t/step is integral, else
    ``row[i]·frac + row[i+1]·(1-frac)`` (its mirrored blend, reproduced on purpose)."""
    step = 1.0 / (table.shape[0] - 1)
    frac, start = math.modf(truncation / step)
    i = int(start)
    if frac != 0.0:
        return table[i] * frac + table[i + 1] * (1 - frac)
    return table[i]


class _CondBN(nn.Module):
    """Batch norm with stored per-truncation statistics and a class/z-conditional gain and bias."""

    def __init__(self, channels: int, cond_dim: int, n_stats: int, eps: float):
        super().__init__()
        self.register_buffer("running_means", torch.zeros(n_stats, channels))
        self.register_buffer("running_vars", torch.ones(n_stats, channels))
        self.scale = SNLinear(cond_dim, channels, bias=False)
        self.offset = SNLinear(cond_dim, channels, bias=False)
        self.eps = eps

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        mean = _stats_row(self.running_means, truncation)[None, :, None, None]
        var = _stats_row(self.running_vars, truncation)[None, :, None, None]
        gain = 1 + self.scale(cond)[:, :, None, None]
        bias = self.offset(cond)[:, :, None, None]
        return (x - mean) / torch.sqrt(var + self.eps) * gain + bias


class _BN(nn.Module):
    """The final, unconditional batch norm (stored statistics, learned affine)."""

    def __init__(self, channels: int, n_stats: int, eps: float):
        super().__init__()
        self.register_buffer("running_means", torch.zeros(n_stats, channels))
        self.register_buffer("running_vars", torch.ones(n_stats, channels))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor, truncation: float) -> torch.Tensor:
        mean = _stats_row(self.running_means, truncation)
        var = _stats_row(self.running_vars, truncation)
        return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps)


class Block(nn.Module):
    """BigGAN-deep residual block: 4 x (cond BN, ReLU, conv), 1x1 / 3x3 / 3x3 / 1x1, reduction 4."""

    def __init__(self, cin: int, cout: int, cond_dim: int, upsample: bool, n_stats: int, eps: float):
        super().__init__()
        mid = cin // 4
        self.upsample = upsample
        self.drop_channels = cin != cout
        for i, (a, b, k) in enumerate([(cin, mid, 1), (mid, mid, 3), (mid, mid, 3), (mid, cout, 1)]):
            self.add_module(f"bn_{i}", _CondBN(a, cond_dim, n_stats, eps))
            self.add_module(f"conv_{i}", SNConv(a, b, k))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        h = x
        for i in range(4):
            h = F.relu(getattr(self, f"bn_{i}")(h, cond, truncation))
            if i == 1 and self.upsample:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = getattr(self, f"conv_{i}")(h)
        skip = x[:, : x.shape[1] // 2] if self.drop_channels else x
        if self.upsample:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return h + skip


class SelfAttention(nn.Module):
    """SAGAN self-attention with 2x2 max-pooled keys/values and a learned residual gain."""

    def __init__(self, ch: int):
        super().__init__()
        self.snconv1x1_theta = SNConv(ch, ch // 8, 1, bias=False)
        self.snconv1x1_phi = SNConv(ch, ch // 8, 1, bias=False)
        self.snconv1x1_g = SNConv(ch, ch // 2, 1, bias=False)
        self.snconv1x1_o_conv = SNConv(ch // 2, ch, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, ch, h, w = x.shape
        theta = self.snconv1x1_theta(x).reshape(n, ch // 8, h * w)
        phi = F.max_pool2d(self.snconv1x1_phi(x), 2, 2).reshape(n, ch // 8, h * w // 4)
        attn = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (n, hw, hw/4)
        g = F.max_pool2d(self.snconv1x1_g(x), 2, 2).reshape(n, ch // 2, h * w // 4)
        out = torch.bmm(g, attn.transpose(1, 2)).reshape(n, ch // 2, h, w)
        return x + self.gamma * self.snconv1x1_o_conv(out)


class Trunk(nn.Module):
    """``generator.*`` of the reference: gen_z, the block list, final BN and to-RGB conv."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        ch, zc, n_stats, eps = cfg["channel_width"], 2 * cfg["z_dim"], cfg["n_stats"], cfg["eps"]
        self.ch = ch
        self.gen_z = SNLinear(zc, 4 * 4 * 16 * ch)
        layers: list[nn.Module] = []
        for i, (up, a, b) in enumerate(cfg["layers"]):
            if i == cfg["attention_layer_position"]:
                layers.append(SelfAttention(ch * a))
            layers.append(Block(ch * a, ch * b, zc, bool(up), n_stats, eps))
        self.layers = nn.ModuleList(layers)
        self.bn = _BN(ch, n_stats, eps)
        self.conv_to_rgb = SNConv(ch, ch, 3)
