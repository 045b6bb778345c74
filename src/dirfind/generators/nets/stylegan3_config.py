"""StyleGAN3 configurations: the layer table (sizes, sampling rates, filters, paddings) from the
attributes NVIDIA pickles alongside the weights, or from the reference's formulas for a bare state
dict, checked against the tensor shapes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...errors import BadInputError, UnsupportedError
from ..base import check_sizes

_LAYER_RE = re.compile(r"^synthesis\.L(\d+)_(\d+)_(\d+)\.weight$")

#: SynthesisNetwork / SynthesisLayer defaults of networks_stylegan3.py (train.py overrides some).
SYNTHESIS_DEFAULTS: dict[str, Any] = {
    "channel_base": 32768,
    "channel_max": 512,
    "num_layers": 14,
    "num_critical": 2,
    "first_cutoff": 2,
    "first_stopband": 2**2.1,
    "last_stopband_rel": 2**0.3,
    "margin_size": 10,
    "output_scale": 0.25,
    "num_fp16_res": 4,
    "conv_kernel": 3,
    "filter_size": 6,
    "lrelu_upsampling": 2,
    "use_radial_filters": False,
    "conv_clamp": 256,
}


@dataclass
class SG3Layer:
    """Geometry of one ``SynthesisLayer`` (square feature maps)."""

    name: str  # "L3_52_512"
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: float
    out_sampling_rate: float
    up: int
    down: int
    up_taps: int
    down_taps: int
    down_radial: bool
    conv_kernel: int
    padding: tuple[int, int, int, int]
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool
    conv_clamp: float | None


@dataclass
class SG3Config:
    """Everything needed to build a StyleGAN3 generator."""

    z_dim: int
    w_dim: int
    img_resolution: int
    img_channels: int
    layers: list[SG3Layer]
    input_channels: int
    input_size: int
    input_sampling_rate: float
    input_bandwidth: float
    c_dim: int = 0
    mapping_layers: int = 2
    mapping_lr: float = 0.01
    output_scale: float = 0.25
    num_fp16_res: int = 4
    source: str = "attributes"  # "attributes" (pickled geometry) or "formulas" (layer_table)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_ws(self) -> int:
        return len(self.layers) + 1  # the input layer reads ws[0]

    @property
    def mapping_dims(self) -> list[int]:
        """Input width of each mapping layer, then w_dim (z and embedded c are concatenated)."""
        return [self.z_dim + (self.w_dim if self.c_dim else 0)] + [self.w_dim] * self.mapping_layers

    @property
    def config(self) -> str:
        """Config name: R (rotation equivariant: 1x1 convs, radial filters) or T (translation)."""
        radial = any(layer.down_radial for layer in self.layers)
        return "R" if radial or self.layers[0].conv_kernel == 1 else "T"

    def describe(self) -> dict[str, Any]:
        return {
            "layout": "nvidia-stylegan3",
            "config": self.config,
            "mapping_layers": self.mapping_layers,
            "layers": [layer.name for layer in self.layers],
            "conv_kernel": self.layers[0].conv_kernel,
            "radial_filters": any(layer.down_radial for layer in self.layers),
            "conv_clamp": self.layers[0].conv_clamp,
            "fp16_layers": [layer.name for layer in self.layers if layer.use_fp16],
            "c_dim": self.c_dim,
        }


# ======================================================================== geometry


def _padding(in_size: int, out_size: int, k: int, up: int, down: int, up_taps: int, down_taps: int) -> tuple:
    total = (out_size - 1) * down + 1 - (in_size + k - 1) * up + up_taps + down_taps - 2
    lo = (total + up) // 2  # the reference's symmetric sample positions (paper, appendix C.3)
    return (lo, total - lo, lo, total - lo)


def layer_table(kw: dict[str, Any]) -> tuple[dict[str, Any], list[SG3Layer]]:
    """The reference ``SynthesisNetwork`` layer plan for constructor kwargs ``kw`` (defaults filled):
    ``(input_spec, layers)``. Pure arithmetic; the filters themselves are never designed here."""
    o = {**SYNTHESIS_DEFAULTS, **{k: v for k, v in kw.items() if v is not None or k == "conv_clamp"}}
    res, n, crit = int(o["img_resolution"]), int(o["num_layers"]), int(o["num_critical"])
    last_cutoff = res / 2
    last_stopband = last_cutoff * o["last_stopband_rel"]
    exponents = np.minimum(np.arange(n + 1) / (n - crit), 1)
    cutoffs = o["first_cutoff"] * (last_cutoff / o["first_cutoff"]) ** exponents
    stopbands = o["first_stopband"] * (last_stopband / o["first_stopband"]) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
    sizes = rates + o["margin_size"] * 2
    sizes[-2:] = res
    channels = np.rint(np.minimum((o["channel_base"] / 2) / cutoffs, o["channel_max"]))
    channels[-1] = int(o.get("img_channels", 3))
    clamp = o["conv_clamp"]
    layers = []
    for idx in range(n + 1):
        prev = max(idx - 1, 0)
        torgb, critical = idx == n, idx >= n - crit
        in_rate, out_rate = int(rates[prev]), int(rates[idx])
        tmp = max(in_rate, out_rate) * (1 if torgb else o["lrelu_upsampling"])
        up, down = int(np.rint(tmp / in_rate)), int(np.rint(tmp / out_rate))
        up_taps = o["filter_size"] * up if up > 1 and not torgb else 1
        down_taps = o["filter_size"] * down if down > 1 and not torgb else 1
        k = 1 if torgb else int(o["conv_kernel"])
        in_size, out_size = int(sizes[prev]), int(sizes[idx])
        layers.append(
            SG3Layer(
                name=f"L{idx}_{out_size}_{int(channels[idx])}",
                in_channels=int(channels[prev]),
                out_channels=int(channels[idx]),
                in_size=in_size,
                out_size=out_size,
                in_sampling_rate=float(in_rate),
                out_sampling_rate=float(out_rate),
                up=up,
                down=down,
                up_taps=int(up_taps),
                down_taps=int(down_taps),
                down_radial=bool(o["use_radial_filters"]) and not critical,
                conv_kernel=k,
                padding=_padding(in_size, out_size, k, up, down, up_taps, down_taps),
                is_torgb=torgb,
                is_critically_sampled=critical,
                use_fp16=bool(rates[idx] * 2 ** int(o["num_fp16_res"]) > res),
                conv_clamp=None if clamp is None else float(clamp),
            )
        )
    spec = {
        "channels": int(channels[0]),
        "size": int(sizes[0]),
        "sampling_rate": float(rates[0]),
        "bandwidth": float(cutoffs[0]),
    }
    return spec, layers


def _square(v: Any, what: str) -> int:
    a = np.broadcast_to(np.asarray(v), [2])
    if int(a[0]) != int(a[1]):
        raise UnsupportedError(f"non-square StyleGAN3 {what} {list(a)} is not supported")
    return int(a[0])


def _layer_from_attrs(name: str, a: dict[str, Any]) -> SG3Layer:
    """Geometry exactly as pickled on a ``SynthesisLayer`` (what the reference runs with)."""
    try:
        clamp = a.get("conv_clamp")
        return SG3Layer(
            name=name,
            in_channels=int(a["in_channels"]),
            out_channels=int(a["out_channels"]),
            in_size=_square(a["in_size"], "layer size"),
            out_size=_square(a["out_size"], "layer size"),
            in_sampling_rate=float(a["in_sampling_rate"]),
            out_sampling_rate=float(a["out_sampling_rate"]),
            up=int(a["up_factor"]),
            down=int(a["down_factor"]),
            up_taps=int(a["up_taps"]),
            down_taps=int(a["down_taps"]),
            down_radial=bool(a["down_radial"]),
            conv_kernel=int(a["conv_kernel"]),
            padding=tuple(int(p) for p in a["padding"]),
            is_torgb=bool(a["is_torgb"]),
            is_critically_sampled=bool(a["is_critically_sampled"]),
            use_fp16=bool(a["use_fp16"]),
            conv_clamp=None if clamp is None else float(clamp),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise BadInputError(f"layer {name}: missing or malformed attribute {e}") from None


def _shape(sd: dict[str, Any], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise BadInputError(f"missing key {key!r}")
    return tuple(sd[key].shape)


def _flat_kwargs(kw: dict[str, Any] | None) -> dict[str, Any]:
    kw = dict(kw or {})
    nested = kw.pop("synthesis_kwargs", None) or {}
    return {**kw, **nested}


def config_from_state_dict(
    sd: dict[str, Any],
    init_kwargs: dict[str, Any] | None = None,
    attrs: dict[str, dict[str, Any]] | None = None,
) -> SG3Config:
    """Configuration of a StyleGAN3 generator state dict.

    ``attrs`` (from an NVIDIA pickle): ``{"synthesis": {...}, "synthesis.input": {...},
    "synthesis.<layer>": {...}, "mapping.fc0": {...}}`` plain attributes; the pickled geometry is
    used as is. Without them the geometry comes from :func:`layer_table` with ``init_kwargs`` plus
    what the shapes say (resolution, channels, kernel size, radial filters). In both cases every
    tensor shape is checked against the result.
    """
    attrs = attrs or {}
    kw = _flat_kwargs(init_kwargs)
    mkw = dict(kw.get("mapping_kwargs") or {})
    found = sorted((int(m[1]), k[len("synthesis.") : -len(".weight")]) for k in sd if (m := _LAYER_RE.match(k)))
    if not found:
        raise BadInputError("missing key 'synthesis.L0_*.weight'")
    if [i for i, _ in found] != list(range(len(found))):
        raise BadInputError(f"synthesis layers {[n for _, n in found]} are not numbered L0..L{len(found) - 1}")
    names = [n for _, n in found]
    syn = attrs.get("synthesis") or {}
    inp = attrs.get("synthesis.input") or {}
    w_dim = _shape(sd, f"synthesis.{names[0]}.affine.weight")[1]
    if all(f"synthesis.{n}" in attrs for n in names) and inp:
        layers = [_layer_from_attrs(n, attrs[f"synthesis.{n}"]) for n in names]
        try:
            spec = {
                "channels": int(inp["channels"]),
                "size": _square(inp["size"], "input size"),
                "sampling_rate": float(inp["sampling_rate"]),
                "bandwidth": float(inp["bandwidth"]),
            }
        except (KeyError, TypeError, ValueError) as e:
            raise BadInputError(f"synthesis.input: missing or malformed attribute {e}") from None
        source = "attributes"
    else:
        last = names[-1].split("_")
        first_w = _shape(sd, f"synthesis.{names[0]}.weight")
        derived = {
            "img_resolution": int(last[1]),
            "img_channels": int(last[2]),
            "num_layers": len(names) - 1,
            "conv_kernel": first_w[2],
            "use_radial_filters": any(
                len(_shape(sd, f"synthesis.{n}.down_filter")) == 2 for n in names if f"synthesis.{n}.down_filter" in sd
            ),
        }
        spec, layers = layer_table({**kw, **derived})
        # channel counts are whatever the weights say (channel_base/max are not needed)
        chans = [int(n.split("_")[2]) for n in names]
        spec["channels"] = _shape(sd, f"synthesis.{names[0]}.weight")[1]
        layers = [
            replace(layer, name=n, out_channels=c, in_channels=spec["channels"] if i == 0 else chans[i - 1])
            for i, (layer, n, c) in enumerate(zip(layers, names, chans, strict=True))
        ]
        source = "formulas"
    res = int(kw.get("img_resolution") or syn.get("img_resolution") or layers[-1].out_size)
    if layers[-1].out_size != res or not layers[-1].is_torgb:
        raise BadInputError(f"the last layer {names[-1]} is not a {res} px ToRGB layer")
    for layer, n in zip(layers, names, strict=True):
        _check_layer(sd, layer, n, w_dim)
    in_w = _shape(sd, "synthesis.input.weight")
    if in_w != (spec["channels"], spec["channels"]) or layers[0].in_channels != spec["channels"]:
        raise BadInputError(f"synthesis.input.weight has shape {in_w}, expected {spec['channels']} channels")
    for key, shape in (
        ("synthesis.input.freqs", (spec["channels"], 2)),
        ("synthesis.input.phases", (spec["channels"],)),
        ("synthesis.input.transform", (3, 3)),
        ("synthesis.input.affine.weight", (4, w_dim)),
    ):
        if _shape(sd, key) != shape:
            raise BadInputError(f"{key} has shape {_shape(sd, key)}, expected {shape}")
    if layers[0].in_size != spec["size"]:
        raise BadInputError(f"input size {spec['size']} does not match {names[0]} ({layers[0].in_size})")
    # mapping network (same design as StyleGAN2's: normalised z, optional embedded c, lrelu layers)
    n_fc = 0
    while f"mapping.fc{n_fc}.weight" in sd:
        n_fc += 1
    if n_fc == 0:
        raise BadInputError("missing key 'mapping.fc0.weight'")
    if _shape(sd, f"mapping.fc{n_fc - 1}.weight")[0] != w_dim or _shape(sd, "mapping.w_avg") != (w_dim,):
        raise BadInputError(f"mapping output does not match w_dim {w_dim}")
    c_dim = _shape(sd, "mapping.embed.weight")[1] if "mapping.embed.weight" in sd else 0
    z_dim = _shape(sd, "mapping.fc0.weight")[1] - (w_dim if c_dim else 0)
    lr = mkw.get("lr_multiplier")
    if lr is None:
        lr = (attrs.get("mapping.fc0") or {}).get("bias_gain", 0.01)
    check_sizes(  # feature maps, filters and buffers are allocated from these
        z_dim=z_dim,
        w_dim=w_dim,
        num_classes=c_dim,
        resolution=[res, spec["size"], *(n for x in layers for n in (x.in_size, x.out_size))],
        channels=[spec["channels"], *(n for x in layers for n in (x.in_channels, x.out_channels))],
        filters=[n for x in layers for n in (x.up, x.down, x.up_taps or 1, x.down_taps or 1, x.conv_kernel)],
    )
    return SG3Config(
        z_dim=z_dim,
        w_dim=w_dim,
        img_resolution=res,
        img_channels=layers[-1].out_channels,
        layers=layers,
        input_channels=spec["channels"],
        input_size=spec["size"],
        input_sampling_rate=spec["sampling_rate"],
        input_bandwidth=spec["bandwidth"],
        c_dim=c_dim,
        mapping_layers=n_fc,
        mapping_lr=float(lr),
        output_scale=float(syn.get("output_scale", kw.get("output_scale", SYNTHESIS_DEFAULTS["output_scale"]))),
        num_fp16_res=int(syn.get("num_fp16_res", kw.get("num_fp16_res", SYNTHESIS_DEFAULTS["num_fp16_res"]))),
        source=source,
    )


def _check_layer(sd: dict[str, Any], layer: SG3Layer, name: str, w_dim: int) -> None:
    p = f"synthesis.{name}"
    if name != layer.name:
        raise BadInputError(f"layer {name} does not match its geometry ({layer.name})")
    k = layer.conv_kernel
    want = {
        f"{p}.weight": (layer.out_channels, layer.in_channels, k, k),
        f"{p}.bias": (layer.out_channels,),
        f"{p}.magnitude_ema": (),
        f"{p}.affine.weight": (layer.in_channels, w_dim),
        f"{p}.affine.bias": (layer.in_channels,),
    }
    if layer.up_taps > 1:
        want[f"{p}.up_filter"] = (layer.up_taps,)
    if layer.down_taps > 1:
        want[f"{p}.down_filter"] = (layer.down_taps,) * (2 if layer.down_radial else 1)
    for key, shape in want.items():
        if _shape(sd, key) != shape:
            raise BadInputError(f"size mismatch for {key}: {_shape(sd, key)} in the checkpoint, expected {shape}")
    up = sd.get(f"{p}.up_filter")
    if up is not None and up.ndim != 1:
        raise UnsupportedError(f"{p}.up_filter is {up.ndim}-D; only separable up filters are supported")
    if layer.up < 1 or layer.down < 1:
        raise BadInputError(f"{p}: bad resampling factors up={layer.up} down={layer.down}")
    got = (layer.in_size + k - 1) * layer.up + sum(layer.padding[:2]) - (layer.up_taps - 1) - (layer.down_taps - 1)
    if (got + layer.down - 1) // layer.down != layer.out_size:
        raise BadInputError(f"{p}: padding {list(layer.padding)} does not give a {layer.out_size} px output")
