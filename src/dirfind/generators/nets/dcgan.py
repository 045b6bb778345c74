"""The DCGAN generator of the PyTorch tutorial / examples (Radford et al. 2016).

``main`` is a Sequential of bias-free ConvTranspose2d layers (kernel 4) at indices 0, 3, 6, ...,
BatchNorm2d + ReLU after each but the last, and Tanh at the end. The first maps the (N, nz, 1, 1)
latent to 4x4 (stride 1, padding 0); each later one doubles the size (stride 2, padding 1).
"""

from __future__ import annotations

from torch import nn


class DCGANNet(nn.Module):
    """``main``: the tutorial's layer stack for latent size ``nz`` and ConvT output ``widths``."""

    def __init__(self, nz: int, widths: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        cin = nz
        for i, cout in enumerate(widths):
            first, last = i == 0, i == len(widths) - 1
            layers.append(nn.ConvTranspose2d(cin, cout, 4, 1 if first else 2, 0 if first else 1, bias=False))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.ReLU(inplace=False)]
            cin = cout
        self.main = nn.Sequential(*layers)
