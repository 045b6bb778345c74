"""The inversion loop: NVIDIA ``projector.py``'s optimisation, batched over independent problems.

Each problem is one (image, restart) pair with its own latent (and noise maps), so a batch is the sum
of independent problems: Adam is element-wise and every loss is per image, and every random draw of
problem (i, r) at step s comes from ``numpy.random.default_rng([seed, i, r, tag, s])``. Results do
not depend on the batch size or on which process ran a problem, and a run resumed from a checkpoint
continues bit for bit.

Style-based families (latents ``w``/``w+``): start at the mean w of ``w_avg_samples`` mapped samples
(``RandomState(123)``, as NVIDIA), Gaussian noise of ``w_std * noise_factor * max(0, 1 - t /
noise_ramp)^2`` added to the latent each step, learning rate ``lr`` times a cosine ramp-down over the
last ``lr_rampdown`` and a linear ramp-up over the first ``lr_rampup`` of the steps, per-pixel noise
maps optimised (random start, re-normalised after each step) and regularised by the squared
autocorrelation at shifts of one pixel over a pyramid down to 8x8 (weight ``noise_regularize``).
Families without w (z, and BigGAN's per-layer z): start at a prior sample per restart, the same
schedules with the prior's spread, plus ``prior * (mean(z^2) - 1)^2`` keeping z typical.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...core.jobs import StageState
from ...core.losses import ReconstructionLoss, psnr, ssim
from ...core.optim import adam_arrays, restore_adam
from ...errors import BadInputError
from ...generators.base import Generator
from .options import ProjectOptions

INIT, STEP, NOISE = 0, 1, 2  # tags of the random draws


@dataclass
class Setup:
    """What the loop optimises for a generator: the space, the start and spread of its latents."""

    space: str
    z_like: bool  # z latents (prior term, prior starts) rather than w latents (mean start)
    mean: torch.Tensor | None  # the mean latent (w-like), shape of one latent
    std: float  # NVIDIA's w_std: RMS distance of samples to the mean (sqrt(z_dim) for z)
    noise_shapes: list[tuple[int, int]]


def setup(gen: Generator, o: ProjectOptions) -> Setup:
    """The optimisation set-up of ``gen``: space (default w where the family has it), start, spread."""
    space = o.space or ("w" if "w" in gen.spaces else "z")
    gen.check_space(space)
    z_like = space == "z" or gen.layer_space() == "z"
    if gen.has_noise and gen.settings.noise_mode == "random":
        raise BadInputError("projection needs deterministic synthesis: noise_mode const or none", param="noise_mode")
    shapes = (
        [tuple(m.shape) for m in gen.noise_maps()] if o.optimize_noise and gen.settings.noise_mode == "const" else []
    )
    if z_like:
        return Setup(space, True, None, math.sqrt(gen.z_dim), shapes)
    z = torch.from_numpy(np.random.RandomState(123).randn(o.w_avg_samples, gen.z_dim).astype(np.float32))
    with torch.no_grad():
        w = torch.cat([gen.embed(c.to(gen.device), "w").float().cpu() for c in z.split(1024)]).double()
    mean = w.mean(0)
    std = float(((w - mean) ** 2).sum() / len(w)) ** 0.5
    lat = mean.float() if space == "w" else mean.float()[None].expand(gen.num_ws, -1).clone()
    return Setup(space, False, lat, std, shapes)


def schedule(step: int, o: ProjectOptions) -> tuple[float, float]:
    """(learning rate, latent-noise factor) at ``step``: NVIDIA's ramps."""
    t = step / o.steps
    noise = o.noise_factor * max(0.0, 1.0 - t / o.noise_ramp) ** 2
    ramp = min(1.0, (1.0 - t) / o.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / o.lr_rampup)
    return o.lr * ramp, noise


def _rng(o: ProjectOptions, row: tuple[int, int], tag: int, step: int = 0) -> np.random.Generator:
    return np.random.default_rng([o.seed, row[0], row[1], tag, step])


def start_latents(
    gen: Generator, s: Setup, o: ProjectOptions, rows: list[tuple[int, int]], loss: ReconstructionLoss
) -> np.ndarray:
    """Each problem's first latent: the mean w (w-like), or of ``candidates`` prior draws the one
    whose image is closest to the target by the loss (z-like; forward passes only)."""
    shape = gen.latent_shape(s.space)
    if not s.z_like:
        return np.stack([s.mean.numpy()] * len(rows)).astype(np.float32)
    k = o.candidates
    z = np.stack([gen.draw_z(_rng(o, r, INIT), k) for r in rows])  # (n, k, z_dim)
    if k > 1:
        idx = torch.tensor([r[0] for r in rows], device=gen.device).repeat_interleave(k)
        flat = torch.from_numpy(z.reshape(-1, z.shape[-1])).to(gen.device)
        lat = flat if len(shape) == 1 else flat[:, None].expand(-1, shape[0], -1)
        with torch.no_grad():
            score = torch.cat([loss(gen.synthesis(lat[i : i + 64], s.space), idx[i : i + 64])[0]
                               for i in range(0, len(lat), 64)])  # fmt: skip
        best = score.reshape(len(rows), k).argmin(1).cpu().numpy()
        z = z[np.arange(len(rows)), best]
    else:
        z = z[:, 0]
    return (z if len(shape) == 1 else np.repeat(z[:, None], shape[0], axis=1)).astype(np.float32)


def noise_regularizer(maps: list[torch.Tensor]) -> torch.Tensor:
    """Per problem: squared autocorrelation of each noise map at 1-pixel shifts, over a 2x pyramid to 8x8."""
    reg = 0
    for v in maps:
        n = v
        while True:
            reg = reg + (n * torch.roll(n, 1, dims=3)).mean((1, 2, 3)) ** 2
            reg = reg + (n * torch.roll(n, 1, dims=2)).mean((1, 2, 3)) ** 2
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return reg


