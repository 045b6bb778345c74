"""The one render path: latents of any leading shape to uint8 images, in device batches."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import BadInputError
from ..generators.base import Generator
from ..util.images import to_uint8
from ..util.progress import bar


def render(
    gen: Generator, latents: torch.Tensor, space: str, batch_size: int = 32, desc: str | None = "render"
) -> np.ndarray:
    """Render latents (any leading shape) of ``space`` in batches under ``inference_mode``; returns
    uint8 NHWC with the same leading shape. ``desc=None``: no progress bar (the caller has one)."""
    if batch_size < 1:
        raise BadInputError(f"batch_size must be at least 1, got {batch_size}", param="batch_size")
    lead = latents.shape[: latents.ndim - len(gen.latent_shape(space))]
    flat = latents.reshape(-1, *gen.latent_shape(space))
    chunks = []
    with (
        torch.inference_mode(),
        bar(total=len(flat), desc=desc, unit="img", enabled=False if desc is None else None) as pbar,
    ):
        for i in range(0, len(flat), batch_size):
            x = flat[i : i + batch_size].to(gen.device, gen.dtype)
            chunks.append(to_uint8(gen.synthesis(x, space)))
            pbar.update(len(x))
    imgs = np.concatenate(chunks) if chunks else np.zeros((0, gen.resolution, gen.resolution, gen.channels), np.uint8)
    return imgs.reshape(*lead, *imgs.shape[1:])
