"""Optimiser state as plain arrays, so resumable jobs continue an Adam run bit for bit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def adam_arrays(
    opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], prefix: str = "adam"
) -> dict[str, np.ndarray]:
    """Adam's step count and moments of each of ``params`` (empty before the first step)."""
    out: dict[str, np.ndarray] = {}
    for i, p in enumerate(params):
        st = opt.state.get(p, {})
        if not st:
            continue
        tag = prefix if len(params) == 1 else f"{prefix}{i}"
        out[f"{tag}_step"] = np.asarray(float(st["step"]))
        out[f"{tag}_exp_avg"] = st["exp_avg"].detach().cpu().numpy()
        out[f"{tag}_exp_avg_sq"] = st["exp_avg_sq"].detach().cpu().numpy()
    return out


def restore_adam(
    opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], arrays: dict[str, np.ndarray], prefix: str = "adam"
) -> None:
    """Put the state saved by :func:`adam_arrays` back into ``opt``."""
    for i, p in enumerate(params):
        tag = prefix if len(params) == 1 else f"{prefix}{i}"
        if f"{tag}_step" not in arrays:
            continue
        opt.state[p] = {
            "step": torch.tensor(float(arrays[f"{tag}_step"])),
            "exp_avg": torch.from_numpy(arrays[f"{tag}_exp_avg"].copy()).to(p.device, p.dtype),
            "exp_avg_sq": torch.from_numpy(arrays[f"{tag}_exp_avg_sq"].copy()).to(p.device, p.dtype),
        }
