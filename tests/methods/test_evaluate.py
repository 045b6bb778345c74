"""dirfind evaluate on the real DCGAN: metrics against direct computations from traverse's images,
batch-size independence, resume, region locality of Jacobian banks, SSIM and concentration maths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dirfind.core.evaluation import Evaluation
from dirfind.core.jobs import Interrupted
from dirfind.core.sampling import draw_z
from dirfind.errors import MismatchError
from dirfind.methods import jacobian_directions, sefa
from dirfind.methods.interpret import evaluate
from dirfind.methods.interpret.metrics import box_share, entropy, profile_shape, ssim
from dirfind.methods.interpret.stats import TraversalStats
from dirfind.methods.jacobian import region_mask
from dirfind.render import traverse
from helpers import LUMINANCE, interrupt_second_update


@pytest.fixture(scope="module")
def bank(dcgan):
    return sefa(dcgan, k=3)


@pytest.fixture(scope="module")
def ev(dcgan, bank):
    return evaluate(dcgan, bank, n=4, steps=7, predictors=(LUMINANCE,), seed=3)


def _luminance(tiles: np.ndarray) -> np.ndarray:
    """examples/predictors.py:luminance of uint8 tiles (..., H, W, 3), the images evaluate scores."""
    x = tiles.astype(np.float64) / 255
    y = x @ np.array([0.299, 0.587, 0.114])
    h = y.shape[-1]
    return y[..., h // 4 : 3 * h // 4, h // 4 : 3 * h // 4].mean((-2, -1))


def test_effect_grows_with_the_step_and_is_zero_at_step_0(ev):
    prof = ev["profile"]  # steps -3 -2 -1 0 1 2 3
    np.testing.assert_allclose(ev["alphas"], np.linspace(-3, 3, 7))
    assert prof[:, 3].max() < 1e-6, "no edit, no change"
    assert (np.diff(prof[:, 3:], axis=1) > 0).all() and (np.diff(prof[:, :4], axis=1) < 0).all()
    assert ev["effect"].min() > 0.05 and ev["monotone"].all()


def test_metrics_equal_a_direct_computation_from_traverse(dcgan, bank, ev):
    """The same samples (stream 0 of the seed) traversed by dirfind traverse and measured with numpy."""
    z = torch.from_numpy(draw_z(dcgan, 0, 4, seed=3))
    for k in range(3):
        tiles = traverse(dcgan, bank, [k], latents=z, steps=7)["images"].astype(np.float64) / 255  # (4, 7, H, W, 3)
        np.testing.assert_allclose(ev["profile"][k], np.abs(tiles - tiles[:, 3:4]).mean((0, 2, 3, 4)), atol=1e-6)
        end = tiles[:, -1] - tiles[:, 0]
        np.testing.assert_allclose(ev["effect"][k], np.abs(end).mean(), atol=1e-6)
        np.testing.assert_allclose(ev["change_map"][k], np.abs(end).mean((0, 3)), atol=1e-6)
        y = _luminance(tiles * 255)  # (4, 7)
        a = np.linspace(-3, 3, 7)
        slopes = [np.polyfit(a, row, 1)[0] for row in y]  # each sample's own regression line
        np.testing.assert_allclose(ev["slope"][k, 0], np.mean(slopes), rtol=1e-6)
        yc, ac = y - y.mean(1, keepdims=True), a - a.mean()
        r = (yc * ac).sum() / np.sqrt((yc**2).sum() * 4 * (ac**2).sum())
        np.testing.assert_allclose(ev["corr"][k, 0], r, rtol=1e-6)
    x0 = traverse(dcgan, bank, [0], latents=z, steps=1, span=(0, 0))["images"][:, 0]
    y0 = _luminance(x0.astype(np.float64))
    even = evaluate(dcgan, bank, n=4, steps=4, dirs=(1,), seed=3)  # no step 0: x0 is rendered on its own
    tiles = traverse(dcgan, bank, [1], latents=z, steps=4)["images"].astype(np.float64)
    np.testing.assert_allclose(even["profile"][0], np.abs(tiles - x0[:, None]).mean((0, 2, 3, 4)) / 255, atol=1e-6)
    np.testing.assert_allclose(ev["attr_sd"][0], y0.std(ddof=1), rtol=1e-6)
    np.testing.assert_allclose(ev["response"][:, 0], ev["slope"][:, 0] * 6 / y0.std(ddof=1), rtol=1e-6)
    d = bank.directions.astype(np.float64)
    np.testing.assert_allclose(ev["latent_cos"], np.abs(d @ d.T), atol=1e-6)


def test_results_do_not_depend_on_batch_size_and_resume_exactly(dcgan, bank, ev, tmp_path, monkeypatch):
    """An interrupted run with two samples per batch, resumed, equals the one-batch run ``ev``."""
    out = tmp_path / "ev.npz"
    real = TraversalStats.update
    interrupt_second_update(monkeypatch, TraversalStats)
    opts = dict(n=4, steps=7, predictors=(LUMINANCE,), seed=3, batch_size=14)  # two samples per batch
    with pytest.raises(Interrupted):
        evaluate(dcgan, bank, out=out, every=0, **opts)
    assert (tmp_path / "ev.npz.progress").is_dir() and not out.exists()
    monkeypatch.setattr(TraversalStats, "update", real)
    resumed = evaluate(dcgan, bank, out=out, resume=True, **opts)
    loaded = Evaluation.load(out)
    for key in ("profile", "effect", "change_map", "ssim", "slope", "corr", "attr_sd", "box50"):
        np.testing.assert_allclose(resumed[key], ev[key], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(loaded[key], resumed[key])
    assert not (tmp_path / "ev.npz.progress").exists()
    assert loaded.bank["fingerprint"] == bank.fingerprint() and loaded.generator["fingerprint"] == dcgan.fingerprint
    with np.load(out, allow_pickle=False) as f:
        assert "meta" in f.files and "change_map" in f.files
    loaded.check_bank(bank)
    with pytest.raises(MismatchError):
        loaded.check_bank(sefa(dcgan, k=3, variant="rosinality"))


@pytest.fixture(scope="module")
def left(dcgan):
    """ReSeFa directions for the left half at one sample (what ``jacobian --region 0,0,32,64`` gives)."""
    mask = region_mask((0, 0, 32, 64), 64)
    return mask, jacobian_directions(dcgan, dcgan.z_from_seeds([0]), mask=mask, local_method="generalized", k=2)


def test_region_bank_is_more_local_than_sefa(dcgan, bank, left):
    mask, local = left
    ev_local = evaluate(dcgan, local, n=6, steps=3, mask=mask)
    ev_sefa = evaluate(dcgan, bank, n=6, steps=3, mask=mask)
    local_ratio, sefa_ratio = ev_local["inside_outside"], ev_sefa["inside_outside"]
    assert local_ratio[0] > 5 * sefa_ratio.max() and local_ratio.min() > sefa_ratio.max(), (local_ratio, sefa_ratio)
    # the locality map of the left-half direction lies in the left half
    m = ev_local["change_map"][0]
    assert m[:, :32].sum() / m.sum() > 0.75
    assert ev_local["inside_share"][0] > 0.75 and ev_sefa["inside_share"].max() < 0.65


def test_ssim_equals_the_windowed_formula():
    """Against a direct loop over every 11x11 window (Wang et al. 2004, Gaussian weights sigma 1.5)."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 16, 18, generator=g, dtype=torch.float64)
    b = (a + 0.2 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    ya = 0.299 * a[:, 0] + 0.587 * a[:, 1] + 0.114 * a[:, 2]
    yb = 0.299 * b[:, 0] + 0.587 * b[:, 1] + 0.114 * b[:, 2]
    x = np.arange(11) - 5
    w = np.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    ref = []
    for i in range(2):
        vals = []
        for r in range(16 - 10):
            for c in range(18 - 10):
                pa, pb = ya[i, r : r + 11, c : c + 11].numpy(), yb[i, r : r + 11, c : c + 11].numpy()
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                c1, c2 = 0.01**2, 0.03**2
                vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
        ref.append(np.mean(vals))
    np.testing.assert_allclose(ssim(a, b).numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(ssim(a, a).numpy(), 1.0, rtol=1e-12)


def test_concentration_entropy_and_profile_shape():
    m = np.zeros((64, 64))
    m[10:14, 20:24] = 1.0  # 16 pixels of equal change: half of it fits in 8 pixels
    assert box_share(m) == pytest.approx(8 / 4096)
    assert box_share(np.ones((64, 64))) == pytest.approx(0.5, abs=1 / 64)
    assert entropy(np.ones((8, 8))) == pytest.approx(1.0) and entropy(np.eye(1, 64).reshape(8, 8)) == 0.0
    a = [-2, -1, 0, 1, 2]
    assert profile_shape(a, [2, 1, 0, 1, 2]) == (True, pytest.approx(0.0))  # linear
    mono, sat = profile_shape(a, [1, 0.9, 0, 0.9, 1])  # saturating
    assert mono and sat == pytest.approx(0.8)
    assert profile_shape(a, [1, 2, 0, 2, 1])[0] is False
