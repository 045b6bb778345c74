"""``dirfind evaluate``: measure what each direction of a bank does to N seeded samples (or to
given latents, e.g. projected photos).

Every direction is rendered at ``steps`` points of its range for the samples of stream 0 of the
seed (the samples ``dirfind sample`` writes), or for the latents of a file (with a projection's
noise maps), batch by batch through the sampling engine
(resumable from ``<out>.progress/``), and measured: effect size and its profile, locality (change
maps, concentration, a region's inside/outside ratio), content preservation (change outside the
direction's own area, SSIM of the ends), attribute responses and dependencies of every predictor
score, and entanglement between directions. Formulas: docs/interpretation.md.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...bank import DirectionBank, generator_identity
from ...core.dist import is_main, single
from ...core.edits import base_latents, working_space
from ...core.evaluation import Evaluation, bank_record
from ...core.jobs import resumable
from ...core.latentfile import LatentSet, read_latent_file
from ...core.latentstream import LatentStream
from ...core.predictors import load_predictor
from ...core.sampling import SampleStream, check_seed, draw_z, reduce_stream
from ...errors import BadInputError
from ...generators.base import Generator
from ...render.batched import render
from ...render.edit import bank_edit
from ...render.images import MAX_IMAGE_BYTES, MAX_STEPS
from ...render.traverse import bank_settings
from ...util.options import check_positive, option
from .metrics import finalise
from .stats import Predictor, TraversalStats, score, to_model_input


@dataclass(frozen=True, eq=False)
class EvaluateOptions:
    """Options of :func:`evaluate` (the defaults of ``dirfind evaluate``)."""

    n: int = option(64, "Seeded samples each direction is rendered for.")
    steps: int = option(5, "Steps along each direction's range (at least 2; an odd number includes 0).")
    span: tuple[float, float] | None = option(
        None, "Step range in the bank's step unit (default: the bank's, e.g. -3 3).", metavar="A B"
    )
    dirs: tuple[int, ...] | None = option(None, "Directions to evaluate (default all).", metavar="SPEC")
    predictors: tuple[str, ...] = option(
        (), "Attribute scorers: faces, image, module:function or file.py:function (repeatable).", metavar="SPEC"
    )
    map_size: int = option(256, "Change maps are area-pooled to at most this many pixels a side.")
    batch_size: int = option(64, "Images per generator call.")
    mask: np.ndarray | None = None  # a region (bool, any square size): inside/outside ratios
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive(self.n, "n")
        check_positive(self.steps, "steps", 2)
        check_positive(self.map_size, "map_size")
        check_positive(self.batch_size, "batch_size")
        if self.span is not None:
            lo, hi = (float(v) for v in self.span)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise BadInputError(f"span must be two finite numbers A < B, got {self.span}", param="span")
            object.__setattr__(self, "span", (lo, hi))
        if self.dirs is not None:
            object.__setattr__(self, "dirs", tuple(int(i) for i in self.dirs))
        object.__setattr__(self, "predictors", tuple(str(p) for p in self.predictors))
        object.__setattr__(self, "seed", check_seed(self.seed))


def _mask(gen: Generator, mask: np.ndarray | None) -> np.ndarray | None:
    """The region at image resolution (nearest-neighbour resize of any square mask)."""
    if mask is None:
        return None
    from ..jacobian import fit_mask

    m = fit_mask(np.asarray(mask, bool), gen.resolution)
    if m.all() or not m.any():
        raise BadInputError("the region covers none or all of the image", param="mask")
    return m


def evaluate(
    gen: Generator,
    bank: DirectionBank,
    opts: EvaluateOptions | None = None,
    /,
    *,
    bank_path: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    every: float = 60.0,
    scorers: Sequence[Predictor] | None = None,
    latents: str | Path | LatentSet | None = None,
    latent_space: str | None = None,
    **changes: Any,
) -> Evaluation:
    """Render and measure the directions of ``bank`` (see the module doc).

    Parameters
    ----------
    gen : Generator
        The generator the bank was made for (another one only with ``force``).
    bank : DirectionBank
        The directions; its recorded render settings apply.
    opts : EvaluateOptions, optional
        ``n``, ``steps``, ``span``, ``dirs``, ``predictors``, ``mask``, ``map_size``,
        ``batch_size`` and ``seed``; keyword ``changes`` override its fields.
    bank_path : str or Path, optional
        Recorded in the result.
    out : str or Path, optional
        Save the evaluation there; the run is then resumable from ``<out>.progress/``
        (``resume``, ``force``, ``every`` seconds between checkpoints).
    scorers : sequence of (label, callable), optional
        Already-loaded predictors instead of ``opts.predictors`` (library use).
    latents : str, Path or LatentSet, optional
        Evaluate at these latents instead of ``n`` seeded samples: any latents file
        (:func:`dirfind.core.latentfile.read_latent_file`; ``latent_space`` for a raw array) or
        one already read. A projection's noise maps are used as ``traverse`` uses them.

    Returns
    -------
    Evaluation
        Per-direction metrics (:data:`dirfind.core.evaluation.METRICS`). In a distributed run
        (call it on every process) the samples' batches are dealt over the processes, every
        process returns the combined result and rank 0 alone writes ``out``.
    """
    o = replace(opts or EvaluateOptions(), **changes)
    bank.check_generator(gen, force=force)
    gen = gen.with_settings(**bank_settings(gen, bank))
    bank_edit(gen, bank)
    dirs = bank.check_indices(list(o.dirs) if o.dirs is not None else range(len(bank)))
    lo, hi = o.span if o.span is not None else bank.default_range
    if not lo < hi:
        raise BadInputError(f"the step range must go from low to high, got {lo} .. {hi}", param="span")
    held = o.steps * gen.resolution**2 * gen.channels  # one sample's rendered steps (uint8), held at once
    if o.steps > MAX_STEPS or held > MAX_IMAGE_BYTES:
        raise BadInputError(
            f"steps must be at most {min(MAX_STEPS, MAX_IMAGE_BYTES // (held // o.steps))} for this "
            f"{gen.resolution}px generator (one sample's steps are rendered together), got {o.steps}",
            param="steps",
        )
    alphas = np.linspace(lo, hi, o.steps)
    mask = _mask(gen, o.mask)
    loaded = list(scorers) if scorers is not None else [(p, load_predictor(p)) for p in o.predictors]
    per_batch = max(1, o.batch_size // o.steps)
    given = _given(gen, bank, latents, latent_space, per_batch)
    stream = given[1] if given else SampleStream(gen, o.n, "z", seed=o.seed, batch_size=per_batch)
    attributes = _probe(gen, bank, loaded, o.seed, stream if given else None)
    identity = {
        "what": "dirfind evaluate",
        "bank": bank.fingerprint(),
        "dirs": dirs,
        "alphas": alphas.tolist(),
        "predictors": [label for label, _ in loaded],
        "attributes": attributes,
        "map_size": o.map_size,
        "mask": None if mask is None else hashlib.sha256(np.packbits(mask).tobytes()).hexdigest(),
        **stream.identity(),
    }
    with resumable(out, identity, resume=resume, force=force, every=every) as job:
        reducer = TraversalStats(
            gen,
            bank,
            dirs,
            alphas,
            predictors=loaded,
            attributes=attributes,
            mask=mask,
            map_size=o.map_size,
            batch_size=o.batch_size,
        )
        reduce_stream(stream, reducer, job=job, stage="evaluate", desc="evaluate")
        arrays = finalise(reducer.state, alphas, bank.directions[dirs].astype(np.float64), mask)
        arrays["dirs"] = np.asarray(dirs, np.int64)
        arrays["names"] = np.array([bank.names[k] for k in dirs], dtype=str)
        arrays["attr_names"] = np.array(attributes, dtype=str)
        if mask is not None:
            arrays["region"] = mask.astype(np.uint8)
        result = Evaluation(
            arrays=arrays,
            bank=bank_record(bank, bank_path),
            generator=generator_identity(gen),
            run={
                "n": len(stream),
                **({"seed": o.seed, "stream": 0} if not given else {"latents": given[0]}),
                "steps": o.steps,
                "span": [float(lo), float(hi)],
                "step_unit": bank.step_unit,
                "predictors": [label for label, _ in loaded],
                "map_size": o.map_size,
                "region": mask is not None,
            },
        )
        if out is not None and is_main():
            result.save(out, force=force)
    return result


def _given(
    gen: Generator, bank: DirectionBank, latents: str | Path | LatentSet | None, space: str | None, batch_size: int
) -> tuple[dict[str, Any], LatentStream] | None:
    """Given latents as a stream in the bank's working space, and what the result records of them."""
    if latents is None:
        return None
    ls = latents if isinstance(latents, LatentSet) else read_latent_file(latents, gen, space)
    edit_space, lay = bank_edit(gen, bank)
    work = ls.working(gen, edit_space, lay)
    stream = LatentStream(gen, work, working_space(edit_space, lay), noise=ls.noise_tensors(), batch_size=batch_size)
    record = {
        "file": None if isinstance(latents, LatentSet) else str(latents),
        "source": ls.source,
        "space": ls.space,
        "names": list(ls.names),
        "noise": ls.noise is not None,
        "sha256": stream.digest,
    }
    return record, stream


def _probe(
    gen: Generator,
    bank: DirectionBank,
    predictors: Sequence[Predictor],
    seed: int,
    given: LatentStream | None = None,
) -> list[str]:
    """Attribute names: the predictors' outputs on one rendered sample (the first given latent, if
    any; checked before the run)."""
    if not predictors:
        return []
    space, lay = bank_edit(gen, bank)
    if given is not None:
        first = given.batch(0, 1)
        base, noise = first.latent, first.noise
    else:
        base, noise = base_latents(gen, torch.from_numpy(draw_z(gen, 0, 1, seed)), space, lay), None
    with single():  # every process probes for itself
        img = render(gen, base, working_space(space, lay), desc=None, noise=noise)
    _, names = score(predictors, to_model_input(img, gen.device), "sample 0")
    if not names:
        raise BadInputError("the predictors returned no scores", param="predictors")
    return names
