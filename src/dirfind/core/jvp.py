"""Exact image Jacobians with forward-mode automatic differentiation (``torch.func``).

The Jacobian of the generator output with respect to an *edit vector* ``d`` (D numbers) at one
sample costs D Jacobian-vector products, i.e. D forward-mode passes, batched with ``vmap`` over
chunks of basis tangents. Reverse mode (what LowRankGAN/ReSeFa use) needs one backward pass per
output value instead: 12,288 for a 64-px RGB image, 65,536 for a 256-px grey one.

Edit vectors are those of :mod:`dirfind.core.edits`; for ``w`` the Jacobian is taken with
respect to w broadcast to the selected layers (LowRankGAN's ``jaco_w``).

Output transforms (LowRankGAN ``compute_jacobian.py``): nearest-neighbour resize to ``size``,
channel ``mean`` (LowRankGAN's fused channel) or ``sum`` (ReSeFa), then an optional boolean
pixel ``mask`` selecting which outputs to keep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import jvp, vmap

from ..errors import BadInputError
from ..generators.base import Generator
from .edits import apply_edit, check_layers, edit_dim, working_space

CHANNEL_MODES = ("all", "mean", "sum")


@dataclass(frozen=True)
class OutputTransform:
    """What part of the image a Jacobian is taken of: resize, channel reduction, pixel mask."""

    size: int | None = None
    channels: str = "all"
    mask: np.ndarray | None = None  # (size, size) bool, True = keep

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_MODES:
            raise BadInputError(
                f"channels must be one of {', '.join(CHANNEL_MODES)}, got {self.channels!r}", param="channels"
            )
        if self.size is not None and self.size < 1:
            raise BadInputError(f"size must be at least 1, got {self.size}", param="size")

    def image(self, img: torch.Tensor) -> torch.Tensor:
        """Resize and reduce channels: (N, C, H, W) -> (N, C', S, S)."""
        if self.size is not None and self.size != img.shape[-1]:
            img = F.interpolate(img, size=(self.size, self.size), mode="nearest")
        if self.channels == "mean":
            img = img.mean(dim=1, keepdim=True)
        elif self.channels == "sum":
            img = img.sum(dim=1, keepdim=True)
        return img

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Transformed outputs flattened per sample: (N, M)."""
        img = self.image(img)
        if self.mask is not None:
            m = torch.as_tensor(self.mask, dtype=torch.bool, device=img.device)
            if m.shape != img.shape[-2:]:
                raise BadInputError(f"mask of shape {tuple(m.shape)} does not fit outputs {tuple(img.shape[-2:])}")
            return img[..., m].reshape(img.shape[0], -1)
        return img.reshape(img.shape[0], -1)


def require_deterministic(gen: Generator) -> None:
    """Derivatives need a deterministic generator: per-pixel noise drawn anew each call is refused."""
    if gen.has_noise and gen.settings.noise_mode == "random":
        raise BadInputError(
            "noise_mode random redraws noise on every generator call, so derivatives and finite "
            "differences would mix in noise; use const (default) or none",
            param="noise_mode",
        )


def output_fn(
    gen: Generator,
    base: torch.Tensor,
    space: str,
    layers: Sequence[int] | None = None,
    transform: OutputTransform | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function d (N, D) -> transformed outputs (N, M) at working-space latents ``base`` (N, ...)."""
    transform = transform or OutputTransform()
    ws = working_space(space, layers)

    def f(d: torch.Tensor) -> torch.Tensor:
        return transform(gen.synthesis(apply_edit(gen, base, d, space, layers), ws))

    return f


def jvps(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
    """J_f(x) v for a batch of tangents ``v`` (T, *x.shape) in one vmapped forward-mode pass: (T, *f(x).shape)."""

    def one(v: torch.Tensor) -> torch.Tensor:
        return jvp(f, (x,), (v,))[1]

    return vmap(one)(tangents)


def jacobian(
    gen: Generator,
    latent: torch.Tensor,
    space: str = "z",
    layers: Sequence[int] | None = None,
    transform: OutputTransform | None = None,
    chunk: int = 32,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Jacobian (M, D) of the transformed outputs of one sample w.r.t. its edit vector.

    ``latent``: that sample's working-space latent (z (z_dim,) or w+ (num_ws, w_dim)).
    ``chunk``: tangents per vmapped pass (memory grows with it: one activation set per tangent).
    Costs D forward-mode passes in ceil(D / chunk) calls.
    """
    if chunk < 1:
        raise BadInputError(f"chunk must be at least 1, got {chunk}", param="chunk")
    require_deterministic(gen)
    layers = check_layers(gen, space, layers)
    dim = edit_dim(gen, space, layers)
    dtype = dtype or gen.dtype
    base = latent.to(gen.device, dtype)[None]
    f = output_fn(gen, base, space, layers, transform)
    x0 = torch.zeros(1, dim, device=gen.device, dtype=dtype)
    eye = torch.eye(dim, device=gen.device, dtype=dtype)
    cols = []
    with torch.no_grad():
        for i in range(0, dim, chunk):
            t = eye[i : i + chunk, None]  # (T, 1, D)
            cols.append(jvps(f, x0, t)[:, 0])  # (T, M)
    return torch.cat(cols).t().contiguous()


def gram(j: torch.Tensor) -> np.ndarray:
    """JᵀJ in float64 (D x D)."""
    j64 = j.detach().to(torch.float64)
    return (j64.t() @ j64).cpu().numpy()
