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
from dirfind.core.edits import apply_edit
from dirfind.errors import BadInputError, MismatchError
from dirfind.methods.sefa import sefa
from dirfind.render.traverse import traversal_latents, traverse
from helpers import PREDICTORS


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
    assert gen.family == "biggan" and gen.spaces == ("z", "w+")
    assert (gen.z_dim, gen.resolution, gen.channels, gen.num_classes) == (32, 64, 3, 10)
    assert gen.settings.class_index == 0 and gen.pca_activation == "generator.gen_z"
    # per-layer z: gen_z + 8 residual blocks (the self-attention layer reads no latent)
    assert (gen.w_dim, gen.num_ws, gen.layer_space()) == (32, 9, "z")
    assert gen.latent_shape("w+") == (9, 32)


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
    gen = gen.with_settings(truncation=t)
    z = torch.from_numpy(golden[zkey])
    for i, c in enumerate(golden["class_index"]):
        gen = gen.with_settings(class_index=int(c))
        with torch.no_grad():
            img = gen.synthesis(z[i : i + 1], "z").numpy()
        np.testing.assert_allclose(img[0], golden[ikey][i], rtol=0, atol=1e-4)


@pytest.mark.parametrize("t,zkey,_", CASES)
def test_truncated_noise_matches_reference(gen, golden, t, zkey, _):
    """truncated_noise_sample(4, 32, t, seed=9001): scipy truncnorm(-2, 2) * t (scipy 1.17.1)."""
    gen = gen.with_settings(truncation=t)
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


def test_activations(gen, golden):
    z = torch.from_numpy(golden["z_trunc04"][:2])
    assert gen.activation(z, "z", "generator.gen_z").shape == (2, 128, 4, 4)
    assert gen.activation(z, "z", "generator.layers.6").shape == (2, 16, 32, 32)  # self-attention
    assert gen.activation(z, "z", "generator.conv_to_rgb").shape == (2, 8, 64, 64)


def test_bad_inputs(folder, gen, tmp_path):
    with pytest.raises(BadInputError, match="class_index must be in 0..9"):
        gen = gen.with_settings(class_index=10)
    with pytest.raises(BadInputError, match=r"truncation must be in \(0, 1\]"):
        gen = gen.with_settings(truncation=1.5)
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


# ---------------------------------------------------------------------- per-layer z (w+)
def test_layer_names_describe_the_latent_reading_layers(gen):
    names = gen.layer_names()
    assert len(names) == gen.num_ws == 9
    assert names[0].startswith("generator.gen_z") and "128x4x4" in names[0]
    assert names[1].startswith("generator.layers.0 ") and "4 px" in names[1] and "128->128 ch" in names[1]
    assert names[2].startswith("generator.layers.1 ") and "4->8 px" in names[2] and "128->64 ch" in names[2]
    # w+ index 7 skips the self-attention layer (generator.layers.6)
    assert names[7].startswith("generator.layers.7 ") and names[8].startswith("generator.layers.8 ")
    assert "32->64 px" in names[8] and not any("layers.6 " in n for n in names)


@pytest.mark.parametrize("t,zkey,ikey", CASES)
def test_w_plus_with_identical_copies_renders_the_goldens(gen, golden, t, zkey, ikey):
    gen = gen.with_settings(truncation=t)
    z = torch.from_numpy(golden[zkey])
    ws = gen.embed(z, "w+")
    assert ws.shape == (len(z), 9, 32) and torch.equal(ws[:, 5], z) and torch.equal(gen.embed(z, "z"), z)
    for i, c in enumerate(golden["class_index"]):
        gen = gen.with_settings(class_index=int(c))
        with torch.no_grad():
            img = gen.synthesis(ws[i : i + 1], "w+")
            assert torch.equal(img, gen.synthesis(z[i : i + 1], "z"))
        np.testing.assert_allclose(img[0].numpy(), golden[ikey][i], rtol=0, atol=1e-4)
    with torch.no_grad():
        act = gen.activation(ws[:2], "w+", "generator.layers.6")
        assert torch.equal(act, gen.activation(z[:2], "z", "generator.layers.6"))
    with pytest.raises(BadInputError, match="w\\+"):
        gen.synthesis(ws[:, :8], "w+")


