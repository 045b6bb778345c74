"""StyleGAN2 adapter: rosinality ``.pt`` and NVIDIA ``.pkl`` checkpoints, one implementation.

The architecture comes from the checkpoint alone (shapes, plus NVIDIA's recorded constructor
kwargs), never from the file name. Weights are attached with ``load_state_dict(assign=True)`` to
a network built on the meta device, so a memory-mapped ``.pt`` stays on disk until a tensor is
actually used: ``dirfind sefa`` reads only the style-affine weights.

Layer indices (``layers``) are w+ indices. For a generator of resolution R there are
``num_ws = 2·log2(R) - 2`` of them: index 0 is the 4x4 convolution, index ``2k-1`` / ``2k``
(k = 1..log2(R)-2) the up-sampling and second convolution at ``4·2^k`` px, and the last index
the final to-RGB. Each odd index is also read by the to-RGB of the previous resolution. For
1024 px: 0 = 4x4, 1-2 = 8x8, 3-4 = 16x16, 5-6 = 32x32, 7-8 = 64x64, ..., 15-16 = 1024x1024,
17 = final to-RGB. See docs/stylegan2.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from ..errors import BadInputError, UnsupportedError
from ..util.progress import log
from . import register
from ._style import StyleLatents
from .base import Generator, LatentReader
from .loading.checkpoint import Checkpoint
from .loading.nvidia_pickle import NetNode, generator_from_pickle
from .nets import measured
from .nets.stylegan2 import NvidiaNet, RosinalityNet, SG2Config, build
from .nets.stylegan2_config import config_from_nvidia, config_from_rosinality

#: Samples and seed for the average w when a rosinality file carries no ``latent_avg``.
W_AVG_SAMPLES, W_AVG_SEED = 4096, 0


# ---------------------------------------------------------------------- recognising files


def _is_rosinality_sd(sd: Any) -> bool:
    return isinstance(sd, dict) and "style.1.weight" in sd and "conv1.conv.weight" in sd


def _rosinality_parts(obj: Any) -> tuple[dict | None, Any, Any]:
    """(generator state dict, latent_avg, args) of a rosinality file, or (None, ...)."""
    if not isinstance(obj, dict):
        return None, None, None
    for key in ("g_ema", "g"):
        sd = obj.get(key)
        if isinstance(sd, dict):
            sd = _strip_module(sd)
            if _is_rosinality_sd(sd):
                return sd, obj.get("latent_avg"), obj.get("args")
    sd = _strip_module(obj)
    return (sd, None, None) if _is_rosinality_sd(sd) else (None, None, None)


def _strip_module(sd: dict) -> dict:
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _rosinality_disc_only(obj: Any) -> bool:
    d = obj.get("d") if isinstance(obj, dict) else None
    return (
        isinstance(d, dict)
        and not any(k in obj for k in ("g", "g_ema"))
        and any(str(k).startswith("convs.") for k in d)
    )


def _nvidia_node(obj: Any) -> NetNode | None:
    for key in ("G_ema", "G"):
        node = obj.get(key) if isinstance(obj, dict) else None
        if isinstance(node, NetNode):
            return node
    return None


def _is_sg2_node(node: NetNode) -> bool:
    return node.get("synthesis.b4") is not None and node.get("mapping") is not None


# ---------------------------------------------------------------------- the adapter


@register
class StyleGAN2Generator(StyleLatents, Generator):
    """StyleGAN2 (config E/F and relatives) in rosinality or NVIDIA layout; spaces z, w, w+."""

    family = "stylegan2"
    spaces = ("z", "w", "w+")
    has_noise = True
    #: measured on 2 CPU cores with a 32 MB L3 (docs/benchmarks-stylegan2.md): a 256 px batch of 32
    #: renders 1.9x faster in passes of 2 images (~72 MB estimated each) than in one pass
    cpu_pass_bytes = 160 * 2**20

    def __init__(self, net: NvidiaNet | RosinalityNet, cfg: SG2Config):
        super().__init__(
            z_dim=cfg.z_dim,
            w_dim=cfg.w_dim,
            resolution=cfg.resolution,
            channels=cfg.img_channels,
            num_ws=net.num_ws,
            num_classes=cfg.c_dim,
        )
        self.cfg = cfg
        self.net = net
        self.layout = cfg.layout
        self._styles = net.style_layers()
        self._acts = [s.name for s in self._styles if s.kind != "torgb"]
        self.pca_activation = self._acts[0]
        self._w_avg_known = cfg.layout == "nvidia"

    # ------------------------------------------------------------------ loading
    @classmethod
    def accepts(cls, ck: Checkpoint) -> bool:
        if ck.kind == "torch":
            return _rosinality_parts(ck.obj)[0] is not None or _rosinality_disc_only(ck.obj)
        if ck.kind.startswith("pickle:"):
            node = _nvidia_node(ck.obj)
            return node is None and isinstance(ck.obj, dict) or (node is not None and _is_sg2_node(node))
        return False

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, entry: Any = None) -> StyleGAN2Generator:
        name = ck.path.name
        if ck.kind == "torch":
            sd, latent_avg, args = _rosinality_parts(ck.obj)
            if sd is None:
                if _rosinality_disc_only(ck.obj):
                    raise BadInputError(f"{name} holds only a discriminator ('d'); no generator to load")
                raise BadInputError(f"{name} is not a rosinality StyleGAN2 checkpoint (no g_ema/g generator)")
            return cls._from_rosinality(sd, latent_avg, args, name)
        if ck.kind.startswith("pickle:"):
            node = generator_from_pickle(ck.obj, name)
            if not _is_sg2_node(node):
                raise UnsupportedError(f"{name}: the generator is not a StyleGAN2 network (no synthesis.b4 block)")
            return cls._from_nvidia(node, name)
        raise BadInputError(f"{name} is not a StyleGAN2 checkpoint")

    @classmethod
    def _from_rosinality(cls, sd: dict, latent_avg: Any, args: Any, name: str) -> StyleGAN2Generator:
        sd = dict(sd)
        sd.pop("_metadata", None)
        try:
            cfg = config_from_rosinality(sd, lr_mlp=float(getattr(args, "lr_mlp", 0.01) or 0.01))
        except BadInputError as e:
            raise BadInputError(f"{name}: not a rosinality StyleGAN2 generator ({e})") from None
        missing_noise = [k for k in _noise_keys(cfg) if k not in sd]
        if missing_noise:  # older published files predate the noise buffers
            gen = torch.Generator().manual_seed(0)
            with torch.device("meta"):
                shapes = {k: v.shape for k, v in build(cfg).state_dict().items() if k in missing_noise}
            for k in missing_noise:
                sd[k] = torch.randn(shapes[k], generator=gen)
            log(f"{name}: no stored noise maps; const noise drawn with seed 0")
        net = _attach(cfg, sd, name)
        g = cls(net, cfg)
        if isinstance(latent_avg, torch.Tensor) and latent_avg.numel() == cfg.w_dim:
            net.latent_avg = latent_avg.detach().reshape(-1).float().clone()
            g._w_avg_known = True
        else:
            net.latent_avg = torch.zeros(cfg.w_dim)
        return g

    @classmethod
    def _from_nvidia(cls, node: NetNode, name: str) -> StyleGAN2Generator:
        sd = node.state_dict()
        try:
            cfg = config_from_nvidia(sd, node.init_kwargs)
        except BadInputError as e:
            raise BadInputError(f"{name}: not an NVIDIA StyleGAN2 generator ({e})") from None
        except UnsupportedError as e:
            raise UnsupportedError(f"{name}: {e}") from None
        return cls(_attach(cfg, sd, name), cfg)

    # ------------------------------------------------------------------ precision
    def set_precision(self, dtype: torch.dtype = torch.float32, channels_last: bool = False) -> StyleGAN2Generator:
        """Run the whole synthesis network in ``dtype`` (mapping and latents stay float32),
        optionally with channels-last activations (a CUDA speed-up)."""
        super().set_precision(dtype, channels_last)
        for name, m in self.net.named_children():
            if name not in ("mapping", "style"):
                m.to(dtype)
        return self

    # ------------------------------------------------------------------ latents
    def w_avg(self) -> torch.Tensor:
        """The truncation centre: the stored ``w_avg``/``latent_avg``, else the mean of 4096 mapped
        latents drawn with a fixed seed (rosinality's ``mean_latent``, made deterministic)."""
        if not self._w_avg_known:
            z = torch.randn(W_AVG_SAMPLES, self.z_dim, generator=torch.Generator().manual_seed(W_AVG_SEED))
            with torch.no_grad():
                avg = self.net.mapping_forward(z.to(self.device), self._labels(W_AVG_SAMPLES, self.device))
            self.net.latent_avg = avg.mean(0)
            self._w_avg_known = True
        return self.net.w_avg.float()

    def _run(self, latent: torch.Tensor, space: str) -> Iterator[tuple[str, Any]]:
        ws = self.per_layer_latents(latent, space).to(self.compute_dtype)
        fused = self._fused(len(ws))
        return self.net.run(ws, self.settings.noise_mode, fused, self._layout(ws, fused), self.given_noise)

    def _layout(self, ws: torch.Tensor, fused: bool | None) -> torch.memory_format | None:
        """The activations' memory format: the one set (CUDA: channels-last), else by the fixed
        CPU rule (docs/benchmarks-stylegan2.md): channels-last for batches rendered without
        derivatives (oneDNN's convolutions then need no layout copies; 14% faster at 256 px,
        batch 32), the default layout for one image (the fused grouped convolution)."""
        if self.memory_format is not None or fused is True:
            return self.memory_format
        batched = ws.device.type == "cpu" and len(ws) > 1 and measured.measurable(ws)
        return torch.channels_last if batched else None

    def image_bytes(self) -> int | None:
        """About 4.5 times the largest feature map (c·r² values; measured on CPU: 4.3x at 256 px,
        3.8x at 1024 px). None with fresh random noise, whose draws a split would change."""
        if self.settings.noise_mode == "random" and self.given_noise is None:
            return None
        elem = torch.finfo(self.compute_dtype).bits // 8
        return int(4.5 * max(c * r * r for r, c in self.cfg.channels.items()) * elem)

    def noise_maps(self) -> list[torch.Tensor]:
        """The stored const noise maps (H, W), in synthesis order (what ``noise_mode="const"`` adds)."""
        return [b.float() for b in self.net.noise_buffers()]

    # ------------------------------------------------------------------ what methods read
    def latent_readers(self, layers: Sequence[int] | None = None) -> list[LatentReader]:
        """Style affines (in_channels, w_dim), ``styles = A @ w + b``, of the selected w+ indices
        (default: all): each convolution's, and the to-RGBs' (``first_torgb``: the 4x4 one).
        SeFa's ``genforce`` keeps one per index (the conv, and the final to-RGB for the last
        index); ``rosinality`` every conv plus the first to-RGB."""
        kinds = {s.name: "first_torgb" if s.is_first_torgb else s.kind for s in self._styles}
        return self._readers(layers, [(s.name, s.index, s.affine, kinds[s.name]) for s in self._styles])

    def layer_names(self) -> list[str]:
        out = []
        for i in range(self.num_ws):
            parts = [
                f"{s.resolution}x{s.resolution} {s.kind.replace('_', ' ')} ({s.name})"
                for s in self._styles
                if s.index == i
            ]
            out.append(" + ".join(parts))
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.cfg.describe()}


