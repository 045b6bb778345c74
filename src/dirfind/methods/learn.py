"""Learning K directions on a frozen generator by minimising a penalty (Hessian Penalty, OroJaR).

As in the official discovery scripts (wpeebles/hessian_penalty ``discover.py``, csyxwei/OroJaR
``orojar_discover.py``): a K x d matrix A (d = width of the searched slice of the latent) is
orthonormalised by Gram-Schmidt every step, Q = pad(GS(A)); each sample of a batch gets a random
latent and coefficients w (Hessian Penalty: one random direction at a distance ~ U[-5, 5];
OroJaR: w = 0); the penalty of w ↦ G(z + w Q) is minimised over A with Adam (lr 0.01).

Every random draw of step s comes from ``numpy.random.default_rng([seed, s])``, so a run resumed
from a checkpoint (A, Adam moments, loss history, written atomically every N steps) continues
bit for bit as if it had never stopped. Under torch.distributed each step's batch is split over
the processes (data parallel, gradients summed), which matches one process with the same batch
to float tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..bank import DirectionBank, generator_identity
from ..core import dist
from ..core.jobs import Job, resumable
from ..core.jvp import require_deterministic
from ..core.optim import adam_arrays, restore_adam
from ..core.reducers import saved_arrays
from ..errors import BadInputError
from ..generators.base import Generator
from ..util.options import check_choice, check_positive, option
from ..util.progress import bar, log
from .penalties import ESTIMATORS, hessian_penalty, orojar_penalty

PENALTIES: dict[str, Callable[..., torch.Tensor]] = {"hessian": hessian_penalty, "orojar": orojar_penalty}
STAGE = "train"


@dataclass(frozen=True)
class LearnOptions:
    """Options shared by the learners (official defaults). All but ``steps`` and
    ``checkpoint_steps`` define a run's identity."""

    method: ClassVar[str] = ""
    ndirs: int | None = option(None, "Directions to learn (default: the searched slice's width).")
    steps: int = option(1000, "Optimisation steps (in total).")
    batch_size: int = option(8, "Samples per step.")
    lr: float = option(0.01, "Adam learning rate.")
    estimator: str = option(
        "fd", "fd: official finite differences (epsilon); exact: forward-mode derivatives.", choices=ESTIMATORS
    )
    probes: int = option(2, "Rademacher probes per sample.")
    epsilon: float = option(0.1, "Finite-difference step (fd).")
    search_space: str = option(
        "all",
        "Slice of the latent the directions live in (coarse/mid/fine = thirds).",
        metavar="all|coarse|mid|fine|A:B",
    )
    space: str = option("z", "Edit space.", choices=("z", "w"))
    init: str = option("random", "Initial A.", choices=("random", "coords"))
    checkpoint_steps: int = option(100, "Save progress every N steps.")
    seed: int = 0

    #: distances along a direction ~ U[-path_size, path_size] (Hessian Penalty; none for OroJaR)
    path_size: float = 0.0

    def __post_init__(self) -> None:
        check_choice(self.estimator, "estimator", ESTIMATORS)
        check_choice(self.init, "init", ("random", "coords"))
        if self.space not in ("z", "w"):
            raise BadInputError(
                f"direction learning edits z or w (one vector for all layers), not {self.space}", param="space"
            )
        check_positive(self.steps, "steps")
        check_positive(self.batch_size, "batch_size")
        check_positive(self.probes, "probes", 2)
        check_positive(self.checkpoint_steps, "checkpoint_steps")
        check_positive(self.lr, "lr", 0, strict=True)
        check_positive(self.epsilon, "epsilon", 0, strict=True)
        check_positive(self.path_size, "path_size", 0)
        if self.ndirs is not None:
            check_positive(self.ndirs, "ndirs")

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the saved one (``steps`` may grow)."""
        d = asdict(self)
        for key in ("steps", "checkpoint_steps"):
            d.pop(key)
        return {"method": self.method, **d}


@dataclass(frozen=True)
class HessianOptions(LearnOptions):
    """Options of the Hessian Penalty learner (``dirfind hessian``)."""

    method: ClassVar[str] = "hessian"
    path_size: float = option(5.0, "Distances along a direction ~ U[-P, P].")


@dataclass(frozen=True)
class OrojarOptions(LearnOptions):
    """Options of the OroJaR learner (``dirfind orojar``): no path, w = 0."""

    method: ClassVar[str] = "orojar"


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
        raise BadInputError(
            f"search_space must be all, coarse, mid, fine or START:END, got {spec!r}", param="search_space"
        ) from None
    if not 0 <= a < b <= dim:
        raise BadInputError(f"search_space {spec} is outside 0:{dim}", param="search_space")
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


def draw_step(gen: Generator, cfg: LearnOptions, ndirs: int, step: int) -> dict[str, np.ndarray]:
    """The random inputs of one step: latents z, coefficients w and ±1 probes."""
    rng = np.random.default_rng([cfg.seed, step])
    z = gen.draw_z(rng, cfg.batch_size)
    w = np.zeros((cfg.batch_size, ndirs), np.float32)
    if cfg.method == "hessian":
        dirs = rng.integers(0, ndirs, cfg.batch_size)
        dist = rng.uniform(-cfg.path_size, cfg.path_size, cfg.batch_size)
        w[np.arange(cfg.batch_size), dirs] = dist
    probes = (rng.integers(0, 2, (cfg.probes, cfg.batch_size, ndirs)) * 2 - 1).astype(np.float32)
    return {"z": z, "w": w, "probes": probes}


def _step(gen: Generator, cfg: LearnOptions, a: torch.nn.Parameter, opt: torch.optim.Optimizer, step: int, sl) -> float:
    """One optimisation step; returns the penalty before the update.

    Distributed (data parallel): every process draws the whole batch and takes its slice; the
    penalty is a mean over samples, so each slice's gradient is weighted by its share of the
    batch and the gradients (and losses) are summed over the processes in float64. Every process
    then takes the same Adam step."""
    dev, dt = gen.device, gen.dtype
    d = draw_step(gen, cfg, a.shape[0], step)
    world = dist.world()
    lo, hi = cfg.batch_size * world.rank // world.size, cfg.batch_size * (world.rank + 1) // world.size
    opt.zero_grad(set_to_none=True)
    loss = torch.zeros((), dtype=torch.float64, device=dev)
    if hi > lo:
        base = gen.embed(torch.from_numpy(d["z"][lo:hi]).to(dev, dt), cfg.space).detach()
        q = _pad(gram_schmidt(a), sl, gen.space_dim(cfg.space))
        f = coefficient_fn(gen, base, q, cfg.space)
        w = torch.from_numpy(d["w"][lo:hi]).to(dev, dt)
        probes = torch.from_numpy(d["probes"][:, lo:hi]).to(dev, dt)
        loss = PENALTIES[cfg.method](f, w, probes, cfg.epsilon, cfg.estimator)
        if world.distributed:
            loss = loss * ((hi - lo) / cfg.batch_size)
        loss.backward()
    if world.distributed:
        grad = a.grad if a.grad is not None else torch.zeros_like(a)
        both = dist.all_reduce(torch.cat([grad.reshape(-1).double(), loss.detach().double().reshape(1)]), "gradients")
        a.grad = both[:-1].reshape(a.shape).to(a.dtype)
        loss = both[-1]
    opt.step()
    return float(loss.detach())


def _pad(q: torch.Tensor, sl: tuple[int, int], dim: int) -> torch.Tensor:
    return torch.nn.functional.pad(q, (sl[0], dim - sl[1]))


def _adam_arrays(opt: torch.optim.Optimizer, a: torch.Tensor) -> dict[str, np.ndarray]:
    return adam_arrays(opt, [a])


def _restore_adam(opt: torch.optim.Optimizer, a: torch.Tensor, arrays: dict[str, np.ndarray]) -> None:
    restore_adam(opt, [a], arrays)


def identity(gen: Generator, cfg: LearnOptions) -> dict[str, Any]:
    """The identity of a learning run: generator, render settings and options but ``steps``."""
    return {"generator": gen.fingerprint, "family": gen.family, "render": gen.settings.identity(), **cfg.identity()}


def learn(
    gen: Generator,
    cfg: LearnOptions,
    /,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    every: float = 0.0,
    job: Job | None = None,
    **changes: Any,
) -> DirectionBank:
    """Learn directions with the penalty of ``cfg`` (:class:`HessianOptions` or :class:`OrojarOptions`).

    Parameters
    ----------
    gen : Generator
        A deterministic generator (no random per-pixel noise).
    cfg : LearnOptions
        The learner and its options; keyword ``changes`` override its fields.
    out : str or Path, optional
        Save the bank there; the run then checkpoints into ``<out>.progress/`` every
        ``checkpoint_steps`` steps and continues from it with ``resume`` (bit for bit).
    job : Job, optional
        An explicit job to checkpoint into instead.

    Returns
    -------
    DirectionBank
        K orthonormal directions with the loss history (``extra_loss_history``).
    """
    cfg = replace(cfg, **changes)
    if cfg.method not in PENALTIES:
        raise BadInputError(f"unknown learner {type(cfg).__name__}; use HessianOptions or OrojarOptions")
    gen.check_space(cfg.space)
    require_deterministic(gen)
    dim = gen.space_dim(cfg.space)
    sl = search_slice(cfg.search_space, dim)
    width = sl[1] - sl[0]
    ndirs = cfg.ndirs or width
    if not 1 <= ndirs <= width:
        raise BadInputError(f"ndirs must be in 1..{width} (the searched slice width), got {ndirs}", param="ndirs")
    if job is not None:
        return _learn(gen, cfg, job, sl, ndirs)
    with resumable(out, identity(gen, cfg), resume=resume, force=force, every=every) as job:
        bank = _learn(gen, cfg, job, sl, ndirs)
        if out is not None and dist.is_main():
            bank.save(out, force=force)
    return bank


def _learn(gen: Generator, cfg: LearnOptions, job: Job, sl: tuple[int, int], ndirs: int) -> DirectionBank:
    """Run (or continue, from ``job``) the optimisation and return the learned bank."""
    dim = gen.space_dim(cfg.space)
    width = sl[1] - sl[0]
    tg = torch.Generator().manual_seed(cfg.seed)
    if cfg.init == "random":  # kaiming_normal_ (fan_in = width), as the official load_A random
        a0 = torch.randn(ndirs, width, generator=tg) * math.sqrt(2.0 / width)
    else:
        a0 = torch.eye(ndirs, width)
    a = torch.nn.Parameter(a0.to(gen.device, gen.dtype))
    opt = torch.optim.Adam([a], lr=cfg.lr)
    history: list[float] = []
    start = 0
    saved = job.stage(STAGE)
    if saved is not None:
        shapes = {"A": tuple(a.shape), "history": (saved.pos,)}
        if "adam_step" in saved.arrays:
            shapes.update(adam_step=(), adam_exp_avg=tuple(a.shape), adam_exp_avg_sq=tuple(a.shape))
        try:
            arrays = saved_arrays(saved.arrays, shapes)
        except BadInputError as e:
            where = job.folder / "state.npz" if job.folder is not None else "saved state"
            raise BadInputError(
                f"{where}: malformed saved state ({e}); start over with force=True", param="force"
            ) from None
        with torch.no_grad():
            a.copy_(torch.from_numpy(arrays["A"]))
        _restore_adam(opt, a, arrays)
        history = arrays["history"].astype(np.float64).tolist()
        start = saved.pos
        log(f"resuming {cfg.method} at step {start} of {cfg.steps}")
    if start > cfg.steps:
        raise BadInputError(f"the saved run is already at step {start}; ask for steps {start} or more", param="steps")

    def checkpoint(pos: int) -> None:
        arrays = {"A": a.detach().cpu().numpy(), "history": np.asarray(history, np.float64), **_adam_arrays(opt, a)}
        job.set_stage(STAGE, pos, arrays, done=pos >= cfg.steps)
        job.save()

    with bar(total=cfg.steps, initial=start, desc=cfg.method, unit="step") as pbar:
        for s in range(start, cfg.steps):
            history.append(_step(gen, cfg, a, opt, s, sl))
            pbar.update(1)
            pbar.set_postfix(loss=f"{history[-1]:.5g}")
            if (s + 1) % cfg.checkpoint_steps == 0 and s + 1 < cfg.steps:
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
    cfg: LearnOptions,
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
        params={**cfg.identity(), "steps": cfg.steps, "ndirs": ndirs, "search_slice": list(sl)},
        info={
            "loss": loss_summary(history),
            "penalty": "hessian penalty (mean reduction)" if cfg.method == "hessian" else "orojar (mean reduction)",
            "score": "none (directions are learned jointly; scores are 0)",
        },
        step_unit="unit",
        default_range=(-cfg.path_size, cfg.path_size) if cfg.path_size > 0 else (-3.0, 3.0),
        extras={"loss_history": history.astype(np.float32), "A": a.astype(np.float32)},
    )
