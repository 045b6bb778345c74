"""StyleGAN2 configurations read off checkpoints: shapes of a rosinality or NVIDIA state dict,
plus NVIDIA's recorded constructor kwargs for what shapes cannot tell (mapping learning rate,
``conv_clamp``, activation)."""

from __future__ import annotations

import math
import re
from typing import Any

from ...errors import BadInputError, UnsupportedError
from ..base import check_sizes
from .stylegan2 import ARCHITECTURES, SG2Config


def _checked(cfg: SG2Config) -> SG2Config:
    """``cfg`` once its sizes are plausible (noise maps and the average w are allocated from them)."""
    check_sizes(
        resolution=cfg.resolution,
        z_dim=cfg.z_dim,
        w_dim=cfg.w_dim,
        channels=list(cfg.channels.values()),
        mapping_dims=list(cfg.mapping_dims),
        img_channels=cfg.img_channels,
        num_classes=cfg.c_dim,
    )
    return cfg


def _shape(sd: dict[str, Any], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise BadInputError(f"missing key {key!r}")
    return tuple(sd[key].shape)


def config_from_rosinality(sd: dict[str, Any], lr_mlp: float = 0.01) -> SG2Config:
    """Infer the rosinality configuration from the state-dict shapes alone."""
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    if n_mlp == 0:
        raise BadInputError("missing key 'style.1.weight'")
    dims = [_shape(sd, "style.1.weight")[1]] + [_shape(sd, f"style.{i}.weight")[0] for i in range(1, n_mlp + 1)]
    w_dim = dims[-1]
    n_rgb = 0
    while f"to_rgbs.{n_rgb}.conv.weight" in sd:
        n_rgb += 1
    resolution = 4 * 2**n_rgb
    channels = {4: _shape(sd, "conv1.conv.weight")[1]}
    for j in range(n_rgb):
        channels[8 * 2**j] = _shape(sd, f"convs.{2 * j}.conv.weight")[1]
    kernel_key = "convs.0.conv.blur.kernel" if n_rgb else None
    taps = [1.0, 3.0, 3.0, 1.0]
    if kernel_key and kernel_key in sd and sd[kernel_key].device.type != "meta":
        k = sd[kernel_key].float()
        taps = (k / k.sum()).tolist()
    return _checked(
        SG2Config(
            layout="rosinality",
            resolution=resolution,
            z_dim=dims[0],
            w_dim=w_dim,
            channels=channels,
            mapping_dims=list(dims),
            mapping_lr=lr_mlp,
            img_channels=_shape(sd, "to_rgb1.conv.weight")[1],
            resample_filter=taps,
        )
    )


def _nv_synthesis_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    """Synthesis kwargs from either spelling: nested ``synthesis_kwargs`` (stylegan2-ada-pytorch) or
    flattened into the Generator's kwargs (stylegan3 repo's ``networks_stylegan2``)."""
    top = {k: v for k, v in kw.items() if k not in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    top.pop("mapping_kwargs", None)
    nested = top.pop("synthesis_kwargs", None) or {}
    return {**top, **nested}


def config_from_nvidia(sd: dict[str, Any], init_kwargs: dict[str, Any] | None = None) -> SG2Config:
    """Infer the NVIDIA configuration from shapes, plus init kwargs for what shapes cannot tell."""
    kw = dict(init_kwargs or {})
    syn = _nv_synthesis_kwargs(kw)
    mkw = dict(kw.get("mapping_kwargs") or {})
    res_keys = sorted({int(m[1]) for k in sd if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    if not res_keys or res_keys[0] != 4:
        raise BadInputError("missing key 'synthesis.b4.const'")
    resolution = res_keys[-1]
    if res_keys != [2**i for i in range(2, int(math.log2(resolution)) + 1)]:
        raise BadInputError(f"synthesis blocks {res_keys} are not a 4..{resolution} power-of-two ladder")
    channels = {r: _shape(sd, f"synthesis.b{r}.conv1.weight")[0] for r in res_keys}
    n_fc = 0
    while f"mapping.fc{n_fc}.weight" in sd:
        n_fc += 1
    if n_fc == 0:
        raise BadInputError("missing key 'mapping.fc0.weight'")
    dims = [_shape(sd, "mapping.fc0.weight")[1]] + [_shape(sd, f"mapping.fc{i}.weight")[0] for i in range(n_fc)]
    c_dim = _shape(sd, "mapping.embed.weight")[1] if "mapping.embed.weight" in sd else 0
    embed = _shape(sd, "mapping.embed.weight")[0] if c_dim else 0
    z_dim = dims[0] - embed
    has_skip = any(k.startswith(f"synthesis.b{resolution}.skip.") for k in sd) if resolution > 4 else False
    has_mid_rgb = any(f"synthesis.b{r}.torgb.weight" in sd for r in res_keys[:-1])
    arch = "resnet" if has_skip else "skip" if (has_mid_rgb or resolution == 4) else "orig"
    declared = syn.get("architecture", arch)
    if declared not in ARCHITECTURES:
        raise UnsupportedError(f"unsupported synthesis architecture {declared!r}")
    for name, act in (("synthesis", syn.get("activation", "lrelu")), ("mapping", mkw.get("activation", "lrelu"))):
        if act not in ("lrelu",) and not (name == "mapping" and act == "linear"):
            raise UnsupportedError(f"unsupported {name} activation {act!r} (only lrelu)")
    if kw.get("img_resolution", resolution) != resolution:
        raise BadInputError(f"init kwargs say {kw['img_resolution']} px but the weights are {resolution} px")
    taps = syn.get("resample_filter") or [1.0, 3.0, 3.0, 1.0]
    clamp = syn.get("conv_clamp")
    return _checked(
        SG2Config(
            layout="nvidia",
            resolution=resolution,
            z_dim=z_dim,
            w_dim=dims[-1],
            channels=channels,
            mapping_dims=dims,
            c_dim=c_dim,
            embed_features=embed,
            mapping_lr=float(mkw.get("lr_multiplier", 0.01)),
            mapping_act=str(mkw.get("activation", "lrelu")),
            img_channels=_shape(sd, f"synthesis.b{resolution}.torgb.weight")[0],
            architecture=arch,
            conv_clamp=None if clamp is None else float(clamp),
            use_noise="synthesis.b4.conv1.noise_const" in sd,
            num_fp16_res=int(syn.get("num_fp16_res", 0) or 0),
            resample_filter=[float(t) for t in taps],
        )
    )


def config_from_nvidia_kwargs(kw: dict[str, Any]) -> SG2Config:
    """Configuration from constructor kwargs alone (networks.py defaults for the rest)."""
    syn = _nv_synthesis_kwargs(kw)
    mkw = dict(kw.get("mapping_kwargs") or {})
    res = int(kw["img_resolution"])
    base, cmax = int(syn.get("channel_base", 32768)), int(syn.get("channel_max", 512))
    resolutions = [2**i for i in range(2, int(math.log2(res)) + 1)]
    channels = {r: min(base // r, cmax) for r in resolutions}
    z, c, w = int(kw["z_dim"]), int(kw.get("c_dim", 0)), int(kw["w_dim"])
    embed = (mkw.get("embed_features") or w) if c else 0
    layer = mkw.get("layer_features") or w
    n = int(mkw.get("num_layers", 8))
    dims = [z + embed] + [layer] * (n - 1) + [w]
    clamp = syn.get("conv_clamp")
    return SG2Config(
        layout="nvidia",
        resolution=res,
        z_dim=z,
        w_dim=w,
        channels=channels,
        mapping_dims=dims,
        c_dim=c,
        embed_features=embed,
        mapping_lr=float(mkw.get("lr_multiplier", 0.01)),
        img_channels=int(kw.get("img_channels", 3)),
        architecture=str(syn.get("architecture", "skip")),
        conv_clamp=None if clamp is None else float(clamp),
        use_noise=bool(syn.get("use_noise", True)),
        num_fp16_res=int(syn.get("num_fp16_res", 0) or 0),
        resample_filter=[float(t) for t in syn.get("resample_filter") or [1, 3, 3, 1]],
    )
