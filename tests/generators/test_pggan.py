"""PGGAN (genforce layout) against goldens written by genforce's own code (tests/fixtures/pggan)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from dirfind import load_generator
from dirfind.bank import DirectionBank, generator_identity
from dirfind.core.edits import base_latents
from dirfind.errors import BadInputError
from dirfind.methods.sefa import sefa
from dirfind.render import bank_edit, traversal_latents


@pytest.fixture(scope="module")
def ckpt(fixtures):
    return fixtures / "pggan" / "pggan_genforce_tiny32.pth"


@pytest.fixture(scope="module")
def golden(fixtures):
    return dict(np.load(fixtures / "pggan" / "pggan_genforce_tiny32.golden.npz"))


@pytest.fixture(scope="module")
def gen(ckpt):
    return load_generator(str(ckpt), device="cpu")


def test_family_and_shape(gen):
    assert gen.family == "pggan" and gen.spaces == ("z",)
    assert (gen.z_dim, gen.resolution, gen.channels, gen.num_classes) == (48, 32, 3, 0)
    assert gen.widths == [32, 32, 32, 16]


def test_pixel_norm_and_images_match_genforce(gen, golden):
    z = torch.from_numpy(golden["z"])
    np.testing.assert_allclose(gen.embed(z, "z").numpy(), golden["z_pixelnorm"], rtol=0, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(gen.synthesis(z, "z").numpy(), golden["img"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("lod,key", [(0.5, "img_lod05"), (1.0, "img_lod1")])
def test_level_of_detail_blends_match_genforce(ckpt, golden, lod, key):
    g = load_generator(str(ckpt))
    g.lod = lod
    with torch.no_grad():
        img = g.synthesis(torch.from_numpy(golden["z"]), "z").numpy()
    np.testing.assert_allclose(img, golden[key], rtol=0, atol=1e-4)
    assert np.abs(img - golden["img"]).max() > 0.1  # the blend really changes the output


def test_generator_smooth_is_preferred(ckpt, golden, tmp_path):
    """genforce renders with generator_smooth; the file's `generator` holds other weights."""
    obj = torch.load(ckpt, weights_only=True)
    only_g = tmp_path / "only_generator.pth"
    torch.save({"generator": obj["generator"]}, only_g)
    other = load_generator(str(only_g))
    with torch.no_grad():
        img = other.synthesis(torch.from_numpy(golden["z"]), "z").numpy()
    assert np.abs(img - golden["img"]).max() > 0.1
    bare = tmp_path / "bare.pth"
    torch.save(obj["generator_smooth"], bare)  # a bare state dict loads too
    with torch.no_grad():
        img = load_generator(str(bare)).synthesis(torch.from_numpy(golden["z"]), "z").numpy()
    np.testing.assert_allclose(img, golden["img"], rtol=0, atol=1e-4)


def test_sefa_equals_genforce_up_to_sign(gen, golden):
    bank = sefa(gen)
    order = np.argsort(-golden["sefa_eigval"], kind="stable")
    np.testing.assert_allclose(bank.scores, golden["sefa_eigval"][order], rtol=1e-4)
    cos = np.abs(np.sum(bank.directions * golden["sefa_eigvec"][order], axis=1))
    assert cos.min() > 0.9999
    assert bank.space == "z" and bank.info["weights"] == ["layer0"]


def test_latent_weights_give_layer0_features(ckpt, gen, golden):
    """features = A @ code equals the stored layer0 conv (4x4, padding 3) on the 1x1 latent,
    computed here straight from the file's weights."""
    w = torch.load(ckpt, weights_only=True)["generator_smooth"]["layer0.weight"]
    code = gen.embed(torch.from_numpy(golden["z"]), "z")
    scale = math.sqrt(2.0) / math.sqrt(48 * 16)
    ref = torch.nn.functional.conv2d(code[:, :, None, None], w * scale, padding=3).reshape(len(code), -1)
    a = gen.latent_weights()["layer0"]
    assert a.shape == (32 * 16, 48)
    torch.testing.assert_close(code @ a.T, ref, rtol=0, atol=1e-5)


