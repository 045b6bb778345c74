"""StyleGAN3 (T and R) adapter against the reference goldens, the 1024 px key layouts, the input
transform, forward-mode derivatives, SeFa weights, CLI flows and bad or malicious pickles."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from dirfind import errors, load_generator
from dirfind.bank import DirectionBank
from dirfind.generators.loading.checkpoint import Checkpoint, read_checkpoint
from dirfind.generators.loading.nvidia_pickle import generator_from_pickle, read_nvidia_pickle
from dirfind.generators.nets.filtered_lrelu import filtered_lrelu
from dirfind.generators.nets.ops import upfirdn2d
from dirfind.generators.nets.stylegan3 import build
from dirfind.generators.nets.stylegan3_config import config_from_state_dict
from dirfind.generators.stylegan2 import StyleGAN2Generator
from dirfind.generators.stylegan3 import StyleGAN3Generator, input_transform
from dirfind.methods.sefa import factorize, sefa
from helpers import FIX, assert_jvp_matches_vjp, close, float64_copy, node_meta, one_line_error, persistent_pickle

HERE = FIX / "stylegan3"
SG2 = FIX / "stylegan2" / "stylegan2_ada_tiny32.pkl"
PKL = {c: HERE / f"stylegan3_{c}_tiny32.pkl" for c in "tr"}
ATOL_IMG, ATOL_LAT = 1e-4, 1e-5


def _golden(c: str) -> dict[str, np.ndarray]:
    with np.load(HERE / f"stylegan3_{c}_tiny32.golden.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module", params=["t", "r"])
def sg3(request):
    return request.param, load_generator(str(PKL[request.param]))


# ---------------------------------------------------------------------- goldens


@pytest.mark.parametrize("c", ["t", "r"])
def test_goldens(c):
    g = load_generator(str(PKL[c]))  # the modulated-conv form is measured per layer (nets/measured.py)
    gold = _golden(c)
    z, ws = torch.from_numpy(gold["z"]), torch.from_numpy(gold["ws"])
    assert isinstance(g, StyleGAN3Generator) and g.family == "stylegan3"
    assert (g.num_ws, g.resolution, g.z_dim, g.w_dim, g.num_classes) == (16, 32, 32, 32, 0)
    assert g.cfg.config == c.upper() and g.cfg.source == "attributes"
    with torch.no_grad():
        close(g.w_avg(), gold["w_avg"], 0)
        close(g.embed(z, "w+"), gold["ws"], ATOL_LAT)
        close(g.embed(z, "w"), gold["ws"][:, 0], ATOL_LAT)
        close(g.synthesis(z, "z"), gold["img_trunc1"], ATOL_IMG)
        close(g.synthesis(ws, "w+"), gold["img_trunc1"], ATOL_IMG)
        # the input transform: our matrix is the golden one, and the image matches
        close(input_transform(0.1, -0.05, 15.0), gold["input_transform"], 1e-6)
        g = g.with_settings(transform=(0.1, -0.05, 15.0))
        close(g.synthesis(ws, "w+"), gold["img_transform"], ATOL_IMG)
        g = g.with_settings(transform=(0, 0, 0))  # identity = the pickle's own buffer
        close(g.synthesis(ws, "w+"), gold["img_trunc1"], ATOL_IMG)
        g = g.with_settings(truncation=float(gold["truncation_psi"]))
        close(g.embed(z, "w+"), gold["ws_trunc07"], ATOL_LAT)
        close(g.synthesis(g.embed(z, "w"), "w"), gold["img_trunc07"], ATOL_IMG)
        g = g.with_settings(truncation_cutoff=int(gold["truncation_cutoff"]))
        close(g.embed(z, "w+"), gold["ws_trunc07_cutoff4"], ATOL_LAT)
        with pytest.raises(errors.BadInputError, match="w\\+"):
            g.embed(z, "w")


def test_fused_single_samples_and_noise_mode(sg3):
    """Single samples (their own measured modulated-conv choice) give the goldens and the batch's images."""
    c, g = sg3
    gold = _golden(c)
    ws = torch.from_numpy(gold["ws"][:2])
    with torch.no_grad():
        single = torch.cat([g.synthesis(ws[i : i + 1], "w+") for i in range(len(ws))])
        close(single, gold["img_trunc1"][:2], ATOL_IMG)
        batch = g.synthesis(ws, "w+")
        close(batch, single.numpy(), 1e-5)
        g = g.with_settings(noise_mode="random")
        try:
            assert torch.equal(g.synthesis(ws, "w+"), batch)  # StyleGAN3 has no noise inputs
        finally:
            g = g.with_settings(noise_mode="const")


