"""Model-free example predictors for ``dirfind interfacegan --predictor`` (image statistics, no weights).

Each takes a batch of images in [-1, 1] (an N x C x H x W float tensor on the generator's device)
and returns one score per image; ``face_attributes`` returns both as a dict (one named direction
each). They are exactly the scores of the shared InterFaceGAN reference data
(``score_luminance`` / ``score_asymmetry``): with x = (img + 1) / 2 in float64 and the BT.601 luma
Y = 0.299 R + 0.587 G + 0.114 B,

* ``luminance``: mean of Y over the central half of the image (rows and columns H/4 .. 3H/4, i.e.
  16:48 at 64 px), the face region of a centred face generator;
* ``asymmetry``: mean of Y over the left half minus the right half (all rows), a lighting/pose proxy.

Use:  dirfind interfacegan --ckpt dcgan-digiface -n 20000 --predictor examples/predictors.py:luminance
A real attribute classifier plugs in the same way (see docs/interfacegan.md).
"""

from __future__ import annotations

import torch

BT601 = (0.299, 0.587, 0.114)


def luma(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) float64 luma of images in [-1, 1] (grey images are their own luma)."""
    x = (images.double() + 1) / 2
    if x.shape[1] == 1:
        return x[:, 0]
    w = torch.tensor(BT601, dtype=torch.float64, device=x.device)
    return torch.einsum("nchw,c->nhw", x[:, :3], w)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """Mean luma of the central face region (the middle half of rows and columns)."""
    y = luma(images)
    h, w = y.shape[-2:]
    return y[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean(dim=(1, 2))


def asymmetry(images: torch.Tensor) -> torch.Tensor:
    """Mean luma of the left half minus the right half (column 0 is the image's left edge)."""
    y = luma(images)
    half = y.shape[-1] // 2
    return y[:, :, :half].mean(dim=(1, 2)) - y[:, :, half:].mean(dim=(1, 2))


def face_attributes(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both scores, one named direction each."""
    return {"luminance": luminance(images), "asymmetry": asymmetry(images)}
