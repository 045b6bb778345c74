"""LowRankGAN / ReSeFa: directions from the image Jacobian of one sample (or an average).

* Global (Zhu et al., "Low-Rank Subspaces in GANs", NeurIPS 2021): eigenvectors of JᵀJ / M
  (J = d outputs / d edit, M outputs), top-K; the eigenvalues (mean squared output change per
  unit step) are the scores. ``average=True`` averages JᵀJ / M over samples for directions that
  work everywhere; otherwise the bank is local to its one sample and records it in ``origin``.
* Local (``mask``): the foreground Gram matrix A = J_fᵀJ_f / M_f and background B = J_bᵀJ_b / M_b.
  - ``nullspace`` (LowRankGAN ``compute_directions.py``): Robust PCA (principal component
    pursuit, λ = 1/60, up to 10,000 ADMM iterations) splits A and B into low-rank + sparse parts;
    the foreground principal space is the top ``rank(L_A)`` right singular vectors of L_A, the
    background null space the singular vectors of L_B after the first
    ``min(max(1, rank(L_B) - relax), D - 1)`` (numpy ``matrix_rank`` of the low-rank part, its
    default tolerance); the principal vectors are projected onto that null space and normalised.
  - ``generalized`` (ReSeFa ``compute_direction.py``): eigenvectors of A v = λ (B + τ tr(B) I) v,
    solved as a symmetric-definite problem with ``scipy.linalg.eigh``; the eigenvalue is the ratio
    of foreground to background change and is the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch

from ..bank import DirectionBank, generator_identity
from ..core.edits import base_latents, check_layers, edit_dim
from ..core.jvp import OutputTransform, jacobian, require_deterministic
from ..core.latentfile import to_working
from ..core.parallel import map_ordered
from ..errors import BadInputError, NotFoundError
from ..generators.base import Generator
from ..util.options import check_choice, option
from ..util.progress import bar

LOCAL_METHODS = ("nullspace", "generalized")
RANK_METHODS = ("rpca", "energy")


@dataclass(frozen=True, eq=False)
class JacobianOptions:
    """Options of :func:`jacobian_directions` (the defaults of ``dirfind jacobian``)."""

    space: str | None = option(None, "Edit space (default: w if any, else z).", choices=("z", "w", "w+"))
    layers: tuple[int, ...] | None = option(None, "w/w+ layers the edit moves (default all).", metavar="SPEC")
    k: int | None = option(None, "Keep the top K directions (default: all).")
    average: bool = option(False, "Average JᵀJ over the samples: global instead of local directions.")
    size: int | None = option(None, "Resize outputs (nearest) to SIZE px first, e.g. 256 as LowRankGAN.")
    channels: str = option(
        "mean",
        "Channel reduction of the outputs: mean (LowRankGAN), sum (ReSeFa) or all.",
        choices=("mean", "sum", "all"),
    )
    mask: np.ndarray | None = None  # local editing: region (bool, any square size; True = region)
    local_method: str = option(
        "nullspace",
        "nullspace: LowRankGAN projection onto the background null space; generalized: ReSeFa eigenproblem.",
        choices=LOCAL_METHODS,
    )
    rank_method: str = option(
        "rpca", "nullspace ranks: rpca (official Robust PCA) or energy (share of each trace).", choices=RANK_METHODS
    )
    energy: float = option(0.99, "Trace share for the energy rank method.")
    relax: int = option(0, "LowRankGAN num_relax: enlarge the null space.")
    rpca_lambda: float = 1 / 60
    rpca_iters: int = 10_000
    tau: float = option(1e-3, "ReSeFa regulariser: B + tau*trace(B)*I.")
    chunk: int = option(32, "Tangents per forward-mode pass (memory).")

    def __post_init__(self) -> None:
        check_choice(self.local_method, "local_method", LOCAL_METHODS)
        check_choice(self.rank_method, "rank_method", RANK_METHODS)
        if self.k is not None and self.k < 1:
            raise BadInputError(f"k must be at least 1, got {self.k}", param="k")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))


# ---------------------------------------------------------------------- regions
def region_mask(region: tuple[int, int, int, int], resolution: int) -> np.ndarray:
    """Boolean (resolution, resolution) mask of a box (x0, y0, x1, y1) in output pixels (x = column,
    y = row; x1, y1 exclusive)."""
    x0, y0, x1, y1 = (int(v) for v in region)
    if x1 <= x0 or y1 <= y0 or min(x0, y0) < 0:
        raise BadInputError(f"region {region} is empty or negative (need x0 < x1, y0 < y1)", param="region")
    if x1 > resolution or y1 > resolution:
        raise BadInputError(f"region {region} exceeds the {resolution}x{resolution} image", param="region")
    mask = np.zeros((resolution, resolution), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def read_mask(path: str | Path) -> np.ndarray:
    """A mask image (any size; non-zero = region) as a boolean array."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"mask not found: {path}")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"))
    except (UnidentifiedImageError, OSError) as e:
        raise BadInputError(f"{path}: not a readable image ({e})") from None
    if arr.shape[0] != arr.shape[1]:
        raise BadInputError(f"{path}: mask must be square like the images, got {arr.shape[1]}x{arr.shape[0]}")
    return arr > 0


