"""StyleGAN3 (alias-free, configs T and R) networks with the state-dict keys of NVIDIA's
``training/networks_stylegan3.py`` ``Generator``, built from an :class:`SG3Config`.

Everything learned or designed is loaded from the checkpoint: the Fourier-feature buffers of the
input layer (``freqs``, ``phases``, the user ``transform``), every layer's low-pass filters
(``up_filter``, ``down_filter``; 1-D separable for T, 2-D radial down filters for R) and
``magnitude_ema``. Nothing is re-designed with scipy. The layer geometry (sizes, sampling rates,
up/down factors, paddings) comes from the attributes NVIDIA pickles alongside the weights, or, for
a bare state dict, from the reference's formulas (:func:`layer_table`); either way it is checked
against the tensor shapes (:func:`config_from_state_dict`).

``SG3Net.run(ws, ...)`` yields ``(name, activation)`` pairs ending with ``("image", img)``; it is
a pure tensor function of ``ws`` (no custom autograd; in-place ops only on fresh intermediates and
only where no derivative is taken), so ``torch.func.jvp`` works through it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from . import measured
from .filtered_lrelu import filtered_lrelu
from .ops import SQRT2
from .stylegan2 import Dense, NvidiaNet
from .stylegan3_config import SG3Config, SG3Layer

# ======================================================================== modules


def _modconv(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    gain: torch.Tensor,
    *,
    demodulate: bool,
    padding: int,
    fused: bool | None,
) -> torch.Tensor:
    """StyleGAN3 modulated convolution: weights and styles pre-normalised (cancelled by the
    demodulation, it keeps reduced precision in range), modulated and demodulated in float32, the
    input gain (``magnitude_ema``⁻¹ᐟ²) folded in, then one convolution in ``x``'s dtype. The
    weight arithmetic runs in the styles' dtype (float32, or float64 for derivative checks)."""
    w, s = weight.to(styles.dtype), styles
    if demodulate:
        w = w * w.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean(dim=1, keepdim=True).rsqrt()  # per sample: batch-independent output
    n, cin, h, wd = x.shape
    cout, _, kh, kw = w.shape

    def fused_path() -> torch.Tensor:
        wt = w[None] * s[:, None, :, None, None]
        if demodulate:
            wt = wt * (wt.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
        wt = (wt * gain).reshape(n * cout, cin, kh, kw)
        out = F.conv2d(x.reshape(1, n * cin, h, wd), wt.to(x.dtype), padding=padding, groups=n)
        return out.reshape(n, cout, *out.shape[2:])

    def shared_path() -> torch.Tensor:
        out = F.conv2d(x * s.to(x.dtype)[:, :, None, None], w.to(x.dtype), padding=padding)
        coef = gain.expand(n, cout)
        if demodulate:
            coef = coef * (s.square() @ w.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        return out * coef.to(out.dtype)[:, :, None, None]

    if fused is None:
        key = measured.shape_key(x, w, "sg3", padding, demodulate)
        rule = 0 if n == 1 or x.device.type == "cuda" else 1  # CUDA: fused, as NVIDIA's eval code
        return measured.fastest(key, [fused_path, shared_path], [x, s], fallback=0 if n == 1 else 1, rule=rule)
    return fused_path() if fused else shared_path()


class SynthesisInput(nn.Module):
    """Fourier features: stored frequencies/phases, per-sample rotation+translation from ``w``,
    the user ``transform``, out-of-band damping, then a learned channel mixing."""

    def __init__(self, cfg: SG3Config):
        super().__init__()
        c = cfg.input_channels
        self.weight = nn.Parameter(torch.empty(c, c))
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", torch.empty(c, 2))
        self.register_buffer("phases", torch.empty(c))
        self.affine = Dense(cfg.w_dim, 4)
        self.size, self.sampling_rate, self.bandwidth = cfg.input_size, cfg.input_sampling_rate, cfg.input_bandwidth

    def forward(self, w: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        user = (self.transform if transform is None else transform).to(w)
        t = self.affine(w)  # (cos, sin, tx, ty) up to scale
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        c, s, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        rot = torch.stack([c, -s, zero, s, c, zero, zero, zero, one], 1).reshape(-1, 3, 3)
        shift = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], 1).reshape(-1, 3, 3)
        m = rot @ shift @ user[None]  # rotate the image, then translate, then the user transform
        freqs = self.freqs.to(w)[None]
        phases = self.phases.to(w)[None] + (freqs @ m[:, :2, 2:]).squeeze(2)
        freqs = freqs @ m[:, :2, :2]
        amp = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.zeros(1, 2, 3, device=w.device, dtype=w.dtype)
        theta[0, 0, 0] = theta[0, 1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta, [1, 1, self.size, self.size], align_corners=False)  # (1, H, W, 2) = (x, y)
        x = grid.reshape(1, -1, 2) @ freqs.transpose(1, 2)  # (N, H*W, C)
        x = torch.sin((x + phases[:, None]) * (2 * math.pi)) * amp[:, None]
        x = x @ (self.weight.to(w) / math.sqrt(self.weight.shape[0])).t()
        return x.transpose(1, 2).reshape(w.shape[0], -1, self.size, self.size)


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU (or the final ToRGB: no demodulation, linear)."""

    def __init__(self, layer: SG3Layer, w_dim: int):
        super().__init__()
        self.spec = layer
        k = layer.conv_kernel
        self.weight = nn.Parameter(torch.empty(layer.out_channels, layer.in_channels, k, k))
        self.bias = nn.Parameter(torch.empty(layer.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        up = torch.empty(layer.up_taps) if layer.up_taps > 1 else None
        down_shape = (layer.down_taps,) * (2 if layer.down_radial else 1)
        self.register_buffer("up_filter", up)
        self.register_buffer("down_filter", torch.empty(down_shape) if layer.down_taps > 1 else None)
        self.affine = Dense(w_dim, layer.in_channels, bias_init=1.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool | None) -> torch.Tensor:
        sp = self.spec
        styles = self.affine(w)
        if sp.is_torgb:
            styles = styles * (1 / math.sqrt(sp.in_channels * sp.conv_kernel**2))
        x = _modconv(
            x, self.weight, styles, self.magnitude_ema.to(styles.dtype).rsqrt(),
            demodulate=not sp.is_torgb, padding=sp.conv_kernel - 1, fused=fused,
        )  # fmt: skip
        return filtered_lrelu(
            x, self.up_filter, self.down_filter, self.bias, up=sp.up, down=sp.down, padding=sp.padding,
            gain=1.0 if sp.is_torgb else SQRT2, slope=1.0 if sp.is_torgb else 0.2, clamp=sp.conv_clamp,
        )  # fmt: skip


class SG3Net(nn.Module):
    """NVIDIA ``networks_stylegan3.Generator`` layout (keys ``synthesis.input.*``,
    ``synthesis.L{i}_{size}_{channels}.*``, ``mapping.fc{i}.*``, ``mapping.w_avg``)."""

    def __init__(self, cfg: SG3Config):
        super().__init__()
        self.cfg = cfg
        self.synthesis = nn.Module()
        self.synthesis.input = SynthesisInput(cfg)
        for layer in cfg.layers:
            self.synthesis.add_module(layer.name, SynthesisLayer(layer, cfg.w_dim))
        self.mapping = nn.Module()
        self.mapping.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        if cfg.c_dim:
            self.mapping.embed = Dense(cfg.c_dim, cfg.w_dim)
        dims = cfg.mapping_dims
        for i in range(cfg.mapping_layers):
            self.mapping.add_module(f"fc{i}", Dense(dims[i], dims[i + 1], lr=cfg.mapping_lr, act="lrelu"))
        self.layers = [getattr(self.synthesis, layer.name) for layer in cfg.layers]
        self.num_ws = cfg.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    #: same mapping network as StyleGAN2's NVIDIA layout (normalised z, embedded c, lrelu layers)
    mapping_forward = NvidiaNet.mapping_forward

    def affines(self) -> list[tuple[str, Dense]]:
        """``(name, affine)`` per w+ index: the input layer's, then each synthesis layer's."""
        return [("synthesis.input", self.synthesis.input.affine)] + [
            (f"synthesis.{m.spec.name}", m.affine) for m in self.layers
        ]

    def run(
        self,
        ws: torch.Tensor,
        *,
        transform: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        fused: bool | None = True,
        memory_format: torch.memory_format | None = None,
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Synthesis of ``ws`` (N, num_ws, w_dim). Layers marked ``use_fp16`` run their
        convolutions and filters in ``dtype`` when it is a half type; everything else in float32
        (float64 when ``ws`` is float64)."""
        base = torch.float64 if ws.dtype == torch.float64 else torch.float32
        half = dtype in (torch.float16, torch.bfloat16)
        ws = ws.to(base)
        x = self.synthesis.input(ws[:, 0], transform)
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)
        yield "synthesis.input", x
        for i, m in enumerate(self.layers):
            x = m(x.to(dtype if half and m.spec.use_fp16 else base), ws[:, i + 1], fused)
            yield f"synthesis.{m.spec.name}", x
        x = x.to(base)
        yield "image", x * self.cfg.output_scale if self.cfg.output_scale != 1 else x


def build(cfg: SG3Config) -> SG3Net:
    """Construct the net for ``cfg`` (use ``with torch.device('meta')`` for a shape-only model)."""
    return SG3Net(cfg)
