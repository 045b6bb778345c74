"""Edit recipes on a StyleGAN2 projection: its optimised noise maps are rendered with its latents
(amount 0 reproduces the reconstruction exactly), layer-restricted edits touch only their layers,
and recipes round-trip through JSON."""

from __future__ import annotations

import numpy as np
import pytest

from dirfind import load_generator
from dirfind.bank import DirectionBank
from dirfind.core.latentfile import read_latent_file
from dirfind.errors import BadInputError
from dirfind.methods import sefa
from dirfind.methods.project import ProjectOptions, project
from dirfind.render import traverse
from dirfind.render.recipe import Edit, Recipe, apply_recipe, edit_latents
from helpers import FIX


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipe")
    gen = load_generator(str(FIX / "stylegan2" / "stylegan2_ada_tiny32.pkl"))
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(d / "noise.png")
    res = project(gen, [d / "noise.png"], ProjectOptions(space="w+", steps=6, loss=(("l2", 1.0),)), out=d / "p.npz")
    bank = sefa(gen, k=3)
    bank.save(d / "b.npz")
    return gen, d, res


def test_amount_zero_renders_the_reconstruction_with_its_noise_maps(run):
    gen, d, res = run
    assert res["noise"] is not None and len(res["noise"]) == len(gen.noise_maps())
    rec = Recipe((str(d / "b.npz"),), (Edit(0, 0.0),))
    out = edit_latents(gen, [DirectionBank.load(d / "b.npz")], rec, d / "p.npz")
    np.testing.assert_array_equal(out["images"][0], res["reconstructions"][0])
    np.testing.assert_array_equal(out["before"][0], res["reconstructions"][0])
    # without the maps (the generator's stored const noise) the image differs: they matter
    assert np.abs(gen_render(gen, res["latents"]) - res["reconstructions"][0].astype(int)).max() > 0
    t = traverse(gen, DirectionBank.load(d / "b.npz"), [0], latents=d / "p.npz", steps=1, span=(0, 0))
    np.testing.assert_array_equal(t["images"][0, 0], res["reconstructions"][0])


def gen_render(gen, lat):
    import torch

    from dirfind.util.images import to_uint8

    with torch.no_grad():
        return to_uint8(gen.synthesis(torch.from_numpy(lat), "w+"))[0].astype(int)


def test_layer_edits_touch_only_their_layers_and_recipes_round_trip(run, tmp_path):
    gen, d, _ = run
    bank = DirectionBank.load(d / "b.npz")
    ls = read_latent_file(d / "p.npz", gen)
    rec = Recipe((str(d / "b.npz"),), (Edit("sefa_1", 2.0, layers=(0, 1)), Edit(2, -1.0)))
    before, after, space = apply_recipe(gen, [bank], rec, ls)
    diff = (after - before)[0].numpy()
    d1 = bank.directions[1] * bank.scales[1] * 2.0
    d2 = bank.directions[2] * bank.scales[2] * -1.0
    np.testing.assert_allclose(diff[0], d1 + d2, atol=1e-5)
    np.testing.assert_allclose(diff[5], d2, atol=1e-5)
    assert space == "w+"
    rec.save(tmp_path / "r.json")
    assert Recipe.load(tmp_path / "r.json") == Recipe((str(d / "b.npz"),), rec.edits)
    with pytest.raises(BadInputError, match="no direction is named"):
        apply_recipe(gen, [bank], Recipe((str(d / "b.npz"),), (Edit("smile", 1.0),)), ls)