def test_sefa_edit_matches_genforce_edit(gen, golden):
    """SeFa's PGGAN edit: code = pixel_norm(z); G(code ± 3·eigvec[0]) — through dirfind's traversal path."""
    d = golden["edit_direction"][None]
    bank = DirectionBank(directions=d, space="z", method="sefa", generator=generator_identity(gen), step_unit="unit")
    base = base_latents(gen, torch.from_numpy(golden["z"]), *bank_edit(gen, bank))
    edited = traversal_latents(gen, bank, base, [0], [-3.0, 3.0])  # (1, N, 2, z)
    with torch.no_grad():
        minus = gen.synthesis(edited[0, :, 0], "z").numpy()
        plus = gen.synthesis(edited[0, :, 1], "z").numpy()
    np.testing.assert_allclose(plus, golden["img_edit_plus"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(minus, golden["img_edit_minus"], rtol=0, atol=1e-4)
    # and genforce's row-0 direction is one of ours (up to sign)
    assert np.abs(sefa(gen).directions @ golden["edit_direction"]).max() > 0.9999


def test_activations(gen, golden):
    z = torch.from_numpy(golden["z"][:2])
    assert gen.activation_names()[:2] == ["layer0", "layer1"] and gen.pca_activation == "layer0"
    assert gen.activation(z, "z", "layer0").shape == (2, 32, 4, 4)
    assert gen.activation(z, "z", "layer7").shape == (2, 16, 32, 32)
    with pytest.raises(BadInputError):
        gen.activation(z, "z", "nope")


def test_bad_inputs(ckpt, tmp_path, gen):
    bad = tmp_path / "wrong_keys.pth"
    torch.save(
        {"generator": {"layer0.weight": torch.zeros(4, 8, 3, 3), "output0.weight": torch.zeros(3, 4, 1, 1)}}, bad
    )
    with pytest.raises(BadInputError, match="layer0.weight"):
        load_generator(str(bad))
    with pytest.raises(BadInputError, match="unconditional"):
        load_generator(str(ckpt)).with_settings(class_index=1)
    with pytest.raises(BadInputError, match="layer"):
        gen.latent_weights([1])
    g = load_generator(str(ckpt))
    g.lod = 5
    with pytest.raises(BadInputError, match="lod"):
        g.synthesis(torch.zeros(1, 48), "z")


def test_cli_sefa_then_traverse(cli, ckpt, tmp_path):
    r = cli("sefa", "--ckpt", ckpt, "-k", "4", "-o", "p.npz")
    assert r.code == 0, r
    assert "4 sefa directions in z of pggan" in r.out
    r = cli("traverse", "--bank", "p.npz", "--dir", "0", "--steps", "3", "--seeds", "0-1", "-o", "frames/")
    assert r.code == 0, r
    frames = [np.asarray(Image.open(tmp_path / "frames" / f"{s:04d}.png"), dtype=np.float64) for s in range(3)]
    assert frames[0].shape == (2 * 32 + 2, 32, 3)
    assert np.abs(frames[0] - frames[2]).mean() > 1.0  # direction 0 changes the images
    r = cli("traverse", "--bank", "p.npz", "--dir", "0", "--class", "1", "-o", "x.png")
    assert r.code == 4 and "unconditional" in r.err


def test_registry_entry(ckpt, monkeypatch, tmp_path):
    """pggan-celebahq-1024 caches under a real file name (its URL is a share link) and loads by name."""
    import shutil

    from dirfind.registry import cached_path, load_registry

    monkeypatch.setenv("DIRFIND_CACHE", str(tmp_path / "cache"))
    entry = load_registry()["pggan-celebahq-1024"]
    assert entry.family == "pggan" and entry.license and entry.source.startswith("https://")
    dest = cached_path(entry)
    assert dest.name == "pggan_celebahq1024.pth"
    dest.parent.mkdir(parents=True)
    shutil.copy(ckpt, dest)  # the fixture stands in for the download
    assert load_generator("pggan-celebahq-1024").family == "pggan"
