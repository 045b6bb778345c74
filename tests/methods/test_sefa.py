"""SeFa on the real DCGAN against an independent computation and the official outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dirfind.methods import sefa


def _independent_genforce(gen) -> tuple[np.ndarray, np.ndarray]:
    """The official recipe written out from the paper: A = first-layer weight as (z, features),
    unit-normalise each feature column, eigenvectors of A Aᵀ, sorted by eigenvalue."""
    w = gen.net.main[0].weight.detach().double().numpy()  # (nz, C, 4, 4) ConvT layout
    a = w.reshape(w.shape[0], -1)
    a = a / np.linalg.norm(a, axis=0, keepdims=True)
    vals, vecs = np.linalg.eig(a @ a.T)
    order = np.argsort(-vals.real)
    return vals.real[order], vecs.real[:, order].T


def test_sefa_matches_independent_computation(dcgan):
    bank = sefa(dcgan)
    vals, vecs = _independent_genforce(dcgan)
    np.testing.assert_allclose(bank.scores, vals, rtol=1e-5)
    cos = np.abs(np.sum(bank.directions.astype(np.float64) * vecs, axis=1))
    assert cos.min() > 0.9999


def test_sefa_matches_official_genforce_and_rosinality(dcgan, fixtures):
    ref = np.load(fixtures / "reference" / "dcgan_sefa.npz")
    bank = sefa(dcgan)
    np.testing.assert_allclose(bank.scores, ref["eigvals_sorted"], rtol=1e-4)
    cos = np.abs(np.sum(bank.directions * ref["eigvecs_sorted"], axis=1))
    assert cos.min() > 0.9999

    ros = sefa(dcgan, variant="rosinality")
    np.testing.assert_allclose(np.sqrt(ros.scores), ref["rosinality_S"], rtol=1e-4)
    cos = np.abs(np.sum(ros.directions * ref["rosinality_V"].T, axis=1))
    assert cos.min() > 0.9999


def test_sefa_bank_properties(dcgan):
    bank = sefa(dcgan, k=12)
    assert len(bank) == 12 and bank.space == "z" and bank.method == "sefa"
    np.testing.assert_allclose(np.linalg.norm(bank.directions, axis=1), 1, atol=1e-6)
    assert np.all(np.diff(bank.scores) <= 0), "scores must be sorted descending"
    gram = bank.directions @ bank.directions.T
    np.testing.assert_allclose(gram, np.eye(12), atol=1e-5)
    assert bank.generator["fingerprint"] == dcgan.fingerprint
    assert bank.params["variant"] == "genforce"
    # sign convention: the largest-magnitude entry of every direction is positive
    d = bank.directions
    assert np.all(d[np.arange(len(d)), np.abs(d).argmax(1)] > 0)


def test_sefa_top_direction_moves_first_layer_most(dcgan):
    """SeFa's defining property: the top direction changes the normalised first-layer features more
    than any other unit direction, in particular more than the last one and random ones."""
    bank = sefa(dcgan)
    w = dcgan.net.main[0].weight.detach().reshape(100, -1)
    a = (w / w.norm(dim=0, keepdim=True)).numpy().astype(np.float64)

    def gain(d):
        return float(np.linalg.norm(d @ a))

    rng = np.random.default_rng(0)
    rand = rng.standard_normal((50, 100))
    rand /= np.linalg.norm(rand, axis=1, keepdims=True)
    top = gain(bank.directions[0])
    assert top > max(gain(r) for r in rand)
    assert top > 3 * gain(bank.directions[-1])
    np.testing.assert_allclose(top**2, bank.scores[0], rtol=1e-4)


def test_sefa_rejects_bad_options(dcgan):
    from dirfind.errors import BadInputError

    with pytest.raises(BadInputError):
        sefa(dcgan, variant="nope")
    with pytest.raises(BadInputError):
        sefa(dcgan, k=0)
    with pytest.raises(BadInputError):
        sefa(dcgan, layers=[1])


def test_sefa_is_deterministic(dcgan):
    a, b = sefa(dcgan, k=5), sefa(dcgan, k=5)
    assert torch.equal(torch.from_numpy(a.directions), torch.from_numpy(b.directions))
