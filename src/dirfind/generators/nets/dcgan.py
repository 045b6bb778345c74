"""The DCGAN generator of the PyTorch tutorial / examples (Radford et al. 2016).

``main`` is a Sequential of ConvTranspose2d layers (kernel 4; bias-free in the tutorial), each but
the last followed by BatchNorm2d (optional here: some DCGANs drop it) and ReLU, and Tanh at the end.
The first maps the (N, nz, 1, 1) latent to 4x4 (stride 1, padding 0); each later one doubles the
size (stride 2, padding 1). For the tutorial's stack the module indices are the tutorial's own
(``main.0`` ConvT, ``main.1`` BN, ``main.2`` ReLU, ``main.3`` ConvT, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class DCGANNet(nn.Module):
    """``main``: the tutorial's layer stack for latent size ``nz`` and ConvT output ``widths``;
    ``bn[i]``: whether layer i (all but the last) has a BatchNorm2d, ``bias[i]``: whether its
    ConvT has a bias (default: the tutorial's, BN everywhere and no biases)."""

    def __init__(
        self, nz: int, widths: list[int], bn: Sequence[bool] | None = None, bias: Sequence[bool] | None = None
    ):
        super().__init__()
        n = len(widths)
        bn = [True] * (n - 1) if bn is None else list(bn)
        bias = [False] * n if bias is None else list(bias)
        layers: list[nn.Module] = []
        cin = nz
        for i, cout in enumerate(widths):
            first, last = i == 0, i == n - 1
            layers.append(nn.ConvTranspose2d(cin, cout, 4, 1 if first else 2, 0 if first else 1, bias=bias[i]))
            if last:
                layers.append(nn.Tanh())
            else:
                layers += ([nn.BatchNorm2d(cout)] if bn[i] else []) + [nn.ReLU(inplace=False)]
            cin = cout
        self.main = nn.Sequential(*layers)
