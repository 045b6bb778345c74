"""Conditional boundaries (InterFaceGAN's conditional manipulation, generalised): a boundary made
orthogonal to any number of other directions, with its offset kept consistent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...bank import DirectionBank
from ...errors import BadInputError, MismatchError


def project_boundary(normal: np.ndarray, conditions: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """``n - C (CᵀC)⁻¹ Cᵀ n`` renormalised: the part of ``normal`` orthogonal to every condition.

    ``conditions``: (M, D) rows (or a list of (D,) vectors), any M >= 0. Computed in float64 with a
    least-squares solve, so nearly dependent conditions still give an orthogonal result.
    """
    n = np.asarray(normal, np.float64).ravel()
    c = np.asarray(conditions, np.float64)
    if c.size == 0:
        return (n / np.linalg.norm(n)).astype(np.float32)
    c = c.reshape(-1, c.shape[-1])
    if c.shape[1] != n.shape[0]:
        raise MismatchError(f"condition directions have dimension {c.shape[1]}, the boundary has {n.shape[0]}")
    if not np.isfinite(c).all():
        raise BadInputError("condition directions contain NaN or inf")
    coef, *_ = np.linalg.lstsq(c.T, n, rcond=None)  # minimises |Cᵀ-columns · coef - n|: the projection onto span(C)
    new = n - c.T @ coef
    for _ in range(2):  # re-orthogonalise away float64 round-off (one pass is usually enough)
        coef, *_ = np.linalg.lstsq(c.T, new, rcond=None)
        new = new - c.T @ coef
    norm = np.linalg.norm(new)
    if norm < 1e-6 * np.linalg.norm(n):
        raise BadInputError("the boundary lies in the span of its conditions; nothing is left after projection")
    return new / norm


def projected_intercept(normal: np.ndarray, intercept: float, projected: np.ndarray) -> float:
    """Offset of the projected hyperplane through the original's closest point to the origin
    (``-intercept * normal``): ``intercept * (normal · projected)``."""
    return float(intercept * np.dot(np.asarray(normal, np.float64), np.asarray(projected, np.float64)))


@dataclass(frozen=True)
class Condition:
    """Directions ``indices`` of the bank at ``bank`` that a boundary is made orthogonal to."""

    bank: str
    indices: tuple[int, ...]


def load_conditions(
    conditions: Sequence[Condition], space: str, dim: int, layers: Sequence[int] | None
) -> tuple[np.ndarray, list]:
    """Condition directions (M, dim), checked against the new boundary's space and layers."""
    rows, used = [], []
    for cond in conditions:
        path = cond.bank
        bank = DirectionBank.load(path)
        idx = bank.check_indices(list(cond.indices))
        if bank.space != space or bank.dim != dim:
            raise MismatchError(
                f"condition bank {path} edits {bank.space} (dimension {bank.dim}); the boundary lives in "
                f"{space} (dimension {dim})"
            )
        if space == "w+" and (bank.layers or None) != (list(layers) if layers is not None else None):
            raise MismatchError(f"condition bank {path} covers w+ layers {bank.layers}, the boundary {layers}")
        rows.append(bank.directions[idx])
        used.append({"bank": str(path), "indices": idx, "names": [bank.names[i] for i in idx]})
    return (np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)), used
