"""StyleGAN building blocks as plain PyTorch ops (no custom kernels, no custom autograd).

They reproduce the reference implementations of NVIDIA's ``bias_act``, ``upfirdn2d`` and
``modulated_conv2d`` and rosinality's ``fused_leaky_relu`` / ``upfirdn2d_native`` in ordinary
differentiable tensor ops, so ``torch.func.jvp`` works through a whole generator and the same
code runs on CPU and CUDA in any float dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import measured

SQRT2 = math.sqrt(2.0)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each row to unit mean square (``normalize_2nd_moment`` / rosinality ``PixelNorm``)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None,
    act: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """``x + b`` (bias along dim 1), then ``linear`` or ``lrelu`` (slope 0.2), times ``gain``, then
    clamp to ``[-clamp, clamp]`` -- the order NVIDIA's ``bias_act`` uses. ``inplace``: ``x`` is a
    fresh intermediate the caller owns; it is overwritten where no derivative is being taken
    (fewer allocations, the same numbers)."""
    if inplace and measured.measurable(x):
        if b is not None:
            x.add_(b.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2))))
        if act == "lrelu":
            F.leaky_relu(x, 0.2, inplace=True)
        elif act != "linear":
            raise ValueError(f"unsupported activation {act!r}")
        if gain != 1:
            x.mul_(gain)
        if clamp is not None and clamp >= 0:
            x.clamp_(-clamp, clamp)
        return x
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    elif act != "linear":
        raise ValueError(f"unsupported activation {act!r}")
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def dense(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    weight_gain: float,
    bias_gain: float,
    act: str = "linear",
) -> torch.Tensor:
    """Equalised-learning-rate fully connected layer: ``act(x @ (W·wg)ᵀ + b·bg)`` (lrelu gain √2)."""
    w = weight.to(x.dtype) * weight_gain
    b = None if bias is None else bias.to(x.dtype) * bias_gain
    if act == "linear":
        return F.linear(x, w, b)
    return bias_act(F.linear(x, w), b, act, gain=SQRT2 if act == "lrelu" else 1.0)


def upfirdn2d(
    x: torch.Tensor, f: torch.Tensor, up: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0)
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop) by ``(x0, x1, y0, y1)`` and convolve each
    channel with the 2-D FIR filter ``f`` (a true convolution: the filter is flipped). The caller
    folds any gain into ``f``."""
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    x0, x1, y0, y1 = pad
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    if min(pad) < 0:
        x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    kernel = f.to(x.dtype).flip([0, 1])[None, None].expand(c, 1, *f.shape)
    return F.conv2d(x, kernel, groups=c)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling with the normalised FIR filter ``f`` (gain 4 keeps the DC level)."""
    fw = f.shape[-1]
    p0, p1 = (fw + 1) // 2, (fw - 2) // 2
    return upfirdn2d(x, f * 4, up=2, pad=(p0, p1, p0, p1))


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    fused: bool | None = True,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution of ``x`` (B, I, H, W) with ``weight`` (O, I, k, k) scaled
    per sample by ``styles`` (B, I), optionally demodulated, then ``noise`` added.

    ``up=2``: transposed convolution (stride 2) followed by the FIR filter ``resample_filter``
    (normalised, gain 4 applied here), as in both reference implementations. ``fused=True``: one
    grouped convolution with per-sample weights (the references' eval default); ``False``: the input
    is scaled by the styles, convolved with the shared weight and the output demodulated by the
    per-sample weight norms; ``None``: whichever :func:`.measured.fastest` measures faster for
    this device, dtype and shape (fused for batch 1 where it cannot measure). With ``up=2`` the
    measured candidates also include the non-fused form run in channels-last memory format.
    """
    bsz, cin, h, w = x.shape
    cout, _, kh, kw = weight.shape
    weight = weight.to(x.dtype)
    styles = styles.to(x.dtype)
    if x.dtype in (torch.float16, torch.bfloat16) and demodulate:
        # NVIDIA's pre-normalisation against half-precision overflow; cancelled by demodulation.
        weight = weight * (1 / math.sqrt(cin * kh * kw) / weight.abs().amax(dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.abs().amax(dim=1, keepdim=True)

    own = measured.measurable(x, styles)  # no derivatives taken: intermediates may be overwritten

    def resample(out: torch.Tensor) -> torch.Tensor:
        if up == 1:
            return out
        # transposed conv grows by k - 1 + 1; the filter pads so that the result is exactly 2x.
        fw = resample_filter.shape[-1]
        p = (fw - 2) - (kw - 1)
        p0, p1 = (p + 1) // 2 + 1, p // 2 + 1
        return upfirdn2d(out, resample_filter * 4, pad=(p0, p1, p0, p1))

    def fused_path() -> torch.Tensor:
        wt = weight[None] * styles[:, None, :, None, None]  # (B, O, I, k, k)
        if demodulate:
            wt = wt * torch.rsqrt(wt.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8)
        xg = x.reshape(1, bsz * cin, h, w)
        if up == 1:
            out = F.conv2d(xg, wt.reshape(bsz * cout, cin, kh, kw), padding=padding, groups=bsz)
        else:
            wt = wt.transpose(1, 2).reshape(bsz * cin, cout, kh, kw)
            out = F.conv_transpose2d(xg, wt, stride=2, groups=bsz)
        return resample(out.reshape(bsz, cout, *out.shape[2:]))

    def shared_path(fmt: torch.memory_format | None = None) -> torch.Tensor:
        xs = x * styles[:, :, None, None]
        if fmt is not None:  # the upsampling's transposed conv and FIR in channels-last (oneDNN) kernels
            xs = xs.contiguous(memory_format=fmt)
        if up == 1:
            out = F.conv2d(xs, weight, padding=padding)
        else:
            out = F.conv_transpose2d(xs, weight.transpose(0, 1), stride=2)
        if demodulate:
            dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8)
            out = out.mul_(dcoefs[:, :, None, None]) if own else out * dcoefs[:, :, None, None]
        out = resample(out)
        return out if fmt is None else out.contiguous()

    if fused is None:
        key = measured.shape_key(x, weight, "sg2", up, padding, demodulate)
        paths = [fused_path, shared_path]
        if up > 1 and x.is_contiguous():
            paths.append(lambda: shared_path(torch.channels_last))
        # the fixed rule (measured on CPUs: docs/benchmarks-stylegan2.md): fused for one image;
        # for batches the non-fused form, upsampling in channels-last; CUDA as NVIDIA's eval code
        if x.device.type == "cuda":
            rule = 0 if bsz == 1 or x.dtype == torch.float32 else 1
        else:
            rule = 0 if bsz == 1 else len(paths) - 1
        out = measured.fastest(key, paths, [x, styles], fallback=0 if bsz == 1 else 1, rule=rule)
    else:
        out = fused_path() if fused else shared_path()
    if noise is not None:
        out = out.add_(noise.to(out.dtype)) if own else out + noise.to(out.dtype)
    return out
