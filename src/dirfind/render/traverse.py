"""Traversals: move latents along bank directions and render them in batches on the device.

Working space: ``z`` banks edit z; ``w``/``w+`` banks edit the per-layer latent w+ at the bank's
layers (or ``layers`` given here), so layer-restricted edits work the same for every style family.
On generators whose w+ is per-layer z (BigGAN), a ``z`` bank with layers (its own or ``layers``
given here) is applied like a ``w`` bank, to those layers' copies of z.

Steps are plain offsets (the same for every sample) or, for hyperplane banks with intercepts
(InterFaceGAN), target signed distances: each sample moves so its distance to the hyperplane goes
through the targets, whatever its starting distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bank import DirectionBank
from ..errors import BadInputError
from ..generators.base import Generator
from ..progress import bar
from .images import to_uint8, write_traversal


def working_space(bank: DirectionBank, layers: Sequence[int] | None = None) -> str:
    """The latent space edits are applied in: ``z`` for z banks edited as a whole, else per-layer
    ``w+`` (also for z banks with layers, their own or ``layers``)."""
    return "z" if bank.space == "z" and bank.layers is None and layers is None else "w+"


def edit_layers(gen: Generator, bank: DirectionBank, layers: Sequence[int] | None = None) -> list[int]:
    """Layers of w+ an edit touches: ``layers`` if given (w banks, and z banks where w+ is
    per-layer z), else the bank's, else all; ``[]`` for an edit of z itself."""
    if bank.space == "z":
        if layers is None and bank.layers is None:
            return []
        if gen.layer_space() != "z":
            raise BadInputError(
                f"--layers applies to w/w+ banks (and z banks of generators with per-layer z); "
                f"this bank edits z and {gen.family} has no per-layer z"
            )
    if layers is not None:
        if bank.space == "w+":
            raise BadInputError("--layers cannot change a per-layer (w+) bank's layers")
        bad = [i for i in layers if not 0 <= i < gen.num_ws]
        if bad:
            raise BadInputError(f"layer {bad[0]} out of range 0..{gen.num_ws - 1}")
        return list(layers)
    return list(bank.layers) if bank.layers is not None else list(range(gen.num_ws))


def offsets(
    bank: DirectionBank, index: int, alphas: Sequence[float], layers: Sequence[int], num_ws: int
) -> torch.Tensor:
    """Latent offsets for direction ``index`` at each step: (S, D) for z (``layers`` empty),
    (S, num_ws, w_dim) for w+."""
    d = torch.from_numpy(bank.directions[index] * bank.scales[index]).double()
    a = torch.as_tensor(list(alphas), dtype=torch.float64)[:, None]
    if bank.space == "z" and not layers:
        return a * d
    per_layer = d.reshape(len(layers), -1) if bank.space == "w+" else d.expand(len(layers), -1)
    out = torch.zeros(len(alphas), num_ws, per_layer.shape[-1], dtype=torch.float64)
    out[:, layers] = a[:, :, None] * per_layer
    return out


def signed_distance(
    gen: Generator, bank: DirectionBank, index: int, latents: torch.Tensor, layers: Sequence[int] | None = None
) -> torch.Tensor:
    """Signed distances (N,) float64 of working-space latents to hyperplane ``index``:
    ``direction · x + intercept`` with x the latent in the bank's space (for ``w`` banks and z banks
    applied per layer, the mean of the edited w+ layers, so that a step of ``a`` along the
    direction changes it by ``a``)."""
    if bank.intercepts is None:
        raise BadInputError(
            f"the {bank.method} bank has no hyperplane intercepts; distances need a boundary bank (interfacegan)"
        )
    (k,) = bank.check_indices([index])
    n = torch.from_numpy(bank.directions[k]).double().to(latents.device)
    x = latents.double()
    if working_space(bank, layers) == "z":
        flat = x.reshape(len(x), -1)
    else:
        lay = edit_layers(gen, bank, layers)
        flat = x[:, lay].reshape(len(x), -1) if bank.space == "w+" else x[:, lay].mean(1)
    return flat @ n + float(bank.intercepts[k])


def traversal_latents(
    gen: Generator,
    bank: DirectionBank,
    base: torch.Tensor,
    dirs: Sequence[int],
    alphas: Sequence[float],
    layers: Sequence[int] | None = None,
    to_distance: bool = False,
) -> torch.Tensor:
    """Edited latents, shape (len(dirs), N, S, *latent) in :func:`working_space`.

    ``base`` holds N unedited latents in the working space (see :func:`base_latents`).
    ``to_distance``: ``alphas`` are target signed distances to each direction's hyperplane
    instead of offsets; each sample gets its own offsets ``(target - distance) / scale``.
    """
    lay = edit_layers(gen, bank, layers)
    out = []
    for k in bank.check_indices(dirs):
        if to_distance:
            start = signed_distance(gen, bank, k, base, layers)
            targets = torch.as_tensor(list(alphas), dtype=torch.float64, device=base.device)
            a = (targets[None] - start[:, None]) / float(bank.scales[k])  # (N, S)
            unit = offsets(bank, k, [1.0], lay, gen.num_ws)[0].to(base.device)
            off = a.reshape(*a.shape, *([1] * unit.ndim)) * unit
            out.append((base.double()[:, None] + off).to(base.dtype))
        else:
            off = offsets(bank, k, alphas, lay, gen.num_ws).to(base.device)
            out.append((base.double()[:, None] + off[None]).to(base.dtype))
    return torch.stack(out)


