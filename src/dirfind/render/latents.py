"""Users' latent files: ``.npy`` arrays of z, w or w+ latents, brought into a bank's working space."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..bank import DirectionBank
from ..core.edits import base_latents, working_space
from ..errors import BadInputError
from ..generators.base import Generator
from ..util.fileio import read_npy
from .edit import bank_edit


def read_latents(
    gen: Generator,
    bank: DirectionBank,
    path: str | Path,
    space: str | None = None,
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    """Latents from ``path`` (an (N, ...) or single-latent ``.npy``) in the working space of
    ``bank``'s edit (``layers`` overriding the bank's). ``space``: the file's space (default: z for
    2-D arrays, w+ for 3-D); z latents are embedded, w latents repeated per layer."""
    arr = read_npy(path, "latents", numeric=True)
    space = space or ("z" if arr.ndim == 2 else "w+")
    gen.check_space(space)
    shape = gen.latent_shape(space)
    if arr.ndim == len(shape):
        arr = arr[None]
    if tuple(arr.shape[1:]) != shape:
        raise BadInputError(f"{path}: latents of shape {arr.shape} do not fit space {space} {shape}")
    if not np.isfinite(arr).all():
        raise BadInputError(f"{path}: latents contain NaN or inf")
    lat = torch.from_numpy(arr.astype(np.float32))
    edit_space, lay = bank_edit(gen, bank, layers)
    target = working_space(edit_space, lay)
    if space == target:
        return lat
    if space == "z":
        return base_latents(gen, lat, edit_space, lay)
    if space == "w" and target == "w+":
        return lat[:, None].expand(-1, gen.num_ws, -1).clone()
    raise BadInputError(f"{space} latents cannot be used with a {bank.space} bank", param="latent_space")
