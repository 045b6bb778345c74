"""Projection (GAN inversion): find the latents that make a generator reproduce given images.

``images`` reads and fits the targets, ``options`` holds :class:`ProjectOptions`, ``inversion`` the
optimisation loop (NVIDIA ``projector.py``'s), this module runs it over every (image, restart)
problem as a resumable, distributed job (batches of problems are the units of
:func:`dirfind.core.parallel.run_units`), keeps each image's best restart and writes the projection
file (:mod:`dirfind.core.latentfile`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...bank import generator_identity
from ...core.dist import world
from ...core.jobs import Job, resumable
from ...core.latentfile import write_projection
from ...core.losses import ReconstructionLoss
from ...core.parallel import run_units
from ...generators.base import Generator
from ...util.images import to_uint8
from ...util.progress import bar
from .images import Targets, read_targets
from .inversion import Setup, run_problems, setup
from .options import DEFAULT_LOSS, ProjectOptions

__all__ = ["DEFAULT_LOSS", "ProjectOptions", "Targets", "project", "project_targets", "read_targets"]


def identity(gen: Generator, o: ProjectOptions, targets: Targets) -> dict[str, Any]:
    """What a resumed run must share with the saved one: generator, settings, options and images."""
    return {
        "generator": gen.fingerprint,
        "family": gen.family,
        "render": gen.settings.identity(),
        "options": o.identity(),
        "images": targets.hashes,
        "masks": None if targets.masks is None else hashlib.sha256(np.ascontiguousarray(targets.masks)).hexdigest(),
    }


def project_targets(
    gen: Generator, targets: Targets, o: ProjectOptions, job: Job, images: Sequence[int] | None = None
) -> dict[str, Any]:
    """Optimise every restart of the images ``images`` (indices into ``targets``, default all) and
    keep the best restart of each; per-image arrays in the order of ``images``."""
    images = list(range(len(targets.paths))) if images is None else list(images)
    s = setup(gen, o)
    dev = gen.device
    loss = ReconstructionLoss(
        o.loss,
        torch.from_numpy(targets.images).to(dev),
        None if targets.masks is None else torch.from_numpy(targets.masks).to(dev),
    )
    rows = [(i, r) for i in images for r in range(o.restarts)]
    groups = [rows[k : k + o.batch_size] for k in range(0, len(rows), o.batch_size)]
    chunks = {f"problems_{c[0][0]}_{c[0][1]}_{len(c)}": c for c in groups}

    def one(name: str, saved: Any, checkpoint: Any, tick: Any) -> dict[str, np.ndarray]:
        return run_problems(gen, s, loss, chunks[name], o, saved, checkpoint, tick)

    # each chunk of problems is a unit: dealt over the processes of a distributed run, resumable alone
    with bar(total=len(rows) * o.steps, desc="project", unit="step") as pbar:
        done = run_units(job, list(chunks), one, sizes={n: len(c) * o.steps for n, c in chunks.items()}, pbar=pbar)
    results = [done[name] for name in chunks]
    merged = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
    restart_loss = merged["loss"].reshape(len(images), o.restarts)
    best = restart_loss.argmin(1)
    pick = np.arange(len(images)) * o.restarts + best
    out = {k: v[pick] for k, v in merged.items()}
    out["restart_loss"] = restart_loss
    out["best_restart"] = best
    return {"setup": s, "arrays": out, "images": images}


def project(
    gen: Generator,
    images: Sequence[str | Path] | Targets,
    opts: ProjectOptions | None = None,
    /,
    *,
    mask: str | Path | None = None,
    skip_bad: bool = False,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    every: float = 60.0,
    **changes: Any,
) -> dict[str, Any]:
    """Project images into ``gen``'s latent space.

    Parameters
    ----------
    gen : Generator
        The generator (deterministic synthesis: noise mode const or none).
    images : sequence of paths, or Targets
        Image files, folders or glob patterns (read and fitted before any work), or prepared targets.
    opts : ProjectOptions, optional
        Space, steps, loss terms, restarts, schedule; keyword ``changes`` override its fields.
    mask : path, optional
        A mask image (grey level = weight; fitted like the images): the loss counts only inside it.
    skip_bad : bool
        Skip unreadable images with a warning instead of refusing the run.
    out : str or Path, optional
        The projection file; the run checkpoints into ``<out>.progress/`` and ``resume`` continues it.
        Under torch.distributed the batches of problems are dealt over the processes, every process
        returns the result and rank 0 writes the file (the same bytes as one process).

    Returns
    -------
    dict
        ``latents`` (N, *shape), ``space``, ``noise`` (per noise input (N, 1, H, W) or None), per-image
        ``loss``/``psnr``/``ssim``/``loss_<term>``, ``loss_curve`` (N, steps), ``restart_loss``,
        ``reconstructions`` (N, H, W, C) uint8, ``targets``, ``meta`` and ``out``.
    """
    o = replace(opts or ProjectOptions(), **changes)
    if isinstance(images, Targets):
        targets = images
    else:
        targets = read_targets(images, gen.resolution, gen.channels, o.fit, mask, skip_bad)
    with resumable(out, identity(gen, o, targets), resume=resume, force=force, every=every) as job:
        res = project_targets(gen, targets, o, job)
        result = _result(gen, o, targets, res)
        if out is not None and world().is_main:  # every process has the result; rank 0 writes it
            arrays = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
            for k, v in enumerate(result["noise"] or []):
                arrays[f"noise{k}"] = v
            write_projection(out, result["meta"], arrays, force=force or job.resumed)
    result["out"] = None if out is None else str(out)
    return result


def _result(gen: Generator, o: ProjectOptions, targets: Targets, res: dict[str, Any]) -> dict[str, Any]:
    a, s = res["arrays"], res["setup"]
    s: Setup
    noise = [a[f"noise{k}"] for k in range(len(s.noise_shapes))] or None
    recon = []
    with torch.no_grad():
        for i in range(0, len(a["latent"]), o.batch_size):
            part = slice(i, i + o.batch_size)
            g = gen.with_noise([torch.from_numpy(n[part]).to(gen.device) for n in noise]) if noise else gen
            recon.append(to_uint8(g.synthesis(torch.from_numpy(a["latent"][part]).to(gen.device), s.space)))
    recon = np.concatenate(recon)
    tgt = to_uint8(torch.from_numpy(targets.images))
    terms = [n for n, w in o.loss if w > 0]
    per_image = [
        {
            "path": targets.paths[i],
            "loss": float(a["loss"][j]),
            **{f"loss_{t}": float(a[f"loss_{t}"][j]) for t in terms},
            "psnr": float(a["psnr"][j]),
            "ssim": float(a["ssim"][j]),
            "best_restart": int(a["best_restart"][j]),
        }
        for j, i in enumerate(res["images"])
    ]
    meta = {
        "space": s.space,
        "layers": list(range(gen.num_ws)) if s.space == "w+" else None,
        "generator_identity": generator_identity(gen),
        "options": o.identity(),
        "loss_terms": [list(t) for t in o.loss],
        "noise_maps": len(s.noise_shapes),
        "images": {"paths": targets.paths, "sha256": targets.hashes, "skipped": targets.skipped},
        "results": per_image,
    }
    out = {
        "latents": a["latent"].astype(np.float32),
        "space": s.space,
        "noise": noise,
        "loss": a["loss"],
        "psnr": a["psnr"],
        "ssim": a["ssim"],
        **{f"loss_{t}": a[f"loss_{t}"] for t in terms},
        "loss_curve": a["history"],
        "restart_loss": a["restart_loss"].astype(np.float32),
        "reconstructions": recon,
        "targets": tgt,
        "meta": meta,
    }
    if targets.masks is not None:
        out["masks"] = targets.masks.astype(np.float32)
    return out