def base_latents(
    gen: Generator, bank: DirectionBank, z: torch.Tensor, layers: Sequence[int] | None = None
) -> torch.Tensor:
    """Unedited latents in the bank's working space for z (truncation applied by the generator)."""
    with torch.inference_mode():
        return gen.embed(z.to(gen.device, gen.dtype), working_space(bank, layers))


def render(
    gen: Generator, latents: torch.Tensor, space: str, batch_size: int = 32, desc: str | None = "render"
) -> np.ndarray:
    """Render latents (any leading shape) in batches; returns uint8 NHWC with the same leading shape."""
    if batch_size < 1:
        raise BadInputError(f"--batch-size must be at least 1, got {batch_size}")
    lead = latents.shape[: latents.ndim - len(gen.latent_shape(space))]
    flat = latents.reshape(-1, *gen.latent_shape(space))
    chunks = []
    with torch.inference_mode(), bar(total=len(flat), desc=desc, unit="img") as pbar:
        for i in range(0, len(flat), batch_size):
            x = flat[i : i + batch_size].to(gen.device, gen.dtype)
            chunks.append(to_uint8(gen.synthesis(x, space)))
            pbar.update(len(x))
    imgs = np.concatenate(chunks) if chunks else np.zeros((0, gen.resolution, gen.resolution, gen.channels), np.uint8)
    return imgs.reshape(*lead, *imgs.shape[1:])


def traverse(
    gen: Generator,
    bank: DirectionBank,
    dirs: Sequence[int],
    *,
    seeds: Sequence[int] | None = None,
    latents: torch.Tensor | None = None,
    steps: int = 9,
    span: tuple[float, float] | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    out: str | Path | None = None,
    force: bool = False,
    fps: float = 8.0,
    origin: bool = False,
    to_distance: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Render a traversal of ``dirs`` for ``seeds`` (or given working-space ``latents``).

    Returns ``{"images": (rows, steps, H, W, C) uint8, "alphas": [...], "files": [...]}``; rows are
    direction-major (for each direction, every sample). ``span`` defaults to the bank's range.
    ``origin``: also render the sample a local bank was computed at (``bank.origin``), first.
    ``to_distance=(A, B)``: steps are signed distances A .. B to each direction's hyperplane
    (banks with intercepts); ``alphas`` then holds the target distances.
    """
    if steps < 1:
        raise BadInputError(f"--steps must be at least 1, got {steps}")
    if to_distance is not None and span is not None:
        raise BadInputError("give a step range or target distances, not both")
    if to_distance is not None and bank.intercepts is None:
        raise BadInputError(
            f"the {bank.method} bank has no hyperplane intercepts; --to-distance needs a boundary bank (interfacegan)"
        )
    lo, hi = to_distance if to_distance is not None else span if span is not None else bank.default_range
    alphas = np.linspace(lo, hi, steps).tolist() if steps > 1 else [float(hi)]
    if latents is None and seeds is None and not origin:
        raise BadInputError("give seeds or latents to traverse")
    edit_layers(gen, bank, layers)  # refuse bad --layers before rendering anything
    space = working_space(bank, layers)
    if latents is not None:
        base = latents.to(gen.device, gen.dtype)
    elif seeds is not None:
        base = base_latents(gen, bank, gen.z_from_seeds(list(seeds)), layers)
    else:
        base = torch.zeros(0, *gen.latent_shape(space), device=gen.device, dtype=gen.dtype)
    if origin:
        if bank.origin is None:
            raise BadInputError("this bank records no origin sample (only local Jacobian banks do)")
        own = torch.from_numpy(bank.origin).to(gen.device, gen.dtype)
        own_space = working_space(bank)  # where the bank was found; --layers may move a z bank to w+
        if tuple(own.shape) != tuple(gen.latent_shape(own_space)):
            raise BadInputError(f"bank origin of shape {tuple(own.shape)} does not fit this generator")
        if own_space != space:
            own = base_latents(gen, bank, own[None], layers)[0]
        base = torch.cat([own[None], base])
    edited = traversal_latents(gen, bank, base, dirs, alphas, layers, to_distance=to_distance is not None)
    imgs = render(gen, edited, space, batch_size=batch_size)
    tiles = imgs.reshape(-1, *imgs.shape[2:])
    files = write_traversal(tiles, out, force=force, fps=fps) if out is not None else []
    return {"images": tiles, "alphas": alphas, "files": [str(f) for f in files]}