def fit_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask to the Jacobian's output size (torch's rule)."""
    if mask.shape == (size, size):
        return mask.astype(bool)
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=(size, size), mode="nearest")[0, 0].numpy() > 0.5


# ---------------------------------------------------------------------- linear algebra
def robust_pca(m: np.ndarray, lam: float = 1 / 60, max_iter: int = 10_000) -> tuple[np.ndarray, np.ndarray, int]:
    """Principal component pursuit M = L + S (L low rank, S sparse) by ADMM with LowRankGAN's
    settings: μ = m·n / (4‖M‖₁), stop at ‖L + S − M‖_F ≤ 1e-7 ‖M‖_F. Returns (L, S, iterations)."""
    m = np.asarray(m, np.float64)
    norm1 = np.abs(m).sum(axis=0).max()
    if norm1 == 0:
        return np.zeros_like(m), np.zeros_like(m), 0
    mu = m.size / (4 * norm1)
    tol = 1e-7 * np.linalg.norm(m)
    s = np.zeros_like(m)
    y = np.zeros_like(m)
    low = np.zeros_like(m)
    it = 0
    sym = np.allclose(m, m.T, rtol=0, atol=1e-12 * np.abs(m).max())
    while it < max_iter:
        x = m - s - y / mu
        if sym:  # Gram matrices: the iterates stay symmetric, so the SVD is an eigendecomposition
            ev, v = np.linalg.eigh((x + x.T) / 2)
            low = (v * (np.sign(ev) * np.maximum(np.abs(ev) - 1 / mu, 0))) @ v.T
        else:
            u, sv, vt = np.linalg.svd(x, full_matrices=False)
            low = (u * np.maximum(sv - 1 / mu, 0)) @ vt
        r = m - low - y / mu
        s = np.sign(r) * np.maximum(np.abs(r) - lam / mu, 0)
        y = y + mu * (low + s - m)
        it += 1
        if np.linalg.norm(low + s - m) <= tol:
            break
    return low, s, it


def _unit_rows(v: np.ndarray) -> np.ndarray:
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    pivot = np.abs(v).argmax(axis=1)
    return v * np.sign(v[np.arange(len(v)), pivot])[:, None]


def energy_rank(g: np.ndarray, energy: float) -> int:
    """Smallest r whose top-r eigenvalues of the PSD matrix ``g`` hold ``energy`` of its trace."""
    vals = np.clip(np.linalg.eigvalsh((g + g.T) / 2)[::-1], 0, None)
    total = vals.sum()
    if total <= 0:
        return 0
    return int(min(np.searchsorted(np.cumsum(vals) / total, energy - 1e-12) + 1, len(vals)))


def nullspace_directions(
    a: np.ndarray,
    b: np.ndarray,
    rank_method: str = "rpca",
    energy: float = 0.99,
    lam: float = 1 / 60,
    max_iter: int = 10_000,
    relax: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """LowRankGAN: foreground principal space projected onto the background null space (rows).

    ``rank_method="rpca"`` is the official choice (ranks of the Robust-PCA low-rank parts);
    ``"energy"`` uses A and B themselves with the smallest ranks holding ``energy`` of each trace.
    """
    dim = a.shape[0]
    info: dict[str, Any] = {"rank_method": rank_method}
    if rank_method == "rpca":
        low_f, _, it_f = robust_pca(a, lam, max_iter)
        low_b, _, it_b = robust_pca(b, lam, max_iter)
        rank_f = int(np.linalg.matrix_rank(low_f))
        rank_b = int(np.linalg.matrix_rank(low_b))
        info["rpca_iterations"] = [it_f, it_b]
    elif rank_method == "energy":
        if not 0 < energy <= 1:
            raise BadInputError(f"energy must be in (0, 1], got {energy}", param="energy")
        low_f, low_b = a, b
        rank_f, rank_b = energy_rank(a, energy), energy_rank(b, energy)
    else:
        raise BadInputError(f"rank_method must be rpca or energy, got {rank_method!r}", param="rank_method")
    _, _, vt_f = np.linalg.svd(low_f)
    _, _, vt_b = np.linalg.svd(low_b)
    principal = vt_f[: max(rank_f, 1)]
    cut = min(max(1, rank_b - relax), dim - 1)
    null = vt_b[cut:].T
    proj = (null @ (null.T @ principal.T)).T
    keep = np.linalg.norm(proj, axis=1) > 1e-6
    info.update(
        rank_foreground=rank_f,
        rank_background=rank_b,
        null_dim=dim - cut,
        dropped_zero_projections=int((~keep).sum()),
    )
    if not keep.any():
        raise BadInputError("the region's principal directions all lie in the background's principal space")
    return _unit_rows(proj[keep]), info


def generalized_directions(a: np.ndarray, b: np.ndarray, tau: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """ReSeFa: A v = λ (B + τ tr(B) I) v, descending λ; returns (λ, unit directions as rows)."""
    reg = b + tau * np.trace(b) * np.eye(len(b))
    try:
        vals, vecs = scipy.linalg.eigh(a, reg)
    except np.linalg.LinAlgError:
        raise BadInputError(
            "the background Gram matrix is singular; raise tau (ReSeFa's regulariser, e.g. 1e-3)", param="tau"
        ) from None
    order = np.argsort(-vals, kind="stable")
    return vals[order], _unit_rows(vecs[:, order].T)


# ---------------------------------------------------------------------- the method
def jacobian_directions(
    gen: Generator,
    z: torch.Tensor,
    opts: JacobianOptions | None = None,
    /,
    *,
    seeds: Sequence[int] | None = None,
    latent_space: str = "z",
    noise: Sequence[torch.Tensor] | None = None,
    **changes: Any,
) -> DirectionBank:
    """Jacobian directions at the samples ``z`` (N, z_dim) as a bank (or at latents of another space).

    Parameters
    ----------
    gen : Generator
        The generator (deterministic: no random per-pixel noise).
    z : torch.Tensor
        Prior samples. One sample without ``average`` gives a local bank recording that sample
        (``origin``); several samples need ``average``.
    opts : JacobianOptions, optional
        Edit ``space`` and ``layers``, ``k``, output ``size``/``channels``, a region ``mask`` for
        local editing (LowRankGAN ``nullspace`` or ReSeFa ``generalized``) and their parameters;
        keyword ``changes`` override its fields.
    seeds : sequence of int, optional
        The seeds ``z`` came from, recorded in the bank.
    latent_space : str
        The space of ``z``: ``z`` (prior samples) or ``w``/``w+`` latents such as projected images'
        (brought into the edit's working space; a z edit needs z latents).
    noise : sequence of torch.Tensor, optional
        Per-sample noise maps (one (N, 1, H, W) tensor per noise input) of projected latents.

    Returns
    -------
    DirectionBank
        Eigenvectors of JᵀJ / M (global) or the region's local directions, with their scores.
    """
    o = replace(opts or JacobianOptions(), **changes)
    space = o.space or ("w" if "w" in gen.spaces else "z")
    gen.check_space(space)
    require_deterministic(gen)
    layers = check_layers(gen, space, o.layers)
    n = len(z)
    if n == 0:
        raise BadInputError("no samples given", param="seeds")
    if n > 1 and not o.average:
        raise BadInputError(
            f"{n} samples given: pass average=True for global directions, or one sample for local ones",
            param="average",
        )
    k, size, channels, mask = o.k, o.size, o.channels, o.mask
    out_size = size or gen.resolution
    fmask = None if mask is None else fit_mask(mask, out_size)
    if fmask is not None and (fmask.all() or not fmask.any()):
        raise BadInputError("the region covers none or all of the image; nothing to separate")
    transform = OutputTransform(size=size, channels=channels)
    dim = edit_dim(gen, space, layers)
    if latent_space == "z":
        base = base_latents(gen, z, space, layers)
    else:
        base = to_working(gen, z.to(gen.device), latent_space, space, layers).to(gen.device)
    keys = ("all",) if fmask is None else ("fore", "back")
    grams = {key: np.zeros((dim, dim)) for key in keys}

    def sample_grams(i: int) -> dict[str, np.ndarray]:
        g = gen if noise is None else gen.with_noise([m[i : i + 1].to(gen.device) for m in noise])
        j = jacobian(g, base[i], space, layers, transform, chunk=o.chunk).to(torch.float64)
        if fmask is None:
            return {"all": (j.t() @ j).cpu().numpy() / j.shape[0]}
        rows = torch.from_numpy(np.tile(fmask.reshape(-1), j.shape[0] // fmask.size))
        jf, jb = j[rows.to(j.device)], j[~rows.to(j.device)]
        return {"fore": (jf.t() @ jf).cpu().numpy() / jf.shape[0], "back": (jb.t() @ jb).cpu().numpy() / jb.shape[0]}

    # distributed: samples are dealt round-robin and every process adds all of them in sample
    # order, so the sums are bit for bit those of one process
    with bar(total=n, desc="jacobian", unit="sample") as pbar:
        for _, g in map_ordered(n, sample_grams):
            for key in keys:
                grams[key] += g[key]
            pbar.update(1)
    grams = {key: g / n for key, g in grams.items()}
    info: dict[str, Any] = {"samples": n, "outputs": f"{out_size}x{out_size}", "channels": channels}
    extras: dict[str, np.ndarray] = {}
    if fmask is None:
        vals, vecs = factorize_gram(grams["all"])
        info["score"] = "eigenvalue of JᵀJ / M (mean squared output change per unit step)"
        total = float(vals.sum())
        info["explained"] = (vals / total).tolist() if total > 0 else None
        method = "lowrank"
    else:
        a, b = grams["fore"], grams["back"]
        info["region_pixels"] = int(fmask.sum())
        if o.local_method == "nullspace":
            vecs, extra = nullspace_directions(a, b, o.rank_method, o.energy, o.rpca_lambda, o.rpca_iters, o.relax)
            info.update(extra)
            vals = np.einsum("kd,de,ke->k", vecs, a, vecs)
            info["score"] = "dᵀAd: mean squared change in the region per unit step"
        else:
            vals, vecs = generalized_directions(a, b, o.tau)
            info["score"] = "generalised eigenvalue: region change / regularised background change"
        extras["background_change"] = np.einsum("kd,de,ke->k", vecs, b, vecs).astype(np.float32)
        extras["region_change"] = np.einsum("kd,de,ke->k", vecs, a, vecs).astype(np.float32)
        extras["mask"] = fmask.astype(np.uint8)
        method = "lowrank-local" if o.local_method == "nullspace" else "resefa"
    if k is not None:
        vals, vecs = vals[:k], vecs[:k]
        extras = {key: (v[:k] if key != "mask" else v) for key, v in extras.items()}
    origin = None if o.average else base[0].detach().float().cpu().numpy()
    bank_space = space
    return DirectionBank(
        directions=vecs.astype(np.float32),
        space=bank_space,
        method=method,
        generator=generator_identity(gen),
        layers=layers,
        scores=np.asarray(vals, np.float32),
        names=[f"{method}_{i}" for i in range(len(vecs))],
        params={
            "space": space,
            "layers": layers,
            "k": k,
            "average": o.average,
            "seeds": None if seeds is None else list(seeds),
            "size": size,
            "channels": channels,
            "region": mask is not None,
            "local_method": o.local_method if mask is not None else None,
            "relax": o.relax,
            "rank_method": o.rank_method,
            "energy": o.energy,
            "rpca_lambda": o.rpca_lambda,
            "rpca_iters": o.rpca_iters,
            "tau": o.tau,
        },
        info=info,
        step_unit="unit",
        default_range=(-3.0, 3.0),
        origin=origin,
        extras=extras,
    )


def factorize_gram(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decompose a symmetric PSD Gram matrix: (eigenvalues desc, unit directions as rows)."""
    vals, vecs = scipy.linalg.eigh((g + g.T) / 2)
    order = np.argsort(-vals, kind="stable")
    return np.clip(vals[order], 0.0, None), _unit_rows(vecs[:, order].T)
