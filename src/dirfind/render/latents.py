"""Users' latent files brought into a bank's working space: every format
:func:`dirfind.core.latentfile.read_latent_file` reads (``.npy`` arrays, e4e/ReStyle/PTI ``.pt`` and
``.npy`` files, ``dirfind sample`` and ``dirfind project`` files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..bank import DirectionBank
from ..core.latentfile import LatentSet, read_latent_file
from ..generators.base import Generator
from .edit import bank_edit


def read_latent_set(
    gen: Generator,
    bank: DirectionBank,
    path: str | Path,
    space: str | None = None,
    layers: Sequence[int] | None = None,
) -> tuple[LatentSet, torch.Tensor]:
    """The file's :class:`LatentSet` and its latents in the working space of ``bank``'s edit
    (``layers`` overriding the bank's). ``space``: the space of a raw array (default: w+ for 3-D
    arrays, z for 2-D unless only w fits); z latents are embedded, w latents repeated per layer."""
    ls = read_latent_file(path, gen, space)
    edit_space, lay = bank_edit(gen, bank, layers)
    return ls, ls.working(gen, edit_space, lay)


def read_latents(
    gen: Generator,
    bank: DirectionBank,
    path: str | Path,
    space: str | None = None,
    layers: Sequence[int] | None = None,
) -> torch.Tensor:
    """Latents from ``path`` in the working space of ``bank``'s edit (see :func:`read_latent_set`)."""
    return read_latent_set(gen, bank, path, space, layers)[1]
