"""Streaming PCA of sample streams: exact (covariance + eigh), Gram in sample space (n <= D) and
bounded-memory (block Krylov); ``auto`` picks the cheapest from n, D and k (:func:`choose_solver`).

The solvers see the samples only through a :class:`~dirfind.core.sampling.SampleStream` and
checkpoint into a :class:`~dirfind.core.jobs.Job`; only ``gram`` holds the n x D samples (n <= D),
and ``randomized`` keeps them between passes within a memory budget.

``exact``: one pass accumulates the float64 mean and scatter (:class:`~dirfind.core.reducers.MeanCov`,
Chan's batch-centred merge), then a symmetric eigensolver gives the top k eigenpairs of the sample
covariance. Memory D^2 float64 (2 MB at D = 512, 512 MB at D = 8192); additive, so shards merge.

``randomized``: for large D, block Krylov (block Lanczos with full reorthogonalisation). A block
of b ~ k orthonormal vectors Q is pushed through the data, one pass per block:
``C Q = sum_i (x_i - m)(x_i - m)^T Q / (n - 1)`` is accumulated batch by batch (two thin matmuls
per batch, the same Chan-style centring). Every block and its image are kept, so each pass ends
with a Rayleigh-Ritz step on the whole basis, and the next block is the part of the top-b Ritz
residuals ``C u - theta u`` outside it (beyond 12 blocks the basis restarts from its top half of
Ritz vectors). It stops when every one of the k residuals is below ``tol * theta_1``. The first
block comes from the PCA of the first 1024 samples. On DCGAN ``main.2`` (D = 8192, k = b = 80)
that takes 5 passes (400 products per sample, against 800 for the block-160 subspace iteration
it replaced). The thin matmuls run in float32 (the features are float32), accumulated in
float64. Memory O(D b) per block kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import torch

from ..errors import BadInputError
from ..util.progress import log, warn
from .dist import all_reduce
from .jobs import Job
from .parallel import on_main
from .reducers import Collector, MeanCov, pooled_mean, saved_arrays
from .sampling import Batch, SampleStream, column_mean, reduce_stream

SOLVERS = ("auto", "exact", "randomized", "gram")
#: Above this dimension the exact solver asks the eigensolver for the top k only.
EXACT_MAX_DIM = 2048
#: ``auto``'s cost model: passes the randomized solver is assumed to need (6 measured on DCGAN
#: ``main.2`` at b = k = 80, 2-3 on rank-deficient data) and the cost of a symmetric eigensolve of size m, in
#: units of float32 GEMM flops (tridiagonalisation is memory-bound: ~25 s for m = 8192 here).
RANDOMIZED_PASSES = 6
#: The randomized solver's Krylov basis holds at most this many blocks before a thick restart.
KRYLOV_BLOCKS = 12
#: The randomized solver's first block comes from the PCA of this many samples (see ``_start_block``).
START_ROWS = 1024
EIGH_COST = 5.0
#: The gram solver centres and multiplies this many feature columns at a time (float32 blocks).
GRAM_COLUMNS = 1024


@dataclass
class PCAResult:
    """Top-k principal components of a sample set (rows of ``components``, unit, float64)."""

    components: np.ndarray
    variances: np.ndarray  # variance of the projections, ddof = 1
    total_variance: float  # trace of the covariance
    mean: np.ndarray
    n: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.clip(self.variances, 0.0, None))

    @property
    def ratio(self) -> np.ndarray:
        return self.variances / self.total_variance if self.total_variance > 0 else np.zeros_like(self.variances)


def fix_signs(vecs: np.ndarray) -> np.ndarray:
    """Make each row's largest-magnitude entry positive (eigenvectors have arbitrary sign)."""
    pivot = np.abs(vecs).argmax(axis=1)
    return vecs * np.sign(vecs[np.arange(len(vecs)), pivot])[:, None]


def solver_costs(n: int, dim: int, k: int) -> dict[str, float]:
    """Estimated cost (float32 GEMM flops) of each solver that applies to n samples of dimension
    ``dim`` and k components (see :func:`choose_solver`)."""
    costs = {"exact": 2.0 * n * dim * dim + EIGH_COST * float(dim) ** 3}  # float64 dsyrk: half the rate
    if 2 * k <= dim:
        costs["randomized"] = RANDOMIZED_PASSES * 4.0 * n * dim * block_width(k, dim)
    if n <= dim:
        costs["gram"] = float(n) * n * dim + EIGH_COST * float(n) ** 3
    return costs


