"""Learning K directions on a frozen generator by minimising a penalty (Hessian Penalty, OroJaR).

As in the official discovery scripts (wpeebles/hessian_penalty ``discover.py``, csyxwei/OroJaR
``orojar_discover.py``): a K x d matrix A (d = width of the searched slice of the latent) is
orthonormalised by Gram-Schmidt every step, Q = pad(GS(A)); each sample of a batch gets a random
latent and coefficients w (Hessian Penalty: one random direction at a distance ~ U[-5, 5];
OroJaR: w = 0); the penalty of w ↦ G(z + w Q) is minimised over A with Adam (lr 0.01).

Every random draw of step s comes from ``numpy.random.default_rng([seed, s])``, so a run resumed
from a checkpoint (A, Adam moments, loss history, written atomically every N steps) continues
bit for bit as if it had never stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..bank import DirectionBank, generator_identity
from ..errors import BadInputError
from ..generators.base import Generator
from ..jacobian import require_deterministic
from ..jobs import Job
from ..progress import bar, log
from .hessian import hessian_penalty
from .orojar import orojar_penalty

PENALTIES: dict[str, Callable[..., torch.Tensor]] = {"hessian": hessian_penalty, "orojar": orojar_penalty}
STAGE = "train"


@dataclass
class LearnConfig:
    """Options of one learning run (all of them define the run's identity except ``steps``)."""

    method: str = "hessian"
    ndirs: int | None = None  # default: the slice width
    steps: int = 1000
    batch_size: int = 8
    lr: float = 0.01
    path_size: float = 5.0
    k: int = 2
    epsilon: float = 0.1
    estimator: str = "fd"
    search_space: str = "all"
    space: str = "z"
    init: str = "random"
    seed: int = 0


def search_slice(spec: str, dim: int) -> tuple[int, int]:
    """``all``, ``coarse``/``mid``/``fine`` (thirds, as the official 0:40/40:80/80:120 of BigGAN's
    120-d z) or ``START:END``."""
    thirds = {"coarse": 0, "mid": 1, "fine": 2}
    if spec == "all":
        return 0, dim
    if spec in thirds:
        i = thirds[spec]
        return round(i * dim / 3), round((i + 1) * dim / 3)
    try:
        a, b = (int(v) for v in spec.split(":"))
    except ValueError:
        raise BadInputError(f"--search-space must be all, coarse, mid, fine or START:END, got {spec!r}") from None
    if not 0 <= a < b <= dim:
        raise BadInputError(f"--search-space {spec} is outside 0:{dim}")
    return a, b


def gram_schmidt(a: torch.Tensor) -> torch.Tensor:
    """Rows of ``a`` orthogonalised in order (modified Gram-Schmidt), then unit-normalised; differentiable."""
    rows: list[torch.Tensor] = []
    for x in a:
        for u in rows:
            x = x - (x @ u) / (u @ u) * u
        rows.append(x)
    q = torch.stack(rows)
    return q / q.pow(2).sum(dim=1, keepdim=True).sqrt()


def coefficient_fn(
    gen: Generator, base: torch.Tensor, q: torch.Tensor, space: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """w (..., N, K) -> images (..., N, C, H, W) of ``base + w Q`` (base (N, D) in ``space``)."""

    def f(w: torch.Tensor) -> torch.Tensor:
        lat = base + w @ q
        out = gen.synthesis(lat.reshape(-1, lat.shape[-1]), space)
        return out.reshape(*lat.shape[:-1], *out.shape[1:])

    return f


def draw_step(gen: Generator, cfg: LearnConfig, ndirs: int, step: int) -> dict[str, np.ndarray]:
    """The random inputs of one step: latents z, coefficients w and ±1 probes."""
    rng = np.random.default_rng([cfg.seed, step])
    z = gen.draw_z(rng, cfg.batch_size)
    w = np.zeros((cfg.batch_size, ndirs), np.float32)
    if cfg.method == "hessian":
        dirs = rng.integers(0, ndirs, cfg.batch_size)
        dist = rng.uniform(-cfg.path_size, cfg.path_size, cfg.batch_size)
        w[np.arange(cfg.batch_size), dirs] = dist
    probes = (rng.integers(0, 2, (cfg.k, cfg.batch_size, ndirs)) * 2 - 1).astype(np.float32)
    return {"z": z, "w": w, "probes": probes}


def _step(gen: Generator, cfg: LearnConfig, a: torch.nn.Parameter, opt: torch.optim.Optimizer, step: int, sl) -> float:
    """One optimisation step; returns the penalty before the update."""
    dev, dt = gen.device, gen.dtype
    d = draw_step(gen, cfg, a.shape[0], step)
    base = gen.embed(torch.from_numpy(d["z"]).to(dev, dt), cfg.space).detach()
    q = _pad(gram_schmidt(a), sl, gen.space_dim(cfg.space))
    f = coefficient_fn(gen, base, q, cfg.space)
    w = torch.from_numpy(d["w"]).to(dev, dt)
    probes = torch.from_numpy(d["probes"]).to(dev, dt)
    loss = PENALTIES[cfg.method](f, w, probes, cfg.epsilon, cfg.estimator)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _pad(q: torch.Tensor, sl: tuple[int, int], dim: int) -> torch.Tensor:
    return torch.nn.functional.pad(q, (sl[0], dim - sl[1]))


def _adam_arrays(opt: torch.optim.Optimizer, a: torch.Tensor) -> dict[str, np.ndarray]:
    st = opt.state.get(a, {})
    if not st:
        return {}
    return {
        "adam_step": np.asarray(float(st["step"])),
        "adam_exp_avg": st["exp_avg"].detach().cpu().numpy(),
        "adam_exp_avg_sq": st["exp_avg_sq"].detach().cpu().numpy(),
    }


def _restore_adam(opt: torch.optim.Optimizer, a: torch.Tensor, arrays: dict[str, np.ndarray]) -> None:
    if "adam_step" not in arrays:
        return
    opt.state[a] = {
        "step": torch.tensor(float(arrays["adam_step"])),
        "exp_avg": torch.from_numpy(arrays["adam_exp_avg"].copy()).to(a.device, a.dtype),
        "exp_avg_sq": torch.from_numpy(arrays["adam_exp_avg_sq"].copy()).to(a.device, a.dtype),
    }


def identity(gen: Generator, cfg: LearnConfig) -> dict[str, Any]:
    """What a resumed run must share with the saved one (``steps`` may grow)."""
    d = asdict(cfg)
    d.pop("steps")
    return {"generator": gen.fingerprint, "family": gen.family, "render": gen.render_settings(), **d}


def learn(gen: Generator, cfg: LearnConfig, job: Job | None = None, checkpoint_steps: int = 100) -> DirectionBank:
    """Run (or continue, from ``job``) the optimisation and return the learned bank."""
    if cfg.method not in PENALTIES:
        raise BadInputError(f"unknown method {cfg.method!r}")
    if cfg.estimator not in ("fd", "exact"):
        raise BadInputError(f"--estimator must be fd or exact, got {cfg.estimator!r}")
    gen.check_space(cfg.space)
    require_deterministic(gen)
    if cfg.space == "w+":
        raise BadInputError("direction learning edits z or w (one vector for all layers), not w+")
    for name, v, lo in (("--steps", cfg.steps, 1), ("--batch-size", cfg.batch_size, 1), ("-k", cfg.k, 2)):
        if v < lo:
            raise BadInputError(f"{name} must be at least {lo}, got {v}")
    if not (cfg.lr > 0 and cfg.epsilon > 0 and cfg.path_size >= 0):
        raise BadInputError("--lr and --epsilon must be positive and --path-size non-negative")
    if checkpoint_steps < 1:
        raise BadInputError(f"--checkpoint-steps must be at least 1, got {checkpoint_steps}")
    dim = gen.space_dim(cfg.space)
    sl = search_slice(cfg.search_space, dim)
    width = sl[1] - sl[0]
    ndirs = cfg.ndirs or width
    if not 1 <= ndirs <= width:
        raise BadInputError(f"-k/--ndirs must be in 1..{width} (the searched slice width), got {ndirs}")
    tg = torch.Generator().manual_seed(cfg.seed)
    if cfg.init == "random":  # kaiming_normal_ (fan_in = width), as the official load_A random
        a0 = torch.randn(ndirs, width, generator=tg) * math.sqrt(2.0 / width)
    elif cfg.init == "coords":
        a0 = torch.eye(ndirs, width)
    else:
        raise BadInputError(f"--init must be random or coords, got {cfg.init!r}")
    a = torch.nn.Parameter(a0.to(gen.device, gen.dtype))
    opt = torch.optim.Adam([a], lr=cfg.lr)
    history: list[float] = []
    start = 0
    saved = job.stage(STAGE) if job is not None else None
    if saved is not None:
        with torch.no_grad():
            a.copy_(torch.from_numpy(saved.arrays["A"]))
        _restore_adam(opt, a, saved.arrays)
        history = saved.arrays["history"].astype(np.float64).tolist()
        start = saved.pos
        log(f"resuming {cfg.method} at step {start} of {cfg.steps}")
    if start > cfg.steps:
        raise BadInputError(f"the saved run is already at step {start}; ask for --steps {start} or more")

    def checkpoint(pos: int) -> None:
        if job is None:
            return
        arrays = {"A": a.detach().cpu().numpy(), "history": np.asarray(history, np.float64), **_adam_arrays(opt, a)}
        job.set_stage(STAGE, pos, arrays, done=pos >= cfg.steps)
        job.save()

    with bar(total=cfg.steps, initial=start, desc=cfg.method, unit="step") as pbar:
        for s in range(start, cfg.steps):
            history.append(_step(gen, cfg, a, opt, s, sl))
            pbar.update(1)
            pbar.set_postfix(loss=f"{history[-1]:.5g}")
            if (s + 1) % checkpoint_steps == 0 and s + 1 < cfg.steps:
                checkpoint(s + 1)
    checkpoint(cfg.steps)
    with torch.no_grad():
        q = _pad(gram_schmidt(a), sl, dim).cpu().numpy().astype(np.float32)
    return _bank(gen, cfg, q, np.asarray(history), ndirs, sl, a.detach().cpu().numpy())


def loss_summary(history: np.ndarray) -> dict[str, Any]:
    """First/last/min losses and the mean of the first and last 10% of steps."""
    n = len(history)
    tail = max(1, n // 10)
    return {
        "steps": n,
        "first": float(history[0]),
        "last": float(history[-1]),
        "min": float(history.min()),
        "mean_first_10pct": float(history[:tail].mean()),
        "mean_last_10pct": float(history[-tail:].mean()),
    }


def _bank(
    gen: Generator,
    cfg: LearnConfig,
    q: np.ndarray,
    history: np.ndarray,
    ndirs: int,
    sl: tuple[int, int],
    a: np.ndarray,
) -> DirectionBank:
    return DirectionBank(
        directions=q,
        space=cfg.space,
        method=cfg.method,
        generator=generator_identity(gen),
        names=[f"{cfg.method}_{i}" for i in range(len(q))],
        params={**asdict(cfg), "ndirs": ndirs, "search_slice": list(sl)},
        info={
            "loss": loss_summary(history),
            "penalty": "hessian penalty (mean reduction)" if cfg.method == "hessian" else "orojar (mean reduction)",
            "score": "none (directions are learned jointly; scores are 0)",
        },
        step_unit="unit",
        default_range=(-cfg.path_size, cfg.path_size) if cfg.path_size > 0 else (-3.0, 3.0),
        extras={"loss_history": history.astype(np.float32), "A": a.astype(np.float32)},
    )
