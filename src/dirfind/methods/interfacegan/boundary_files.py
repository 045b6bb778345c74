"""Official InterFaceGAN ``boundary.npy`` files: import one as a one-direction bank, export a bank
direction as one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...bank import DirectionBank, generator_identity
from ...errors import BadInputError
from ...generators.base import Generator
from ...util.fileio import atomic_path, read_npy
from ...util.progress import warn
from .pipeline import check_layers

_SPACE_IN_NAME = re.compile(r"_(w|wp|z)_boundary", re.IGNORECASE)


def import_boundary(
    path: str | Path,
    *,
    gen: Generator | None = None,
    space: str | None = None,
    layers: Sequence[int] | None = None,
    name: str | None = None,
    intercept: float = 0.0,
) -> DirectionBank:
    """An official InterFaceGAN ``boundary.npy`` ((1, D) or (D,)) as a one-direction bank.

    The space comes from ``space``, else the official file name (``..._w_boundary.npy`` -> w,
    otherwise z). Without ``gen`` the bank records only the space and dimension (traversing it
    then needs a checkpoint). ``intercept`` defaults to 0, the official ``linear_interpolate``'s distance n·x.
    """
    path = Path(path)
    arr = read_npy(path, "boundary")
    if arr.dtype.kind != "f":
        raise BadInputError(f"{path}: expected a float array of shape (1, D)")
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.size == 0:
        raise BadInputError(f"{path}: expected a boundary of shape (1, D) or (D,), got {arr.shape}")
    v = arr.astype(np.float64)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(v).all() or norm == 0:
        raise BadInputError(f"{path}: the boundary is zero or contains NaN/inf")
    if abs(norm - 1) > 1e-3:
        warn(f"warning: {path} has norm {norm:.4g}; normalising to a unit direction")
    if space is None:
        m = _SPACE_IN_NAME.search(path.name)
        space = {"w": "w", "wp": "w+", "z": "z"}[m[1].lower()] if m else "z"
    if space not in ("z", "w", "w+"):
        raise BadInputError(f"space must be z, w or w+, got {space!r}", param="space")
    if gen is not None:
        identity = generator_identity(gen)
        gen.check_space(space)
    else:
        identity = {"family": "unknown", "checkpoint": None, "fingerprint": None}
        identity["z_dim" if space == "z" else "w_dim"] = int(v.size)
    lay = check_layers(layers, space, identity.get("num_ws"))
    return DirectionBank(
        directions=(v / norm)[None].astype(np.float32),
        space=space,
        method="interfacegan",
        generator=identity,
        layers=lay if space != "z" else None,
        names=[name or re.sub(r"_boundary$", "", path.stem)],
        scores=np.zeros(1, np.float32),
        params={"imported": str(path), "space": space, "layers": lay},
        info={
            "source": f"official boundary file {path}",
            "norm_in_file": norm,
            "intercept": "signed distance = direction · latent + intercept; imported files carry none (0 = the "
            "official linear_interpolate's n·x)",
        },
        step_unit="distance",
        default_range=(-3.0, 3.0),
        intercepts=np.array([intercept], np.float32),
    )


def export_boundary(bank: DirectionBank, index: int, out: str | Path, force: bool = False) -> dict[str, Any]:
    """Write direction ``index`` as an official-style ``boundary.npy``: (1, D) float32, unit norm."""
    (k,) = bank.check_indices([index])
    d = bank.directions[k].astype(np.float32)[None]
    with atomic_path(out, force=force, suffix=".npy") as tmp:
        np.save(tmp, d)
    return {
        "out": str(out),
        "index": k,
        "name": bank.names[k],
        "space": bank.space,
        "shape": list(d.shape),
        "intercept": None if bank.intercepts is None else float(bank.intercepts[k]),
    }
