"""Fast paths give the slow paths' numbers: fused vs non-fused modulated convolution (StyleGAN2 both
layouts, StyleGAN3 T and R) against the reference goldens, the measured choice between them, and
the polyphase form of the StyleGAN3 filter's transposed convolution."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dirfind import load_generator
from dirfind.generators.nets import measured
from dirfind.generators.nets.filtered_lrelu import _polyphase_up
from helpers import FIX, close

CKPTS = {
    "sg2-rosinality": (FIX / "stylegan2" / "stylegan2_rosinality_tiny32.pt", "wplus", "img_from_wplus"),
    "sg2-nvidia": (FIX / "stylegan2" / "stylegan2_ada_tiny32.pkl", "ws", "img_trunc1"),
    "sg3-t": (FIX / "stylegan3" / "stylegan3_t_tiny32.pkl", "ws", "img_trunc1"),
    "sg3-r": (FIX / "stylegan3" / "stylegan3_r_tiny32.pkl", "ws", "img_trunc1"),
}


@pytest.mark.parametrize("name", list(CKPTS))
def test_fused_non_fused_and_measured_match_the_reference(name, monkeypatch):
    monkeypatch.setenv(measured.AUTOTUNE_ENV, "1")
    path, wkey, ikey = CKPTS[name]
    with np.load(path.with_name(path.stem + ".golden.npz")) as f:
        ws, gold = torch.from_numpy(f[wkey][:3]), f[ikey][:3]
    g = load_generator(str(path))
    measured.forget()
    out = {}
    with torch.no_grad():
        for mode in (True, False, None):
            g.fused_modconv = mode
            out[mode] = g.synthesis(ws, "w+")
            close(out[mode], gold, 1e-4)  # each path against the reference code's own images
    close(out[True], out[False].numpy(), 1e-5)
    picks = measured.choices()
    assert picks and all(k[3][0] == 3 and v in (0, 1, 2) for k, v in picks.items())  # per layer shape
    n_layers = sum(1 for m in g.net.modules() if isinstance(getattr(m, "weight", None), torch.nn.Parameter))
    assert len(picks) <= n_layers


@pytest.mark.parametrize("name", ["sg2-nvidia", "sg3-t"])
def test_every_measured_candidate_gives_the_same_layer_output(name, monkeypatch):
    """Each layer's candidates (fused, non-fused, non-fused in channels-last for upsampling) agree."""
    path, wkey, ikey = CKPTS[name]
    with np.load(path.with_name(path.stem + ".golden.npz")) as f:
        ws, gold = torch.from_numpy(f[wkey][:2]), f[ikey][:2]
    counts = []

    def all_agree(key, candidates, inputs, fallback, rule=None):
        outs = [run() for run in candidates]
        for o in outs[1:]:
            torch.testing.assert_close(o, outs[0], rtol=1e-5, atol=1e-5)  # layer outputs reach ~10
        counts.append(len(outs))
        return outs[-1]

    monkeypatch.setattr(measured, "fastest", all_agree)
    g = load_generator(str(path))
    g.fused_modconv = None
    with torch.no_grad():
        close(g.synthesis(ws, "w+"), gold, 1e-4)  # StyleGAN2 batches: channels-last throughout
        assert set(counts) == {2}
        if name.startswith("sg2"):  # the default layout: upsampling may also go channels-last
            counts.clear()
            g.memory_format = torch.contiguous_format
            close(g.synthesis(ws, "w+"), gold, 1e-4)
            assert set(counts) == {2, 3}


def test_stylegan2_batches_render_channels_last_on_cpu():
    """The fixed layout rule: batches without derivatives run channels-last (the same images as the
    default layout to float rounding), one image and gradient passes the default layout."""
    path, wkey, ikey = CKPTS["sg2-nvidia"]
    with np.load(path.with_name(path.stem + ".golden.npz")) as f:
        ws, gold = torch.from_numpy(f[wkey][:3]), f[ikey][:3]
    g = load_generator(str(path))
    name = g.activation_names()[2]
    with torch.no_grad():
        assert g.activation(ws, "w+", name).is_contiguous(memory_format=torch.channels_last)
        assert g.activation(ws[:1], "w+", name).is_contiguous()
        cl = g.synthesis(ws, "w+")
        g.memory_format = torch.contiguous_format
        plain = g.synthesis(ws, "w+")
    assert not g.activation(ws.requires_grad_(), "w+", name).is_contiguous(memory_format=torch.channels_last)
    close(cl, plain.numpy(), 1e-5)
    close(cl, gold, 1e-4)


def test_fastest_measures_once_then_runs_the_winner(monkeypatch):
    monkeypatch.setenv(measured.AUTOTUNE_ENV, "1")
    measured.forget()
    calls = {"slow": 0, "fast": 0}
    x = torch.ones(2, 3)

    def slow():
        calls["slow"] += 1
        time.sleep(0.05)
        return x * 2

    def fast():
        calls["fast"] += 1
        return x * 2

    for _ in range(3):
        assert torch.equal(measured.fastest("k", [slow, fast], [x], fallback=0), x * 2)
    assert calls == {"slow": 1, "fast": 3} and measured.choices() == {"k": 1}


