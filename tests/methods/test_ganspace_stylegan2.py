"""GANSpace in W on a real StyleGAN2 (the NVIDIA reference fixture): PCA against an exact SVD,
layer-restricted traversal, ``dirfind sample --space w/w+`` and batch-size invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dirfind import load_generator
from dirfind.methods.ganspace import ganspace
from dirfind.render.traverse import traversal_latents
from helpers import FIX

ADA = FIX / "stylegan2" / "stylegan2_ada_tiny32.pkl"


def _z(seed: int, stream: int, n: int, dim: int) -> np.ndarray:
    """z of samples 0..n-1 by the documented recipe (blocks of 1024 from default_rng([seed, stream, b]))."""
    blocks = [np.random.default_rng([seed, stream, b]).standard_normal((1024, dim)) for b in range((n + 1023) // 1024)]
    return np.concatenate(blocks)[:n].astype(np.float32)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Largest principal angle (radians) between the row spaces of a and b."""
    qa, _ = np.linalg.qr(a.T)
    qb, _ = np.linalg.qr(b.T)
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.arccos(np.clip(s.min(), -1, 1)))


@pytest.fixture(scope="module")
def gen():
    return load_generator(str(ADA))


def test_w_pca_equals_exact_svd(gen):
    n, k = 3000, 5
    bank = ganspace(gen, n=n, k=k, seed=0, layers=[0, 1, 2, 3])
    assert bank.space == "w" and bank.layers == [0, 1, 2, 3] and bank.directions.shape == (k, 32)
    with torch.no_grad():
        w = gen.embed(torch.from_numpy(_z(0, 0, n, 32)), "w").double().numpy()
    wc = w - w.mean(0)
    _, s, vt = np.linalg.svd(wc, full_matrices=False)
    assert _angle(bank.directions.astype(np.float64), vt[:k]) < 1e-3
    np.testing.assert_allclose(bank.mean, w.mean(0), atol=1e-5)
    np.testing.assert_allclose(bank.scales, s[:k] / np.sqrt(n - 1), rtol=1e-4)


def test_w_bank_traversal_edits_only_its_layers(gen):
    bank = ganspace(gen, n=1000, k=3, seed=0, layers=[2, 3])
    base = gen.embed(gen.z_from_seeds([0, 1]), "w+")
    lat = traversal_latents(gen, bank, base, [0], [-2.0, 2.0])
    moved = (lat[0] - base[:, None]).abs().amax(dim=(0, 1, 3))
    assert (moved[[2, 3]] > 0).all() and (moved[[0, 1, 4, 5, 6, 7]] == 0).all()
    imgs = gen.synthesis(lat[0].reshape(-1, 8, 32), "w+")
    assert (imgs[0] - imgs[1]).abs().mean() > 1e-3


@pytest.mark.parametrize("space", ["w", "w+"])
def test_sample_space_equals_embed(cli, tmp_path, space):
    res = cli("sample", "--ckpt", str(ADA), "-n", "10", "--space", space, "--truncation", "0.7", "--out", "s.npz")
    assert res.code == 0, res
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        z, lat = f["z"], f["latents"]
    g = load_generator(str(ADA)).with_settings(truncation=0.7)
    with torch.no_grad():
        ref = g.embed(torch.from_numpy(z), space).numpy()
    np.testing.assert_allclose(lat, ref, rtol=0, atol=1e-6)
    assert lat.shape == ((10, 32) if space == "w" else (10, 8, 32))


def test_w_stream_is_batch_size_invariant(gen):
    a = ganspace(gen, n=700, k=4, seed=3, batch_size=64)
    b = ganspace(gen, n=700, k=4, seed=3, batch_size=7)
    np.testing.assert_allclose(np.abs(np.sum(a.directions * b.directions, axis=1)), 1, atol=1e-5)
    np.testing.assert_allclose(a.scales, b.scales, rtol=1e-5)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-6)
