"""The one render path: latents of any leading shape to uint8 images, in device batches.

Under torch.distributed the batches are dealt round-robin over the processes and the images come
back to rank 0 in order (the same batches as one process renders, so the same pixels)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from ..core.dist import world
from ..core.parallel import map_ordered
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
    pbar: Any = None,
    noise: list[torch.Tensor] | None = None,
) -> np.ndarray | None:
    """Render latents (any leading shape) of ``space`` in batches under ``inference_mode``; returns
    uint8 NHWC with the same leading shape (on rank 0; None on the other processes of a
    distributed run). ``pbar``: advance this progress bar instead of a new one; ``desc=None``: no
    progress bar (the caller has one). ``noise``: per-sample noise maps (one tensor per noise
    input, leading shape as the latents', then (1, H, W)) replacing the stored ones (projections)."""
    if batch_size < 1:
        raise BadInputError(f"batch_size must be at least 1, got {batch_size}", param="batch_size")
    lead = latents.shape[: latents.ndim - len(gen.latent_shape(space))]
    flat = latents.reshape(-1, *gen.latent_shape(space))
    maps = None if noise is None else [n.expand(*lead, *n.shape[-3:]).reshape(-1, *n.shape[-3:]) for n in noise]

    def one(b: int) -> dict[str, np.ndarray]:
        i = b * batch_size
        with torch.inference_mode():
            x = flat[i : i + batch_size].to(gen.device, gen.dtype)
            g = gen if maps is None else gen.with_noise([m[i : i + batch_size].to(gen.device) for m in maps])
            return {"img": to_uint8(g.synthesis(x, space))}

    chunks = []
    own = pbar is None
    new = bar(total=len(flat), desc=desc, unit="img", enabled=False if desc is None else None) if own else None
    with new if own else nullcontext(pbar) as pbar:  # a caller's bar: no second (empty) one
        for _, out in map_ordered((len(flat) + batch_size - 1) // batch_size, one, everywhere=False):
            chunks.append(out["img"])
            pbar.update(len(out["img"]))
    if not world().is_main:
        return None
    imgs = np.concatenate(chunks) if chunks else np.zeros((0, gen.resolution, gen.resolution, gen.channels), np.uint8)
    return imgs.reshape(*lead, *imgs.shape[1:])