def choose_solver(solver: str, n: int, dim: int, k: int) -> str:
    """``solver``, or for ``auto`` the cheapest by :func:`solver_costs`: one exact covariance pass
    (n D^2) + eigh (D^3); the n x n Gram matrix in sample space when n <= D (n^2 D + n^3);
    about six randomized passes of two thin products (24 n D b, b = block width). The choice
    depends on n, D and k only (not on the memory), so a resumed run makes the same one."""
    if solver not in SOLVERS:
        raise BadInputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}", param="solver")
    if solver != "auto":
        return solver
    costs = solver_costs(n, dim, k)
    return min(costs, key=costs.__getitem__)


def check_k(k: int, n: int, dim: int) -> int:
    if k < 1:
        raise BadInputError(f"k must be at least 1, got {k}", param="k")
    k = min(int(k), dim)
    if n <= k:
        raise BadInputError(f"n ({n}) must be larger than the number of components k ({k})", param=("n", "k"))
    return k


# ---------------------------------------------------------------------- exact


def pca_from_cov(stats: MeanCov, k: int) -> PCAResult:
    """Top-k eigenpairs of the covariance held by ``stats`` (symmetric eigensolver, float64)."""
    cov = stats.cov().cpu().numpy()
    dim = cov.shape[0]
    k = min(k, dim)
    total = float(np.trace(cov))
    if 4 * k > dim:  # most of the spectrum: one full decomposition is cheaper
        vals, vecs = scipy.linalg.eigh(cov)
    else:  # only the top k (MRRR): several times faster than a full eigh for k << D
        vals, vecs = scipy.linalg.eigh(cov, subset_by_index=[dim - k, dim - 1], driver="evr")
    order = np.argsort(-vals, kind="stable")[:k]
    comps = fix_signs(vecs[:, order].T)
    return PCAResult(
        components=comps,
        variances=np.clip(vals[order], 0.0, None),
        total_variance=total,
        mean=stats.mean.cpu().numpy(),
        n=stats.n,
        info={"solver": "exact", "passes": 1},
    )


def exact_pca(stream: SampleStream, k: int, *, job: Job | None = None, desc: str = "pca") -> PCAResult:
    """PCA of every sample of ``stream`` from its exact float64 covariance (the eigensolver runs on
    rank 0 alone in a distributed run, its result is shared)."""
    stats = reduce_stream(stream, MeanCov(stream.dim, stream.gen.device), job=job, stage="cov", desc=desc)
    return on_main(lambda: pca_from_cov(stats, k), _encode_pca, _decode_pca)


def _encode_pca(p: PCAResult) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta = {"total_variance": p.total_variance, "n": p.n, "info": p.info}
    return meta, {"components": p.components, "variances": p.variances, "mean": p.mean}