def test_per_layer_edits(gen, golden):
    gen = gen.with_settings(truncation=0.4, class_index=3)
    z = torch.from_numpy(golden["z_trunc04"][:2])
    d = 0.5 * torch.randn(1, 32, generator=torch.Generator().manual_seed(0))
    base = gen.embed(z, "w+")
    with torch.no_grad():
        plain = gen.synthesis(base, "w+")
        one = gen.synthesis(apply_edit(gen, base, d, "w+", [3]), "w+")
        every = gen.synthesis(apply_edit(gen, base, d.expand(2, -1), "z", list(range(9))), "w+")
        via_z = gen.synthesis(z + d, "z")
        manual = base.clone()
        manual[:, 3] += d[0]
        torch.testing.assert_close(apply_edit(gen, base, d, "w+", [3]), manual, rtol=0, atol=0)
        assert (one - plain).abs().mean() > 1e-3  # editing one layer's z changes the image
        assert (one - every).abs().mean() > 1e-3  # ... and differently from editing all of them
        torch.testing.assert_close(every, via_z, rtol=0, atol=1e-5)  # every layer by d = z by d
        # a w+ edit vector with one block per layer, all equal, is the same edit
        blocks = apply_edit(gen, base, d.repeat(1, 9), "w+", None)
        torch.testing.assert_close(gen.synthesis(blocks, "w+"), via_z, rtol=0, atol=1e-5)


def test_latent_weights_default_and_per_layer(gen, folder):
    default = gen.latent_weights()
    assert list(default) == ["generator.gen_z"]
    sd = torch.load(folder / "pytorch_model.bin", weights_only=True)
    w, u, v = sd["generator.gen_z.weight_orig"], sd["generator.gen_z.weight_u"], sd["generator.gen_z.weight_v"]
    torch.testing.assert_close(default["generator.gen_z"], (w / torch.dot(u, w @ v))[:, :32])
    assert torch.equal(gen.latent_weights([0])["generator.gen_z"], default["generator.gen_z"])
    mats = gen.latent_weights([2, 7])
    assert list(mats) == ["generator.layers.1", "generator.layers.7"]
    # rows: scale and offset of bn_0 (cin) and bn_1..bn_3 (cin / 4 each), columns: z
    assert mats["generator.layers.1"].shape == (2 * (128 + 3 * 32), 32)
    assert mats["generator.layers.7"].shape == (2 * (16 + 3 * 4), 32)
    with pytest.raises(BadInputError, match="0..8"):
        gen.latent_weights([9])


