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

    for i in range(2):
        Image.fromarray((np.random.default_rng(i).random((32, 32, 3)) * 255).astype(np.uint8)).save(d / f"noise{i}.png")
    opts = ProjectOptions(space="w+", steps=6, loss=(("l2", 1.0),))
    res = project(gen, [d / "noise0.png", d / "noise1.png"], opts, out=d / "p.npz")
    bank = sefa(gen, k=3)
    bank.save(d / "b.npz")
    return gen, d, res


def test_amount_zero_renders_the_reconstruction_with_its_noise_maps(run):
    """Within one 8-bit level: other batch shapes change float32 sums in their last bits, which can
    flip a rounding; without the maps (the generator's stored const noise) images differ far more."""
    gen, d, res = run
    assert res["noise"] is not None and len(res["noise"]) == len(gen.noise_maps())
    recon = res["reconstructions"].astype(int)
    rec = Recipe((str(d / "b.npz"),), (Edit(0, 0.0),))
    out = edit_latents(gen, [DirectionBank.load(d / "b.npz")], rec, d / "p.npz", batch_size=1)
    assert np.abs(out["images"] - recon).max() <= 1 and np.abs(out["before"] - recon).max() <= 1
    assert np.abs(gen_render(gen, res["latents"]) - recon).max() > 8  # the maps matter
    # traverse renders in chunks of steps; batches of 3 straddle (direction, image) rows: each image keeps its maps
    t = traverse(gen, DirectionBank.load(d / "b.npz"), [0, 1], latents=d / "p.npz", steps=3, span=(0, 0), batch_size=3)
    assert t["images"].shape[:2] == (4, 3)  # rows direction-major: (dir 0, image 0), (dir 0, image 1), ...
    for row in range(4):
        for step in range(3):
            assert np.abs(t["images"][row, step] - recon[row % 2]).max() <= 1, (row, step)


def gen_render(gen, lat):
    import torch

    from dirfind.util.images import to_uint8

    with torch.no_grad():
        return to_uint8(gen.synthesis(torch.from_numpy(lat), "w+")).astype(int)


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


def test_edits_too_large_to_hold_are_written_a_part_at_a_time(run, tmp_path, monkeypatch):
    """Over the memory limit (lowered here to one image's worth of pairs), the PNGs are rendered
    and written a part at a time and equal the in-memory run's; without a folder it is refused."""
    from PIL import Image

    import dirfind.render.images as images

    gen, d, _ = run
    bank = DirectionBank.load(d / "b.npz")
    rec = Recipe((str(d / "b.npz"),), (Edit(1, 2.0),))
    whole = edit_latents(gen, [bank], rec, d / "p.npz", out=tmp_path / "whole", batch_size=1)
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 3 * 32 * 32 * 3)  # 1.5 pairs: one image per part
    parts = edit_latents(gen, [bank], rec, d / "p.npz", out=tmp_path / "parts", batch_size=1)
    assert parts["images"] is None and len(parts["files"]) == 2
    for a, b in zip(whole["files"], parts["files"], strict=True):
        assert np.abs(np.asarray(Image.open(a), int) - np.asarray(Image.open(b), int)).max() <= 1
    np.testing.assert_array_equal(np.load(tmp_path / "whole/latents.npy"), np.load(tmp_path / "parts/latents.npy"))
    with pytest.raises(BadInputError, match="too many to hold"):
        edit_latents(gen, [bank], rec, d / "p.npz", batch_size=1)
    with pytest.raises(BadInputError, match="too large"):
        edit_latents(gen, [bank], rec, d / "p.npz", out=tmp_path / "g", grid=tmp_path / "g.png", batch_size=1)
    assert not (tmp_path / "g").exists()
