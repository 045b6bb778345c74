"""Given latents as a sample stream: ``evaluate`` (and any reducer) over a latents file, e.g. a
projection with its noise maps, exactly as over seeded samples."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import BadInputError
from ..generators.base import Generator
from .sampling import Batch, SampleStream


class LatentStream(SampleStream):
    """Given latents as a stream (a projection or another latents file): sample ``i`` is row ``i``
    of ``latents``, already in ``space`` (z, w or w+), with its noise maps when given. Batches
    carry no z; the identity names the latents by their sha256, so a resume checks them."""

    def __init__(
        self,
        gen: Generator,
        latents: torch.Tensor,
        space: str,
        *,
        noise: Sequence[torch.Tensor] | None = None,
        batch_size: int = 256,
    ):
        if space not in ("z", "w", "w+"):
            raise BadInputError(f"given latents are z, w or w+, not {space!r}", param="space")
        super().__init__(gen, len(latents), space, batch_size=batch_size)
        shape = tuple(gen.latent_shape(space))
        if tuple(latents.shape[1:]) != shape:
            raise BadInputError(
                f"latents of shape {tuple(latents.shape[1:])} do not fit this generator's {space} {shape}",
                param="latents",
            )
        self.latents = latents.detach().float().cpu().contiguous()
        self.noise = None if noise is None else [n.detach().float().cpu().contiguous() for n in noise]
        for n in self.noise or []:
            if len(n) != len(self.latents) or n.ndim != 4:
                raise BadInputError(
                    f"noise maps of shape {tuple(n.shape)} do not fit {len(self.latents)} latents", param="latents"
                )
        digest = hashlib.sha256(self.latents.numpy().tobytes())
        for n in self.noise or []:
            digest.update(n.numpy().tobytes())
        self.digest = digest.hexdigest()

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        for key in ("seed", "stream", "block"):
            ident.pop(key)
        return {**ident, "latents": self.digest, "noise": self.noise is not None}

    def batch(self, start: int, stop: int) -> Batch:
        gen = self.gen
        lat = self.latents[start:stop].to(gen.device, gen.dtype)
        noise = None if self.noise is None else [n[start:stop].to(gen.device) for n in self.noise]
        return Batch(start, stop, None, lat, lat, noise)