def test_block_latent_weights_are_what_reads_z(gen, golden):
    """Hooks on the block's bn scale/offset maps: changing w+ layer 2 by dz changes their outputs
    by A @ dz (A = latent_weights([2])), and leaves the other blocks' maps alone."""
    gen = gen.double().with_settings(class_index=5)
    block = gen.get_submodule("generator.layers.1")
    maps = [getattr(getattr(block, f"bn_{k}"), m) for k in range(4) for m in ("scale", "offset")]
    other = gen.get_submodule("generator.layers.2").bn_0.scale
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in [*maps, other]]
    base = gen.embed(torch.from_numpy(golden["z_trunc1"][:1]).double(), "w+")
    dz = torch.randn(32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    outs = []
    for lat in (base, apply_edit(gen, base, dz[None], "w+", [2])):
        seen.clear()
        with torch.no_grad():
            gen.synthesis(lat, "w+")
        outs.append(torch.cat([o[0] for o in seen]))
    for h in hooks:
        h.remove()
    a = gen.latent_weights([2])["generator.layers.1"]
    n = a.shape[0]
    torch.testing.assert_close(outs[1][:n] - outs[0][:n], a @ dz, rtol=0, atol=1e-10)
    assert (a @ dz).abs().max() > 1e-3
    torch.testing.assert_close(outs[1][n:], outs[0][n:], rtol=0, atol=0)


def test_sefa_per_layer_bank_and_traversal(gen):
    full = sefa(gen)
    assert full.space == "z" and full.layers is None and full.info["matrix_shape"] == [2048, 32]
    bank = sefa(gen, layers=[1, 2], k=4)
    assert bank.space == "z" and bank.layers == [1, 2] and bank.dim == gen.w_dim
    assert bank.info["weights"] == ["generator.layers.0", "generator.layers.1"]
    assert bank.info["matrix_shape"] == [448 + 448, 32]
    assert np.abs(bank.directions @ full.directions[0]).max() < 0.9999  # other matrices, other directions
    bank.check_generator(gen)
    base = gen.embed(gen.z_from_seeds([0, 1]), "w+")
    lat = traversal_latents(gen, bank, base, [0], [-2.0, 2.0])[0]  # (N, S, 9, 32)
    d = torch.from_numpy(bank.directions[0])
    for step, alpha in enumerate((-2.0, 2.0)):
        torch.testing.assert_close(lat[:, step, [1, 2]] - base[:, [1, 2]], alpha * d.expand(2, 2, -1))
    assert torch.equal(lat[:, :, [0, 3, 4, 5, 6, 7, 8]], base[:, None, [0, 3, 4, 5, 6, 7, 8]].expand(-1, 2, -1, -1))
    # a whole-z bank narrowed to layers with traverse(layers=...) renders per-layer edits
    tiles = traverse(gen, full, [0], seeds=[0], steps=2, layers=[4, 5])["images"].astype(np.float64)
    whole = traverse(gen, full, [0], seeds=[0], steps=2)["images"].astype(np.float64)
    assert np.abs(tiles[:, 1] - tiles[:, 0]).mean() > 0.5 and np.abs(tiles - whole).mean() > 0.5


def test_truncation_cutoff_is_refused(gen):
    with pytest.raises(BadInputError, match="truncation_cutoff"):
        gen = gen.with_settings(truncation_cutoff=3)


def test_per_layer_z_bank_is_refused_by_families_without_it(gen, dcgan):
    bank = sefa(gen, layers=[0], k=2)
    bank.generator.update(z_dim=dcgan.z_dim, fingerprint="")
    bank.directions = np.eye(2, dcgan.z_dim, dtype=np.float32)
    with pytest.raises(MismatchError, match="per-layer z"):
        bank.check_generator(dcgan)


def test_cli_per_layer_z(cli, folder, tmp_path):
    r = cli("sefa", "--ckpt", folder, "--class", "3", "--layers", "1-2", "-k", "3", "-o", "layers.npz")
    assert r.code == 0, r
    bank = DirectionBank.load(tmp_path / "layers.npz")
    assert (bank.space, bank.layers, bank.dim, bank.generator["class_index"]) == ("z", [1, 2], 32, 3)
    r = cli("traverse", "--bank", "layers.npz", "--dir", "0", "--steps", "3", "--seeds", "0", "-o", "a/")
    assert r.code == 0, r
    frames = [np.asarray(Image.open(tmp_path / "a" / f"{s:04d}.png"), dtype=np.float64) for s in range(3)]
    assert np.abs(frames[0] - frames[2]).mean() > 0.5
    r = cli("sefa", "--ckpt", folder, "--class", "3", "-k", "3", "-o", "full.npz")
    assert r.code == 0, r
    args = ("traverse", "--bank", "full.npz", "--dir", "0", "--steps", "3", "--seeds", "0")
    assert cli(*args, "--layers", "4-7", "-o", "b/").code == 0
    assert cli(*args, "-o", "c/").code == 0
    narrow, whole = (np.asarray(Image.open(tmp_path / f / "0002.png"), dtype=np.float64) for f in ("b", "c"))
    assert np.abs(narrow - whole).mean() > 0.5
    # jacobian in w+ at one layer: a w+ bank with one block, rendered at its own sample
    r = cli("jacobian", "--ckpt", folder, "--class", "3", "--space", "w+", "--layers", "0", "-k", "3",
            "--seeds", "0", "--size", "16", "-o", "jac.npz")  # fmt: skip
    assert r.code == 0, r
    jac = DirectionBank.load(tmp_path / "jac.npz")
    assert (jac.space, jac.layers, jac.dim, jac.origin.shape) == ("w+", [0], 32, (9, 32))
    assert cli("traverse", "--bank", "jac.npz", "--dir", "0", "--steps", "3", "-o", "j.png").code == 0
    # jacobian of one z offset added to layers 2-3: a z bank with those layers
    r = cli("jacobian", "--ckpt", folder, "--space", "z", "--layers", "2-3", "-k", "2", "--seeds", "0", "--size", "16",
            "-o", "jz.npz")  # fmt: skip
    assert r.code == 0, r
    jz = DirectionBank.load(tmp_path / "jz.npz")
    assert (jz.space, jz.layers, jz.dim, jz.origin.shape) == ("z", [2, 3], 32, (9, 32))
    assert cli("traverse", "--bank", "jz.npz", "--dir", "0", "--steps", "3", "-o", "jz.png").code == 0
    # sample in w+: one copy of z per layer
    r = cli("sample", "--ckpt", folder, "--class", "3", "-n", "4", "--space", "w+", "--out", "lat.npz")
    assert r.code == 0, r
    s = np.load(tmp_path / "lat.npz")
    assert s["latents"].shape == (4, 9, 32) and np.array_equal(s["latents"], np.repeat(s["z"][:, None], 9, axis=1))
    np.save(tmp_path / "wp.npy", s["latents"][:2])
    assert cli(*args[:-2], "--latents", "wp.npy", "--layers", "2", "-o", "d.png").code == 0
    # a bad layer list is a one-line usage error, not a crash
    r = cli(*args, "--layers", "9", "-o", "e.png")
    assert r.code != 0 and "layer" in r.err and r.err.count("\n") == 1


def test_cli_ganspace_and_interfacegan_per_layer(cli, folder, tmp_path):
    gs = ("ganspace", "--ckpt", folder, "--class", "3", "-n", "400", "-k", "3", "--batch-size", "100")
    r = cli(*gs, "--regression-n", "400", "-o", "gs.npz")
    assert r.code == 0, r
    bank = DirectionBank.load(tmp_path / "gs.npz")  # the default is still the gen_z activation
    assert (bank.space, bank.layers, bank.info["activation"]) == ("z", None, "generator.gen_z")
    r = cli(*gs, "--regression-n", "400", "--layers", "4-7", "-o", "gs47.npz")
    assert r.code == 0, r
    bank = DirectionBank.load(tmp_path / "gs47.npz")
    assert (bank.space, bank.layers, bank.dim) == ("z", [4, 5, 6, 7], 32)
    r = cli(*gs, "--space", "w+", "-o", "gswp.npz")  # BigGAN has no w: point to z with --layers
    assert r.code == 4 and "--space z and --layers" in r.err, r
    r = cli("interfacegan", "--ckpt", folder, "--class", "3", "-n", "200", "--predictor",
            str(PREDICTORS) + ":luminance", "--ratio", "0.25",
            "--batch-size", "50", "--space", "w+", "--layers", "2-3", "-o", "ifg.npz")  # fmt: skip
    assert r.code == 0, r
    bank = DirectionBank.load(tmp_path / "ifg.npz")
    assert (bank.space, bank.layers, bank.dim) == ("w+", [2, 3], 64)
    r = cli("traverse", "--bank", "ifg.npz", "--dir", "0", "--steps", "2", "--seeds", "0", "-o", "i.png")
    assert r.code == 0, r


def test_local_z_bank_traversed_per_layer_starts_at_its_origin(cli, folder, tmp_path):
    """traverse --layers on a whole-z local bank copies its z origin per layer (not a shape error)."""
    r = cli("jacobian", "--ckpt", folder, "-k", "2", "--seeds", "0", "--size", "16", "-o", "jz.npz")
    assert r.code == 0, r
    assert DirectionBank.load(tmp_path / "jz.npz").origin.shape == (32,)
    args = ("traverse", "--bank", "jz.npz", "--dir", "0", "--steps", "3")
    assert cli(*args, "-o", "whole/").code == 0
    r = cli(*args, "--layers", "2", "-o", "layer/")
    assert r.code == 0, r
    frames = {
        f: [np.asarray(Image.open(tmp_path / f / f"{s:04d}.png"), dtype=np.float64) for s in (1, 2)]
        for f in ("whole", "layer")
    }
    np.testing.assert_array_equal(frames["whole"][0], frames["layer"][0])  # step 0: the origin itself
    assert np.abs(frames["whole"][1] - frames["layer"][1]).mean() > 0.5