def _noise_keys(cfg: SG2Config) -> list[str]:
    n = 1 + 2 * (len(cfg.resolutions) - 1)
    return [f"noises.noise_{i}" for i in range(n)]


def _attach(cfg: SG2Config, sd: dict[str, torch.Tensor], name: str) -> NvidiaNet | RosinalityNet:
    return attach_weights(lambda: build(cfg), sd, name, f"{cfg.layout} StyleGAN2")


def attach_weights(make: Callable[[], torch.nn.Module], sd: dict[str, torch.Tensor], name: str, what: str) -> Any:
    """Build ``make()`` on the meta device and adopt the checkpoint's tensors without copying them."""
    with torch.device("meta"):
        net = make()
    sd = {k: (v.float() if v.is_floating_point() and v.dtype != torch.float32 else v) for k, v in sd.items()}
    try:
        net.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:
        raise BadInputError(f"{name}: weights do not match a {what} generator ({_load_error(e)})") from None
    for mod in net.modules():  # buffers outside the state dict (non-persistent) start on meta
        for k, b in list(mod._buffers.items()):
            if b is not None and b.is_meta:
                mod._buffers[k] = torch.zeros(b.shape, dtype=b.dtype)
    return net


def _load_error(e: RuntimeError) -> str:
    text = " ".join(str(e).split())
    for marker in ("Missing key(s)", "Unexpected key(s)", "size mismatch"):
        if marker in text:
            text = text[text.index(marker) :]
            break
    return text[:200] + ("..." if len(text) > 200 else "")
