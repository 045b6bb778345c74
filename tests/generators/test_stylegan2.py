"""StyleGAN2 adapter against the reference goldens (rosinality and NVIDIA), config-f layouts, spaces,
SeFa variants, CLI flows and bad checkpoints."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dirfind import errors, load_generator
from dirfind.bank import DirectionBank
from dirfind.generators.nets.stylegan2 import build
from dirfind.generators.nets.stylegan2_config import (
    config_from_nvidia,
    config_from_nvidia_kwargs,
    config_from_rosinality,
)
from dirfind.generators.stylegan2 import StyleGAN2Generator
from dirfind.methods.sefa import sefa
from dirfind.render.traverse import traversal_latents
from helpers import FIX, ROOT, assert_jvp_matches_vjp, close, float64_copy, one_line_error, persistent_pickle

HERE = FIX / "stylegan2"
ROS = HERE / "stylegan2_rosinality_tiny32.pt"
ADA = HERE / "stylegan2_ada_tiny32.pkl"
COND = HERE / "stylegan2_ada_cond4_tiny32.pkl"
ATOL = 1e-4


def _golden(name: str) -> dict[str, np.ndarray]:
    with np.load(HERE / f"{name}.golden.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def ros():
    return load_generator(str(ROS))


@pytest.fixture(scope="module")
def ada():
    return load_generator(str(ADA))


# ---------------------------------------------------------------------- goldens


@pytest.mark.parametrize("fused", [True, False])
def test_rosinality_goldens(fused):
    g = load_generator(str(ROS))
    g.fused_modconv = fused
    gold = _golden("stylegan2_rosinality_tiny32")
    z, w = torch.from_numpy(gold["z"]), torch.from_numpy(gold["w"])
    assert g.layout == "rosinality" and g.num_ws == 8 and g.resolution == 32 and g.w_dim == 64
    with torch.no_grad():
        close(g.embed(z, "w"), gold["w"], 1e-5)
        close(g.w_avg(), gold["latent_avg"], 0)
        close(g.synthesis(z, "z"), gold["img_trunc1"])
        close(g.synthesis(w, "w"), gold["img_trunc1"])
        close(g.synthesis(torch.from_numpy(gold["wplus"]), "w+"), gold["img_from_wplus"])
        d = torch.from_numpy(gold["edit_direction"])
        close(g.synthesis(w + 3 * d, "w"), gold["img_edit_plus"])
        close(g.synthesis(w - 3 * d, "w"), gold["img_edit_minus"])
        g = g.with_settings(truncation=0.7)
        close(g.synthesis(z, "z"), gold["img_trunc07"])
        close(g.synthesis(g.embed(z, "w"), "w"), gold["img_trunc07"])


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", ["stylegan2_ada_tiny32", "stylegan2_ada_cond4_tiny32"])
def test_nvidia_goldens(name, fused):
    g = load_generator(str(HERE / f"{name}.pkl"))
    g.fused_modconv = fused
    gold = _golden(name)
    z = torch.from_numpy(gold["z"])
    classes = gold["c"].argmax(1) if gold["c"].shape[1] else [None] * len(z)
    assert g.layout == "nvidia" and g.num_ws == 8 and g.num_classes == gold["c"].shape[1]
    close(g.w_avg(), gold["w_avg"], 0)

    def per_sample(g, fn):
        out = []
        for i, c in enumerate(classes):
            gc = g if c is None else g.with_settings(class_index=int(c))
            out.append(fn(gc, z[i : i + 1]))
        return torch.cat(out)

    with torch.no_grad():
        close(per_sample(g, lambda g, x: g.embed(x, "w+")), gold["ws"], 1e-5)
        close(per_sample(g, lambda g, x: g.synthesis(x, "z")), gold["img_trunc1"])
        close(g.synthesis(torch.from_numpy(gold["ws"]), "w+"), gold["img_trunc1"])
        g = g.with_settings(truncation=0.7)
        close(per_sample(g, lambda g, x: g.embed(x, "w+")), gold["ws_trunc07"], 1e-5)
        close(per_sample(g, lambda g, x: g.synthesis(x, "z")), gold["img_trunc07"])
        g = g.with_settings(truncation_cutoff=4)
        close(per_sample(g, lambda g, x: g.embed(x, "w+")), gold["ws_trunc07_cutoff4"], 1e-5)
        g = g.with_settings(noise_mode="none")
        close(g.synthesis(torch.from_numpy(gold["ws"]), "w+"), gold["img_noise_none"])


def test_noise_modes_and_conditioning(ada):
    g = load_generator(str(COND))
    z = torch.from_numpy(_golden("stylegan2_ada_cond4_tiny32")["z"][:2])
    with pytest.raises(errors.BadInputError, match="pass class_index"):
        g.embed(z, "w")
    g = g.with_settings(class_index=1)
    a = g.embed(z, "w")
    g = g.with_settings(class_index=2)
    assert (a - g.embed(z, "w")).abs().max() > 0.1
    with pytest.raises(errors.BadInputError, match="unconditional"):
        ada = ada.with_settings(class_index=0)
    g = load_generator(str(ADA))
    ws = g.embed(z, "w+")
    const = g.synthesis(ws, "w+")
    g = g.with_settings(noise_mode="random")
    torch.manual_seed(0)
    r1 = g.synthesis(ws, "w+")
    torch.manual_seed(1)
    r2 = g.synthesis(ws, "w+")
    assert (r1 - const).abs().max() > 1e-3 and (r1 - r2).abs().max() > 1e-3


def test_truncation_cutoff_needs_w_plus():
    g = load_generator(str(ADA)).with_settings(truncation=0.5, truncation_cutoff=3)
    with pytest.raises(errors.BadInputError, match="w\\+"):
        g.embed(torch.zeros(1, 32), "w")
    ws = g.embed(torch.randn(2, 32), "w+")
    assert not torch.allclose(ws[:, 0], ws[:, 5])


# ---------------------------------------------------------------------- config-f layouts on meta


def _meta_sd(keys: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in keys.items()}


@pytest.mark.parametrize("size,n_latent", [(256, 14), (1024, 18)])
def test_rosinality_config_f_layout(size, n_latent):
    keys = json.loads((HERE / f"stylegan2_rosinality_{size}_config_f.keys.json").read_text())
    cfg = config_from_rosinality(_meta_sd(keys))
    assert (cfg.resolution, cfg.w_dim, len(cfg.mapping_dims) - 1, cfg.num_ws) == (size, 512, 8, n_latent)
    with torch.device("meta"):
        net = build(cfg)
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == list(keys.items())


@pytest.mark.parametrize("spelling", ["init_kwargs_train_py_paper1024", "init_kwargs_legacy_tf_conversion"])
def test_nvidia_ffhq1024_layout(spelling):
    keys = json.loads((HERE / "stylegan2_ada_ffhq1024.keys.json").read_text())
    info = json.loads((HERE / "stylegan2_ada_ffhq1024.init_kwargs.json").read_text())
    kw = info[spelling]
    cfg = config_from_nvidia_kwargs(kw)
    with torch.device("meta"):
        net = build(cfg)
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == list(keys.items())
    assert net.num_ws == info["num_ws"] == 18
    assert {str(r): c for r, c in cfg.channels.items()} == info["channels"]
    assert cfg.conv_clamp == 256 and cfg.num_fp16_res == 4 and cfg.architecture == "skip"
    assert config_from_nvidia(_meta_sd(keys), kw) == cfg  # shapes + kwargs agree with kwargs alone
    flat = {**{k: v for k, v in kw.items() if k != "synthesis_kwargs"}, **kw["synthesis_kwargs"]}
    assert config_from_nvidia(_meta_sd(keys), flat) == cfg  # stylegan3 repo's flattened spelling


# ---------------------------------------------------------------------- SeFa


def test_sefa_rosinality_variant_matches_reference(ros):
    gold = _golden("stylegan2_rosinality_tiny32")["sefa_eigvec"]  # columns are directions
    names = list(ros.latent_weights(None, "rosinality"))
    assert names == ["conv1", "to_rgb1"] + [f"convs.{j}" for j in range(6)]
    bank = sefa(ros, variant="rosinality")
    assert bank.space == "w" and bank.directions.shape == (64, 64)
    vals = bank.scores.astype(np.float64)
    gaps = np.minimum(np.abs(np.diff(vals, prepend=np.inf)), np.abs(np.diff(vals, append=-np.inf)))
    distinct = gaps > 1e-4 * vals.max()
    cos = np.abs(np.sum(bank.directions.astype(np.float64) * gold.T, axis=1))
    assert distinct.sum() >= 60
    assert (cos[distinct] > 0.9999).all(), cos[distinct].min()


def test_sefa_genforce_variant_is_official_selection_and_normalisation(ros, ada):
    """genforce: conv affine per index (final to-RGB for the last), rows unit-normalised."""
    sd = torch.load(ROS, weights_only=True)["g_ema"]
    order = ["conv1"] + [f"convs.{j}" for j in range(6)]
    a = np.concatenate([sd[f"{n}.conv.modulation.weight"].double().numpy() for n in order + ["to_rgbs.2"]])
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    vals, vecs = np.linalg.eigh(a.T @ a)
    bank = sefa(ros, variant="genforce")
    np.testing.assert_allclose(bank.scores, vals[::-1], rtol=1e-5, atol=1e-6)
    cos = np.abs(np.sum(bank.directions * vecs[:, ::-1].T, axis=1))
    assert (cos[:8] > 0.9999).all()
    assert list(ada.latent_weights([0, 1, 7])) == [
        "synthesis.b4.conv1",
        "synthesis.b8.conv0",
        "synthesis.b32.torgb",
    ]
    mats = ada.latent_weights([2, 3])
    assert [m.shape for m in mats.values()] == [(64, 32), (64, 32)]
    bank = sefa(ada, layers=[2, 3], k=5)
    assert bank.layers == [2, 3] and bank.directions.shape == (5, 32)
    with pytest.raises(errors.BadInputError, match="out of range"):
        ada.latent_weights([8])


def test_layer_names_describe_resolution(ada):
    names = ada.layer_names()
    assert len(names) == 8 and names[0].startswith("4x4 conv")
    assert "8x8 conv up" in names[1] and "4x4 torgb" in names[1] and "32x32 torgb" in names[7]
    assert ada.activation_names()[0] == ada.pca_activation == "synthesis.b4.conv1"
    act = ada.activation(torch.zeros(2, 32), "w", "synthesis.b16.conv0")
    assert act.shape == (2, 64, 16, 16)


def test_jvp_through_the_unfused_synthesis():
    """The contract suite checks the fused (batch-1) path; the batched non-fused one takes another
    formulation of the modulated convolution, so its derivatives get the same exact check."""
    g = float64_copy(load_generator(str(ADA)))
    g.fused_modconv = False
    w = g.embed(torch.randn(2, 32, generator=torch.Generator().manual_seed(0)).double(), "w").double()
    d = torch.randn_like(w)
    tangent = assert_jvp_matches_vjp(lambda x: g.synthesis(x, "w"), w, d)
    assert tangent.shape == (2, 3, 32, 32) and tangent.dtype == torch.float64


def test_bf16_path_on_cpu_is_close_to_fp32():
    g = load_generator(str(ADA))
    ws = torch.from_numpy(_golden("stylegan2_ada_tiny32")["ws"])
    ref = g.synthesis(ws, "w+")
    g.set_precision(torch.bfloat16, channels_last=True)
    assert g.dtype == torch.float32 and g.net.synthesis.b4.conv1.weight.dtype == torch.bfloat16
    out = g.synthesis(ws, "w+")
    assert out.dtype == torch.float32
    assert (out - ref).abs().mean() < 0.03 and (out - ref).abs().max() < 0.3


# ---------------------------------------------------------------------- files and errors


def test_rosinality_training_file_uses_g_ema(tmp_path):
    ck = torch.load(ROS, weights_only=True)
    other = {k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in ck["g_ema"].items()}
    args = argparse.Namespace(size=32, latent=64, n_mlp=4, channel_multiplier=2, iter=10)
    path = tmp_path / "train.pt"
    torch.save(
        {"g": other, "d": {"convs.0.0.weight": torch.zeros(1)}, "g_ema": ck["g_ema"], "g_optim": {}, "d_optim": {},
         "args": args, "ada_aug_p": 0.0},
        path,
    )  # fmt: skip
    g = load_generator(str(path))
    gold = _golden("stylegan2_rosinality_tiny32")
    close(g.synthesis(torch.from_numpy(gold["w"]), "w"), gold["img_trunc1"])
    # no latent_avg in training files: the truncation centre is a seeded mean of mapped latents
    w_avg = g.w_avg()
    assert w_avg.shape == (64,) and torch.equal(w_avg, load_generator(str(path)).w_avg())


def test_missing_noise_buffers_are_seeded(tmp_path):
    ck = torch.load(ROS, weights_only=True)
    path = tmp_path / "old.pt"
    torch.save({"g_ema": {k: v for k, v in ck["g_ema"].items() if not k.startswith("noises.")}}, path)
    a = load_generator(str(path)).synthesis(torch.zeros(1, 64), "w")
    b = load_generator(str(path)).synthesis(torch.zeros(1, 64), "w")
    assert torch.equal(a, b)


def test_bad_checkpoints_are_one_line_errors(tmp_path, cli):
    data = ROS.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    line = one_line_error(cli("sefa", "--ckpt", "cut.pt"), errors.EXIT_BAD_INPUT)
    assert "cut.pt" in line
    ck = torch.load(ROS, weights_only=True)
    sd = dict(ck["g_ema"])
    del sd["convs.3.conv.weight"]
    torch.save({"g_ema": sd}, tmp_path / "missing.pt")
    line = one_line_error(cli("sefa", "--ckpt", "missing.pt"), errors.EXIT_BAD_INPUT)
    assert "convs.3.conv.weight" in line
    sd = dict(ck["g_ema"])
    sd["convs.1.conv.weight"] = torch.zeros(1, 64, 32, 3, 3)
    torch.save({"g_ema": sd}, tmp_path / "shape.pt")
    line = one_line_error(cli("sefa", "--ckpt", "shape.pt"), errors.EXIT_BAD_INPUT)
    assert "size mismatch" in line
    torch.save({"d": {"convs.0.0.weight": torch.zeros(3)}, "args": argparse.Namespace(size=32)}, tmp_path / "d.pt")
    line = one_line_error(cli("sefa", "--ckpt", "d.pt"), errors.EXIT_BAD_INPUT)
    assert "discriminator" in line
    torch.save({"g_ema": ck["g_ema"], "extra": torch.optim.SGD}, tmp_path / "unsafe.pt")
    line = one_line_error(cli("sefa", "--ckpt", "unsafe.pt"), errors.EXIT_BAD_INPUT)
    assert "refusing" in line


def test_nvidia_discriminator_only_pickle(tmp_path, cli):

    meta = {"type": "class", "version": 6, "module_src": "", "class_name": "Discriminator", "state": {}}
    (tmp_path / "d.pkl").write_bytes(persistent_pickle(meta, keys=("D",)))
    line = one_line_error(cli("sefa", "--ckpt", "d.pkl"), errors.EXIT_BAD_INPUT)
    assert "no generator" in line and "discriminator" in line


def test_registry_family_key(tmp_path, monkeypatch):
    """checkpoints.toml's NVIDIA entries say family = "stylegan2": a cached file loads through them."""
    import shutil

    from dirfind.registry import cached_path, load_registry

    monkeypatch.setenv("DIRFIND_CACHE", str(tmp_path))
    reg = load_registry()
    entry = reg["stylegan2-ada-cifar10"]
    assert entry.family == "stylegan2"
    dest = cached_path(entry)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(COND, dest)
    g = load_generator("stylegan2-ada-cifar10", registry=reg)
    assert isinstance(g, StyleGAN2Generator) and g.num_classes == 4


