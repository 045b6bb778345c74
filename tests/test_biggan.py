"""BigGAN-deep (pytorch-pretrained-BigGAN layout) against goldens written by that package
(tests/fixtures/biggan)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dirfind import load_generator
from dirfind.bank import DirectionBank
from dirfind.errors import BadInputError
from dirfind.methods.sefa import sefa


@pytest.fixture(scope="module")
def folder(fixtures):
    return fixtures / "biggan" / "biggan_deep_tiny64"


@pytest.fixture(scope="module")
def golden(fixtures):
    return dict(np.load(fixtures / "biggan" / "biggan_deep_tiny64.golden.npz"))


@pytest.fixture
def gen(folder):
    return load_generator(str(folder), device="cpu")


CASES = [(0.4, "z_trunc04", "img_trunc04"), (1.0, "z_trunc1", "img_trunc1"), (0.345, "z_trunc0345", "img_trunc0345")]


def test_family_and_shape(gen):
    assert gen.family == "biggan" and gen.spaces == ("z",)
    assert (gen.z_dim, gen.resolution, gen.channels, gen.num_classes) == (32, 64, 3, 10)
    assert gen.class_index == 0 and gen.pca_activation == "generator.gen_z"


@pytest.mark.parametrize("t,zkey,ikey", CASES)
def test_images_match_reference(gen, golden, t, zkey, ikey):
    """model.eval(); model(z, one_hot, t) — includes the mirrored BN-statistics blend at t=0.345."""
    z = torch.from_numpy(golden[zkey])
    with torch.no_grad():
        img = gen.generate(z, torch.from_numpy(golden["class_vector"]), t).numpy()
    np.testing.assert_allclose(img, golden[ikey], rtol=0, atol=1e-4)


@pytest.mark.parametrize("t,zkey,ikey", CASES)
def test_configured_class_and_truncation_render_the_same(gen, golden, t, zkey, ikey):
    """The adapter's own path: --class and --truncation settings, one class per call."""
    gen.configure(truncation=t)
    z = torch.from_numpy(golden[zkey])
    for i, c in enumerate(golden["class_index"]):
        gen.configure(class_index=int(c))
        with torch.no_grad():
            img = gen.synthesis(z[i : i + 1], "z").numpy()
        np.testing.assert_allclose(img[0], golden[ikey][i], rtol=0, atol=1e-4)


@pytest.mark.parametrize("t,zkey,_", CASES)
def test_truncated_noise_matches_reference(gen, golden, t, zkey, _):
    """truncated_noise_sample(4, 32, t, seed=9001): scipy truncnorm(-2, 2) * t (scipy 1.17.1)."""
    gen.configure(truncation=t)
    z = gen.draw_z(np.random.RandomState(9001), 4)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, golden[zkey], rtol=0, atol=1e-6)
    zs = gen.z_from_seeds([9001]).numpy()  # one sample per seed, as truncated_noise_sample(1, seed=s)
    np.testing.assert_allclose(zs[0], golden[zkey][0], rtol=0, atol=1e-6)
    big = gen.draw_z(np.random.default_rng(0), 2000)
    assert np.abs(big).max() <= 2 * t + 1e-6


def test_class_mixture_and_trainmode_first_call(gen, golden):
    z = torch.from_numpy(golden["z_trunc04"])
    with torch.no_grad():
        mix = gen.generate(z, torch.from_numpy(golden["class_vector_mix"]), 0.4).numpy()
    np.testing.assert_allclose(mix, golden["img_trunc04_classmix"], rtol=0, atol=1e-4)
    # the reference's first call without .eval() runs one spectral-norm power iteration first
    gen.spectral_norm_step()
    with torch.no_grad():
        img = gen.generate(z, torch.from_numpy(golden["class_vector"]), 0.4).numpy()
    np.testing.assert_allclose(img, golden["img_trunc04_trainmode_first_call"], rtol=0, atol=1e-4)


def test_svd_sigma_would_not_match(gen, golden):
    """Guard on the fixture's point: sigma comes from the stored u, v, not from an SVD."""
    lin = gen.generator.gen_z
    w = lin.weight_orig.reshape(lin.weight_orig.shape[0], -1)
    assert float(lin.sigma()) < 0.99 * float(torch.linalg.matrix_norm(w, ord=2))


def test_member_files_load_the_same_checkpoint(folder, gen, tmp_path):
    by_bin = load_generator(str(folder / "pytorch_model.bin"))
    by_cfg = load_generator(str(folder / "config.json"))
    assert by_bin.fingerprint == by_cfg.fingerprint == gen.fingerprint
    assert by_bin.checkpoint_path == gen.checkpoint_path


def test_sefa_factorises_z_part_of_gen_z(folder, gen):
    """The z columns of gen_z's spectrally normalised weight ([z | class embedding] input),
    recomputed here from the raw state dict."""
    sd = torch.load(folder / "pytorch_model.bin", weights_only=True)
    w, u, v = sd["generator.gen_z.weight_orig"], sd["generator.gen_z.weight_u"], sd["generator.gen_z.weight_v"]
    a = (w / torch.dot(u, w @ v))[:, :32].double().numpy()
    torch.testing.assert_close(gen.latent_weights()["generator.gen_z"].double(), torch.from_numpy(a))
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    vals, vecs = np.linalg.eigh(a.T @ a)
    bank = sefa(gen)
    np.testing.assert_allclose(bank.scores, vals[::-1], rtol=1e-5)
    assert np.abs(np.sum(bank.directions * vecs[:, ::-1].T, axis=1)).min() > 0.9999
    assert bank.space == "z" and bank.generator["class_index"] == 0


