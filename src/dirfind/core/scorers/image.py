"""Model-free image statistics (no weights): brightness, contrast, saturation, warmth and the
background against the centre, each one score per image of a batch in [-1, 1] (NCHW)."""

from __future__ import annotations

import torch

BT601 = (0.299, 0.587, 0.114)


def rgb01(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as float64 RGB in [0, 1] (grey images repeated to three channels)."""
    x = ((images.detach().double() + 1) / 2).clamp(0, 1)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) BT.601 luma of RGB images in [0, 1]."""
    w = torch.tensor(BT601, dtype=x.dtype, device=x.device)
    return torch.einsum("nchw,c->nhw", x, w)


def image_statistics(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image statistics of a batch (all in [0, 1] units, except where said):

    * ``brightness``: mean luma Y = 0.299 R + 0.587 G + 0.114 B;
    * ``contrast``: standard deviation of Y (RMS contrast);
    * ``saturation``: mean HSV saturation (max - min) / max of each pixel;
    * ``warmth``: mean R - mean B (colour temperature: > 0 warm, < 0 cold; in [-1, 1]);
    * ``bg_minus_centre``: mean Y of the outer eighth of the frame minus that of the centre
      (the middle half of rows and columns).
    """
    x = rgb01(images)
    y = luma(x)
    h, w = y.shape[-2:]
    hi, lo = x.amax(1), x.amin(1)
    sat = torch.where(hi > 0, (hi - lo) / hi.clamp_min(1e-12), torch.zeros_like(hi))
    ring = torch.ones(h, w, dtype=torch.bool, device=y.device)
    bh, bw = max(1, h // 8), max(1, w // 8)
    ring[bh : h - bh, bw : w - bw] = False
    centre = y[:, h // 4 : h - h // 4, w // 4 : w - w // 4]
    return {
        "brightness": y.mean((1, 2)),
        "contrast": y.flatten(1).std(1, unbiased=False),
        "saturation": sat.mean((1, 2)),
        "warmth": x[:, 0].mean((1, 2)) - x[:, 2].mean((1, 2)),
        "bg_minus_centre": y[:, ring].mean(1) - centre.mean((1, 2)),
    }
