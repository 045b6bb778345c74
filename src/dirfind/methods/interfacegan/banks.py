"""InterFaceGAN banks: one unit normal (and intercept) per fitted boundary, from training rows and
score columns, optionally projected orthogonal to condition directions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...bank import DirectionBank
from ...errors import BadInputError
from ...util.progress import warn
from .conditions import project_boundary, projected_intercept
from .fit import Boundary, FitOptions, Rows, check_scores, train_boundary


def features(latents: np.ndarray, space: str, layers: Sequence[int] | None) -> np.ndarray:
    """(N, D) training features: w+ latents keep only ``layers`` (concatenated), others flatten."""
    x = np.asarray(latents)
    if space == "w+" and layers is not None:
        x = x[:, list(layers)]
    return x.reshape(len(x), -1)


def boundary_bank(
    boundaries: Sequence[Boundary],
    names: Sequence[str],
    *,
    space: str,
    generator: dict[str, Any],
    layers: Sequence[int] | None = None,
    params: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    directions: np.ndarray | None = None,
    intercepts: Sequence[float] | None = None,
) -> DirectionBank:
    """A bank with one unit normal per boundary (``step_unit='distance'``, ``intercepts`` set).

    ``directions``/``intercepts`` override the fitted ones (e.g. after projection onto conditions).
    Each direction's score is its validation accuracy (remaining-set accuracy without validation).
    """
    dirs = np.stack([b.normal for b in boundaries]) if directions is None else np.asarray(directions)
    icpt = [b.intercept for b in boundaries] if intercepts is None else list(intercepts)
    scores = [
        b.val_accuracy
        if b.val_accuracy is not None
        else (b.remaining_accuracy if b.remaining_accuracy is not None else 0.0)
        for b in boundaries
    ]
    meta = dict(info or {})
    meta["boundaries"] = [{"name": nm, **b.metadata()} for nm, b in zip(names, boundaries, strict=True)]
    meta["score"] = "validation accuracy of the linear SVM"
    return DirectionBank(
        directions=dirs.astype(np.float32),
        space=space,
        method="interfacegan",
        generator=generator,
        layers=None if (layers is None or space == "z") else list(layers),
        scores=np.asarray(scores, np.float32),
        names=list(names),
        params=dict(params or {}),
        info=meta,
        step_unit="distance",
        default_range=(-3.0, 3.0),
        intercepts=np.asarray(icpt, np.float32),
    )


def fit_bank(
    latents: np.ndarray | Rows,
    scores: np.ndarray,
    names: Sequence[str],
    *,
    space: str,
    generator: dict[str, Any],
    layers: Sequence[int] | None = None,
    fit: FitOptions | None = None,
    conditions: np.ndarray | None = None,
    condition_info: list | None = None,
    source: str = "",
    progress: Any = None,
    extra_info: dict[str, Any] | None = None,
) -> DirectionBank:
    """One boundary per score column (each with a fresh ``fit.seed`` split, as separate official
    calls), optionally projected orthogonal to ``conditions``, as an InterFaceGAN bank."""
    fit = fit or FitOptions()
    ratio, val_split, C, solver, seed = fit.ratio, fit.val_split, fit.C, fit.solver, fit.seed
    invalid_value, max_iter = fit.invalid_value, fit.max_iter
    s = check_scores(scores, latents.shape[0])
    s = s[:, None] if s.ndim == 1 else s
    if len(names) != s.shape[1]:
        raise BadInputError(f"{s.shape[1]} score columns but {len(names)} names")
    if len(set(names)) != len(names):
        raise BadInputError(f"score column names must be distinct, got {list(names)}")
    boundaries, dirs, icpts, extra = [], [], [], []
    for k, name in enumerate(names):
        b = train_boundary(
            latents, s[:, k], ratio, val_split, C, solver, seed, invalid_value=invalid_value, max_iter=max_iter
        )
        if progress is not None:
            progress(name, b)
        n, c = b.normal.astype(np.float64), b.intercept
        info: dict[str, Any] = {}
        if conditions is not None and len(conditions):
            try:
                p = project_boundary(n, conditions)
            except BadInputError as e:
                raise BadInputError(f"boundary {name!r}: {e}") from None
            info = {
                "cos_with_unconditioned": float(p @ n),
                "max_abs_dot_with_conditions": float(np.abs(np.asarray(conditions, np.float64) @ p).max()),
            }
            c, n = projected_intercept(n, c, p), p
        boundaries.append(b)
        dirs.append(n)
        icpts.append(c)
        extra.append(info)
        if not b.converged:
            warn(f"warning: the {solver} solver did not converge for {name!r}; consider solver svc or more samples")
    col = s
    bank_info = {
        "source": source,
        "num_samples": int(len(s)),
        "score_stats": {
            nm: {
                "mean": float(col[:, k].mean()),
                "std": float(col[:, k].std()),
                "min": float(col[:, k].min()),
                "max": float(col[:, k].max()),
            }  # fmt: skip
            for k, nm in enumerate(names)
        },
        "conditions": condition_info or [],
        "projection": extra if conditions is not None and len(conditions) else None,
        "intercept": "signed distance = direction · latent + intercept (latent in the bank's space)",
        **(extra_info or {}),
    }
    params = {
        "ratio": ratio,
        "val_split": val_split,
        "C": C,
        "solver": solver,
        "seed": seed,
        "space": space,
        "layers": None if layers is None else list(layers),
        "invalid_value": invalid_value,
        "conditions": [f"{c['bank']}:{','.join(map(str, c['indices']))}" for c in (condition_info or [])],
    }
    return boundary_bank(
        boundaries,
        names,
        space=space,
        generator=generator,
        layers=layers,
        params=params,
        info=bank_info,
        directions=np.stack(dirs),
        intercepts=icpts,
    )