def test_synthesis_is_jvp_compatible(gen, golden):
    """Forward-mode derivative through the whole network equals a float64 central difference."""
    gen = gen.double().configure(truncation=0.4, class_index=3)
    z = torch.from_numpy(golden["z_trunc04"][:2]).double()
    v = torch.zeros_like(z)
    v[:, 1] = 1
    out, tangent = torch.func.jvp(lambda x: gen.synthesis(x, "z"), (z,), (v,))
    eps = 1e-6
    with torch.no_grad():
        fd = (gen.synthesis(z + eps * v, "z") - gen.synthesis(z - eps * v, "z")) / (2 * eps)
    assert out.shape == (2, 3, 64, 64)
    torch.testing.assert_close(tangent, fd, rtol=0, atol=1e-5)
    assert tangent.abs().max() > 1e-3


def test_activations(gen, golden):
    z = torch.from_numpy(golden["z_trunc04"][:2])
    assert gen.activation(z, "z", "generator.gen_z").shape == (2, 128, 4, 4)
    assert gen.activation(z, "z", "generator.layers.6").shape == (2, 16, 32, 32)  # self-attention
    assert gen.activation(z, "z", "generator.conv_to_rgb").shape == (2, 8, 64, 64)


def test_bad_inputs(folder, gen, tmp_path):
    with pytest.raises(BadInputError, match="class must be in 0..9"):
        gen.configure(class_index=10)
    with pytest.raises(BadInputError, match=r"truncation must be in \(0, 1\]"):
        gen.configure(truncation=1.5)
    with pytest.raises(BadInputError, match="shape"):
        gen.generate(torch.zeros(2, 32), torch.zeros(2, 5))
    only_bin = tmp_path / "only_bin"
    only_bin.mkdir()
    shutil.copy(folder / "pytorch_model.bin", only_bin)
    with pytest.raises(BadInputError, match="config.json"):
        load_generator(str(only_bin / "pytorch_model.bin"))
    with pytest.raises(BadInputError, match="config.json"):
        load_generator(str(only_bin))
    only_cfg = tmp_path / "only_cfg"
    only_cfg.mkdir()
    shutil.copy(folder / "config.json", only_cfg)
    with pytest.raises(BadInputError, match="pytorch_model.bin"):
        load_generator(str(only_cfg))
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["channel_width"] = 4
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BadInputError, match="do not fit"):
        load_generator(str(broken))
    del cfg["layers"]
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BadInputError, match="lacks layers"):
        load_generator(str(broken))


def test_cli_sefa_records_class_and_traverse_uses_it(cli, folder, tmp_path):
    r = cli("sefa", "--ckpt", folder, "--class", "7", "-k", "3", "-o", "b.npz")
    assert r.code == 0, r
    bank = DirectionBank.load(tmp_path / "b.npz")
    assert bank.generator["class_index"] == 7 and bank.generator["family"] == "biggan"
    args = ("traverse", "--bank", "b.npz", "--dir", "0", "--steps", "3", "--seeds", "0-1", "--truncation", "0.4")
    r = cli(*args, "-o", "frames/")
    assert r.code == 0, r
    frames = [np.asarray(Image.open(tmp_path / "frames" / f"{s:04d}.png"), dtype=np.float64) for s in range(3)]
    assert frames[0].shape == (2 * 64 + 2, 64, 3)
    assert np.abs(frames[0] - frames[2]).mean() > 1.0  # direction 0 changes the images
    # the bank's class is used unless --class overrides it
    r = cli(*args, "--class", "2", "-o", "other/")
    assert r.code == 0, r
    other = np.asarray(Image.open(tmp_path / "other" / "0001.png"), dtype=np.float64)
    assert np.abs(other - frames[1]).mean() > 1.0
    r = cli(*args, "--class", "10", "-o", "bad.png")
    assert r.code == 4 and "class must be in 0..9" in r.err and r.err.count("\n") == 1
    r = cli("sefa", "--ckpt", folder / "config.json", "--truncation", "2", "-o", "c.npz")
    assert r.code == 2  # sefa has no --truncation: a usage error


def test_registry_entries_resolve_to_the_adapter(folder, monkeypatch, tmp_path):
    """biggan-deep-* are folder entries; a cached copy (here: the fixture standing in for the
    download) loads by name through the registry, and lock files do not change the fingerprint."""
    from dirfind.registry import cached_path, load_registry

    monkeypatch.setenv("DIRFIND_CACHE", str(tmp_path / "cache"))
    reg = load_registry()
    for name in ("biggan-deep-128", "biggan-deep-256", "biggan-deep-512"):
        assert reg[name].family == "biggan" and set(reg[name].files) == {"config.json", "pytorch_model.bin"}
    dest = cached_path(reg["biggan-deep-128"])
    shutil.copytree(folder, dest)
    (dest / "pytorch_model.bin.lock").write_text("")
    g = load_generator("biggan-deep-128")
    assert g.family == "biggan" and g.fingerprint == load_generator(str(folder)).fingerprint
