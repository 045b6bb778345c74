"""DCGAN adapter: PyTorch tutorial / examples state dicts (network in :mod:`.nets.dcgan`).

nz, the widths, the channel count and the depth are read off the weight shapes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import BadInputError
from . import register
from .base import Generator, LatentReader
from .loading.checkpoint import Checkpoint, unwrap_state_dict
from .nets.dcgan import DCGANNet

_KEY = re.compile(r"^main\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def _dcgan_state(obj: Any) -> dict[str, torch.Tensor] | None:
    """Return the generator state dict if ``obj`` holds one in the DCGAN layout, else None."""
    if isinstance(obj, dict) and "netG_state_dict" not in obj and "netG" in obj:
        obj = obj["netG"]
    sd = unwrap_state_dict(obj)
    if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) and _KEY.match(k) for k in sd):
        return None
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        return None
    convs = sorted(int(_KEY.match(k)[1]) for k, v in sd.items() if k.endswith(".weight") and v.ndim == 4)
    bns = sorted(int(_KEY.match(k)[1]) for k, v in sd.items() if k.endswith(".weight") and v.ndim == 1)
    n = len(convs)
    if n < 2 or convs != [3 * i for i in range(n)] or bns != [3 * i + 1 for i in range(n - 1)]:
        return None
    return sd


@register
class DCGANGenerator(Generator):
    """Adapter for tutorial-style DCGAN generators (edit space ``z`` only)."""

    family = "dcgan"
    spaces = ("z",)
    pca_activation = "main.2"  # the first BN+ReLU output (512x4x4), as in the GANSpace reference run

    def __init__(self, nz: int, widths: list[int]):
        super().__init__(z_dim=nz, resolution=4 * 2 ** (len(widths) - 1), channels=widths[-1])
        self.ngf = widths[-2] if len(widths) > 1 else widths[0]
        self.net = DCGANNet(nz, widths)
        self._names = [f"main.{i}" for i in range(len(self.net.main))]

    # ------------------------------------------------------------------ loading
    @classmethod
    def accepts(cls, ck: Checkpoint) -> bool:
        return ck.kind == "torch" and _dcgan_state(ck.obj) is not None

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, entry: Any = None) -> DCGANGenerator:
        sd = _dcgan_state(ck.obj) if ck.kind == "torch" else None
        if sd is None:
            hint = ""
            if isinstance(ck.obj, dict) and any(str(k).startswith(("netD", "discriminator")) for k in ck.obj):
                hint = " (it looks like a discriminator-only file)"
            raise BadInputError(f"{ck.path.name} is not a DCGAN generator checkpoint{hint}")
        n = sum(1 for k, v in sd.items() if k.endswith(".weight") and v.ndim == 4)
        w0 = sd["main.0.weight"]
        widths = [int(sd[f"main.{3 * i}.weight"].shape[1]) for i in range(n)]
        gen = cls(int(w0.shape[0]), widths)
        state = {f"net.{k}": v for k, v in sd.items()}
        try:
            gen.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise BadInputError(f"{ck.path.name}: inconsistent DCGAN weights ({str(e).splitlines()[0]})") from None
        return gen

    # ------------------------------------------------------------------ interface
    def embed(self, z: torch.Tensor, space: str) -> torch.Tensor:
        self.check_space(space)
        return z

    def synthesis(self, latent: torch.Tensor, space: str = "z") -> torch.Tensor:
        self.check_space(space)
        return self.net.main(latent.reshape(-1, self.z_dim, 1, 1))

    def latent_readers(self, layers: Sequence[int] | None = None) -> list[LatentReader]:
        """``main.0`` as the (C*16, nz) matrix with ``features = W @ z`` (a stride-1 ConvT on a
        1x1 input reads kernel tap (y, x) at output pixel (y, x): no flip, no axis swap)."""
        if layers is not None and list(layers) != [0]:
            raise BadInputError(f"DCGAN has one latent-reading layer (0); got layers {list(layers)}", param="layers")
        w = self.net.main[0].weight
        return [LatentReader("main.0", 0, w.reshape(self.z_dim, -1).t())]

    def layer_names(self) -> list[str]:
        c = self.net.main[0].out_channels
        return [f"main.0 (ConvT {self.z_dim}->{c}x4x4)"]

    def activation_names(self) -> list[str]:
        return list(self._names)

    def activation(self, latent: torch.Tensor, space: str, name: str) -> torch.Tensor:
        self.check_space(space)
        stop = self._names.index(self.check_activation(name))
        x = latent.reshape(-1, self.z_dim, 1, 1)
        for module in self.net.main[: stop + 1]:
            x = module(x)
        return x

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ngf": self.ngf}