# ---------------------------------------------------------------------- CLI flows


@pytest.mark.parametrize("ckpt", [ROS, ADA])
def test_cli_sefa_and_layered_traverse(cli, tmp_path, ckpt):
    res = cli("sefa", "--ckpt", str(ckpt), "-k", "4", "--out", "b.npz")
    assert res.code == 0, res
    bank = DirectionBank.load(tmp_path / "b.npz")
    assert bank.space == "w" and bank.directions.shape[0] == 4 and bank.params["variant"] == "genforce"
    res = cli("sefa", "--ckpt", str(ckpt), "--variant", "rosinality", "--layers", "0-3", "--out", "r.npz")
    assert res.code == 0, res
    assert DirectionBank.load(tmp_path / "r.npz").layers == [0, 1, 2, 3]
    res = cli("traverse", "--bank", "b.npz", "--dir", "0", "--steps", "3", "--seeds", "0-1", "--layers", "0-5")
    assert res.code == 0, res
    assert (tmp_path / "traverse_d0.png").exists()
    res = cli("traverse", "--bank", "r.npz", "--dir", "1", "--steps", "3", "--seeds", "0", "--out", "r.png")
    assert res.code == 0, res
    res = cli("--json", "info", str(ckpt))
    assert res.code == 0, res
    info = json.loads(res.out)
    assert info["family"] == "stylegan2" and len(info["layers"]) == 8
    line = one_line_error(
        cli("traverse", "--bank", "b.npz", "--dir", "0", "--dtype", "fp16", "--device", "cpu", "--out", "h.png"),
        errors.EXIT_BAD_INPUT,
    )
    assert "CUDA" in line


