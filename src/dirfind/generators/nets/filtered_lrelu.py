"""StyleGAN3's filtered leaky ReLU in plain, differentiable PyTorch (no custom kernels).

``filtered_lrelu`` computes what NVIDIA's reference path (``_filtered_lrelu_ref`` in
``torch_utils/ops/filtered_lrelu.py``) computes, in this order:

1. add the bias;
2. upsample by ``up``: insert ``up - 1`` zeros after every sample, pad (negative = crop) by
   ``padding = (x0, x1, y0, y1)`` and convolve with the low-pass filter ``fu`` times ``up**2``
   (``up`` per axis for a separable 1-D filter);
3. leaky ReLU with ``slope``, times ``gain``, clamp to ``[-clamp, clamp]``;
4. convolve with the low-pass filter ``fd`` and keep every ``down``-th sample.

The zero-inserted image is never materialised: step 2 is a strided transposed convolution (for 1-D
filters in polyphase form, :func:`_polyphase_up`) whose output is cropped/padded to the reference's
window, and step 4 a strided ``conv2d``. Filters are 1-D
(separable, applied along x then y) or 2-D (StyleGAN3-R's radial down filters); ``None`` is the
identity. Everything is ordinary autograd-traceable ops, so ``torch.func.jvp`` works through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import measured


def _upsample(
    x: torch.Tensor, f: torch.Tensor | None, up: int, pad: tuple[int, int, int, int], grouped: bool = False
) -> torch.Tensor:
    """Zero-insertion upsampling, padding and FIR filtering (gain ``up**2``), as one transposed conv.
    ``grouped=False`` folds the channels into the batch so every convolution is single-channel (no
    grouped convolutions: those take slow per-group loops in forward-mode AD); ``True`` runs
    depthwise (one group per channel), much faster in a plain CPU forward."""
    n, c, h, w = x.shape
    x0, x1, y0, y1 = pad
    if f is None:  # identity filter: zero insertion, the gain and padding only
        if up > 1:
            x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
            x = x * (up * up)
        return F.pad(x, [x0, x1, y0, y1])
    k = f.shape[-1]
    f = f.to(x.dtype)
    if not grouped:
        x = x.reshape(n * c, 1, h, w)
    # conv_transpose2d(x, g, stride=up)[m] = sum_i x[i] g[m - i*up]; the reference output j reads
    # index m = j + k - 1 - pad_lo of that with g = f (unflipped), so shift the window accordingly.
    if f.ndim == 1:
        g = f * up
        x = _polyphase_up(_polyphase_up(x, g, up, 3), g, up, 2)
    else:
        kernel = (f * (up * up))[None, None].expand(x.shape[1], 1, k, k)
        x = F.conv_transpose2d(x, kernel, stride=up, groups=x.shape[1])
    x = F.pad(x, [x0 - (k - 1), x1 + up - k, y0 - (k - 1), y1 + up - k])
    return x.reshape(n, c, *x.shape[2:])


def _polyphase_up(x: torch.Tensor, g: torch.Tensor, up: int, dim: int) -> torch.Tensor:
    """Depthwise ``conv_transpose2d`` of ``x`` (N, C, H, W) with the 1-D filter ``g`` at stride
    ``up`` along ``dim`` (3: width, 2: height), computed as ``up`` short convolutions (the filter's
    polyphase components ``g[r::up]``) whose outputs interleave: the same sums without the slow CPU
    transposed-convolution kernel (about 2x faster, measured in benchmarks/render.py's setting)."""
    k = g.shape[0]
    kk = -(-k // up)
    # phase r of output index q*up + r is sum_j x[q - j] g[j*up + r]: a full correlation with the
    # reversed component, so pad kk - 1 on both sides.
    taps = F.pad(g, [0, kk * up - k]).reshape(kk, up).t().flip(1)  # (up, kk)
    n, c, h, w = x.shape
    if dim == 3:
        y = F.conv2d(x, taps.reshape(up, 1, 1, kk).repeat(c, 1, 1, 1), padding=(0, kk - 1), groups=c)
        y = y.reshape(n, c, up, h, -1).permute(0, 1, 3, 4, 2).reshape(n, c, h, -1)
    else:
        y = F.conv2d(x, taps.reshape(up, 1, kk, 1).repeat(c, 1, 1, 1), padding=(kk - 1, 0), groups=c)
        y = y.reshape(n, c, up, -1, w).permute(0, 1, 3, 2, 4).reshape(n, c, -1, w)
    return y.narrow(dim, 0, (x.shape[dim] - 1) * up + k)


def _downsample(x: torch.Tensor, f: torch.Tensor | None, down: int, grouped: bool = False) -> torch.Tensor:
    """FIR filtering (a true convolution: the filter is flipped) without padding, then decimation
    (channels folded into the batch, or depthwise with ``grouped``, as in :func:`_upsample`)."""
    if f is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    n, c, h, w = x.shape
    k = f.shape[-1]
    f = f.to(x.dtype).flip(list(range(f.ndim)))
    g = c if grouped else 1
    if not grouped:
        x = x.reshape(n * c, 1, h, w)
    if f.ndim == 1:
        x = F.conv2d(x, f.reshape(1, 1, 1, k).expand(g, 1, 1, k), stride=(1, down), groups=g)
        x = F.conv2d(x, f.reshape(1, 1, k, 1).expand(g, 1, k, 1), stride=(down, 1), groups=g)
    else:
        x = F.conv2d(x, f[None, None].expand(g, 1, k, k), stride=down, groups=g)
    return x.reshape(n, c, *x.shape[2:])


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 2**0.5,
    slope: float = 0.2,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias, upsample (``fu``), leaky ReLU (``slope``, ``gain``, ``clamp``), downsample (``fd``).

    ``x``: (N, C, H, W). Output width ``(W·up + x0 + x1 - (|fu|-1) - (|fd|-1) + down - 1) // down``
    (height likewise), exactly as the reference.
    """
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    pad = tuple(int(p) for p in padding)
    # the upsampled tensor is a fresh intermediate: overwrite it where no derivative is taken
    own = fu is not None and measured.measurable(x)

    def run(grouped: bool) -> torch.Tensor:
        y = _upsample(x, fu, up, pad, grouped)
        if slope != 1:
            y = F.leaky_relu(y, slope, inplace=own)
        if gain != 1:
            y = y.mul_(gain) if own else y * gain
        if clamp is not None:
            y = y.clamp_(-clamp, clamp) if own else y.clamp(-clamp, clamp)
        return _downsample(y, fd, down, grouped)

    if fu is None and fd is None:
        return run(False)
    key = measured.shape_key(x, "filtered_lrelu", fu, fd, up, down, pad)
    rule = 0 if x.device.type == "cuda" else 1  # per-channel filtering: measured faster on CPUs
    return measured.fastest(key, [lambda: run(False), lambda: run(True)], [x], fallback=0, rule=rule)
