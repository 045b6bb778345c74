"""StyleGAN2 networks in the two published checkpoint layouts, built from a :class:`SG2Config`.

``RosinalityNet`` has exactly the state-dict keys of rosinality/stylegan2-pytorch ``Generator``;
``NvidiaNet`` those of NVIDIA stylegan2-ada-pytorch (and stylegan3's ``networks_stylegan2``)
``Generator``. Both run the same math through :mod:`.ops`. The configuration is inferred from a
state dict's shapes and NVIDIA's recorded constructor kwargs (:mod:`.stylegan2_config`).

Both nets expose ``mapping(z, c)`` -> w (N, w_dim), ``w_avg``, ``num_ws``, ``run(ws, ...)`` (a
generator of ``(layer_name, activation)`` pairs ending with ``("image", img)``) and ``style_layers``
(every modulated layer: its name, the w+ index it reads, resolution, kind and affine module).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .ops import SQRT2, bias_act, dense, modulated_conv2d, pixel_norm, upsample2d

ARCHITECTURES = ("skip", "resnet", "orig")


@dataclass
class SG2Config:
    """Everything needed to build a StyleGAN2 generator of either layout."""

    layout: str  # "rosinality" | "nvidia"
    resolution: int
    z_dim: int
    w_dim: int
    channels: dict[int, int]  # feature maps per block resolution
    mapping_dims: list[int]  # input width of each mapping layer, then w_dim
    c_dim: int = 0
    embed_features: int = 0
    mapping_lr: float = 0.01
    mapping_act: str = "lrelu"
    img_channels: int = 3
    architecture: str = "skip"
    conv_clamp: float | None = None
    use_noise: bool = True
    num_fp16_res: int = 0
    resample_filter: list[float] = field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0])

    @property
    def resolutions(self) -> list[int]:
        return [2**i for i in range(2, int(math.log2(self.resolution)) + 1)]

    @property
    def num_ws(self) -> int:
        # one conv at 4 px and two per later block, plus the final to-RGB
        return len(self.resolutions) * 2

    def describe(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "architecture": self.architecture,
            "mapping_layers": len(self.mapping_dims) - 1,
            "block_channels": {str(k): v for k, v in self.channels.items()},
            "conv_clamp": self.conv_clamp,
            "c_dim": self.c_dim,
        }


def _filter(taps: list[float]) -> torch.Tensor:
    """Normalised 2-D FIR filter (always a small real CPU tensor, even while building on meta)."""
    f = torch.as_tensor(taps, dtype=torch.float32, device="cpu")
    f = f[:, None] * f[None, :] if f.ndim == 1 else f
    return f / f.sum()


@dataclass
class StyleLayer:
    """One modulated layer: which w+ entry it reads and the affine that turns w into its styles."""

    name: str  # native module path ("synthesis.b8.conv0", "convs.0")
    index: int  # w+ index read
    resolution: int
    kind: str  # "conv", "conv_up" or "torgb"
    affine: nn.Module  # has .weight (in_channels, w_dim), .bias, .weight_gain, .bias_gain
    is_first_torgb: bool = False


class Dense(nn.Module):
    """Fully connected layer with equalised learning rate (NVIDIA FullyConnectedLayer / rosinality EqualLinear)."""

    def __init__(self, fin: int, fout: int, *, lr: float = 1.0, act: str = "linear", bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fout, fin))
        self.bias = nn.Parameter(torch.full([fout], float(bias_init)))
        self.weight_gain = lr / math.sqrt(fin)
        self.bias_gain = lr
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dense(x, self.weight, self.bias, self.weight_gain, self.bias_gain, self.act)

    def effective_weight(self) -> torch.Tensor:
        """W·gain, (out, in): the matrix with ``features = W @ x + b``."""
        return self.weight * self.weight_gain


def _wide(t: torch.Tensor) -> torch.Tensor:
    """Images accumulate in float32 (or wider) whatever the synthesis precision."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _noise(
    const: torch.Tensor | None, strength: torch.Tensor, x: torch.Tensor, mode: str, given: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Per-pixel noise times its strength: ``given`` per-sample maps (N, 1, H, W) when passed (projection
    optimises them), else the stored const map, fresh random maps, or none."""
    if given is not None:
        return given.to(x.dtype) * strength.to(x.dtype)
    if mode == "none" or const is None:
        return None
    if mode == "random":
        n = torch.randn(x.shape[0], 1, *const.shape[-2:], device=x.device, dtype=x.dtype)
    else:
        n = const.to(x.dtype).reshape(1, 1, *const.shape[-2:])
    return n * strength.to(x.dtype)


# ======================================================================== NVIDIA layout


class _SynthesisLayer(nn.Module):
    def __init__(self, cin: int, cout: int, w_dim: int, res: int, cfg: SG2Config, up: int = 1):
        super().__init__()
        self.affine = Dense(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.empty(cout, cin, 3, 3))
        if cfg.use_noise:
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer("resample_filter", _filter(cfg.resample_filter))
        if cfg.use_noise:
            self.register_buffer("noise_const", torch.empty(res, res))
        self.up, self.conv_clamp, self.use_noise = up, cfg.conv_clamp, cfg.use_noise

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str, fused: bool | None, gain=1.0, given=None):
        noise = _noise(self.noise_const, self.noise_strength, x, noise_mode, given) if self.use_noise else None
        x = modulated_conv2d(
            x, self.weight, self.affine(w), up=self.up, padding=1, resample_filter=self.resample_filter,
            noise=noise, fused=fused,
        )  # fmt: skip
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias, "lrelu", gain=SQRT2 * gain, clamp=clamp, inplace=True)


class _ToRGB(nn.Module):
    def __init__(self, cin: int, cout: int, w_dim: int, cfg: SG2Config):
        super().__init__()
        self.affine = Dense(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.empty(cout, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.weight_gain = 1 / math.sqrt(cin)
        self.conv_clamp = cfg.conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool | None) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias, "linear", clamp=self.conv_clamp, inplace=True)


class _SkipConv(nn.Module):
    """Resnet shortcut: 2x FIR upsampling then a 1x1 convolution without bias (NVIDIA Conv2dLayer)."""

    def __init__(self, cin: int, cout: int, cfg: SG2Config):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, 1, 1))
        self.register_buffer("resample_filter", _filter(cfg.resample_filter))
        self.weight_gain = 1 / math.sqrt(cin)

    def forward(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        x = upsample2d(x, self.resample_filter)
        x = nn.functional.conv2d(x, (self.weight * self.weight_gain).to(x.dtype))
        return x * gain if gain != 1 else x


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, res: int, cfg: SG2Config):
        super().__init__()
        is_last = res == cfg.resolution
        self.res, self.cin, self.arch = res, cin, cfg.architecture
        self.register_buffer("resample_filter", _filter(cfg.resample_filter))
        if cin == 0:
            self.const = nn.Parameter(torch.empty(cout, res, res))
        else:
            self.conv0 = _SynthesisLayer(cin, cout, cfg.w_dim, res, cfg, up=2)
        self.conv1 = _SynthesisLayer(cout, cout, cfg.w_dim, res, cfg)
        self.has_torgb = is_last or cfg.architecture == "skip"
        if self.has_torgb:
            self.torgb = _ToRGB(cout, cfg.img_channels, cfg.w_dim, cfg)
        if cin != 0 and cfg.architecture == "resnet":
            self.skip = _SkipConv(cin, cout, cfg)
        self.num_conv = 1 if cin == 0 else 2


class NvidiaNet(nn.Module):
    """stylegan2-ada-pytorch ``Generator`` layout (keys ``synthesis.b{res}.*``, ``mapping.fc{i}.*``)."""

    def __init__(self, cfg: SG2Config):
        super().__init__()
        self.cfg = cfg
        self.synthesis = nn.Module()
        for res in cfg.resolutions:
            cin = 0 if res == 4 else cfg.channels[res // 2]
            self.synthesis.add_module(f"b{res}", _Block(cin, cfg.channels[res], res, cfg))
        self.mapping = nn.Module()
        self.mapping.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        if cfg.c_dim:
            self.mapping.embed = Dense(cfg.c_dim, cfg.embed_features)
        dims = cfg.mapping_dims
        for i in range(len(dims) - 1):
            self.mapping.add_module(f"fc{i}", Dense(dims[i], dims[i + 1], lr=cfg.mapping_lr, act=cfg.mapping_act))
        self.blocks = [getattr(self.synthesis, f"b{r}") for r in cfg.resolutions]
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def mapping_forward(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = pixel_norm(z.float())
        if self.cfg.c_dim:
            x = torch.cat([x, pixel_norm(self.mapping.embed(c.float()))], dim=1)
        for i in range(len(self.cfg.mapping_dims) - 1):
            x = getattr(self.mapping, f"fc{i}")(x)
        return x

    def style_layers(self) -> list[StyleLayer]:
        out, idx = [], 0
        for b in self.blocks:
            if b.cin:
                out.append(StyleLayer(f"synthesis.b{b.res}.conv0", idx, b.res, "conv_up", b.conv0.affine))
            out.append(StyleLayer(f"synthesis.b{b.res}.conv1", idx + b.num_conv - 1, b.res, "conv", b.conv1.affine))
            if b.has_torgb:
                first = not any(s.kind == "torgb" for s in out)
                out.append(
                    StyleLayer(f"synthesis.b{b.res}.torgb", idx + b.num_conv, b.res, "torgb", b.torgb.affine, first)
                )
            idx += b.num_conv
        return out

    def noise_buffers(self) -> list[torch.Tensor]:
        """The stored const noise maps (H, W) in synthesis order (empty without noise inputs)."""
        if not self.cfg.use_noise:
            return []
        return [c.noise_const for b in self.blocks for c in ([b.conv1] if b.cin == 0 else [b.conv0, b.conv1])]

    def run(
        self, ws: torch.Tensor, noise_mode: str, fused: bool | None, memory_format=None, noises=None
    ) -> Iterator[tuple[str, Any]]:
        x = img = None
        idx = 0
        given = iter(noises) if noises is not None else None

        def nxt():
            return next(given) if given is not None else None

        for b in self.blocks:
            name = f"synthesis.b{b.res}"
            if b.cin == 0:
                x = b.const.to(ws.dtype)[None].expand(ws.shape[0], -1, -1, -1)
                if memory_format is not None:
                    x = x.contiguous(memory_format=memory_format)
                x = b.conv1(x, ws[:, idx], noise_mode, fused, given=nxt())
                yield f"{name}.conv1", x
            elif b.arch == "resnet":
                y = b.skip(x, gain=math.sqrt(0.5))
                x = b.conv0(x, ws[:, idx], noise_mode, fused, given=nxt())
                yield f"{name}.conv0", x
                x = b.conv1(x, ws[:, idx + 1], noise_mode, fused, gain=math.sqrt(0.5), given=nxt())
                x = y + x
                yield f"{name}.conv1", x
            else:
                x = b.conv0(x, ws[:, idx], noise_mode, fused, given=nxt())
                yield f"{name}.conv0", x
                x = b.conv1(x, ws[:, idx + 1], noise_mode, fused, given=nxt())
                yield f"{name}.conv1", x
            if img is not None:
                img = upsample2d(img, b.resample_filter.to(img.dtype))
            if b.has_torgb:
                y = _wide(b.torgb(x, ws[:, idx + b.num_conv], fused))
                img = y if img is None else img + y
            idx += b.num_conv
        yield "image", img


# ======================================================================== rosinality layout


class _RosModConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, w_dim: int, cfg: SG2Config, demodulate=True, upsample=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, cout, cin, k, k))
        if upsample:
            self.blur = nn.Module()
            self.blur.register_buffer("kernel", _filter(cfg.resample_filter) * 4)
        self.modulation = Dense(w_dim, cin, bias_init=1.0)
        self.scale = 1 / math.sqrt(cin * k * k)
        self.demodulate, self.upsample, self.padding = demodulate, upsample, k // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None, fused: bool | None) -> torch.Tensor:
        return modulated_conv2d(
            x, self.weight[0] * self.scale, self.modulation(w), demodulate=self.demodulate,
            up=2 if self.upsample else 1, padding=0 if self.upsample else self.padding,
            resample_filter=self.blur.kernel / 4 if self.upsample else None, noise=noise, fused=fused,
        )  # fmt: skip


class _RosStyledConv(nn.Module):
    def __init__(self, cin: int, cout: int, w_dim: int, cfg: SG2Config, upsample: bool = False):
        super().__init__()
        self.conv = _RosModConv(cin, cout, 3, w_dim, cfg, upsample=upsample)
        self.noise = nn.Module()
        self.noise.weight = nn.Parameter(torch.zeros(1))
        self.activate = nn.Module()
        self.activate.bias = nn.Parameter(torch.zeros(cout))
        self.conv_clamp = cfg.conv_clamp

    def forward(self, x, w, noise_buf, noise_mode: str, fused: bool | None, given=None) -> torch.Tensor:
        noise = _noise(noise_buf, self.noise.weight, x, noise_mode, given)
        x = self.conv(x, w, noise, fused)
        return bias_act(x, self.activate.bias, "lrelu", gain=SQRT2, clamp=self.conv_clamp, inplace=True)


class _RosToRGB(nn.Module):
    def __init__(self, cin: int, w_dim: int, cfg: SG2Config, upsample: bool = True):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, cfg.img_channels, 1, 1))
        if upsample:
            self.upsample = nn.Module()
            self.upsample.register_buffer("kernel", _filter(cfg.resample_filter) * 4)
        self.conv = _RosModConv(cin, cfg.img_channels, 1, w_dim, cfg, demodulate=False)

    def forward(self, x, w, skip, fused: bool | None) -> torch.Tensor:
        out = _wide(self.conv(x, w, None, fused) + self.bias.to(x.dtype))
        if skip is not None:
            out = out + upsample2d(skip, self.upsample.kernel.to(skip.dtype) / 4)
        return out


class RosinalityNet(nn.Module):
    """rosinality/stylegan2-pytorch ``Generator`` layout (keys ``style.*``, ``convs.*``, ``to_rgbs.*``)."""

    def __init__(self, cfg: SG2Config):
        super().__init__()
        self.cfg = cfg
        dims, ch = cfg.mapping_dims, cfg.channels
        self.style = nn.Sequential(
            nn.Identity(),
            *[Dense(dims[i], dims[i + 1], lr=cfg.mapping_lr, act=cfg.mapping_act) for i in range(len(dims) - 1)],
        )
        self.input = nn.Module()
        self.input.input = nn.Parameter(torch.empty(1, ch[4], 4, 4))
        self.conv1 = _RosStyledConv(ch[4], ch[4], cfg.w_dim, cfg)
        self.to_rgb1 = _RosToRGB(ch[4], cfg.w_dim, cfg, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.upsamples = nn.ModuleList()
        self.noises = nn.Module()
        for res in cfg.resolutions[1:]:
            self.convs.append(_RosStyledConv(ch[res // 2], ch[res], cfg.w_dim, cfg, upsample=True))
            self.convs.append(_RosStyledConv(ch[res], ch[res], cfg.w_dim, cfg))
            self.to_rgbs.append(_RosToRGB(ch[res], cfg.w_dim, cfg))
        self.noise_sizes = [4] + [r for r in cfg.resolutions[1:] for _ in range(2)]
        for i, r in enumerate(self.noise_sizes):
            self.noises.register_buffer(f"noise_{i}", torch.empty(1, 1, r, r))
        self.register_buffer("latent_avg", torch.zeros(cfg.w_dim), persistent=False)
        self.num_ws = len(cfg.resolutions) * 2

    @property
    def w_avg(self) -> torch.Tensor:
        return self.latent_avg

    def mapping_forward(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = pixel_norm(z.float())
        for layer in list(self.style)[1:]:
            x = layer(x)
        return x

    def style_layers(self) -> list[StyleLayer]:
        out = [
            StyleLayer("conv1", 0, 4, "conv", self.conv1.conv.modulation),
            StyleLayer("to_rgb1", 1, 4, "torgb", self.to_rgb1.conv.modulation, True),
        ]
        for j, conv in enumerate(self.convs):
            res = self.cfg.resolutions[1 + j // 2]
            out.append(StyleLayer(f"convs.{j}", 1 + j, res, "conv_up" if j % 2 == 0 else "conv", conv.conv.modulation))
            if j % 2 == 1:
                out.append(StyleLayer(f"to_rgbs.{j // 2}", 2 + j, res, "torgb", self.to_rgbs[j // 2].conv.modulation))
        return out

    def noise_buffers(self) -> list[torch.Tensor]:
        """The stored const noise maps (H, W) in synthesis order."""
        return [getattr(self.noises, f"noise_{i}")[0, 0] for i in range(len(self.noise_sizes))]

    def run(
        self, ws: torch.Tensor, noise_mode: str, fused: bool | None, memory_format=None, noises=None
    ) -> Iterator[tuple[str, Any]]:
        stored = [getattr(self.noises, f"noise_{i}") for i in range(len(self.noise_sizes))]
        given = list(noises) if noises is not None else [None] * len(stored)
        x = self.input.input.to(ws.dtype).expand(ws.shape[0], -1, -1, -1)
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)
        x = self.conv1(x, ws[:, 0], stored[0], noise_mode, fused, given[0])
        yield "conv1", x
        img = self.to_rgb1(x, ws[:, 1], None, fused)
        for j, conv in enumerate(self.convs):
            x = conv(x, ws[:, 1 + j], stored[1 + j], noise_mode, fused, given[1 + j])
            yield f"convs.{j}", x
            if j % 2 == 1:
                img = self.to_rgbs[j // 2](x, ws[:, 2 + j], img, fused)
        yield "image", img


def build(cfg: SG2Config) -> NvidiaNet | RosinalityNet:
    """Construct the net for ``cfg`` (use ``with torch.device('meta')`` for a shape-only model)."""
    return NvidiaNet(cfg) if cfg.layout == "nvidia" else RosinalityNet(cfg)