def z_prior(lat: torch.Tensor) -> torch.Tensor:
    """Per problem: (mean(z^2) - 1)^2 per z vector (averaged over layers for per-layer z)."""
    m = lat.square().mean(-1)
    return (m - 1).square().reshape(len(lat), -1).mean(1)


def run_problems(
    gen: Generator,
    s: Setup,
    loss: ReconstructionLoss,
    rows: list[tuple[int, int]],
    o: ProjectOptions,
    saved: StageState | None = None,
    checkpoint: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    tick: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Optimise the problems ``rows`` (image index, restart) together, continuing ``saved`` (a
    checkpoint of the same rows); ``checkpoint(step, arrays)`` every ``checkpoint_steps`` and
    ``tick(problems)`` after each step. Returns each problem's final latent, noise maps, losses,
    PSNR, SSIM and loss curve (the reconstruction loss at each step, before its update)."""
    dev = gen.device
    n = len(rows)
    idx = torch.tensor([r[0] for r in rows], device=dev)
    lat = torch.nn.Parameter(torch.from_numpy(start_latents(gen, s, o, rows, loss)).to(dev))
    noises = [
        torch.nn.Parameter(
            torch.from_numpy(
                np.stack([_rng(o, r, NOISE, k).standard_normal((1, *hw)) for r in rows]).astype(np.float32)
            ).to(dev)
        )
        for k, hw in enumerate(s.noise_shapes)
    ]
    params = [lat, *noises]
    opt = torch.optim.Adam(params, betas=(0.9, 0.999), lr=o.lr)
    history = np.zeros((n, o.steps), np.float32)
    start = 0
    if saved is not None:
        _restore(saved, params, opt, history)
        start = saved.pos
        if tick is not None:
            tick(n * start)

    shape = tuple(lat.shape[1:])
    shape = tuple(lat.shape[1:])
    for step in range(start, o.steps):
        lr, factor = schedule(step, o)
        for g in opt.param_groups:
            g["lr"] = lr
        eps = np.stack([_rng(o, r, STEP, step).standard_normal(shape) for r in rows]).astype(np.float32)
        x = lat + torch.from_numpy(eps).to(dev) * (s.std * factor)
        synth = gen.with_noise(noises or None).synthesis(x, s.space) if noises else gen.synthesis(x, s.space)
        rec, _ = loss(synth, idx)
        total = rec
        if noises:
            total = total + o.noise_regularize * noise_regularizer(noises)
        if s.z_like and o.prior > 0:
            total = total + o.prior * z_prior(lat)
        opt.zero_grad(set_to_none=True)
        total.sum().backward()
        opt.step()
        with torch.no_grad():
            for v in noises:
                v -= v.mean((1, 2, 3), keepdim=True)
                v *= v.square().mean((1, 2, 3), keepdim=True).rsqrt()
        history[:, step] = rec.detach().cpu().numpy()
        if tick is not None:
            tick(n)
        if checkpoint is not None and (step + 1) % o.checkpoint_steps == 0 and step + 1 < o.steps:
            arrays = {f"param{k}": p.detach().cpu().numpy() for k, p in enumerate(params)}
            checkpoint(step + 1, {**arrays, **adam_arrays(opt, params), "history": history[:, : step + 1]})
    out = evaluate(gen, s.space, lat.detach(), [v.detach() for v in noises], loss, idx)
    out["history"] = history
    return out


def _restore(saved: StageState, params: list[torch.Tensor], opt: torch.optim.Optimizer, history: np.ndarray) -> None:
    """Put a checkpoint back (parameters, Adam's state, the loss curve so far); a one-line error if
    its arrays do not fit these problems."""
    a = saved.arrays
    try:
        if not 0 < saved.pos < history.shape[1] or a["history"].shape != (len(history), saved.pos):
            raise ValueError(f"step {saved.pos}, loss curve {a['history'].shape}")
        with torch.no_grad():
            for k, p in enumerate(params):
                if a[f"param{k}"].shape != tuple(p.shape):
                    raise ValueError(f"param{k} of shape {a[f'param{k}'].shape}, expected {tuple(p.shape)}")
                p.copy_(torch.from_numpy(a[f"param{k}"]))
        restore_adam(opt, params, a)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise BadInputError(
            f"saved projection progress does not fit this run ({e}); start over with force=True", param="force"
        ) from None
    history[:, : saved.pos] = a["history"]


def evaluate(
    gen: Generator,
    space: str,
    lat: torch.Tensor,
    noises: list[torch.Tensor],
    loss: ReconstructionLoss,
    idx: torch.Tensor,
) -> dict[str, np.ndarray]:
    """Final latents rendered without added noise: total and per-term losses, PSNR and SSIM (masked)."""
    with torch.no_grad():
        g = gen.with_noise(noises) if noises else gen
        synth = g.synthesis(lat, space).float()
        total, parts = loss(synth, idx)
        target = loss.targets[idx]
        mask = None if loss.masks is None else loss.masks[idx]
        out = {
            "latent": lat.cpu().numpy(),
            "loss": total.cpu().numpy(),
            "psnr": psnr(synth, target, mask).cpu().numpy(),
            "ssim": ssim(synth, target, mask).cpu().numpy(),
        }
    out.update({f"loss_{k}": v.detach().cpu().numpy() for k, v in parts.items()})
    out.update({f"noise{k}": v.cpu().numpy() for k, v in enumerate(noises)})
    return out
