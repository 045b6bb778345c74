"""Exact image Jacobians with forward-mode automatic differentiation (``torch.func``).

The Jacobian of the generator output with respect to an *edit vector* ``d`` (D numbers) at one
sample costs D Jacobian-vector products, i.e. D forward-mode passes, batched with ``vmap`` over
chunks of basis tangents. Reverse mode (what LowRankGAN/ReSeFa use) needs one backward pass per
output value instead: 12,288 for a 64-px RGB image, 65,536 for a 256-px grey one.

Edit vectors
------------
* ``z``: ``d`` (z_dim) is added to z.
* ``w``: ``d`` (w_dim) is added to every selected layer of w+ (all layers by default), which is
  the Jacobian with respect to w when w is broadcast to those layers (LowRankGAN's ``jaco_w``).
* ``w+``: ``d`` (len(layers) * w_dim) holds one block per selected layer.

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

from .errors import BadInputError
from .generators.base import Generator

CHANNEL_MODES = ("all", "mean", "sum")


@dataclass(frozen=True)
class OutputTransform:
    """What part of the image a Jacobian is taken of: resize, channel reduction, pixel mask."""

    size: int | None = None
    channels: str = "all"
    mask: np.ndarray | None = None  # (size, size) bool, True = keep

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_MODES:
            raise BadInputError(f"channel mode must be one of {', '.join(CHANNEL_MODES)}, got {self.channels!r}")
        if self.size is not None and self.size < 1:
            raise BadInputError(f"Jacobian output size must be at least 1, got {self.size}")

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
    if gen.has_noise and gen.noise_mode == "random":
        raise BadInputError(
            "--noise-mode random redraws noise on every generator call, so derivatives and finite "
            "differences would mix in noise; use const (default) or none"
        )


def edit_dim(gen: Generator, space: str, layers: Sequence[int] | None = None) -> int:
    """Length D of an edit vector in ``space`` (``w+``: one w block per selected layer)."""
    gen.check_space(space)
    if space == "w+":
        return gen.w_dim * (gen.num_ws if layers is None else len(layers))
    return gen.space_dim(space)


def check_layers(gen: Generator, space: str, layers: Sequence[int] | None) -> list[int] | None:
    if layers is None:
        return None
    if space == "z" and gen.layer_space() != "z":
        raise BadInputError("--layers applies to w/w+ edits (and z where w+ is per-layer z); z edits move all of z")
    bad = [i for i in layers if not 0 <= i < gen.num_ws]
    if bad or not layers:
        raise BadInputError(f"layers must be distinct indices in 0..{gen.num_ws - 1}, got {list(layers)}")
    return list(layers)


def work_space(space: str, layers: Sequence[int] | None = None) -> str:
    """The latent the generator is driven with: z for z edits of the whole z, per-layer w+
    otherwise (z edits with ``layers`` move those layers' copies of z)."""
    return "z" if space == "z" and layers is None else "w+"


def base_latent(gen: Generator, z: torch.Tensor, space: str, layers: Sequence[int] | None = None) -> torch.Tensor:
    """Unedited latents in :func:`work_space` for z (N, z_dim)."""
    with torch.no_grad():
        return gen.embed(z.to(gen.device, gen.dtype), work_space(space, layers))


def apply_edit(
    gen: Generator, base: torch.Tensor, d: torch.Tensor, space: str, layers: Sequence[int] | None = None
) -> torch.Tensor:
    """Add edit vectors ``d`` (..., D) to working-space latents ``base`` (pure; differentiable in d).
    A ``w`` edit, or a ``z`` edit with ``layers``, adds the same vector to every selected layer."""
    if space == "z" and layers is None:
        return base + d
    n_layers = gen.num_ws
    sel = list(range(n_layers)) if layers is None else list(layers)
    if space != "w+":
        blocks = d[..., None, :].expand(*d.shape[:-1], len(sel), gen.w_dim)
    else:
        blocks = d.reshape(*d.shape[:-1], len(sel), gen.w_dim)
    if len(sel) == n_layers and sel == list(range(n_layers)):
        return base + blocks
    onehot = torch.zeros(len(sel), n_layers, dtype=d.dtype, device=d.device)
    onehot[torch.arange(len(sel)), torch.as_tensor(sel)] = 1
    return base + torch.einsum("...lc,lk->...kc", blocks, onehot)


def output_fn(
    gen: Generator,
    base: torch.Tensor,
    space: str,
    layers: Sequence[int] | None = None,
    transform: OutputTransform | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function d (N, D) -> transformed outputs (N, M) at working-space latents ``base`` (N, ...)."""
    transform = transform or OutputTransform()
    ws = work_space(space, layers)

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
        raise BadInputError(f"--chunk must be at least 1, got {chunk}")
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