def _literal_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    """NVIDIA's reference recipe spelled out: materialised zero insertion, full-resolution 2-D
    filtering (the outer product of a 1-D filter), leaky ReLU, filtering, then decimation."""
    ones = torch.ones(1, 1, dtype=x.dtype)
    two_d = [ones if f is None else (f[:, None] * f[None, :] if f.ndim == 1 else f) for f in (fu, fd)]
    x = upfirdn2d(x + b.reshape(1, -1, 1, 1), two_d[0] * up * up, up=up, pad=padding)
    x = (torch.nn.functional.leaky_relu(x, slope) * gain).clamp(-clamp, clamp)
    return upfirdn2d(x, two_d[1])[:, :, ::down, ::down]


@pytest.mark.parametrize("c", ["t", "r"])
def test_filtered_lrelu_matches_literal_reference(c):
    """The strided transposed-conv path equals zero insertion + full filtering + decimation on
    every layer geometry of the fixture (separable T filters, radial R down filters)."""
    g = load_generator(str(PKL[c]))
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for m in g.net.layers:
        sp = m.spec
        geometry = (sp.in_size, sp.out_size, sp.up, sp.down, sp.padding, sp.up_taps, sp.down_taps, sp.down_radial)
        if geometry in seen:
            continue
        seen.add(geometry)
        size = sp.in_size + sp.conv_kernel - 1
        x = torch.randn(1, sp.out_channels, size, size, generator=gen, dtype=torch.float64)[:, :2] * 3
        args = (m.up_filter, m.down_filter)
        args = tuple(None if f is None else f.double() for f in args)
        rest = (m.bias[:2].double(), sp.up, sp.down, sp.padding, 1.5, 0.2, 4.0)
        fast, ref = filtered_lrelu(x, *args, *rest), _literal_filtered_lrelu(x, *args, *rest)
        assert fast.shape == ref.shape == (1, 2, sp.out_size, sp.out_size), sp.name
        assert (fast - ref).abs().max() < 1e-10, sp.name
    assert any(m.down_filter is not None and m.down_filter.ndim == 2 for m in g.net.layers) == (c == "r")


