"""GANSpace on the real DCGAN: components against an independent PCA of the same samples, sigma
against the std of projections, the regression against an independent least squares, agreement
with the official ganspace outputs, determinism, shards, resume, and an end-to-end traversal."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from dirfind import DirectionBank
from dirfind.core.jobs import Job
from dirfind.core.pca import BlockProduct, pca_from_cov
from dirfind.core.reducers import MeanCov
from dirfind.errors import BadInputError
from dirfind.generators.base import Generator
from dirfind.methods.ganspace import LatentRegression, ganspace
from helpers import LatentOnlyGenerator, kill_midway


def _z(seed: int, stream: int, n: int, dim: int = 100) -> np.ndarray:
    """z of samples 0..n-1 by the documented recipe (blocks of 1024 from default_rng([seed, stream, b]))."""
    blocks = [np.random.default_rng([seed, stream, b]).standard_normal((1024, dim)) for b in range((n + 1023) // 1024)]
    return np.concatenate(blocks)[:n].astype(np.float32)


def _acts(dcgan, z: np.ndarray, stop: int) -> np.ndarray:
    """Activations after main[stop - 1], computed here directly from the network (float64 out)."""
    with torch.no_grad():
        x = torch.cat([dcgan.net.main[:stop](torch.from_numpy(c).view(-1, 100, 1, 1)) for c in np.split(z, 4)])
    return x.flatten(1).double().numpy()


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Largest principal angle (rad) between the row spaces of a and b (rows orthonormal)."""
    s = np.linalg.svd(a @ b.T, compute_uv=False)
    return float(np.arccos(np.clip(s.min(), -1.0, 1.0)))


def _svd_pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent PCA: SVD of the centred sample matrix -> (components, variances, centred x).
    For wide matrices the SVD goes through the eigendecomposition of the n x n Gram matrix
    (X = U S Vᵀ, X Xᵀ = U S² Uᵀ, V = Xᵀ U / S), which is much faster than LAPACK's full SVD."""
    xc = x - x.mean(0)
    if xc.shape[1] <= xc.shape[0]:
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        return vt[:k], s[:k] ** 2 / (len(x) - 1), xc
    lam, u = np.linalg.eigh(xc @ xc.T)
    lam, u = lam[::-1][:k], u[:, ::-1][:, :k]
    vt = (xc.T @ u / np.sqrt(lam)).T
    return vt, lam / (len(x) - 1), xc


