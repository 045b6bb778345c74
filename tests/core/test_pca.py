"""The PCA solvers (exact covariance, randomized block Rayleigh-Ritz, Gram in sample space) against
an exact numpy PCA of the same samples, and what ``auto`` picks from n, D and k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dirfind.core.pca import choose_solver, pca_from_samples, solver_costs, streaming_pca
from dirfind.core.sampling import SampleStream
from dirfind.errors import BadInputError
from dirfind.generators.base import Generator
from helpers import LatentOnlyGenerator


class _Affine(LatentOnlyGenerator, Generator):
    """w = z A + c with a decaying spectrum (48-d): the samples' PCA is known in closed form per sample set."""

    family = "toyaffine"
    spaces = ("z", "w")

    def __init__(self):
        super().__init__(z_dim=48, w_dim=48, num_ws=1, resolution=4, channels=1)
        g = torch.Generator().manual_seed(3)
        q = torch.linalg.qr(torch.randn(48, 48, generator=g, dtype=torch.float64))[0]
        self.a = torch.nn.Parameter(
            (torch.logspace(np.log10(4.0), np.log10(0.05), 48, dtype=torch.float64)[:, None] * q).float()
        )
        self.c = torch.nn.Parameter(20.0 + torch.randn(48, generator=g))  # a large mean, as ReLU features have

    def embed(self, z, space):
        self.check_space(space)
        return z if space == "z" else z @ self.a + self.c

    def synthesis(self, latent, space):
        raise NotImplementedError


def _numpy_pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact reference: float64 SVD of the centred sample matrix -> (components, variances)."""
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    return vt[:k], s[:k] ** 2 / (len(x) - 1)


def _samples(gen, n: int) -> np.ndarray:
    stream = SampleStream(gen, n, "w", seed=4, batch_size=n)
    return stream.batch(0, n).x.double().numpy()  # float32 features, as every solver sees them


@pytest.mark.parametrize(("solver", "n"), [("exact", 3000), ("randomized", 3000), ("gram", 40), ("exact", 40)])
def test_every_solver_agrees_with_an_exact_numpy_pca(solver, n):
    gen = _Affine().eval().requires_grad_(False)
    k = 5
    ref, var = _numpy_pca(_samples(gen, n), k)
    res = streaming_pca(SampleStream(gen, n, "w", seed=4, batch_size=700), k, solver=solver, memory_budget=10**8)
    assert res.info["solver"] == solver
    cos = np.abs(np.sum(res.components * ref, 1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)
    np.testing.assert_allclose(res.variances, var, rtol=1e-5)
    x = _samples(gen, n)
    np.testing.assert_allclose(res.total_variance, x.var(0, ddof=1).sum(), rtol=1e-6)
    np.testing.assert_allclose(res.mean, x.mean(0), rtol=1e-6)


def test_gram_solver_keeps_accuracy_of_float64_on_wide_data():
    """n < D with a large mean: the float32 column blocks (centred in float64) lose nothing visible."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((200, 3000)) * np.geomspace(10, 0.01, 3000) + 50.0).astype(np.float32)
    res = pca_from_samples(x, 10)
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    lam, u = np.linalg.eigh(xc @ xc.T)  # float64 throughout (LAPACK's SVD of a wide matrix is slow here)
    lam, u = lam[::-1][:10], u[:, ::-1][:, :10]
    ref, var = (xc.T @ u / np.sqrt(lam)).T, lam / (len(x) - 1)
    np.testing.assert_allclose(np.abs(np.sum(res.components * ref, 1)), 1.0, atol=1e-7)
    np.testing.assert_allclose(res.variances, var, rtol=1e-6)


def test_auto_picks_the_cheapest_solver_by_n_d_and_k():
    assert choose_solver("auto", 1_000_000, 512, 80) == "exact"  # w of a StyleGAN: one pass, D^2 small
    assert choose_solver("auto", 100_000, 8192, 80) == "randomized"  # DCGAN main.2 at GANSpace's n
    assert choose_solver("auto", 500, 8192, 80) == "gram"  # few samples of a wide layer
    assert choose_solver("auto", 3000, 100, 10) == "exact"
    assert choose_solver("auto", 100, 8192, 5000) == "gram"  # k > D/2: randomized does not apply
    assert "gram" not in solver_costs(9000, 8192, 80) and "randomized" not in solver_costs(10**5, 100, 60)
    for n, d, k in [(10**6, 512, 80), (10**5, 8192, 80), (500, 8192, 80), (2000, 8192, 40)]:
        costs = solver_costs(n, d, k)
        assert choose_solver("auto", n, d, k) == min(costs, key=costs.get)
    assert choose_solver("gram", 10**5, 100, 5) == "gram"
    with pytest.raises(BadInputError, match="solver must be one of"):
        choose_solver("svd", 10, 10, 1)


@pytest.mark.parametrize(("blocks", "start_rows"), [(12, 1024), (2, 1024), (2, 0)])
def test_block_krylov_restarts_and_random_starts_reach_the_exact_pca(monkeypatch, blocks, start_rows):
    """A basis capped at 2 blocks (a thick restart after every pass) and a purely random first
    block (no start samples) converge to the same components; the start block saves passes."""
    import dirfind.core.pca as pca

    monkeypatch.setattr(pca, "KRYLOV_BLOCKS", blocks)
    monkeypatch.setattr(pca, "START_ROWS", start_rows)
    gen = _Affine().eval().requires_grad_(False)
    n, k = 3000, 5
    ref, var = _numpy_pca(_samples(gen, n), k)
    opts = dict(solver="randomized", width=8, tol=1e-6)
    res = streaming_pca(SampleStream(gen, n, "w", seed=4, batch_size=700), k, **opts)
    assert res.info["converged"] and res.info["block"] == 8
    np.testing.assert_allclose(np.abs(np.sum(res.components * ref, 1)), 1.0, atol=1e-8)
    np.testing.assert_allclose(res.variances, var, rtol=1e-6)
    passes = res.info["passes"]
    if start_rows:
        monkeypatch.setattr(pca, "START_ROWS", 0)
        cold = streaming_pca(SampleStream(gen, n, "w", seed=4, batch_size=700), k, **opts)
        assert passes < cold.info["passes"], (passes, cold.info["passes"])