def test_filtered_lrelu_without_filters_keeps_the_upsampling_gain():
    """A missing filter is the 1x1 identity, so upsampling still has the reference's gain up**2
    (no published layer upsamples without a filter; the function must still agree)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 5, 5, generator=gen, dtype=torch.float64)
    b, fd = torch.randn(2, generator=gen, dtype=torch.float64), torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    for fu, f_down, up, down, pad in [(None, None, 2, 1, (0, 0, 0, 0)), (None, fd, 2, 2, (1, 1, 1, 1))]:
        args = (x, fu, f_down, b, up, down, pad, 1.0, 0.2, 100.0)
        fast, ref = filtered_lrelu(*args), _literal_filtered_lrelu(*args)
        assert fast.shape == ref.shape and (fast - ref).abs().max() < 1e-12


# ---------------------------------------------------------------------- structure


@pytest.mark.parametrize("c", ["t", "r"])
def test_formula_geometry_equals_pickled_geometry(c):
    """Without the pickled attributes, the reference formulas give the same layer plan."""
    node = generator_from_pickle(read_nvidia_pickle(PKL[c]))
    sd = node.state_dict()
    attrs = {p: n.attrs for p, n in node.named_nodes() if p}
    pickled = config_from_state_dict(sd, node.init_kwargs, attrs)
    shapes_only = config_from_state_dict(sd)
    assert pickled.source == "attributes" and shapes_only.source == "formulas"
    assert shapes_only.layers == pickled.layers
    for k in ("input_channels", "input_size", "input_sampling_rate", "input_bandwidth", "num_ws", "output_scale"):
        assert getattr(shapes_only, k) == getattr(pickled, k), k
    # manifest values: the upsampling-by-4 layer with negative padding, all layers fp16-marked
    l5 = pickled.layers[5]
    assert (l5.up, l5.up_taps, l5.padding) == (4, 24, (-6, -9, -6, -9) if c == "t" else (-2, -5, -2, -5))
    assert all(layer.use_fp16 for layer in pickled.layers) and pickled.layers[-1].conv_clamp == 256


def _meta_sd(keys: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in keys.items()}


@pytest.mark.parametrize("c", ["t", "r"])
def test_ffhq1024_layouts(c):
    keys = json.loads((HERE / f"stylegan3_{c}_ffhq1024.keys.json").read_text())
    cfg = config_from_state_dict(_meta_sd(keys))  # shapes alone
    assert cfg.num_ws == 16 and cfg.img_resolution == 1024 and cfg.w_dim == cfg.z_dim == 512
    assert cfg.config == c.upper() and cfg.mapping_layers == 2
    with torch.device("meta"):
        net = build(cfg)
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == list(keys.items())
    fp16 = [layer.use_fp16 for layer in cfg.layers]
    assert fp16 == sorted(fp16) and 0 < sum(fp16) < len(fp16)  # the high-resolution tail only
    assert [layer.down_radial for layer in cfg.layers[:12]] == [c == "r"] * 12
    assert cfg.layers[2].up == 4 and cfg.input_size == 36 and cfg.layers[-2].out_size == 1024
    kwargs = {
        "t": {"channel_base": 32768, "channel_max": 512},
        "r": {"channel_base": 65536, "channel_max": 1024, "conv_kernel": 1, "use_radial_filters": True},
    }[c]
    full = config_from_state_dict(_meta_sd(keys), {"z_dim": 512, "w_dim": 512, "img_resolution": 1024, **kwargs})
    assert full.layers == cfg.layers
    bad = dict(keys)
    bad[f"synthesis.{cfg.layers[3].name}.weight"] = [1, 2, 3, 3]
    with pytest.raises(errors.BadInputError, match="size mismatch"):
        config_from_state_dict(_meta_sd(bad))


def test_sg2_and_sg3_adapters_do_not_claim_each_other():
    sg3, sg2 = read_checkpoint(PKL["t"]), read_checkpoint(SG2)
    assert StyleGAN3Generator.accepts(sg3) and not StyleGAN2Generator.accepts(sg3)
    assert StyleGAN2Generator.accepts(sg2) and not StyleGAN3Generator.accepts(sg2)
    with pytest.raises(errors.UnsupportedError, match="not a StyleGAN2"):
        StyleGAN2Generator.from_checkpoint(sg3)
    with pytest.raises(errors.UnsupportedError, match="not a StyleGAN3"):
        StyleGAN3Generator.from_checkpoint(sg2)
    assert isinstance(load_generator(str(SG2)), StyleGAN2Generator)


def test_tampered_trees_are_clear_errors():
    ck = read_checkpoint(PKL["r"])
    layer = ck.obj["G_ema"].get("synthesis.L3_36_64")
    layer.params["weight"] = torch.zeros(64, 64, 3, 3)
    with pytest.raises(errors.BadInputError, match="size mismatch for synthesis.L3_36_64.weight"):
        StyleGAN3Generator.from_checkpoint(ck)
    ck = read_checkpoint(PKL["t"])
    del ck.obj["G_ema"].get("synthesis.input").buffers["freqs"]
    with pytest.raises(errors.BadInputError, match="synthesis.input.freqs"):
        StyleGAN3Generator.from_checkpoint(ck)


# ---------------------------------------------------------------------- transform


def test_transform_moves_the_image_and_other_families_refuse_it(sg3, cli, tmp_path):
    c, g = sg3
    ws = torch.from_numpy(_golden(c)["ws"][:2])
    with torch.no_grad():
        base = g.synthesis(ws, "w+")
        try:
            for t in [(0.25, 0.0, 0.0), (0.0, 0.0, 30.0)]:
                g = g.with_settings(transform=t)
                assert g.settings.transform == t and g.describe()["transform"] == t
                assert (g.synthesis(ws, "w+") - base).abs().mean() > 0.05, t
        finally:
            g = g.with_settings(transform=(0, 0, 0))
    for bad in [(0.0, float("nan"), 0.0), (0.1, 0.2), "0.1,0,5", (0, "x", 0)]:
        with pytest.raises(errors.BadInputError, match="three finite numbers"):
            g = g.with_settings(transform=bad)
    for other in (load_generator(str(SG2)),):
        with pytest.raises(errors.UnsupportedError, match="only available for StyleGAN3"):
            other = other.with_settings(transform=(0.1, 0.0, 0.0))
    line = one_line_error(
        cli("sample", "--ckpt", str(SG2), "-n", "2", "--transform", "0.1,0,5", "--out", "s.npz"),
        errors.EXIT_UNSUPPORTED,
    )
    assert "StyleGAN3" in line and "stylegan2" in line
    line = one_line_error(
        cli("sample", "--ckpt", str(PKL[c]), "-n", "2", "--transform", "0.1,x", "--out", "s.npz"),
        errors.EXIT_BAD_INPUT,
    )
    assert "TX,TY" in line


# ---------------------------------------------------------------------- derivatives and precision


@pytest.mark.parametrize("c", ["t", "r"])
def test_jvp_through_synthesis_with_a_user_transform(c):
    """Forward-mode AD through the whole synthesis with a user transform (the contract suite checks
    the stored one) agrees exactly with reverse mode, for a per-layer (w+) tangent. (A central
    difference is no reference here: the many leaky-ReLU kinks make its result depend on the step
    and on which CPU kernels run.)"""
    g = float64_copy(load_generator(str(PKL[c])).with_settings(transform=(0.05, -0.1, 7.0)))
    x = g.embed(torch.randn(1, 32, generator=torch.Generator().manual_seed(0)).double(), "w+").double()
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    tangent = assert_jvp_matches_vjp(lambda v: g.synthesis(v, "w+"), x, d)
    assert tangent.shape == (1, 3, 32, 32) and tangent.abs().max() > 1e-2


def test_bf16_on_fp16_marked_layers_is_close_to_fp32():
    g = load_generator(str(PKL["t"]))
    ws = torch.from_numpy(_golden("t")["ws"][:2])
    with torch.no_grad():
        ref = g.synthesis(ws, "w+")
        g.set_precision(torch.bfloat16, channels_last=True)
        assert g.dtype == torch.float32 and g.compute_dtype == torch.bfloat16
        out = g.synthesis(ws, "w+")
        assert out.dtype == torch.float32 and not torch.equal(out, ref)
        assert (out - ref).abs().mean() < 0.05
    with pytest.raises(errors.BadInputError, match="unsupported dtype"):
        g.set_precision(torch.int8)


# ---------------------------------------------------------------------- SeFa and layers


def test_sefa_reads_every_affine(sg3):
    c, g = sg3
    names = list(g.latent_weights())
    assert names[0] == "synthesis.input" and len(names) == 16
    assert names[1:] == [f"synthesis.{layer.name}" for layer in g.cfg.layers]
    assert list(g.latent_weights(None, "rosinality")) == names
    mats = g.latent_weights([0, 1, 15])
    ch = g.cfg.input_channels
    assert [tuple(m.shape) for m in mats.values()] == [(4, 32), (ch, 32), (ch, 32)]
    # independent check on the raw pickle: rows of affine.weight / sqrt(w_dim), unit-normalised
    sd = generator_from_pickle(read_nvidia_pickle(PKL[c])).state_dict()
    a = np.concatenate([sd[f"{n}.affine.weight"].double().numpy() / np.sqrt(32) for n in names])
    vals, _ = factorize(a, normalize=True)
    bank = sefa(g, k=5)
    assert bank.space == "w" and bank.directions.shape == (5, 32) and bank.layers is None
    np.testing.assert_allclose(bank.scores, vals[:5], rtol=1e-5)
    bank = sefa(g, layers=[2, 3], k=3, variant="rosinality")
    assert bank.layers == [2, 3] and bank.info["weights"] == names[2:4]
    with pytest.raises(errors.BadInputError, match="out of range"):
        g.latent_weights([16])


def test_layer_and_activation_names(sg3):
    c, g = sg3
    names = g.layer_names()
    assert len(names) == 16 and "synthesis.input" in names[0] and "torgb" in names[15]
    acts = g.activation_names()
    assert acts[0] == g.pca_activation and len(acts) == 14
    with torch.no_grad():
        a = g.activation(torch.zeros(2, 32), "w", acts[5])
    layer = g.cfg.layers[5]
    assert a.shape == (2, layer.out_channels, layer.out_size, layer.out_size)


# ---------------------------------------------------------------------- registry and CLI


def test_registry_entries(tmp_path, monkeypatch):
    from dirfind.registry import cached_path, load_registry

    monkeypatch.setenv("DIRFIND_CACHE", str(tmp_path))
    reg = load_registry()
    names = [n for n, e in reg.items() if e.family == "stylegan3"]
    assert {"stylegan3-t-ffhq-1024", "stylegan3-r-ffhq-1024"} <= set(names)
    dest = cached_path(reg["stylegan3-r-ffhq-1024"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(PKL["r"], dest)
    g = load_generator("stylegan3-r-ffhq-1024", registry=reg)
    assert isinstance(g, StyleGAN3Generator) and g.cfg.config == "R"


def test_cli_sefa_traverse_info(cli, tmp_path):
    ckpt = str(PKL["t"])
    res = cli("sefa", "--ckpt", ckpt, "-k", "4", "--out", "b.npz")
    assert res.code == 0, res
    bank = DirectionBank.load(tmp_path / "b.npz")
    assert bank.generator["family"] == "stylegan3" and bank.directions.shape == (4, 32)
    res = cli("traverse", "--bank", "b.npz", "--dir", "0", "--steps", "3", "--seeds", "0-1", "--layers", "1-8")
    assert res.code == 0, res
    assert (tmp_path / "traverse_d0.png").stat().st_size > 0
    res = cli("traverse", "--bank", "b.npz", "--dir", "1", "--steps", "3", "--seeds", "0", "--transform", "0.1,0,10")
    assert res.code == 0, res
    res = cli("--json", "info", ckpt)
    assert res.code == 0, res
    info = json.loads(res.out)
    assert info["family"] == "stylegan3" and info["config"] == "T" and len(info["layers"]) == 16


def test_cli_transform_is_recorded_and_reapplied(cli, tmp_path):
    args = ["-n", "200", "-k", "3", "--batch-size", "100", "--transform", "0.1,-0.1,20", "--out", "g.npz"]
    res = cli("ganspace", "--ckpt", str(PKL["r"]), *args)
    assert res.code == 0, res
    assert DirectionBank.load(tmp_path / "g.npz").generator["transform"] == [0.1, -0.1, 20.0]
    grid = ["traverse", "--bank", "g.npz", "--dir", "0", "--steps", "2", "--seeds", "0"]
    for out, extra in (
        ("rec.png", []),
        ("same.png", ["--transform", "0.1,-0.1,20"]),
        ("id.png", ["--transform", "0,0"]),
    ):
        res = cli(*grid, *extra, "--out", out)
        assert res.code == 0, res
    rec = (tmp_path / "rec.png").read_bytes()
    assert rec == (tmp_path / "same.png").read_bytes() and rec != (tmp_path / "id.png").read_bytes()


def test_bank_for_another_generator_is_a_mismatch_before_its_settings_apply(cli, tmp_path):
    """A bank's recorded settings may not fit another generator (here a cutoff past its 8 w+ layers):
    traverse reports the mismatch (exit 6), not the setting."""
    g = load_generator(str(PKL["t"])).with_settings(truncation=0.7, truncation_cutoff=12)
    sefa(g, k=2).save(tmp_path / "b.npz")
    line = one_line_error(
        cli("traverse", "--bank", "b.npz", "--ckpt", str(SG2), "--dir", "0", "--seeds", "0"), errors.EXIT_MISMATCH
    )
    assert "--force" in line


def test_bad_and_malicious_pickles(cli, tmp_path):
    # embedded module source that would write a file if executed: loads as data, renders the golden
    target = tmp_path / "PWNED"
    node = generator_from_pickle(read_nvidia_pickle(PKL["t"]))
    (tmp_path / "src.pkl").write_bytes(persistent_pickle(node_meta(node, f"open({str(target)!r}, 'w').write('x')\n")))
    g = load_generator(str(tmp_path / "src.pkl"))
    gold = _golden("t")
    close(g.synthesis(torch.from_numpy(gold["ws"]), "w+"), gold["img_trunc1"], ATOL_IMG)
    assert not target.exists()
    # a code-executing global inside an otherwise valid StyleGAN3 snapshot
    evil = node_meta(node, "", extra=Checkpoint)  # pickled as a global reference to a non-allowlisted class
    (tmp_path / "evil.pkl").write_bytes(persistent_pickle(evil))
    line = one_line_error(cli("sefa", "--ckpt", "evil.pkl"), errors.EXIT_BAD_INPUT)
    assert "refusing global" in line and "Checkpoint" in line
    data = PKL["r"].read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    line = one_line_error(cli("sefa", "--ckpt", "cut.pkl"), errors.EXIT_BAD_INPUT)
    assert "cut.pkl" in line
    node = generator_from_pickle(read_nvidia_pickle(PKL["r"]))
    node.get("synthesis.L14_32_3").params["weight"] = torch.zeros(3, 64, 3, 3)
    (tmp_path / "shape.pkl").write_bytes(persistent_pickle(node_meta(node, "")))
    line = one_line_error(cli("sefa", "--ckpt", "shape.pkl"), errors.EXIT_BAD_INPUT)
    assert "size mismatch" in line and "L14_32_3" in line
