"""PGGAN (Karras et al. 2018) in genforce's PyTorch layout (genforce/genforce, genforce/sefa).

A genforce ``.pth`` is ``{"generator": sd, "discriminator": sd, "generator_smooth": sd}`` (or a
bare generator state dict). Like genforce's loaders we use ``generator_smooth`` (the EMA weights)
when present. The generator, for resolution R = 2**k:

* ``layer0``: the latent as a 1x1 image through a 4x4 convolution with padding 3 (a dense layer
  to 4x4), ``layer1``: 3x3 conv; then for each 8..R block ``layer{2b}`` (nearest 2x upsample +
  3x3 conv) and ``layer{2b+1}`` (3x3 conv). Every conv block starts with pixel norm, uses
  equalised learning rate (weight x gain/sqrt(fan_in), gain sqrt(2)) and leaky ReLU 0.2.
* ``output{b}``: 1x1 to-RGB per block (gain 1, linear). ``lod`` (level of detail) blends the
  last two to-RGB outputs as in progressive training; trained networks have ``lod = 0``.

The network pixel-normalises z first, so the edit space ``z`` here is the normalised latent, as
genforce/sefa edits PGGAN: ``embed(z, "z")`` = pixel_norm(z); the synthesis normalises again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import BadInputError
from . import register
from .base import Generator, LatentReader, check_sizes
from .loading.checkpoint import Checkpoint, check_shapes, unwrap_state_dict
from .nets.pggan import ConvBlock, pixel_norm

_KEY = re.compile(r"^(lod|(layer|output)(\d+)\.(weight|bias))$")


def _pggan_state(obj: Any) -> dict[str, torch.Tensor] | None:
    """The generator state dict of a genforce PGGAN file (``generator_smooth`` first), else None."""
    if isinstance(obj, dict):
        for key in ("generator_smooth", "generator"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    sd = unwrap_state_dict(obj, keys=("state_dict",))
    if not isinstance(sd, dict) or "layer0.weight" not in sd or "output0.weight" not in sd:
        return None
    if not all(isinstance(k, str) and _KEY.match(k) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        return None
    return sd


@register
class PGGANGenerator(Generator):
    """Adapter for genforce PGGAN generators (edit space ``z``, pixel-normalised)."""

    family = "pggan"
    spaces = ("z",)
    pca_activation = "layer0"  # the dense 4x4 layer right after the latent (as gen_z for BigGAN)

    def __init__(self, z_dim: int, widths: list[int], channels: int = 3, lod: float = 0.0):
        nblocks = len(widths)
        super().__init__(z_dim=z_dim, resolution=4 * 2 ** (nblocks - 1), channels=channels)
        gain = math.sqrt(2.0)
        for b, c in enumerate(widths):
            if b == 0:
                first = ConvBlock(z_dim, c, 4, 3, upsample=False, gain=gain, act=True)
            else:
                first = ConvBlock(widths[b - 1], c, 3, 1, upsample=True, gain=gain, act=True)
            self.add_module(f"layer{2 * b}", first)
            self.add_module(f"layer{2 * b + 1}", ConvBlock(c, c, 3, 1, upsample=False, gain=gain, act=True))
            self.add_module(f"output{b}", ConvBlock(c, channels, 1, 0, upsample=False, gain=1.0, act=False))
        self.widths = list(widths)
        self.lod = float(lod)

    # ------------------------------------------------------------------ loading
    @classmethod
    def accepts(cls, ck: Checkpoint) -> bool:
        return ck.kind == "torch" and _pggan_state(ck.obj) is not None

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, entry: Any = None) -> PGGANGenerator:
        sd = _pggan_state(ck.obj) if ck.kind == "torch" else None
        if sd is None:
            raise BadInputError(
                f"{ck.path.name} is not a genforce PGGAN generator checkpoint "
                "(expected generator_smooth/generator with layer0.weight ... outputN.weight)"
            )
        nblocks = 1 + max(int(m[3]) for k in sd if (m := _KEY.match(k)) and m[2] == "output")
        try:
            w0 = sd["layer0.weight"]
            if w0.ndim != 4 or tuple(w0.shape[2:]) != (4, 4):
                raise BadInputError(f"{ck.path.name}: layer0.weight has shape {tuple(w0.shape)}, expected (C, z, 4, 4)")
            widths = [int(sd[f"layer{2 * b + 1}.weight"].shape[0]) for b in range(nblocks)]
            channels = int(sd["output0.weight"].shape[0])
        except KeyError as e:
            raise BadInputError(f"{ck.path.name}: PGGAN weights lack {e.args[0]}") from None
        lod = float(sd["lod"]) if "lod" in sd else 0.0
        state = {k: v for k, v in sd.items() if k != "lod"}
        check_sizes(z_dim=int(w0.shape[1]), widths=widths, channels=channels, resolution=4 * 2 ** (nblocks - 1))
        check_shapes(lambda: cls(int(w0.shape[1]), widths, channels, lod), state, f"{ck.path.name}: PGGAN weights")
        gen = cls(int(w0.shape[1]), widths, channels, lod)
        try:
            gen.load_state_dict(state, strict=True)
        except RuntimeError as e:
            msg = " ".join(str(e).split())
            raise BadInputError(f"{ck.path.name}: inconsistent PGGAN weights ({msg[:200]})") from None
        return gen

    # ------------------------------------------------------------------ interface
    def embed(self, z: torch.Tensor, space: str) -> torch.Tensor:
        """The latent the network consumes: pixel-normalised z (genforce/sefa edits this)."""
        self.check_space(space)
        return pixel_norm(z)

    def _trunk(self, latent: torch.Tensor, stop: str | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Run the conv blocks; returns (image blended per ``lod``, last features), or the
        features of layer ``stop`` (image None) when given."""
        lod = self.lod
        nblocks = len(self.widths)
        if not 0 <= lod <= nblocks - 1:
            raise BadInputError(f"PGGAN lod must be in 0..{nblocks - 1}, got {lod}")
        x = latent.reshape(-1, self.z_dim, 1, 1)
        image = None
        for b in range(nblocks):
            cur = nblocks - 1 - b  # this block's level of detail
            if lod < cur + 1:
                for name in (f"layer{2 * b}", f"layer{2 * b + 1}"):
                    x = getattr(self, name)(x)
                    if name == stop:
                        return None, x
            if cur - 1 < lod <= cur:
                image = getattr(self, f"output{b}")(x)
            elif cur < lod < cur + 1:
                alpha = math.ceil(lod) - lod
                image = getattr(self, f"output{b}")(x) * alpha + _up(image) * (1 - alpha)
            elif lod >= cur + 1:
                image = _up(image)
        if stop is not None:
            raise BadInputError(f"activation {stop} is not computed at lod {lod}")
        return image, x

    def synthesis(self, latent: torch.Tensor, space: str = "z") -> torch.Tensor:
        self.check_space(space)
        image, _ = self._trunk(latent)
        return image

    def latent_readers(self, layers: Sequence[int] | None = None) -> list[LatentReader]:
        """``layer0`` as the (C*16, z) matrix with ``features = A @ pixel_norm(z)`` (pre-bias,
        flattened as (channel, y, x)). A padded 4x4 conv on a 1x1 input reads kernel tap
        (3-y, 3-x) at output pixel (y, x): genforce/sefa's ``weight.flip(2, 3)``."""
        if layers is not None and list(layers) != [0]:
            raise BadInputError(
                f"PGGAN has one latent-reading layer (0, layer0); got layers {list(layers)}", param="layers"
            )
        blk = self.layer0
        w = blk.weight.flip(2, 3) * blk.wscale  # (C, z, 4, 4), tap (y, x) now feeds pixel (y, x)
        return [LatentReader("layer0", 0, w.permute(0, 2, 3, 1).reshape(-1, self.z_dim))]

    def layer_names(self) -> list[str]:
        return [f"layer0 (dense {self.z_dim}->{self.widths[0]}x4x4)"]

    def activation_names(self) -> list[str]:
        return [f"layer{i}" for i in range(2 * len(self.widths))]

    def activation(self, latent: torch.Tensor, space: str, name: str) -> torch.Tensor:
        self.check_space(space)
        self.check_activation(name)
        _, x = self._trunk(latent, stop=name)
        return x

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "widths": self.widths, "lod": self.lod}


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


__all__ = ["PGGANGenerator", "pixel_norm"]
