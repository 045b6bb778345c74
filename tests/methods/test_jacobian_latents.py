"""Jacobian directions at given working-space latents (e.g. a projection) equal those at the z they
came from."""

from __future__ import annotations

import numpy as np
import torch

from dirfind import load_generator
from dirfind.methods.jacobian import jacobian_directions
from helpers import FIX


def test_w_latents_give_the_directions_of_their_z():
    gen = load_generator(str(FIX / "stylegan2" / "stylegan2_rosinality_tiny32.pt"))
    z = gen.z_from_seeds([7])
    with torch.no_grad():
        w = gen.embed(z, "w")
    a = jacobian_directions(gen, z, space="w", k=4)
    b = jacobian_directions(gen, w, space="w", k=4, latent_space="w")
    np.testing.assert_allclose(np.abs(a.directions @ b.directions.T), np.eye(4), atol=1e-4)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4)
    np.testing.assert_allclose(b.origin, a.origin, atol=1e-6)
