"""dirfind evaluate at given latents (a latents file, a projection with noise maps): the same
numbers as seeded samples where they are the same latents, measured from traverse's own images
(noise maps included), resumable, and a one-line error for a mismatched resume or bad use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dirfind import load_generator
from dirfind.core.evaluation import Evaluation
from dirfind.core.jobs import Interrupted
from dirfind.core.latentfile import LatentSet, write_projection
from dirfind.core.sampling import draw_z
from dirfind.errors import BadInputError, MismatchError
from dirfind.methods import sefa
from dirfind.methods.interpret import evaluate
from dirfind.methods.interpret.stats import TraversalStats
from dirfind.render import traverse
from helpers import FIX, PREDICTORS, interrupt_second_update

KEYS = ("profile", "effect", "change_map", "ssim", "slope", "corr", "attr_sd", "box50", "latent_cos")


@pytest.fixture(scope="module")
def bank(dcgan):
    return sefa(dcgan, k=2)


def test_a_latents_file_of_the_seeded_z_gives_the_seeded_evaluation(dcgan, bank, tmp_path, monkeypatch):
    z = draw_z(dcgan, 0, 3, seed=5)
    np.save(tmp_path / "z.npy", z)
    opts = dict(steps=5, predictors=(f"{PREDICTORS}:luminance",), batch_size=5)  # one sample per batch
    seeded = evaluate(dcgan, bank, n=3, seed=5, **opts)
    out = tmp_path / "ev.npz"
    real = TraversalStats.update
    interrupt_second_update(monkeypatch, TraversalStats)
    with pytest.raises(Interrupted):
        evaluate(dcgan, bank, latents=tmp_path / "z.npy", out=out, every=0, **opts)
    monkeypatch.setattr(TraversalStats, "update", real)
    np.save(tmp_path / "z2.npy", draw_z(dcgan, 3, 6, seed=5))
    with pytest.raises(MismatchError):  # a resume with other latents is refused, not mixed in
        evaluate(dcgan, bank, latents=tmp_path / "z2.npy", out=out, resume=True, **opts)
    given = evaluate(dcgan, bank, latents=tmp_path / "z.npy", out=out, resume=True, **opts)
    for key in KEYS:
        np.testing.assert_allclose(given[key], seeded[key], rtol=0, atol=1e-9, err_msg=key)
    run = Evaluation.load(out).run
    assert run["n"] == 3 and "seed" not in run and run["latents"]["file"] == str(tmp_path / "z.npy")
    assert run["latents"]["space"] == "z" and run["latents"]["noise"] is False
    # other latents give other numbers (the file is read, not the seed)
    other = evaluate(dcgan, bank, latents=tmp_path / "z2.npy", **opts)
    assert np.abs(other["effect"] - seeded["effect"]).max() > 1e-4


@pytest.fixture(scope="module")
def sg2():
    return load_generator(str(FIX / "stylegan2" / "stylegan2_rosinality_tiny32.pt"))


def test_projection_noise_maps_are_used_as_traverse_uses_them(sg2, tmp_path):
    """A w+ projection file with its own noise maps: evaluate's change profile equals the one
    measured on ``traverse --latents``'s images of that file, and differs without the maps."""
    bank = sefa(sg2, k=2)
    z = sg2.z_from_seeds([1, 2, 3])
    with torch.no_grad():
        wp = sg2.embed(z, "w+").numpy()
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(3, 1, *m.shape, generator=g).numpy() * 2 for m in sg2.noise_maps()]  # (N, 1, H, W)
    arrays = {"latents": wp, **{f"noise{k}": m for k, m in enumerate(maps)}}
    path = write_projection(tmp_path / "p.npz", {"space": "w+", "images": {"paths": ["a", "b", "c"]}}, arrays)
    ev = evaluate(sg2, bank, latents=path, steps=5)
    tiles = traverse(sg2, bank, [0, 1], latents=path, steps=5)["images"].astype(np.float64) / 255
    tiles = tiles.reshape(2, 3, 5, *tiles.shape[-3:])  # (dirs, latents, steps, H, W, C)
    np.testing.assert_allclose(ev["profile"], np.abs(tiles - tiles[:, :, 2:3]).mean((1, 3, 4, 5)), atol=1e-6)
    np.testing.assert_allclose(ev["effect"], np.abs(tiles[:, :, -1] - tiles[:, :, 0]).mean((1, 2, 3, 4)), atol=1e-6)
    assert ev.run["latents"]["noise"] is True and ev.run["latents"]["names"] == ["a", "b", "c"]
    plain = evaluate(sg2, bank, latents=LatentSet(wp, "w+", "npy"), steps=5)
    assert np.abs(plain["effect"] - ev["effect"]).max() > 1e-5


def test_latents_that_do_not_fit_are_one_line_errors(dcgan, bank, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((2, 7), np.float32))
    with pytest.raises(BadInputError):
        evaluate(dcgan, bank, latents=tmp_path / "bad.npy", steps=3)


def test_cli_evaluate_latents(cli, dcgan_path, tmp_path):
    r = cli("sefa", "--ckpt", str(dcgan_path), "-k", "2", "--out", str(tmp_path / "b.npz"))
    assert r.code == 0, r
    np.save(tmp_path / "z.npy", np.random.default_rng(0).standard_normal((2, 100)).astype(np.float32))
    r = cli("--json", "evaluate", str(tmp_path / "b.npz"), "--latents", str(tmp_path / "z.npy"), "--steps", "3")
    assert r.code == 0, r
    out = json.loads(r.out)
    assert out["run"]["n"] == 2 and out["run"]["latents"]["source"] == "npy"
    r = cli("evaluate", str(tmp_path / "b.npz"), "-n", "4", "--latents", str(tmp_path / "z.npy"))
    assert r.code == 4 and "not both" in r.err and "Traceback" not in r.err
    r = cli("evaluate", str(tmp_path / "b.npz"), "--latent-space", "z")
    assert r.code == 4 and "--latents" in r.err
