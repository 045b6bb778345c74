"""DCGAN adapter: state dicts of the PyTorch tutorial / examples generator (network in
:mod:`.nets.dcgan`), whatever the modules are called.

The layer stack is read off the state dict's order and shapes (:func:`read_stack`): nz, the
widths, the channel count, the depth, which layers have BatchNorm2d and which ConvTs a bias.
Strides, paddings and the final tanh are the tutorial's (a state dict does not record them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import BadInputError
from . import register
from .base import Generator, LatentReader, check_sizes
from .loading.checkpoint import Checkpoint, unwrap_state_dict
from .nets.dcgan import DCGANNet

_PARTS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_BN = {"weight", "bias", "running_mean", "running_var"}


@dataclass
class Stack:
    """A DCGAN layer stack read off a state dict: per layer its ConvT weight and optional bias and
    BatchNorm2d tensors, in the state dict's order."""

    convs: list[dict[str, torch.Tensor]]
    bns: list[dict[str, torch.Tensor] | None]

    @property
    def widths(self) -> list[int]:
        return [int(c["weight"].shape[1]) for c in self.convs]

    def net_state(self) -> dict[str, torch.Tensor]:
        """The tensors under :class:`DCGANNet`'s names (``main.0.weight``, ...)."""
        out, i = {}, 0
        for conv, bn in zip(self.convs, self.bns, strict=True):
            out.update({f"main.{i}.{k}": v for k, v in conv.items()})
            i += 1
            if bn is not None:
                out.update({f"main.{i}.{k}": v for k, v in bn.items()})
                i += 1
            i += 1  # ReLU (or the final Tanh)
        return out


def _generator_dict(obj: Any) -> Any:
    """The generator's state dict in a training file (``netG``/``generator`` next to the
    discriminator's) or the usual wrappers (``netG_state_dict``, ``state_dict``, ``model``)."""
    if isinstance(obj, dict) and "netG_state_dict" not in obj:
        obj = next((obj[k] for k in ("netG", "generator") if isinstance(obj.get(k), dict)), obj)
    return unwrap_state_dict(obj)


def read_stack(obj: Any) -> tuple[Stack | None, str]:
    """(the DCGAN stack in ``obj``, "") or (None, why it is not one). Module names and nesting do
    not matter (``main.0``, ``convTr1``, ``model.layers.0``, ``module.`` prefixes): the layers are
    the state dict's modules in order, each a ConvTranspose2d (4-D weight, optional bias) or a
    BatchNorm2d (weight, bias, running_mean, running_var, optional num_batches_tracked)."""
    sd = _generator_dict(obj)
    if not isinstance(sd, dict) or not sd:
        return None, "no state dict"
    modules: dict[str, dict[str, Any]] = {}
    for key, value in sd.items():
        prefix, _, part = str(key).rpartition(".")
        if part not in _PARTS or not isinstance(value, torch.Tensor):
            return None, f"{key!r} is not a ConvTranspose2d or BatchNorm2d tensor"
        modules.setdefault(prefix, {})[part] = value
    convs: list[dict[str, torch.Tensor]] = []
    bns: list[dict[str, torch.Tensor] | None] = []
    for name, parts in modules.items():
        w = parts.get("weight")
        if w is not None and w.ndim == 4 and set(parts) <= {"weight", "bias"}:
            if tuple(w.shape[2:]) != (4, 4):
                return None, f"{name}: ConvTranspose2d kernel {tuple(w.shape[2:])}, the DCGAN stack uses 4x4"
            cin = convs[-1]["weight"].shape[1] if convs else w.shape[0]
            if w.shape[0] != cin:
                return None, f"{name}: {w.shape[0]} input channels after a layer with {cin} outputs"
            if "bias" in parts and tuple(parts["bias"].shape) != (w.shape[1],):
                return None, f"{name}: bias of shape {tuple(parts['bias'].shape)} for {w.shape[1]} channels"
            convs.append(dict(parts))
            bns.append(None)
        elif _BN <= set(parts) and all(parts[k].ndim == 1 for k in _BN):
            size = {int(parts[k].shape[0]) for k in _BN}
            if not convs or bns[-1] is not None:
                return None, f"{name}: a BatchNorm2d that does not follow a ConvTranspose2d"
            if size != {convs[-1]["weight"].shape[1]}:
                return (
                    None,
                    f"{name}: BatchNorm2d of size {sorted(size)} after a {convs[-1]['weight'].shape[1]}-channel layer",
                )
            bns[-1] = dict(parts)
        else:
            return (
                None,
                f"{name}: neither a ConvTranspose2d (4-D weight) nor a BatchNorm2d ({', '.join(sorted(parts))})",
            )
    if len(convs) < 2:
        return None, f"{len(convs)} ConvTranspose2d layer(s); a DCGAN stack has at least 2"
    if bns[-1] is not None:
        return None, "a BatchNorm2d after the last ConvTranspose2d (the stack ends in tanh)"
    return Stack(convs, bns), ""


