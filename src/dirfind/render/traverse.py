"""Traversals: move latents along bank directions and render them in batches on the device.

Working space: ``z`` banks edit z; ``w``/``w+`` banks edit the per-layer latent w+ at the bank's
layers (or ``layers`` given here), so layer-restricted edits work the same for every style family.
On generators whose w+ is per-layer z (BigGAN), a ``z`` bank with layers (its own or ``layers``
given here) is applied like a ``w`` bank, to those layers' copies of z. Render settings recorded in
the bank (class, truncation, noise mode, transform) are the defaults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bank import DirectionBank
from ..core.dist import world
from ..core.edits import base_latents, working_space
from ..errors import BadInputError
from ..generators.base import Generator
from ..generators.settings import RenderSettings
from ..util.options import check_positive, option
from ..util.progress import bar
from .annotate import Annotation, step_labels
from .batched import render
from .edit import bank_edit, traversal_latents
from .images import MAX_STEPS, check_traversal_out, check_traversal_size, traversal_sink
from .latents import read_latent_set

#: samples a traversal shows when neither seeds nor latents are given
DEFAULT_SEEDS = (0, 1, 2, 3)


@dataclass(frozen=True)
class TraverseOptions:
    """How a traversal is stepped and rendered (the defaults of ``dirfind traverse``)."""

    steps: int = option(9, "Steps along each direction.")
    span: tuple[float, float] | None = option(
        None, "Step range in the bank's step unit (default: the bank's, e.g. -3 3).", metavar="A B"
    )
    to_distance: tuple[float, float] | None = option(
        None,
        "Hyperplane banks (interfacegan): move each sample so its signed distance goes from A to B.",
        metavar="A B",
    )
    layers: tuple[int, ...] | None = option(
        None, "Edit only these w+ layers (w banks; z banks of BigGAN).", metavar="SPEC"
    )
    origin: bool | None = option(
        None, "Also render a local bank's own sample first (default: alone when no seeds/latents are given)."
    )
    batch_size: int = option(32, "Images per generator call.")
    fps: float = option(8.0, "GIF and video frames per second (0.01 to 100: GIF stores frame times in 1/100 s).")
    annotate: bool = option(False, "Write the step values over the columns and direction names beside the rows.")

    def __post_init__(self) -> None:
        check_positive(self.steps, "steps")
        if self.steps > MAX_STEPS:
            raise BadInputError(f"steps must be at most {MAX_STEPS}, got {self.steps}", param="steps")
        check_positive(self.batch_size, "batch_size")
        check_positive(self.fps, "fps", 0, strict=True)
        if not 0.01 <= self.fps <= 100:
            raise BadInputError(
                f"fps must be in 0.01..100 (GIF frame times are 1/100 s units), got {self.fps}", param="fps"
            )
        if self.span is not None and self.to_distance is not None:
            raise BadInputError("give span or to_distance, not both", param=("span", "to_distance"))
        for name in ("span", "to_distance"):
            v = getattr(self, name)
            if v is not None:
                if len(v) != 2 or not all(math.isfinite(float(x)) for x in v):
                    raise BadInputError(f"{name} must be two finite numbers, got {v}", param=name)
                object.__setattr__(self, name, (float(v[0]), float(v[1])))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))


def bank_settings(gen: Generator, bank: DirectionBank) -> dict[str, Any]:
    """The render settings recorded in ``bank`` that apply to ``gen`` (class only for
    class-conditional generators, the transform only where it is supported)."""
    rec = RenderSettings.from_record(bank.generator)
    if not gen.num_classes:
        rec.pop("class_index", None)
    if not gen.supports_transform:
        rec.pop("transform", None)
    return rec


def traverse(
    gen: Generator,
    bank: DirectionBank,
    dirs: Sequence[int],
    opts: TraverseOptions | None = None,
    *,
    seeds: Sequence[int] | None = None,
    latents: torch.Tensor | str | Path | None = None,
    latent_space: str | None = None,
    settings: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    force: bool = False,
    **changes: Any,
) -> dict[str, Any]:
    """Render a traversal of ``dirs`` of ``bank`` for ``seeds`` (or given latents).

    Parameters
    ----------
    gen : Generator
        The generator the bank was made for (another one only with ``force``).
    bank : DirectionBank
        The directions.
    dirs : sequence of int or str
        Direction indices (negative ones count from the end) or names (:meth:`DirectionBank.resolve`).
    opts : TraverseOptions, optional
        ``steps``, ``span`` (default: the bank's range) or ``to_distance`` (hyperplane banks:
        target signed distances), ``layers``, ``origin`` (also render a local bank's own sample),
        ``batch_size``, ``fps`` and ``annotate``; keyword ``changes`` override its fields.
    seeds : sequence of int, optional
        Sample seeds (NVIDIA's ``RandomState(seed)`` convention); default 0-3 unless the bank's
        origin is rendered alone.
    latents : tensor or path, optional
        Start latents instead: a tensor in the working space, or a latents file (``.npy``, ``.pt``,
        a sample or projection file; see :func:`dirfind.core.latentfile.read_latent_file`); a raw
        array's space is ``latent_space`` (default: w+ for 3-D arrays, z for 2-D unless only w fits).
    settings : mapping, optional
        Render settings that override the bank's recorded ones (and the generator's).
    out : str or Path, optional
        A grid image, a ``.gif``, an ``.mp4`` (H.264; the ``video`` extra) or a folder ending in
        ``/`` for numbered frames.
    force : bool
        Overwrite ``out``; use a bank made for another checkpoint.

    Returns
    -------
    dict
        ``images`` (rows, steps, H, W, C) uint8 with rows direction-major (for each direction,
        every sample; a read-only view of the grid, None for frames, which stream to disk),
        ``alphas``, ``files``, ``rows``, ``samples``, ``seeds`` and ``origin``. In a distributed
        run the frames are rendered by all processes and only rank 0 gets ``images`` and writes
        ``out`` (elsewhere ``images`` is None and ``files`` empty).
    """
    o = replace(opts or TraverseOptions(), **changes)
    dirs = bank.resolve(list(dirs))
    if o.to_distance is not None and bank.intercepts is None:
        raise BadInputError(
            f"the {bank.method} bank has no hyperplane intercepts; to_distance needs a boundary bank (interfacegan)",
            param="to_distance",
        )
    if out is not None:
        check_traversal_out(out, force)
    if seeds is not None and latents is not None:
        raise BadInputError("give seeds or latents, not both", param=("seeds", "latents"))
    bank.check_generator(gen, force=force)  # first: another generator may not fit the recorded settings
    gen = gen.with_settings(**bank_settings(gen, bank)).with_settings(**dict(settings or {}))
    layers = None if o.layers is None else list(o.layers)
    space, lay = bank_edit(gen, bank, layers)  # refuse bad layers before rendering anything
    work = working_space(space, lay)
    origin = o.origin if o.origin is not None else bank.origin is not None and seeds is None and latents is None
    if seeds is None and latents is None and not origin:
        seeds = DEFAULT_SEEDS
    lo, hi = o.to_distance if o.to_distance is not None else o.span if o.span is not None else bank.default_range
    alphas = np.linspace(lo, hi, o.steps).tolist() if o.steps > 1 else [float(hi)]
    tile = (gen.resolution, gen.resolution, gen.channels)
    if seeds is not None:  # before drawing them: a traversal too large to render is refused at once
        check_traversal_size(out, len(dirs) * (len(seeds) + bool(origin)), o.steps, tile)
    noise = None
    if isinstance(latents, (str, Path)):
        lset, latents = read_latent_set(gen, bank, latents, latent_space, layers)
        noise = lset.noise_tensors(gen.device)  # a projection's optimised noise maps, one per image
    if latents is not None:
        base = latents.to(gen.device, gen.dtype)
    elif seeds is not None:
        base = base_latents(gen, gen.z_from_seeds(list(seeds)), space, lay)
    else:
        base = torch.zeros(0, *gen.latent_shape(work), device=gen.device, dtype=gen.dtype)
    if origin:
        if bank.origin is None:
            raise BadInputError("this bank records no origin sample (only local Jacobian banks do)", param="origin")
        own = torch.from_numpy(bank.origin).to(gen.device, gen.dtype)
        own_space = working_space(bank.space, bank.layers)  # where the bank was found; layers may move a z bank to w+
        if tuple(own.shape) != tuple(gen.latent_shape(own_space)):
            raise BadInputError(f"bank origin of shape {tuple(own.shape)} does not fit this generator")
        if own_space != work:
            own = base_latents(gen, own[None], space, lay)[0]
        base = torch.cat([own[None], base])
        if noise is not None:  # the bank's own sample renders with the stored maps
            noise = [torch.cat([m[None, None], n]) for m, n in zip(gen.noise_maps(), noise, strict=True)]
    if noise is not None:
        noise = [n[None, :, None] for n in noise]  # (1, N, 1, 1, H, W) against (dirs, N, steps)
    rows = len(dirs) * len(base)
    note = None
    if o.annotate:
        names = ["origin"] * bool(origin) + (
            [f"seed {s}" for s in seeds] if seeds is not None else [f"latent {i}" for i in range(len(base) - origin)]
        )
        labels = tuple(f"#{k} {bank.names[k]} | {n}" for k in dirs for n in names)
        unit = "distance" if o.to_distance is not None else bank.step_unit
        note = Annotation(step_labels(alphas), labels, unit)
    chunk = max(1, -(-o.batch_size // max(rows, 1)))  # steps per generator call: full batches
    main = world().is_main
    sink_cm = traversal_sink(out, rows, o.steps, tile, force=force, fps=o.fps, note=note) if main else nullcontext()
    with sink_cm as sink, bar(total=rows * o.steps, desc="render", unit="img") as pbar:
        for s0 in range(0, o.steps, chunk):
            part = alphas[s0 : s0 + chunk]
            edited = traversal_latents(gen, bank, base, dirs, part, layers, to_distance=o.to_distance is not None)
            imgs = render(gen, edited, work, batch_size=o.batch_size, pbar=pbar, noise=noise)  # (dirs, N, steps, ...)
            if imgs is None:  # a distributed run's process other than rank 0
                continue
            imgs = imgs.reshape(rows, len(part), *tile)
            for j in range(len(part)):
                sink.put(s0 + j, imgs[:, j])
    tiles, files = (sink.tiles, sink.files) if sink is not None else (None, [])
    return {
        "images": tiles,
        "alphas": alphas,
        "files": [str(f) for f in files],
        "dirs": dirs,
        "seeds": None if seeds is None else [int(s) for s in seeds],
        "origin": bool(origin),
        "samples": len(base),
        "rows": len(dirs) * len(base),
        "checkpoint": gen.checkpoint,
    }
