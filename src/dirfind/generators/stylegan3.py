"""StyleGAN3 adapter: NVIDIA ``.pkl`` snapshots of configs T and R (``networks_stylegan3``).

Loaded through the same restricted unpickler as StyleGAN2 (:mod:`.nvidia_pickle`: the embedded
source is never executed). The Fourier-feature buffers, the designed low-pass filters and
``magnitude_ema`` come from the file; see :mod:`.stylegan3_nets` and docs/stylegan3.md.

Layer indices (``layers``) are w+ indices: ``num_ws = num_layers + 2`` (16 for the published
networks). Index 0 is read by the input layer (its affine turns w into the per-sample rotation
and translation of the Fourier features), index ``i >= 1`` by synthesis layer ``L{i-1}``; the last
index is the ToRGB layer.

The ``transform = (tx, ty, degrees)`` render setting sets the input transform NVIDIA's
``gen_images.py --translate tx,ty --rotate deg`` sets: ``synthesis.input.transform =
inv(make_transform(...))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import BadInputError, UnsupportedError
from . import register
from ._style import StyleLatents
from .base import Generator, LatentReader
from .loading.checkpoint import Checkpoint
from .loading.nvidia_pickle import NetNode, generator_from_pickle
from .nets.stylegan3 import SG3Net, build
from .nets.stylegan3_config import SG3Config, config_from_state_dict
from .stylegan2 import _nvidia_node, attach_weights


def is_sg3_node(node: NetNode) -> bool:
    """A StyleGAN3 generator: its synthesis input is a Fourier-feature ``SynthesisInput``."""
    inp = node.get("synthesis.input")
    return inp is not None and (inp.class_name == "SynthesisInput" or "freqs" in inp.buffers)


def make_transform(tx: float, ty: float, degrees: float) -> np.ndarray:
    """NVIDIA ``gen_images.make_transform``: rotation by ``degrees`` and translation (tx, ty)."""
    s, c = math.sin(math.radians(degrees)), math.cos(math.radians(degrees))
    return np.array([[c, s, tx], [-s, c, ty], [0.0, 0.0, 1.0]])


def input_transform(tx: float, ty: float, degrees: float) -> torch.Tensor:
    """The matrix written into ``synthesis.input.transform``: the inverse of :func:`make_transform`."""
    return torch.from_numpy(np.linalg.inv(make_transform(tx, ty, degrees))).float()


@register
class StyleGAN3Generator(StyleLatents, Generator):
    """StyleGAN3 (alias-free, T and R) from NVIDIA pickles; spaces z, w, w+; optional input transform."""

    family = "stylegan3"
    spaces = ("z", "w", "w+")
    supports_transform = True
    #: measured on 2 CPU cores (docs/benchmarks-stylegan2.md): StyleGAN3-T 256 px (~0.5 GB per
    #: image) renders 8-19% faster one image per pass than 11 or 12 at a time; narrow ones batch
    cpu_pass_bytes = 256 * 2**20

    def __init__(self, net: SG3Net, cfg: SG3Config):
        super().__init__(
            z_dim=cfg.z_dim,
            w_dim=cfg.w_dim,
            resolution=cfg.img_resolution,
            channels=cfg.img_channels,
            num_ws=cfg.num_ws,
            num_classes=cfg.c_dim,
        )
        self.cfg = cfg
        self.net = net
        self._acts = [f"synthesis.{layer.name}" for layer in cfg.layers if not layer.is_torgb]
        self.pca_activation = self._acts[0]

    # ------------------------------------------------------------------ loading
    @classmethod
    def accepts(cls, ck: Checkpoint) -> bool:
        if not ck.kind.startswith("pickle:"):
            return False
        node = _nvidia_node(ck.obj)
        return node is not None and is_sg3_node(node)

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, entry: Any = None) -> StyleGAN3Generator:
        name = ck.path.name
        if not ck.kind.startswith("pickle:"):
            raise BadInputError(f"{name} is not a StyleGAN3 network pickle")
        node = generator_from_pickle(ck.obj, name)
        if not is_sg3_node(node):
            raise UnsupportedError(f"{name}: the generator is not a StyleGAN3 network (no Fourier-feature input)")
        sd = node.state_dict()
        attrs = {path: n.attrs for path, n in node.named_nodes() if path}
        try:
            cfg = config_from_state_dict(sd, node.init_kwargs, attrs)
        except BadInputError as e:
            raise BadInputError(f"{name}: not an NVIDIA StyleGAN3 generator ({e})") from None
        except UnsupportedError as e:
            raise UnsupportedError(f"{name}: {e}") from None
        return cls(attach_weights(lambda: build(cfg), sd, name, "StyleGAN3"), cfg)

    # ------------------------------------------------------------------ precision
    def set_precision(self, dtype: torch.dtype = torch.float32, channels_last: bool = False) -> StyleGAN3Generator:
        """Run the layers the checkpoint marks ``use_fp16`` in ``dtype`` (the others, the mapping,
        styles and the modulated weights stay float32, as in the reference), optionally with
        channels-last activations."""
        return super().set_precision(dtype, channels_last)

    # ------------------------------------------------------------------ latents and images
    def w_avg(self) -> torch.Tensor:
        """The truncation centre: the stored ``mapping.w_avg``."""
        return self.net.w_avg.float()

    def transform_matrix(self) -> torch.Tensor | None:
        """The user transform in effect (None = the checkpoint's stored ``synthesis.input.transform``)."""
        t = self.settings.transform
        return None if t is None else input_transform(*t)

    def _run(self, latent: torch.Tensor, space: str) -> Iterator[tuple[str, torch.Tensor]]:
        ws = self.per_layer_latents(latent, space)
        m = self.transform_matrix()
        return self.net.run(
            ws, transform=None if m is None else m.to(ws.device), dtype=self.compute_dtype, fused=self._fused(len(ws)),
            memory_format=self.memory_format,
        )  # fmt: skip

    def image_bytes(self) -> int:
        """About 3 times the largest up-sampled layer output (c·(size·up)² values; measured on CPU:
        2.6x for StyleGAN3-T at 256 px)."""
        elem = torch.finfo(self.compute_dtype).bits // 8
        return int(3 * max(lay.out_channels * (lay.in_size * lay.up) ** 2 for lay in self.cfg.layers) * elem)

    # ------------------------------------------------------------------ what methods read
    def latent_readers(self, layers: Sequence[int] | None = None) -> list[LatentReader]:
        """Affine weights (out_features, w_dim) of the selected w+ indices (default: all): index 0
        the input layer's 4-row affine (rotation/translation), index i the style affine of layer
        ``L{i-1}``. Every index is read by exactly one affine, so SeFa's variants select the same
        matrices; they differ only in its row normalisation."""
        pairs = [(name, i, a, "input" if i == 0 else "conv") for i, (name, a) in enumerate(self.net.affines())]
        return self._readers(layers, pairs)

    def layer_names(self) -> list[str]:
        out = [f"input Fourier features {self.cfg.input_size}x{self.cfg.input_size} (synthesis.input)"]
        for layer in self.cfg.layers:
            kind = "torgb" if layer.is_torgb else f"conv {layer.conv_kernel}x{layer.conv_kernel}"
            s = layer.out_size
            out.append(f"{s}x{s} {kind} @ {layer.out_sampling_rate:g} (synthesis.{layer.name})")
        return out

    def describe(self) -> dict[str, Any]:
        t = self.settings.transform
        return {**super().describe(), **self.cfg.describe(), "transform": t}