@pytest.fixture(scope="module")
def ref(fixtures):
    with np.load(fixtures / "ganspace" / "dcgan_ganspace_reference.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def main2_bank(dcgan):
    """act:main.2, 2000 samples, randomized solver (D = 8192), regression over 3000 fresh samples."""
    return ganspace(dcgan, space="act:main.2", n=2000, k=40, seed=0, n_regression=3000, solver="randomized")


def test_activation_components_equal_an_independent_pca(dcgan, main2_bank):
    bank = main2_bank
    x = _acts(dcgan, _z(0, 0, 2000), 3)
    comps, var, xc = _svd_pca(x, 40)
    act = bank.extras["act_components"].astype(np.float64)
    assert bank.info["pca"]["solver"] == "randomized" and bank.info["pca"]["converged"]
    assert _angle(act[:20], comps[:20]) < 1e-3
    np.testing.assert_allclose(np.abs(np.sum(act[:10] * comps[:10], 1)), 1.0, atol=1e-6)
    # sigma = std of the projections; scores = explained-variance ratios
    proj_std = np.std(xc @ act.T, axis=0, ddof=1)
    np.testing.assert_allclose(bank.extras["act_std"], proj_std, rtol=1e-4)
    np.testing.assert_allclose(bank.extras["act_std"] ** 2, var, rtol=1e-4)
    np.testing.assert_allclose(bank.scores, var / xc.var(0, ddof=1).sum(), rtol=1e-4)
    np.testing.assert_allclose(bank.extras["act_mean"], x.mean(0), rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(bank.scores) <= 0)


def test_regression_equals_an_independent_least_squares(dcgan, main2_bank):
    """GANSpace's linreg_lstsq on the same fresh samples: scipy gelsd of standardised PCA coordinates
    against z (no intercept), unit rows; sigma = std of fresh z (stream 2) along each direction."""
    bank = main2_bank
    z = _z(0, 1, 3000)  # stream 1 = the regression samples
    x = _acts(dcgan, z, 3)
    act, mean, std = (bank.extras[k].astype(np.float64) for k in ("act_components", "act_mean", "act_std"))
    a = (x - mean) @ act.T / std
    m = scipy.linalg.lstsq(a, z.astype(np.float64), lapack_driver="gelsd")[0]
    dirs = m / np.linalg.norm(m, axis=1, keepdims=True)
    assert bank.space == "z" and bank.step_unit == "sigma" and bank.layers is None
    np.testing.assert_allclose(np.sum(bank.directions * dirs, 1), 1.0, atol=1e-5)
    np.testing.assert_allclose(bank.extras["regression_norm"], np.linalg.norm(m, axis=1), rtol=1e-5)
    z2 = _z(0, 2, 3000).astype(np.float64)
    np.testing.assert_allclose(bank.scales, np.std(z2 @ bank.directions.T.astype(np.float64), 0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(bank.mean, z2.mean(0), atol=1e-6)
    assert np.all(np.abs(bank.scales - 1) < 0.06), "a z-space sigma is ~1 for a N(0, I) prior"
    assert abs(bank.scales.mean() - 1) < 0.01, "and unbiased"


def test_exact_solver_equals_an_independent_pca(dcgan):
    bank = ganspace(dcgan, space="z", n=2000, k=20, seed=1, batch_size=300)
    comps, var, xc = _svd_pca(_z(1, 0, 2000).astype(np.float64), 20)
    assert bank.info["pca"]["solver"] == "exact" and bank.space == "z"
    assert _angle(bank.directions.astype(np.float64), comps) < 1e-3
    np.testing.assert_allclose(bank.scales, np.std(xc @ bank.directions.T.astype(np.float64), 0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(bank.scales**2, var, rtol=1e-5)


@pytest.mark.parametrize("max_dim", [4096, 10])
def test_pca_from_cov_on_anisotropic_data(monkeypatch, max_dim):
    """Both eigensolver paths (full eigh, and the top-k subset used above EXACT_MAX_DIM)."""
    monkeypatch.setattr("dirfind.core.pca.EXACT_MAX_DIM", max_dim)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 60)) * np.geomspace(10, 0.1, 60) @ np.linalg.qr(rng.standard_normal((60, 60)))[0]
    x += 30.0
    stats = MeanCov(60)
    for c in np.array_split(x.astype(np.float32), 7):
        stats.add(torch.from_numpy(c))
    res = pca_from_cov(stats, 20)
    comps, var, _ = _svd_pca(x.astype(np.float32).astype(np.float64), 20)
    np.testing.assert_allclose(np.abs(np.sum(res.components * comps, 1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(res.variances, var, rtol=1e-9)


@pytest.mark.slow
def test_agrees_with_official_ganspace_on_main0(dcgan, ref, fixtures):
    """main.0 is linear in z, so PCA + regression recover the weight's singular directions
    (rosinality's V from the SeFa reference); the official run (IPCA, 100k other samples) and ours
    (20k samples) must agree with it and with each other up to sampling noise."""
    bank = ganspace(dcgan, space="act:main.0", n=20_000, k=80, seed=0)
    assert bank.info["pca"]["passes"] <= 4, "main.0 has rank 100: the block solver converges at once"
    cos = np.abs(np.sum(bank.directions[:10] * ref["main0_lat_comp"][:10], 1))
    assert cos[:7].min() > 0.98 and cos.min() > 0.97, cos
    with np.load(fixtures / "reference" / "dcgan_sefa.npz") as f:
        v = f["rosinality_V"].T[:10]
    assert np.abs(np.sum(bank.directions[:10] * v, 1)).min() > 0.97
    np.testing.assert_allclose(bank.scores[:6], ref["main0_var_ratio"][:6], rtol=0.03)
    np.testing.assert_allclose(bank.scores.sum(), ref["main0_var_ratio"].sum(), rtol=0.005)
    np.testing.assert_allclose(bank.extras["act_std"][:5], ref["main0_act_stdev"][:5], rtol=0.02)
    np.testing.assert_allclose(bank.scales, ref["main0_lat_stdev"], rtol=0.03)  # official lat_stdev = 1 for z


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """The issue's end-to-end run: ganspace on act:main.2 with 20,000 samples, then traverse."""
    from dirfind.cli import main

    d = tmp_path_factory.mktemp("e2e")
    bank_path, grid = d / "gs.npz", d / "d0.png"
    assert (
        main(
            [
                "-q",
                "ganspace",
                "--ckpt",
                "dcgan-digiface",
                "--space",
                "act:main.2",
                "-n",
                "20000",
                "--out",
                str(bank_path),
            ]
        )
        == 0
    )
    args = ["-q", "traverse", "--bank", str(bank_path), "--dir", "0", "--seeds", "0-3", "--steps", "5"]
    assert main([*args, "--out", str(grid)]) == 0
    return DirectionBank.load(bank_path), np.asarray(Image.open(grid))


@pytest.mark.slow
def test_end_to_end_traversal_changes_faces(e2e):
    bank, grid = e2e
    assert bank.method == "ganspace" and len(bank) == 80 and bank.step_unit == "sigma"
    assert bank.default_range == (-2.0, 2.0)
    tiles = np.stack([[grid[r * 66 : r * 66 + 64, c * 66 : c * 66 + 64] for c in range(5)] for r in range(4)]).astype(
        np.float64
    )  # (4 samples, 5 steps, 64, 64, 3), 2-pixel padding
    ends = np.abs(tiles[:, -1] - tiles[:, 0]).mean(axis=(1, 2, 3))
    steps = np.abs(np.diff(tiles, axis=1)).mean(axis=(2, 3, 4))
    assert ends.min() > 15.0, f"-2 sigma vs +2 sigma must look clearly different (mean |diff| {ends})"
    assert steps.min() > 3.0, "every step changes the face"


@pytest.mark.slow
def test_end_to_end_agrees_with_official_ganspace_on_main2(e2e, ref):
    bank, _ = e2e
    cos = np.abs(np.sum(bank.directions[:20] * ref["main2_lat_comp"], 1))
    assert cos[:2].min() > 0.98 and np.median(cos[:10]) > 0.9
    np.testing.assert_allclose(bank.scores[:5], ref["main2_var_ratio"][:5], rtol=0.05)
    np.testing.assert_allclose(bank.scores.sum(), ref["main2_var_ratio"].sum(), rtol=0.02)
    np.testing.assert_allclose(bank.extras["act_std"][:5], ref["main2_act_stdev"][:5], rtol=0.05)


def test_result_is_independent_of_batch_size_and_sharding(dcgan, cli, tmp_path):
    a = ganspace(dcgan, space="z", n=3000, k=10, seed=2, batch_size=500)
    b = ganspace(dcgan, space="z", n=3000, k=10, seed=2, batch_size=77)
    np.testing.assert_allclose(a.directions, b.directions, atol=1e-6)
    np.testing.assert_allclose(a.scales, b.scales, rtol=1e-6)
    common = ["ganspace", "--ckpt", "dcgan-digiface", "--space", "z", "-n", "3000", "-k", "10", "--seed", "2"]
    for k in range(3):
        r = cli(*common, "--shard", f"{k}/3", "--batch-size", "64", "--out", f"part{k}.npz")
        assert r.code == 0, r
    r = cli("merge", "part1.npz", "part0.npz", "part2.npz", "--out", "merged.npz")
    assert r.code == 0, r
    m = DirectionBank.load(tmp_path / "merged.npz")
    np.testing.assert_allclose(m.directions, a.directions, atol=1e-6)
    np.testing.assert_allclose(m.scales, a.scales, rtol=1e-6)
    np.testing.assert_allclose(m.scores, a.scores, rtol=1e-6)
    np.testing.assert_allclose(m.mean, a.mean, atol=1e-7)


class _Boom(Exception):
    pass


@pytest.fixture
def unblocked(monkeypatch):
    """Activation batches of the generator's batch size (no larger PCA blocks), for tests that
    count or interrupt batches."""
    module = importlib.import_module("dirfind.methods.ganspace")  # not the function it exports
    monkeypatch.setattr(module, "ACT_BLOCK_ROWS", 1)


@pytest.mark.parametrize("fail_at", ["pass", "regression"])
def test_interrupted_run_resumes_to_the_identical_bank(dcgan, monkeypatch, tmp_path, fail_at, unblocked):
    opts = dict(space="act:main.2", n=1500, k=10, seed=3, batch_size=250, n_regression=1000, solver="randomized")
    full = ganspace(dcgan, **opts)
    cls = BlockProduct if fail_at == "pass" else LatentRegression
    orig = cls.update
    calls = {"n": 0}

    def failing(self, batch):
        calls["n"] += 1
        if calls["n"] == (10 if fail_at == "pass" else 3):  # pass 2, 4th batch / regression, 3rd batch
            raise _Boom
        orig(self, batch)

    monkeypatch.setattr(cls, "update", failing)
    ident = {"run": fail_at}
    with pytest.raises(_Boom):
        ganspace(dcgan, job=Job.open(tmp_path / "p", ident, every=0), **opts)
    monkeypatch.setattr(cls, "update", orig)
    resumed = ganspace(dcgan, job=Job.open(tmp_path / "p", ident, resume=True, every=0), **opts)
    for key in ("directions", "scales", "scores", "mean"):
        np.testing.assert_array_equal(getattr(resumed, key), getattr(full, key))
    np.testing.assert_array_equal(resumed.extras["act_components"], full.extras["act_components"])


@pytest.mark.slow
def test_cli_run_killed_midway_resumes_to_the_identical_bank(cli, tmp_path):
    args = ["-q", "ganspace", "--ckpt", "dcgan-digiface", "--space", "act:main.2", "-n", "5000", "-k", "10"]
    args += ["--regression-n", "1000", "--batch-size", "50", "--checkpoint-every", "0", "--seed", "6"]
    kill_midway(args, tmp_path, tmp_path / "directions.npz.progress" / "state.npz", min_pos=300)
    assert not (tmp_path / "directions.npz").exists()
    r = cli(*args, "--resume")
    assert r.code == 0, r
    assert not (tmp_path / "directions.npz.progress").exists()
    r = cli(*args[:-4], "--seed", "6", "--out", "ref.npz")  # uninterrupted, default checkpointing
    assert r.code == 0, r
    a, b = DirectionBank.load(tmp_path / "directions.npz"), DirectionBank.load(tmp_path / "ref.npz")
    for key in ("directions", "scales", "scores", "mean"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_samples_kept_in_memory_give_the_bank_regenerated_ones_give(dcgan, monkeypatch, unblocked):
    """The randomized solver's later passes read the kept samples (no generator calls) and the bank
    is bitwise the same as with every pass regenerating them, or with only part of them kept."""
    opts = dict(space="act:main.2", n=1000, k=6, seed=3, batch_size=250, n_regression=200, solver="randomized")
    forwards = {"n": 0}
    orig = type(dcgan).activation

    def counting(self, latent, space, name):
        forwards["n"] += len(latent)
        return orig(self, latent, space, name)

    monkeypatch.setattr(type(dcgan), "activation", counting)
    runs = {}
    for budget in (0, 2 * 250 * (8192 + 100) * 4, None):  # regenerate / keep 2 of 4 batches / default
        forwards["n"] = 0
        runs[budget] = (ganspace(dcgan, memory_budget=budget, **opts), forwards["n"])
    (again, n_again), (part, n_part), (kept, n_kept) = runs.values()
    passes = again.info["pca"]["passes"]
    assert passes >= 3 and kept.info["pca"]["passes"] == passes
    # without a memory budget the first batch is computed twice: for the start block, then by pass 1
    assert n_again - n_kept == 1000 * (passes - 1) + 250 and n_again - n_part == 500 * (passes - 1) + 250
    for bank in (part, kept):
        for key in ("directions", "scales", "scores", "mean"):
            np.testing.assert_array_equal(getattr(bank, key), getattr(again, key))
        np.testing.assert_array_equal(bank.extras["act_components"], again.extras["act_components"])


def test_activation_blocks_hold_the_generator_batches_samples(dcgan, monkeypatch):
    """A block of 1000 rows made of generator calls of 250 holds bitwise the samples of four
    batches of 250; the bank from blocks equals the one from plain batches to float32 rounding."""
    from dirfind.core.sampling import SampleStream

    small = SampleStream(dcgan, 1000, "act:main.2", seed=4, batch_size=250)
    block = SampleStream(dcgan, 1000, "act:main.2", seed=4, batch_size=1000, forward_batch=250)
    whole = block.batch(0, 1000)
    for b in small:
        np.testing.assert_array_equal(whole.x[b.start : b.stop].numpy(), b.x.numpy())
        np.testing.assert_array_equal(whole.z[b.start : b.stop].numpy(), b.z.numpy())
    opts = dict(space="act:main.2", n=1200, k=6, seed=3, batch_size=200, n_regression=400, solver="randomized")
    blocked = ganspace(dcgan, **opts)
    module = importlib.import_module("dirfind.methods.ganspace")  # not the function it exports
    monkeypatch.setattr(module, "ACT_BLOCK_ROWS", 1)
    plain = ganspace(dcgan, **opts)
    np.testing.assert_allclose(np.abs(np.sum(blocked.directions * plain.directions, 1)), 1, atol=1e-5)
    np.testing.assert_allclose(blocked.scores, plain.scores, rtol=1e-5)


def test_memory_budget_flag_takes_sizes(cli, tmp_path):
    from dirfind.cli.ganspace import ByteSize

    assert [ByteSize().convert(v, None, None) for v in ("0", "4096", "512M", "1.5G", "8GiB", "2gb")] == [
        0, 4096, 512 * 2**20, 3 * 2**29, 8 * 2**30, 2 * 2**30
    ]  # fmt: skip
    args = ["ganspace", "--ckpt", "dcgan-digiface", "--space", "act:main.0", "-n", "300", "-k", "4"]
    r = cli(*args, "--regression-n", "300", "--solver", "randomized", "--memory-budget", "0", "--out", "a.npz")
    assert r.code == 0, r
    r = cli(*args, "--memory-budget", "lots")
    assert r.code != 0 and "--memory-budget" in r.err and "Traceback" not in r.err


def test_rank_deficient_activations_keep_only_real_components(dcgan):
    """main.0 is linear in the 100-d z: asking for 120 components yields the 100 that exist."""
    bank = ganspace(dcgan, space="act:main.0", n=600, k=120, seed=0, n_regression=600)
    assert len(bank) == 100
    assert bank.scores[-1] > 1e-4 and np.all(np.isfinite(bank.directions))


def test_bad_options_are_one_line_errors(dcgan, cli):
    with pytest.raises(BadInputError, match="layers"):
        ganspace(dcgan, space="act:main.2", n=100, k=5, layers=[0])
    with pytest.raises(BadInputError):
        ganspace(dcgan, space="w", n=100, k=5)
    with pytest.raises(BadInputError, match="unknown activation"):
        ganspace(dcgan, space="act:nope", n=100, k=5)
    with pytest.raises(BadInputError, match="n \\(10\\)"):
        ganspace(dcgan, space="z", n=10, k=20)
    with pytest.raises(BadInputError, match="k must"):
        ganspace(dcgan, space="z", n=100, k=0)
    r = cli("ganspace", "--ckpt", "dcgan-digiface", "-n", "2000", "--shard", "0/2")
    assert r.code == 4 and "--solver exact" in r.err
    r = cli("ganspace", "--ckpt", "dcgan-digiface", "-n", "2000", "--shard", "2/2")
    assert r.code == 4 and "--shard" in r.err


# ---------------------------------------------------------------------- W space (style-based families)


class _ToyStyle(LatentOnlyGenerator, Generator):
    """A minimal style-based generator (fixed random mapping, linear synthesis) to exercise the
    W-space path until a real StyleGAN2 fixture is available."""

    family = "toystyle"
    spaces = ("z", "w", "w+")

    def __init__(self):
        super().__init__(z_dim=16, w_dim=12, num_ws=4, resolution=4, channels=1)
        g = torch.Generator().manual_seed(0)
        self.a = torch.nn.Parameter(torch.randn(12, 16, generator=g) * torch.linspace(3, 0.1, 12)[:, None])
        self.b = torch.nn.Parameter(torch.randn(12, generator=g))
        self.s = torch.nn.Parameter(torch.randn(4, 12, 16, generator=g) * 0.1)

    def embed(self, z, space):
        self.check_space(space)
        if space == "z":
            return z
        w = torch.nn.functional.leaky_relu(z @ self.a.T + self.b, 0.2)
        return w if space == "w" else w[:, None].expand(-1, self.num_ws, -1)

    def synthesis(self, latent, space):
        wp = (
            self.embed(latent, "w+") if space == "z" else latent if space == "w+" else latent[:, None].expand(-1, 4, -1)
        )
        return torch.tanh(torch.einsum("nld,ldp->np", wp, self.s)).view(-1, 1, 4, 4)


def test_w_space_pca_and_layered_bank():
    gen = _ToyStyle().eval().requires_grad_(False)
    bank = ganspace(gen, n=4000, k=5, seed=0, layers=[1, 2])
    assert (
        bank.space == "w"
        and bank.layers == [1, 2]
        and bank.step_unit == "sigma"
        and "act_components" not in bank.extras
    )
    with torch.no_grad():
        w = gen.embed(torch.from_numpy(_z(0, 0, 4000, dim=16)), "w").double().numpy()
    comps, var, wc = _svd_pca(w, 5)
    assert _angle(bank.directions.astype(np.float64), comps) < 1e-3
    np.testing.assert_allclose(bank.scales, np.std(wc @ bank.directions.T.astype(np.float64), 0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(bank.mean, w.mean(0), atol=1e-5)
    from dirfind.render import traverse

    out = traverse(gen, bank, [0], seeds=[0], steps=3)["images"]
    assert out.shape == (1, 3, 4, 4, 1)