@register
class DCGANGenerator(Generator):
    """Adapter for tutorial-style DCGAN generators (edit space ``z`` only)."""

    family = "dcgan"
    spaces = ("z",)

    def __init__(
        self, nz: int, widths: list[int], bn: Sequence[bool] | None = None, bias: Sequence[bool] | None = None
    ):
        super().__init__(z_dim=nz, resolution=4 * 2 ** (len(widths) - 1), channels=widths[-1])
        check_sizes(widths=widths)
        self.ngf = widths[-2] if len(widths) > 1 else widths[0]
        self.net = DCGANNet(nz, widths, bn, bias)
        self._names = [f"main.{i}" for i in range(len(self.net.main))]
        #: the first ReLU's output (512x4x4 in the tutorial: ``main.2``, the GANSpace reference run's layer)
        self.pca_activation = next(n for n, m in zip(self._names, self.net.main, strict=True) if isinstance(m, nn.ReLU))

    # ------------------------------------------------------------------ loading
    @classmethod
    def accepts(cls, ck: Checkpoint) -> bool:
        return ck.kind == "torch" and read_stack(ck.obj)[0] is not None

    @classmethod
    def rejection(cls, ck: Checkpoint) -> str | None:
        """Why a file of ConvTranspose2d/BatchNorm2d-like tensors is not a DCGAN stack (else None)."""
        if ck.kind != "torch":
            return None
        stack, why = read_stack(ck.obj)
        sd = _generator_dict(ck.obj)
        looks = isinstance(sd, dict) and sd and all(str(k).rpartition(".")[2] in _PARTS for k in sd)
        return why if stack is None and looks else None

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, entry: Any = None) -> DCGANGenerator:
        stack, why = read_stack(ck.obj) if ck.kind == "torch" else (None, "not a torch state dict")
        if stack is None:
            hint = ""
            if isinstance(ck.obj, dict) and any(str(k).startswith(("netD", "discriminator")) for k in ck.obj):
                hint = "; it looks like a discriminator-only file"
            raise BadInputError(f"{ck.path.name} is not a DCGAN generator checkpoint ({why}{hint})")
        nz = int(stack.convs[0]["weight"].shape[0])
        bn = [b is not None for b in stack.bns[:-1]]
        bias = ["bias" in c for c in stack.convs]
        gen = cls(nz, stack.widths, bn, bias)
        state = {f"net.{k}": v for k, v in stack.net_state().items()}
        try:
            res = gen.load_state_dict(state, strict=False)  # num_batches_tracked is optional (eval mode)
        except RuntimeError as e:
            raise BadInputError(f"{ck.path.name}: inconsistent DCGAN weights ({str(e).splitlines()[0]})") from None
        bad = [k for k in res.missing_keys if not k.endswith("num_batches_tracked")] + res.unexpected_keys
        if bad:
            raise BadInputError(f"{ck.path.name}: inconsistent DCGAN weights ({bad[0]})")
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
        main = self.net.main
        bn = main[1] if len(main) > 1 else None
        fold = stop >= 1 and isinstance(bn, nn.BatchNorm2d) and not bn.training and bn.running_var is not None
        x = _dense(main[0], latent.reshape(-1, self.z_dim), main[1] if fold else None)
        for module in main[2 if fold else 1 : stop + 1]:
            x = torch.relu_(x) if isinstance(module, nn.ReLU) else module(x)
        return x

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ngf": self.ngf}


def _dense(conv: nn.ConvTranspose2d, z: torch.Tensor, bn: nn.BatchNorm2d | None = None) -> torch.Tensor:
    """The first ConvT on the 1x1 latent as the matmul it is (output pixel (y, x) reads kernel tap
    (y, x)), with an eval-mode BatchNorm after it folded into the weight and shift: several times
    faster on a CPU than the transposed convolution, the same values to float32 rounding. Only the
    activation path uses it (images render through the network itself)."""
    w = conv.weight  # (nz, C, k, k)
    shift = conv.bias if conv.bias is not None else torch.zeros(w.shape[1], dtype=w.dtype, device=w.device)
    if bn is not None:
        scale = (
            bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
        )
        w = w * scale[:, None, None]
        shift = (shift - bn.running_mean) * scale + (bn.bias if bn.affine else 0)
    y = torch.addmm(shift.repeat_interleave(w.shape[2] * w.shape[3]), z.to(w.dtype), w.reshape(w.shape[0], -1))
    return y.reshape(len(z), *w.shape[1:])
