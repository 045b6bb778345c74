"""Bank edits: the (space, layers) edit a bank makes, signed distances to hyperplane banks and the
edited latents of a traversal (the engine's :mod:`dirfind.core.edits` applied to bank directions).

Steps are plain offsets (the same for every sample) or, for hyperplane banks with intercepts
(InterFaceGAN), target signed distances: each sample moves so its distance to the hyperplane goes
through the targets, whatever its starting distance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..bank import DirectionBank
from ..core.edits import check_layers, edit_layers, offsets, working_space
from ..errors import BadInputError
from ..generators.base import Generator


def bank_edit(gen: Generator, bank: DirectionBank, layers: Sequence[int] | None = None) -> tuple[str, list[int] | None]:
    """(space, layers) of the edit ``bank`` makes on ``gen``: its own layers unless ``layers``
    narrows a w bank (or a z bank of a family with per-layer z) to others."""
    if layers is not None:
        if bank.space == "w+":
            raise BadInputError("layers cannot change a per-layer (w+) bank's layers", param="layers")
        lay: list[int] | None = list(layers)
    else:
        lay = bank.layers
    if bank.space == "z" and lay is not None and gen.layer_space() != "z":
        raise BadInputError(
            f"layers apply to w/w+ banks (and z banks of generators with per-layer z); "
            f"this bank edits z and {gen.family} has no per-layer z",
            param="layers",
        )
    return bank.space, check_layers(gen, bank.space, lay)


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
    space, lay = bank_edit(gen, bank, layers)
    if working_space(space, lay) == "z":
        flat = x.reshape(len(x), -1)
    else:
        sel = edit_layers(gen, space, lay)
        flat = x[:, sel].reshape(len(x), -1) if space == "w+" else x[:, sel].mean(1)
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
    """Edited latents, shape (len(dirs), N, S, *latent) in the working space of the bank's edit.

    ``base`` holds N unedited working-space latents (:func:`dirfind.core.edits.base_latents`).
    ``to_distance``: ``alphas`` are target signed distances to each direction's hyperplane
    instead of offsets; each sample gets its own offsets ``(target - distance) / scale``.
    """
    space, lay = bank_edit(gen, bank, layers)
    sel = edit_layers(gen, space, lay)
    out = []
    for k in bank.check_indices(dirs):
        d = torch.from_numpy(bank.directions[k] * bank.scales[k])
        if to_distance:
            start = signed_distance(gen, bank, k, base, layers)
            targets = torch.as_tensor(list(alphas), dtype=torch.float64, device=base.device)
            a = (targets[None] - start[:, None]) / float(bank.scales[k])  # (N, S)
            unit = offsets(d, [1.0], space, sel, gen.num_ws)[0].to(base.device)
            off = a.reshape(*a.shape, *([1] * unit.ndim)) * unit
            out.append((base.double()[:, None] + off).to(base.dtype))
        else:
            off = offsets(d, alphas, space, sel, gen.num_ws).to(base.device)
            out.append((base.double()[:, None] + off[None]).to(base.dtype))
    return torch.stack(out)