def test_layer_range_edits_only_those_layers(ada):
    bank = sefa(ada, k=3)
    base = ada.embed(ada.z_from_seeds([0, 1]), "w+")
    lat = traversal_latents(ada, bank, base, [0], [-2.0, 0.0, 2.0], layers=[0, 1, 2, 3, 4, 5])
    diff = (lat[0] - base[:, None]).abs().amax(dim=(0, 1, 3))
    assert (diff[:6] > 0.5).all() and (diff[6:] == 0).all()
    imgs = ada.synthesis(lat[0].reshape(-1, 8, 32), "w+").reshape(2, 3, 3, 32, 32)
    assert (imgs[:, 0] - imgs[:, 2]).abs().mean() > 1e-2


def test_z_space_traversal_matches_w_plus(ada):
    z = ada.z_from_seeds([3, 4])
    np.testing.assert_allclose(
        ada.synthesis(z, "z").numpy(), ada.synthesis(ada.embed(z, "w+"), "w+").numpy(), rtol=0, atol=1e-6
    )


# ---------------------------------------------------------------------- memory-light SeFa


_MEM_SCRIPT = r"""
import sys
import torch
from dirfind import load_generator
from dirfind.methods.sefa import sefa
def rss_file():
    for line in open("/proc/self/status"):
        if line.startswith("RssFile"):
            return int(line.split()[1]) * 1024
before = rss_file()
g = load_generator(sys.argv[1])
bank = sefa(g, k=5)
print(rss_file() - before, bank.directions.shape[0], g.num_ws)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read RssFile")
def test_sefa_on_config_f_file_reads_only_style_weights(tmp_path):
    """A 1024 px config-f rosinality file (133 MB): SeFa must touch only the affine weights (~27 MB)."""
    keys = json.loads((HERE / "stylegan2_rosinality_1024_config_f.keys.json").read_text())
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for k, s in keys.items():
        if "modulation" in k or k.startswith("style."):
            sd[k] = torch.randn(s, generator=gen)
        elif k.endswith("kernel"):
            sd[k] = torch.full(s, 1 / 16)
        else:
            sd[k] = torch.zeros(s)
    path = tmp_path / "big.pt"
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(512)}, path)
    size = path.stat().st_size
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", _MEM_SCRIPT, str(path)], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    touched, k, num_ws = int(out[0]), int(out[1]), int(out[2])
    assert (k, num_ws) == (5, 18)
    assert size > 120e6 and touched < 0.35 * size, (touched, size)


def test_bank_records_render_settings_and_traverse_reuses_them(cli, tmp_path):
    """A bank found under --truncation/--noise-mode records them; traverse renders with them by default."""
    res = cli("jacobian", "--ckpt", str(ADA), "--truncation", "0.5", "--noise-mode", "none", "-k", "2",
              "--seeds", "0-1", "--average", "--out", "b.npz")  # fmt: skip
    assert res.code == 0, res
    ident = DirectionBank.load(tmp_path / "b.npz").generator
    assert ident["truncation"] == 0.5 and ident["noise_mode"] == "none" and "truncation_cutoff" not in ident

    def render(*extra: str) -> np.ndarray:
        args = ("traverse", "--bank", "b.npz", "--dir", "0", "--steps", "3", "--seeds", "0-1", "--force")
        assert cli(*args, *extra, "--out", "t.png").code == 0
        from PIL import Image

        return np.asarray(Image.open(tmp_path / "t.png")).astype(np.float64)

    default = render()
    np.testing.assert_array_equal(default, render("--truncation", "0.5", "--noise-mode", "none"))
    assert np.abs(default - render("--truncation", "1")).mean() > 1.0
    assert np.abs(default - render("--noise-mode", "const")).mean() > 0.1


@pytest.mark.parametrize("command", ["jacobian", "hessian", "orojar"])
def test_derivative_methods_refuse_random_noise(cli, command):
    """Noise redrawn on every call would enter the derivatives: a one-line error, not a crash."""
    extra = ["--steps", "1", "--batch-size", "1", "-k", "2"] if command != "jacobian" else ["-k", "2"]
    line = one_line_error(
        cli(command, "--ckpt", str(ADA), "--noise-mode", "random", *extra, "--out", "b.npz"), errors.EXIT_BAD_INPUT
    )
    assert "noise" in line


def test_random_noise_mode_is_harmless_without_noise_inputs(cli, dcgan_path):
    """Families without noise inputs render the same in every noise mode, so derivatives are fine."""
    res = cli("jacobian", "--ckpt", str(dcgan_path), "--noise-mode", "random", "-k", "2", "--out", "b.npz")
    assert res.code == 0, res