def _decode_pca(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> PCAResult:
    a = arrays
    return PCAResult(a["components"], a["variances"], meta["total_variance"], a["mean"], meta["n"], meta["info"])


# ---------------------------------------------------------------------- gram (sample space, n <= D)


def gram_pca(stream: SampleStream, k: int, *, job: Job | None = None, desc: str = "pca") -> PCAResult:
    """Exact PCA through the n x n Gram matrix of the centred samples (for n <= D): one pass
    collects the samples (n D float32 in memory), then ``Xc Xcᵀ = V Λ Vᵀ`` gives the components
    ``Xcᵀ v / sqrt(λ)`` and the variances ``λ / (n - 1)`` (the eigensolve on rank 0 alone)."""
    col = reduce_stream(
        stream, Collector(stream.start, stream.stop, {"x": (stream.dim,)}), job=job, stage="gram", desc=desc
    )
    return on_main(lambda: pca_from_samples(col.data["x"], k), _encode_pca, _decode_pca)


def pca_from_samples(x: np.ndarray, k: int) -> PCAResult:
    """Top-k PCA of the rows of ``x`` (n, D) from their Gram matrix: each block of
    :data:`GRAM_COLUMNS` features is centred in float64, multiplied in float32 (``ssyrk``) and
    added into the float64 Gram matrix; the components are formed in float64."""
    from scipy.linalg.blas import ssyrk

    n, dim = x.shape
    k = min(k, n)
    mean = x.mean(0, dtype=np.float64)
    gram = np.zeros((n, n), order="F")
    total = 0.0
    for j in range(0, dim, GRAM_COLUMNS):
        xc = (x[:, j : j + GRAM_COLUMNS] - mean[j : j + GRAM_COLUMNS]).astype(np.float32)
        gram += ssyrk(1.0, xc.T, trans=1, lower=0)  # upper triangle of xc xcᵀ (Fortran order)
        total += float(np.einsum("ij,ij->", xc, xc, dtype=np.float64))
    gram = np.triu(gram) + np.triu(gram, 1).T
    if 4 * k > n:
        vals, vecs = scipy.linalg.eigh(gram)
    else:
        vals, vecs = scipy.linalg.eigh(gram, subset_by_index=[n - k, n - 1], driver="evr")
    order = np.argsort(-vals, kind="stable")[:k]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    comps = np.empty((k, dim))
    for j in range(0, dim, GRAM_COLUMNS):
        comps[:, j : j + GRAM_COLUMNS] = vecs.T @ (x[:, j : j + GRAM_COLUMNS] - mean[j : j + GRAM_COLUMNS])
    norms = np.linalg.norm(comps, axis=1)
    comps = np.divide(comps, norms[:, None], out=np.zeros_like(comps), where=norms[:, None] > 0)
    return PCAResult(
        components=fix_signs(comps),
        variances=vals / (n - 1),
        total_variance=total / (n - 1),
        mean=mean,
        n=n,
        info={"solver": "gram", "passes": 1},
    )


# ---------------------------------------------------------------------- randomized (block Krylov)


class BlockProduct:
    """One pass of ``M2 @ Q`` (M2 = centred scatter) plus the mean, merged batch by batch with
    Chan's update so no global mean is needed in advance. With ``total`` it also accumulates the
    total sum of squares (the trace of M2, for explained-variance ratios)."""

    def __init__(self, q: np.ndarray, device: torch.device | str = "cpu", total: bool = False):
        self.device = torch.device(device)
        self.q = torch.from_numpy(np.asarray(q, np.float64)).to(self.device)
        self.q32 = self.q.float()
        self.total = total
        dim, width = self.q.shape
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64, device=self.device)
        self.y = torch.zeros(dim, width, dtype=torch.float64, device=self.device)
        self.ss = 0.0

    def update(self, batch: Batch | torch.Tensor) -> None:
        x = (batch.flat if isinstance(batch, Batch) else batch).to(self.device, torch.float32)
        nb = len(x)
        if nb == 0:
            return
        mb = batch.feature_mean.to(self.device) if isinstance(batch, Batch) else column_mean(x)
        if self.total:
            xc = x - mb.float()
            p = xc @ self.q32
            yb = (xc.T @ p).double()
            # float32 dots of 2^18 terms summed in float64 (one dot of a whole 10^7-term block drifts ~1e-4)
            ssb = sum(float(torch.dot(c, c)) for c in xc.reshape(-1).split(2**18))
        else:
            # (X - 1 mbᵀ)ᵀ (X - 1 mbᵀ) Q without forming the centred batch: P = X Q - 1 (mbᵀ Q),
            # then Xᵀ P - mb (1ᵀ P); the features are O(mean) so float32 keeps ~1e-7 relative accuracy
            p = x @ self.q32 - (mb @ self.q).float()
            yb = (x.T @ p).double() - torch.outer(mb, p.sum(0).double())
            ssb = 0.0
        na, n = self.n, self.n + nb
        d = mb - self.mean
        w = na * nb / n
        self.y += yb + w * torch.outer(d, d @ self.q)
        self.ss += ssb + w * float(d @ d)
        self.mean += d * (nb / n)
        self.n = n

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "n": np.array(self.n, np.int64),
            "mean": self.mean.cpu().numpy(),
            "y": self.y.cpu().numpy(),
            "ss": np.array(self.ss),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        st = saved_arrays(state, {"n": (), "mean": tuple(self.mean.shape), "y": tuple(self.y.shape), "ss": ()})
        self.n = int(st["n"])
        self.mean = torch.from_numpy(np.array(st["mean"], np.float64)).to(self.device)
        self.y = torch.from_numpy(np.array(st["y"], np.float64)).to(self.device)
        self.ss = float(st["ss"])

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Fold in the product of other samples (the same Chan update as a batch's)."""
        state = saved_arrays(state, {"n": (), "mean": tuple(self.mean.shape), "y": tuple(self.y.shape), "ss": ()})
        nb = int(state["n"])
        if nb == 0:
            return
        mb = torch.from_numpy(np.array(state["mean"], np.float64)).to(self.device)
        na, n = self.n, self.n + nb
        d = mb - self.mean
        w = na * nb / n
        self.y += torch.from_numpy(np.array(state["y"], np.float64)).to(self.device) + w * torch.outer(d, d @ self.q)
        self.ss += float(state["ss"]) + w * float(d @ d)
        self.mean += d * (nb / n)
        self.n = n

    def all_reduce(self) -> None:
        """Combine every process's product in float64: the common mean first, then each process's
        centred product about it (``Y_r + n_r d dᵀ Q``, d = its mean minus the common one) summed."""
        n, mean = pooled_mean(self.n, self.mean, "block product means")
        if n == 0:
            return
        d = self.mean - mean
        body = torch.cat([(self.y + self.n * torch.outer(d, d @ self.q)).reshape(-1), (self.ss + self.n * d @ d)[None]])
        all_reduce(body, "block product")
        self.y = body[:-1].reshape(self.y.shape).contiguous()
        self.ss, self.mean, self.n = float(body[-1]), mean, n


def _orthonormal_basis(v: np.ndarray, cv: np.ndarray, rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormalise the columns of ``v`` (and transform their images ``cv`` alike) through the
    eigendecomposition of the Gram matrix, dropping numerically dependent directions."""
    g = v.T @ v
    lam, e = np.linalg.eigh((g + g.T) / 2)
    keep = lam > rtol * lam.max()
    b = e[:, keep] / np.sqrt(lam[keep])
    return v @ b, cv @ b


def _rayleigh_ritz(v: np.ndarray, cv: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``width`` Ritz pairs of C on span(v), given cv = C v: (theta desc, U, C U)."""
    v, cv = _orthonormal_basis(v, cv)
    t = v.T @ cv
    theta, s = np.linalg.eigh((t + t.T) / 2)
    order = np.argsort(-theta, kind="stable")[:width]
    s = s[:, order]
    return theta[order], v @ s, cv @ s


def _project_out(w: np.ndarray, u: np.ndarray) -> np.ndarray:
    for _ in range(2):  # twice is enough (Kahan/Parlett)
        w = w - u @ (u.T @ w)
    return w


def _next_block(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the residuals ``r`` with span(v) removed (dependent directions dropped)."""
    w = _project_out(r, v)
    w = _orthonormal_basis(w, w, rtol=1e-12)[0]
    return np.linalg.qr(_project_out(w, v))[0]


def _start_block(stream: SampleStream, width: int, seed: int) -> np.ndarray:
    """The first block: the top principal directions of the stream's first :data:`START_ROWS`
    samples (their Gram matrix), completed with random directions. Starting near the top of the
    spectrum saves about one pass over a random block (5 passes against 6 on DCGAN ``main.2``)."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    lo, hi = next(stream.cells())
    x = stream.batch(lo, hi).flat[:START_ROWS].float().cpu().numpy()  # kept, if the stream keeps samples
    comps = pca_from_samples(x, min(width, len(x) - 1)).components if len(x) > 1 else np.zeros((0, stream.dim))
    comps = comps[np.linalg.norm(comps, axis=1) > 0.5]  # rows of zero variance come back as zeros
    start = np.hstack([comps.T, rng.standard_normal((stream.dim, width))])
    return np.linalg.qr(start)[0][:, :width]


def _encode_block(q: np.ndarray) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    return {}, {"q": q}


def _decode_block(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    return arrays["q"]


def block_width(k: int, dim: int, width: int | None = None) -> int:
    """Block size b: k (at least 32, so each pass's products stay compute-bound), at most D / 2."""
    w = int(width) if width else max(k, 32)
    return max(k, min(w, dim // 2))


def basis_limit(width: int, dim: int) -> int:
    """Largest Krylov basis kept (then restarted to its top half of Ritz vectors): :data:`KRYLOV_BLOCKS`
    blocks, at most D."""
    return min(dim, KRYLOV_BLOCKS * width)


def randomized_pca(
    stream: SampleStream,
    k: int,
    *,
    job: Job | None = None,
    tol: float = 1e-4,
    max_passes: int = 25,
    width: int | None = None,
    seed: int = 0,
    desc: str = "pca",
) -> PCAResult:
    """Top-k PCA of ``stream`` in O(D b) memory, one pass over the samples per block."""
    dim = stream.dim
    if 2 * k > dim:
        raise BadInputError(f"the randomized solver needs k <= D/2 (k={k}, D={dim}); use solver exact", param="solver")
    if tol <= 0 or max_passes < 1:
        raise BadInputError("tol must be > 0 and max_passes >= 1", param=("tol", "max_passes"))
    width = block_width(k, dim, width)
    limit = basis_limit(width, dim)
    job = job or Job(None, {})
    device = stream.gen.device
    passes = int(job.values.get("krylov_passes", 0))
    if passes == 0:
        job.put(krylov_q=on_main(lambda: _start_block(stream, width, seed), _encode_block, _decode_block))
    saved = job.get("krylov_residuals")
    if saved is not None and saved.max() < tol:
        passes = max_passes  # converged before the interruption: only the result is left to build
    for t in range(passes, max_passes):
        q = job.get("krylov_q")
        red = reduce_stream(
            stream, BlockProduct(q, device, total=t == 0), job=job, stage=f"krylov{t}", desc=f"{desc} pass {t + 1}"
        )
        n = red.n
        cq = red.y.cpu().numpy() / (n - 1)
        if t == 0:
            job.put(krylov_mean=red.mean.cpu().numpy(), krylov_total=np.array(red.ss / (n - 1)), krylov_n=np.array(n))
            v, cv = q, cq
        else:
            v, cv = np.hstack([job.get("krylov_v"), q]), np.hstack([job.get("krylov_cv"), cq])
        theta, u, cu = _rayleigh_ritz(v, cv, v.shape[1])
        r = cu[:, :width] - u[:, :width] * theta[:width]
        residuals = np.linalg.norm(r[:, :k], axis=0) / theta[0]
        if v.shape[1] + width > limit:  # thick restart: keep the top half of the Ritz basis
            v, cv = u[:, : limit // 2], cu[:, : limit // 2]
        else:
            v, cv = u, cu  # the same span, rotated to Ritz vectors
        job.put(krylov_v=v, krylov_cv=cv, krylov_theta=theta[:k], krylov_residuals=residuals)
        job.values["krylov_passes"] = t + 1
        job.drop_stage(f"krylov{t}")
        log(f"{desc}: pass {t + 1}, max relative residual of the top {k}: {residuals.max():.2e} (tol {tol:g})")
        q = _next_block(r, v) if residuals.max() >= tol else np.zeros((dim, 0))
        if q.shape[1] == 0:  # converged, or the basis already spans every direction the data has
            job.save()
            break
        job.put(krylov_q=q)
        job.save()
    passes = int(job.values["krylov_passes"])
    residuals = job.get("krylov_residuals")
    converged = bool(residuals.max() < tol)
    if not converged:
        warn(
            f"warning: PCA did not reach tol {tol:g} in {passes} passes (max residual {residuals.max():.2e}); "
            "raise max_passes or use the exact solver"
        )
    u, theta = job.get("krylov_v")[:, :k], job.get("krylov_theta")
    return PCAResult(
        components=fix_signs(u.T),
        variances=np.clip(theta, 0.0, None),
        total_variance=float(job.get("krylov_total")),
        mean=job.get("krylov_mean"),
        n=int(job.get("krylov_n")),
        info={
            "solver": "randomized",
            "passes": passes,
            "block": width,
            "tol": tol,
            "converged": converged,
            "max_residual": float(residuals.max()),
        },
    )


def streaming_pca(
    stream: SampleStream,
    k: int,
    *,
    solver: str = "auto",
    job: Job | None = None,
    tol: float = 1e-4,
    max_passes: int = 25,
    width: int | None = None,
    memory_budget: int = 0,
    desc: str = "pca",
) -> PCAResult:
    """Top-k PCA of every sample in ``stream`` with the chosen solver (``auto``: see
    :func:`choose_solver`). The randomized solver keeps up to ``memory_budget`` bytes of samples
    in memory between its passes instead of generating them again."""
    k = check_k(k, len(stream), stream.dim)
    solver = choose_solver(solver, len(stream), stream.dim, k)
    if solver == "exact":
        return exact_pca(stream, k, job=job, desc=desc)
    if solver == "gram":
        return gram_pca(stream, k, job=job, desc=desc)
    if memory_budget > 0:
        stream.keep_in_memory(memory_budget)
    try:
        return randomized_pca(
            stream, k, job=job, tol=tol, max_passes=max_passes, width=width, seed=stream.seed, desc=desc
        )
    finally:
        stream.keep_in_memory(0)
