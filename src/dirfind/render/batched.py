"""The one render path: latents of any leading shape to uint8 images, in device batches."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import BadInputError
from ..generators.base import Generator
from ..util.images import to_uint8
from ..util.progress import bar


def render(
    gen: Generator,
    latents: torch.Tensor,
    space: str,
    batch_size: int = 32,
    desc: str | None = "render",
    noise: list[torch.Tensor] | None = None,
) -> np.ndarray:
    """Render latents (any leading shape) of ``space`` in batches under ``inference_mode``; returns
    uint8 NHWC with the same leading shape. ``noise``: per-sample noise maps (one tensor per noise
    input, leading shape as the latents', then (1, H, W)) replacing the stored ones (projections)."""
    if batch_size < 1:
        raise BadInputError(f"batch_size must be at least 1, got {batch_size}", param="batch_size")
    lead = latents.shape[: latents.ndim - len(gen.latent_shape(space))]
    flat = latents.reshape(-1, *gen.latent_shape(space))
    maps = None if noise is None else [n.expand(*lead, *n.shape[-3:]).reshape(-1, *n.shape[-3:]) for n in noise]
    chunks = []
    with torch.inference_mode(), bar(total=len(flat), desc=desc, unit="img") as pbar:
        for i in range(0, len(flat), batch_size):
            x = flat[i : i + batch_size].to(gen.device, gen.dtype)
            g = gen if maps is None else gen.with_noise([m[i : i + batch_size].to(gen.device) for m in maps])
            chunks.append(to_uint8(g.synthesis(x, space)))
            pbar.update(len(x))
    imgs = np.concatenate(chunks) if chunks else np.zeros((0, gen.resolution, gen.resolution, gen.channels), np.uint8)
    return imgs.reshape(*lead, *imgs.shape[1:])
