"""Forward-mode Jacobians, LowRankGAN/ReSeFa directions, Hessian Penalty / OroJaR losses and learning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dirfind.bank import DirectionBank
from dirfind.core.edits import apply_edit
from dirfind.core.jvp import OutputTransform, jacobian
from dirfind.errors import BadInputError
from dirfind.methods.jacobian import generalized_directions, jacobian_directions, region_mask, robust_pca
from dirfind.methods.learn import HessianOptions, OrojarOptions, coefficient_fn, gram_schmidt, learn, search_slice
from dirfind.methods.penalties import hessian_penalty, orojar_penalty
from helpers import kill_midway


@pytest.fixture(scope="module")
def ref(fixtures):
    with np.load(fixtures / "jacobian" / "dcgan_jacobian_losses_lean.npz") as f:
        return {k: f[k] for k in f.files}


def _t(a):
    return torch.from_numpy(a)


def _f(gen, z, q):
    return coefficient_fn(gen, torch.as_tensor(z), torch.as_tensor(q), "z")


# ---------------------------------------------------------------------- the engine
def test_jacobian_equals_reverse_mode_autograd_on_transformed_outputs(dcgan):
    z = dcgan.z_from_seeds([3])
    t = OutputTransform(size=8, channels="mean")
    ours = jacobian(dcgan, z[0], "z", transform=t, chunk=16)
    ref = torch.autograd.functional.jacobian(lambda x: t(dcgan.synthesis(x, "z"))[0], z[0])
    assert ours.shape == ref.shape == (64, 100)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_full_jacobian_rows_equal_reverse_mode_gradients(dcgan):
    z = dcgan.z_from_seeds([11])
    ours = jacobian(dcgan, z[0], "z", chunk=50)
    assert ours.shape == (3 * 64 * 64, 100)
    x = z[0].clone().requires_grad_(True)
    out = dcgan.synthesis(x, "z").reshape(-1)
    rows = torch.from_numpy(np.random.default_rng(0).choice(out.numel(), 48, replace=False))
    grads = torch.stack([torch.autograd.grad(out[i], x, retain_graph=True)[0] for i in rows])
    torch.testing.assert_close(ours[rows], grads, atol=1e-4, rtol=0)


def test_transform_mask_keeps_the_selected_pixels():
    img = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = mask[3, 0] = True
    out = OutputTransform(channels="mean", mask=mask)(img)
    np.testing.assert_allclose(out.numpy(), img.mean(1)[:, [1, 3], [2, 0]].numpy())
    assert OutputTransform(size=2, channels="sum")(img).shape == (2, 4)


class _FakeStyle:
    num_ws, w_dim = 4, 3


def test_w_edits_move_only_the_selected_layers():
    base = torch.zeros(1, 4, 3)
    d = torch.tensor([[1.0, 2.0, 3.0]])
    out = apply_edit(_FakeStyle(), base, d, "w", [1, 3])
    assert out[0, [1, 3]].eq(d).all() and out[0, [0, 2]].eq(0).all()
    dp = torch.arange(6.0)[None]
    out = apply_edit(_FakeStyle(), base, dp, "w+", [0, 2])
    assert out[0, 0].tolist() == [0, 1, 2] and out[0, 2].tolist() == [3, 4, 5] and out[0, [1, 3]].eq(0).all()


# ---------------------------------------------------------------------- official losses
@pytest.mark.parametrize("b", ["b4", "b32"])
def test_finite_difference_losses_reproduce_the_official_values(dcgan, ref, b):
    with torch.no_grad():
        hp = hessian_penalty(
            _f(dcgan, ref[f"{b}_z"], ref["Q_hp"]),
            torch.from_numpy(ref[f"{b}_w_hp"]),
            torch.from_numpy(ref[f"{b}_probes_hp"]),
        )
        oj = orojar_penalty(
            _f(dcgan, ref[f"{b}_z"], ref["Q_oj"]),
            torch.from_numpy(ref[f"{b}_w_oj"]),
            torch.from_numpy(ref[f"{b}_probes_oj"]),
        )
    # fp32 rounding of the differences (the reference's fp32 and fp64 runs differ by 2e-7 / 1e-5 relative)
    assert hp.item() == pytest.approx(float(ref[f"{b}_hp_discovery"]), rel=5e-6)
    assert oj.item() == pytest.approx(float(ref[f"{b}_oj_discovery"]), rel=5e-5)


def test_exact_losses_equal_reference_derivatives_on_the_same_probes(dcgan, ref):
    b = "b4"
    hp = hessian_penalty(
        _f(dcgan, ref[f"{b}_z"], ref["Q_hp"]),
        torch.from_numpy(ref[f"{b}_w_hp"]),
        torch.from_numpy(ref[f"{b}_probes_hp"]),
        estimator="exact",
    )
    oj = orojar_penalty(
        _f(dcgan, ref[f"{b}_z"], ref["Q_oj"]),
        torch.from_numpy(ref[f"{b}_w_oj"]),
        torch.from_numpy(ref[f"{b}_probes_oj"]),
        estimator="exact",
    )
    assert hp.item() == pytest.approx(float(ref[f"{b}_hp_exact_same_probes"]), rel=1e-4)
    assert oj.item() == pytest.approx(float(ref[f"{b}_oj_exact_same_probes"]), rel=1e-4)


def _all_probe_pairs(n_samples: int, ndirs: int) -> tuple[torch.Tensor, np.ndarray]:
    """Every ordered pair of ±1 probes, for every sample: (2, S * P, K) and the sample index of each row."""
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=ndirs)), np.float32)
    pairs = np.array(list(itertools.product(range(len(signs)), repeat=2)))
    probes = np.stack([signs[pairs[:, 0]], signs[pairs[:, 1]]])  # (2, P, K)
    probes = np.tile(probes, (1, n_samples, 1))
    return torch.from_numpy(probes), np.repeat(np.arange(n_samples), len(pairs))


def test_exact_orojar_expectation_is_the_off_diagonal_gram_energy(dcgan, ref):
    """Averaged over every probe pair, exact OroJaR = mean_n 2 Σ_{i≠j} (JᵀJ)_ij² (JᵀJ from the reference)."""
    k, n = 3, 2
    probes, idx = _all_probe_pairs(n, k)
    z = torch.from_numpy(ref["b4_z"][:n])[idx]
    f = _f(dcgan, z, ref["Q_oj"][:k])
    with torch.no_grad():
        ours = orojar_penalty(f, torch.zeros(len(idx), k), probes, estimator="exact").item()
    g = ref["b4_oj_JtJ"][:n, :k, :k]
    closed = np.mean([2 * (gi**2).sum() - 2 * (np.diag(gi) ** 2).sum() for gi in g])
    assert ours == pytest.approx(closed, rel=1e-4)


def test_exact_hessian_penalty_expectation_is_the_off_diagonal_hessian_energy(dcgan, ref):
    """Averaged over every probe pair, exact HP = mean over samples and pixels of 2 Σ_{i≠j} H_ij²."""
    k, n = 3, 1
    probes, idx = _all_probe_pairs(n, k)
    base = torch.from_numpy(ref["b4_z"][:n]) + torch.from_numpy(ref["b4_w_hp"][:n]) @ torch.from_numpy(ref["Q_hp"])
    f = _f(dcgan, base[idx], ref["Q_hp"][:k])
    ours = hessian_penalty(f, torch.zeros(len(idx), k), probes, estimator="exact").item()
    h2 = ref["b4_hp_H2_pixel_sum"][:n, :k, :k]  # Σ_p H_p∘H_p, block of the first k directions
    closed = np.mean([2 * (h.sum() - np.trace(h)) for h in h2]) / (3 * 64 * 64)
    assert ours == pytest.approx(closed, rel=1e-3)


# ---------------------------------------------------------------------- learning
def test_gram_schmidt_is_orthonormal_and_keeps_the_first_row():
    a = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    q = gram_schmidt(a)
    torch.testing.assert_close(q @ q.t(), torch.eye(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(q[0], a[0] / a[0].norm())


def test_search_slices():
    assert search_slice("all", 120) == (0, 120)
    assert [search_slice(s, 120) for s in ("coarse", "mid", "fine")] == [(0, 40), (40, 80), (80, 120)]
    assert search_slice("10:20", 100) == (10, 20)
    with pytest.raises(BadInputError):
        search_slice("90:120", 100)


@pytest.mark.parametrize("method,estimator", [("hessian", "exact"), ("orojar", "fd")])
def test_learned_directions_are_orthonormal_and_keep_their_slice(dcgan, method, estimator):
    options = {"hessian": HessianOptions, "orojar": OrojarOptions}[method]
    cfg = options(ndirs=4, steps=2, batch_size=2, estimator=estimator, search_space="mid")
    bank = learn(dcgan, cfg)
    d = bank.directions.astype(np.float64)
    np.testing.assert_allclose(d @ d.T, np.eye(4), atol=1e-5)
    lo, hi = search_slice("mid", 100)
    assert np.abs(d[:, :lo]).max() == 0 and np.abs(d[:, hi:]).max() == 0
    assert bank.extras["loss_history"].shape == (2,) and bank.info["loss"]["steps"] == 2


def test_learning_is_deterministic_by_seed(dcgan):
    cfg = OrojarOptions(ndirs=5, steps=3, batch_size=2, estimator="exact", seed=3)
    a, b = learn(dcgan, cfg), learn(dcgan, cfg)
    np.testing.assert_array_equal(a.directions, b.directions)
    np.testing.assert_array_equal(a.extras["loss_history"], b.extras["loss_history"])
    c = learn(dcgan, OrojarOptions(ndirs=5, steps=3, batch_size=2, estimator="exact", seed=4))
    assert not np.array_equal(a.directions, c.directions)


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(cli, tmp_path):
    args = ["hessian", "--ckpt", "dcgan-digiface", "-k", "4", "--steps", "24", "--batch-size", "2"]
    args += ["--checkpoint-steps", "4", "--seed", "5", "-q"]
    ref = cli(*args, "-o", "ref.npz")
    assert ref.code == 0, ref
    state = tmp_path / "run.npz.progress" / "state.npz"
    kill_midway([*args, "-o", "run.npz"], tmp_path, state, min_pos=8, delay=0.1, slow="dirfind.methods.learn:_step")
    assert not (tmp_path / "run.npz").exists()
    with np.load(state) as f:
        import json

        saved = json.loads(str(f["meta"][()]))["stages"]["train"]["pos"]
        assert f["stage/train/history"].shape == (saved,)
    assert 8 <= saved < 24
    res = cli(*args, "-o", "run.npz", "--resume")
    assert res.code == 0, res
    a, b = DirectionBank.load(tmp_path / "ref.npz"), DirectionBank.load(tmp_path / "run.npz")
    np.testing.assert_array_equal(a.directions, b.directions)
    np.testing.assert_array_equal(a.extras["loss_history"], b.extras["loss_history"])
    assert len(b.extras["loss_history"]) == 24 and not state.parent.exists()


# ---------------------------------------------------------------------- LowRankGAN / ReSeFa
def test_robust_pca_recovers_low_rank_plus_sparse():
    rng = np.random.default_rng(0)
    u = rng.standard_normal((60, 2))
    low = u @ u.T
    sparse = np.zeros_like(low)
    sparse.flat[rng.choice(low.size, 40, replace=False)] = rng.choice([-5.0, 5.0], 40)
    sparse = sparse + sparse.T
    est, s, it = robust_pca(low + sparse, lam=1 / np.sqrt(60))
    np.testing.assert_allclose(est, low, atol=1e-5)
    np.testing.assert_allclose(s, sparse, atol=1e-5)
    assert np.linalg.matrix_rank(est) == 2 and 0 < it < 10_000


def test_generalized_eigenvectors_solve_the_pencil():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 5))
    a, b = x.T @ x, y.T @ y
    vals, vecs = generalized_directions(a, b, tau=0.0)
    for lam, v in zip(vals, vecs, strict=True):
        np.testing.assert_allclose(a @ v, lam * (b @ v), atol=1e-8 * np.abs(a).max())
    assert (np.diff(vals) <= 0).all()


def _region_ratio(gen, z, d, mask, step=1.0):
    with torch.no_grad():
        diff = (gen.synthesis(z + step * torch.from_numpy(d), "z") - gen.synthesis(z, "z"))[0].abs().mean(0).numpy()
    return diff[mask].mean() / diff[~mask].mean()


@pytest.mark.parametrize("options", [{"local_method": "generalized"}, {"rank_method": "energy"}])
def test_local_directions_change_the_region_ten_times_more(dcgan, options):
    z = dcgan.z_from_seeds([7])
    mask = region_mask((0, 0, 32, 64), 64)  # x0, y0, x1, y1: the left half
    bank = jacobian_directions(dcgan, z, mask=mask, k=2, **options)
    assert bank.origin is not None and np.array_equal(bank.origin, z[0].numpy())
    for d in bank.directions:  # mean |pixel change| inside vs outside the region, one unit step
        assert _region_ratio(dcgan, z, d, mask) >= 10
    # a global direction is not local: the same measure stays small
    glob = jacobian_directions(dcgan, z, k=1)
    assert _region_ratio(dcgan, z, glob.directions[0], mask) < 3


def test_global_directions_are_jtj_eigenvectors(dcgan):
    z = dcgan.z_from_seeds([1, 2])
    bank = jacobian_directions(dcgan, z, average=True, size=8, k=4)
    assert bank.origin is None and bank.method == "lowrank"
    t = OutputTransform(size=8, channels="mean")
    g = (
        sum(
            (j.T @ j) / j.shape[0]
            for j in (
                torch.autograd.functional.jacobian(lambda x: t(dcgan.synthesis(x, "z"))[0], zi).double() for zi in z
            )
        )
        / 2
    )
    for v, lam in zip(bank.directions.astype(np.float64), bank.scores, strict=True):
        np.testing.assert_allclose(g.numpy() @ v, lam * v, atol=1e-4 * float(bank.scores[0]))
    with pytest.raises(BadInputError, match="average=True"):
        jacobian_directions(dcgan, z)


def test_cli_local_bank_and_traverse_on_origin_and_other_seeds(cli, tmp_path):
    res = cli("jacobian", "--ckpt", "dcgan-digiface", "--seeds", "7", "--region", "0,0,32,64", "-k", "3",
              "--local-method", "generalized", "-q")  # fmt: skip
    assert res.code == 0, res
    bank = DirectionBank.load(tmp_path / "directions.npz")
    assert bank.method == "resefa" and bank.origin.shape == (100,)
    res = cli("traverse", "--dir", "0", "--steps", "3", "-o", "own.png", "-q", "--json")
    assert res.code == 0, res
    assert '"rows": 1' in res.out and '"origin": true' in res.out
    res = cli(
        "traverse", "--dir", "0,1", "--steps", "3", "--seeds", "0-1", "--origin", "-o", "both.png", "-q", "--json"
    )
    assert res.code == 0 and '"rows": 6' in res.out, res
    from dirfind.generators import load_generator
    from dirfind.render import traverse

    gen = load_generator("dcgan-digiface")
    out = traverse(gen, bank, [0], seeds=[0], steps=3, span=(0, 0), origin=True)
    mid = traverse(gen, bank, [0], latents=torch.from_numpy(bank.origin)[None], steps=3, span=(0, 0))
    np.testing.assert_array_equal(out["images"][0], mid["images"][0])
    res = cli("jacobian", "--ckpt", "dcgan-digiface", "--seeds", "0-1", "-o", "x.npz")
    assert res.code == 4 and "--average" in res.err and "Traceback" not in res.err
    res = cli("jacobian", "--ckpt", "dcgan-digiface", "--region", "0,0,80,10", "-o", "x.npz")
    assert res.code == 4 and "exceeds" in res.err


# ---------------------------------------------------------------------- StyleGAN2 (tiny real-format fixture)
@pytest.mark.parametrize("space,layers", [("w", None), ("w+", [1, 3]), ("z", None)])
def test_stylegan2_jacobian_equals_reverse_mode_autograd(fixtures, space, layers):
    from dirfind.generators import load_generator

    g = load_generator(str(fixtures / "stylegan2" / "stylegan2_ada_tiny32.pkl"))
    z = torch.randn(1, g.z_dim, generator=torch.Generator().manual_seed(2))
    base = g.embed(z, "z" if space == "z" else "w+")[0]
    t = OutputTransform(size=4, channels="all")
    ours = jacobian(g, base, space, layers, transform=t, chunk=16)
    dim = {"z": g.z_dim, "w": g.w_dim, "w+": 2 * g.w_dim}[space]

    def f(d):
        return t(g.synthesis(apply_edit(g, base[None], d[None], space, layers), "z" if space == "z" else "w+"))[0]

    ref = torch.autograd.functional.jacobian(f, torch.zeros(dim))
    assert ours.shape == ref.shape == (3 * 4 * 4, dim)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)
    if space == "w+":  # layers outside the selection do not enter: the edit of layer 1 alone is a slice
        solo = jacobian(g, base, "w+", [1], transform=t)
        torch.testing.assert_close(solo, ours[:, : g.w_dim], atol=1e-5, rtol=0)
