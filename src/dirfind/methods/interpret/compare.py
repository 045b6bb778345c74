"""``dirfind compare``: how two banks of one generator and space relate.

* Principal angles between the subspaces the banks' directions span (Björck & Golub 1973:
  arccos of the singular values of Q_Aᵀ Q_B, with Q_A, Q_B orthonormal bases);
* the best one-to-one matching of directions by |cos| (Hungarian algorithm,
  ``scipy.optimize.linear_sum_assignment``);
* the directions of A without a counterpart in B: matched |cos| below ``min_cos``, and how much of
  each lies in B's span at all (the norm of its projection onto span(B)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ...bank import DirectionBank
from ...errors import BadInputError, MismatchError
from ...util.options import option
from ...util.progress import warn


@dataclass(frozen=True)
class CompareOptions:
    """Options of :func:`compare` (the defaults of ``dirfind compare``)."""

    k: int | None = option(None, "Compare only the first K directions of each bank (default: all).")
    min_cos: float = option(0.5, "A matched pair with |cos| below this counts as no counterpart.")

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise BadInputError(f"k must be at least 1, got {self.k}", param="k")
        if not 0 <= self.min_cos <= 1:
            raise BadInputError(f"min_cos must be in [0, 1], got {self.min_cos}", param="min_cos")


def check_comparable(a: DirectionBank, b: DirectionBank, force: bool = False) -> None:
    """Banks must edit the same space (and layers) of the same generator (fingerprint unless ``force``)."""
    fa, fb = a.generator.get("fingerprint"), b.generator.get("fingerprint")
    if fa and fb and fa != fb and not force:
        raise MismatchError(
            f"the banks belong to different checkpoints (sha256 {fa[:12]}... vs {fb[:12]}...); "
            "pass force=True to compare them anyway",
            param="force",
        )
    if (a.space, a.layers) != (b.space, b.layers):
        raise MismatchError(
            f"the banks edit different spaces: {a.space} {a.layers or ''} vs {b.space} {b.layers or ''}"
        )
    if a.dim != b.dim:
        raise MismatchError(f"the banks' directions have different dimensions ({a.dim} vs {b.dim})")


def orthonormal_basis(rows: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """(D, r) orthonormal basis of the span of the rows (rank r by the singular values)."""
    u, s, _ = np.linalg.svd(np.asarray(rows, np.float64).T, full_matrices=False)
    return u[:, s > tol * max(s.max(initial=0.0), 1e-300)]


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between the spans of the rows of ``a`` and ``b``."""
    qa, qb = orthonormal_basis(a), orthonormal_basis(b)
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.sort(np.arccos(np.clip(s, -1.0, 1.0)))


def compare(
    a: DirectionBank, b: DirectionBank, opts: CompareOptions | None = None, force: bool = False
) -> dict[str, Any]:
    """Principal angles, the best |cos| matching and unmatched directions of banks ``a`` and ``b``.

    Parameters
    ----------
    a, b : DirectionBank
        Banks of the same generator, space and layers.
    opts : CompareOptions, optional
        ``k`` (first K directions of each) and ``min_cos``.
    force : bool
        Compare banks of different checkpoints.

    Returns
    -------
    dict
        ``principal_angles_deg``, ``abs_cos`` (Ka x Kb), ``matches`` (one per matched pair: a, b,
        names, |cos|, sign), ``unmatched_a`` / ``unmatched_b`` (indices without a counterpart),
        ``in_span_a`` (norm of each A direction's projection onto span(B)) and ``in_span_b``.
    """
    o = opts or CompareOptions()
    check_comparable(a, b, force)
    if o.k is not None and o.k > min(len(a), len(b)):
        warn(f"warning: k = {o.k} but the banks hold {len(a)} and {len(b)} directions; comparing what they hold")
    da = a.directions[: o.k].astype(np.float64)
    db = b.directions[: o.k].astype(np.float64)
    da /= np.linalg.norm(da, axis=1, keepdims=True)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    cos = da @ db.T
    rows, cols = linear_sum_assignment(-np.abs(cos))
    matches = [
        {
            "a": int(i),
            "b": int(j),
            "a_name": a.names[i],
            "b_name": b.names[j],
            "abs_cos": float(abs(cos[i, j])),
            "sign": 1 if cos[i, j] >= 0 else -1,
        }
        for i, j in zip(rows, cols, strict=True)
    ]
    good = {m["a"] for m in matches if m["abs_cos"] >= o.min_cos}
    good_b = {m["b"] for m in matches if m["abs_cos"] >= o.min_cos}
    angles = principal_angles(da, db)
    return {
        "num_a": len(da),
        "num_b": len(db),
        "principal_angles_deg": np.degrees(angles).tolist(),
        "abs_cos": np.abs(cos),
        "matches": matches,
        "unmatched_a": [i for i in range(len(da)) if i not in good],
        "unmatched_b": [j for j in range(len(db)) if j not in good_b],
        "in_span_a": np.linalg.norm(da @ orthonormal_basis(db), axis=1).tolist(),
        "in_span_b": np.linalg.norm(db @ orthonormal_basis(da), axis=1).tolist(),
        "min_cos": o.min_cos,
    }
