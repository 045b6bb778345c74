"""Latent edits: the space an edit is applied in, the layers it touches and the edited latents.

An edit vector ``d`` of a bank's space moves a latent as follows:

* ``z`` without layers: ``d`` (z_dim) is added to z itself;
* ``w`` (and ``z`` with layers on families whose w+ is per-layer z, such as BigGAN): ``d`` is added
  to every selected layer of the per-layer latent w+ (all layers by default);
* ``w+``: ``d`` (len(layers) * w_dim) holds one block per selected layer.

The *working space* is the latent the generator is driven with: z for a whole-z edit, w+ otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import BadInputError
from ..generators.base import Generator


def working_space(space: str, layers: Sequence[int] | None = None) -> str:
    """``z`` for an edit of the whole z, else ``w+`` (w edits and z edits applied per layer)."""
    return "z" if space == "z" and layers is None else "w+"


def check_layers(gen: Generator, space: str, layers: Sequence[int] | None) -> list[int] | None:
    """Validated w+ ``layers`` for an edit of ``space`` (None = the space's default)."""
    if layers is None:
        return None
    if space == "z" and gen.layer_space() != "z":
        raise BadInputError(
            f"layers apply to w/w+ edits (and to z where w+ is per-layer z); {gen.family} has no per-layer z, "
            "so a z edit moves all of z",
            param="layers",
        )
    return gen.check_layers(layers)


def edit_layers(gen: Generator, space: str, layers: Sequence[int] | None = None) -> list[int]:
    """The w+ layers an edit touches: ``[]`` for an edit of the whole z, else ``layers`` (all by default)."""
    layers = check_layers(gen, space, layers)
    if space == "z" and layers is None:
        return []
    return list(range(gen.num_ws)) if layers is None else layers


def edit_dim(gen: Generator, space: str, layers: Sequence[int] | None = None) -> int:
    """Length D of an edit vector in ``space`` (``w+``: one w block per selected layer)."""
    gen.check_space(space)
    if space == "w+":
        return gen.w_dim * (gen.num_ws if layers is None else len(layers))
    return gen.space_dim(space)


def base_latents(gen: Generator, z: torch.Tensor, space: str, layers: Sequence[int] | None = None) -> torch.Tensor:
    """Unedited latents in the :func:`working_space` of an edit, for prior samples z (N, z_dim)."""
    with torch.no_grad():
        return gen.embed(z.to(gen.device, gen.dtype), working_space(space, layers))


def apply_edit(
    gen: Generator, base: torch.Tensor, d: torch.Tensor, space: str, layers: Sequence[int] | None = None
) -> torch.Tensor:
    """Add edit vectors ``d`` (..., D) to working-space latents ``base`` (pure; differentiable in d)."""
    if space == "z" and layers is None:
        return base + d
    n_layers = gen.num_ws
    sel = list(range(n_layers)) if layers is None else list(layers)
    if space != "w+":
        blocks = d[..., None, :].expand(*d.shape[:-1], len(sel), gen.w_dim)
    else:
        blocks = d.reshape(*d.shape[:-1], len(sel), gen.w_dim)
    if len(sel) == n_layers and sel == list(range(n_layers)):
        return base + blocks
    onehot = torch.zeros(len(sel), n_layers, dtype=d.dtype, device=d.device)
    onehot[torch.arange(len(sel)), torch.as_tensor(sel)] = 1
    return base + torch.einsum("...lc,lk->...kc", blocks, onehot)


def offsets(
    direction: torch.Tensor, alphas: Sequence[float], space: str, layers: Sequence[int], num_ws: int
) -> torch.Tensor:
    """Working-space offsets ``alpha * direction`` for each step: (S, D) for a whole-z edit
    (``layers`` empty), (S, num_ws, w_dim) otherwise (float64)."""
    d = direction.double()
    a = torch.as_tensor(list(alphas), dtype=torch.float64)[:, None]
    if space == "z" and not layers:
        return a * d
    per_layer = d.reshape(len(layers), -1) if space == "w+" else d.expand(len(layers), -1)
    out = torch.zeros(len(alphas), num_ws, per_layer.shape[-1], dtype=torch.float64)
    out[:, layers] = a[:, :, None] * per_layer
    return out