@pytest.mark.parametrize("name", ["sg2-nvidia", "sg3-t"])
def test_default_rule_is_the_same_bits_every_run(name, monkeypatch):
    """Without DIRFIND_AUTOTUNE nothing is timed: the fixed rule renders the same bits in every run
    and process (here: twice, with the table cleared between), within the reference tolerance."""
    monkeypatch.delenv(measured.AUTOTUNE_ENV, raising=False)
    path, wkey, ikey = CKPTS[name]
    with np.load(path.with_name(path.stem + ".golden.npz")) as f:
        ws, gold = torch.from_numpy(f[wkey][:3]), f[ikey][:3]
    g = load_generator(str(path))
    g.fused_modconv = None
    runs = []
    for _ in range(2):
        measured.forget()
        with torch.no_grad():
            runs.append(g.synthesis(ws, "w+"))
        assert measured.choices() == {}
    assert torch.equal(runs[0], runs[1])
    close(runs[0], gold, 1e-4)


def test_fastest_falls_back_where_timing_says_nothing(monkeypatch):
    """Inputs needing gradients and functorch-wrapped tensors take the fallback and record nothing."""
    monkeypatch.setenv(measured.AUTOTUNE_ENV, "1")
    measured.forget()
    seen = []

    def a():
        seen.append("a")
        return torch.zeros(())

    def b():
        seen.append("b")
        return torch.zeros(())

    x = torch.ones(3, requires_grad=True)
    measured.fastest("g", [a, b], [x], fallback=1)
    assert seen == ["b"] and measured.choices() == {}

    def f(t):
        measured.fastest("j", [a, b], [t], fallback=0)
        return t * 2

    torch.func.jvp(f, (torch.ones(3),), (torch.ones(3),))
    assert seen == ["b", "a"] and measured.choices() == {}


@pytest.mark.parametrize(("up", "k", "dim"), [(2, 12, 3), (4, 24, 2), (2, 5, 3), (4, 6, 2)])
def test_polyphase_upsampling_equals_the_transposed_convolution(up, k, dim):
    x = torch.randn(3, 1, 7, 9, dtype=torch.float64)
    g = torch.randn(k, dtype=torch.float64)
    kernel = g.reshape(1, 1, 1, k) if dim == 3 else g.reshape(1, 1, k, 1)
    ref = F.conv_transpose2d(x, kernel, stride=(1, up) if dim == 3 else (up, 1))
    got = _polyphase_up(x, g, up, dim)
    assert got.shape == ref.shape
    close(got, ref.numpy(), 1e-12)


@pytest.mark.parametrize("name", list(CKPTS))
def test_batches_split_to_fit_the_render_budget_give_the_whole_batch(name, monkeypatch):
    """A batch whose estimated activations exceed the render budget is rendered a part at a time:
    the reference images still, per-sample noise maps sliced with it; not split with derivatives."""
    import dirfind.util.memory as memory

    path, wkey, ikey = CKPTS[name]
    with np.load(path.with_name(path.stem + ".golden.npz")) as f:
        ws, gold = torch.from_numpy(f[wkey]), f[ikey]
    n = len(ws)
    assert n >= 4
    g = load_generator(str(path))
    per = g.image_bytes()
    assert per is not None and per > 0
    with torch.no_grad():
        whole = g.synthesis(ws, "w+")
        assert g.render_chunk(ws) == n
        monkeypatch.setattr(memory, "render_budget", lambda device="cpu": 2 * per)
        assert g.render_chunk(ws) == 2
        calls = []
        run = g._run
        monkeypatch.setattr(g, "_run", lambda lat, space: calls.append(len(lat)) or run(lat, space))
        split = g.synthesis(ws, "w+")
    assert calls == [2] * (n // 2) + [1] * (n % 2)
    close(split, gold, 1e-4)
    close(split, whole.numpy(), 1e-5)
    assert g.render_chunk(ws.clone().requires_grad_(True)) == n  # autograd: one pass
    if g.noise_maps():
        gen = torch.Generator().manual_seed(0)
        maps = [torch.randn(n, 1, *m.shape, generator=gen) for m in g.noise_maps()]
        with torch.no_grad():
            split = g.with_noise(maps).synthesis(ws, "w+")
            monkeypatch.setattr(memory, "render_budget", lambda device="cpu": 10 * per)
            close(split, g.with_noise(maps).synthesis(ws, "w+").numpy(), 1e-5)
        assert g.with_settings(noise_mode="random").image_bytes() is None  # random draws: never split
    assert g.cpu_pass_bytes is not None  # on a CPU images as large as the cap go one by one
    monkeypatch.setattr(memory, "render_budget", lambda device="cpu": 10**15)
    monkeypatch.setattr(g, "image_bytes", lambda: g.cpu_pass_bytes)
    assert g.render_chunk(ws) == 1


@pytest.mark.parametrize("name", ["sg2-nvidia", "sg2-rosinality", "sg3-t"])
def test_synthesis_compiles_as_one_graph_with_the_reference_images(name):
    """What ``torch.compile`` (the GPU check's compiled rows) sees: the whole synthesis of a batch
    traces into one graph (no graph breaks, through AOT autograd) and gives the reference images."""
    path, wkey, ikey = CKPTS[name]
    with np.load(path.with_name(path.stem + ".golden.npz")) as f:
        ws, gold = torch.from_numpy(f[wkey][:3]), f[ikey][:3]
    g = load_generator(str(path))
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: g.synthesis(x, "w+"), backend="aot_eager", fullgraph=True)
    with torch.inference_mode():
        close(compiled(ws), gold, 1e-4)
