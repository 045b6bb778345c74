"""GANSpace PCA: dirfind's streaming solvers vs scikit-learn IncrementalPCA on the same samples.

IncrementalPCA with ``partial_fit`` on chunks of 2000 rows is what the official GANSpace code
runs (``estimators.IPCAEstimator``, NB = max(B, 2000, 3k)). Both estimators see the identical
batches; only the estimator calls are timed (sample generation is reported separately, and for
dirfind's multi-pass randomized solver the extra generator passes are reported too).

Cases:
  w512         synthetic w-like samples: x = g @ M + c with g ~ N(0, I_512) and a fixed random
               M with a decaying spectrum (seeded), 512-d; the target case (1e6 x 512). dirfind
               uses its exact solver (float64 covariance + eigh) here.
  dcgan-main2  the real DCGAN's act:main.2 activations (8192-d), as timed in the reference README
               (IPCA took ~290 s on 100k samples there); dirfind uses the randomized solver.
  e2e          issue 14 target 3: GANSpace end to end (PCA + regression to z) on act:main.0 and
               act:main.2 at 1e5 samples, dirfind.ganspace with its defaults vs the official
               pipeline's steps run in the same process at --official-n samples, scaled linearly;
               the last line printed is the ratio (and the |cos| to the official directions).
  regression   the regression pass alone (act:main.0 and act:main.2, 1e5 fresh samples through the
               generator, then their PCA coordinates' normal equations), interleaved: over the
               generator's batches, as dirfind runs it, against the same samples joined into the
               PCA's blocks of rows (what it did before); the same normal equations (max rel diff).

Accuracy: the largest principal angle between the top-20 subspaces of the two results, and of
each against an exact float64 PCA of the same samples: for w512 an independent plain-numpy
accumulation of raw float64 moments + eigh (untimed); for dcgan-main2 (with --reference, on by
default in --quick) dirfind's exact covariance solver, which costs a D x D covariance and eigh.

  python benchmarks/ganspace.py --quick            # minutes: 1e5 x 512 and 6,000 x 8192
  python benchmarks/ganspace.py                    # full: 1e6 x 512, 100,000 x 8192 and e2e (~15 min quiet)
  python benchmarks/ganspace.py --case e2e         # end to end only (official pipeline at 10,000 samples)
  python benchmarks/ganspace.py --case w512 -n 1000000 --json out.json
  python benchmarks/ganspace.py --case regression  # ~1 min quiet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import scipy
import sklearn
import torch
from sklearn.decomposition import IncrementalPCA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dirfind.core.pca import pca_from_cov, randomized_pca  # noqa: E402
from dirfind.core.reducers import MeanCov
from dirfind.core.sampling import SampleStream  # noqa: E402
from dirfind.util import progress  # noqa: E402

# ---------------------------------------------------------------------- measuring


def _busy_jiffies() -> int:
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return sum(vals) - vals[3] - vals[4]  # minus idle and iowait


class Clock:
    """Wall time plus the share of the machine's CPU other processes used meanwhile (contention)."""

    def __enter__(self) -> Clock:
        self.t0, self.cpu0, self.busy0 = time.perf_counter(), _cpu(), _busy_jiffies()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t0
        own = _cpu() - self.cpu0
        busy = (_busy_jiffies() - self.busy0) / os.sysconf("SC_CLK_TCK")
        self.others_share = max(0.0, (busy - own) / (self.wall * (os.cpu_count() or 1)))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """Largest principal angle (rad) between the row spaces of a and b (orthonormal rows)."""
    s = np.linalg.svd(np.asarray(a, np.float64) @ np.asarray(b, np.float64).T, compute_uv=False)
    return float(np.arccos(np.clip(s.min(), -1.0, 1.0)))


# ---------------------------------------------------------------------- sample sources


class SyntheticW:
    """Deterministic w-like batches: x = g @ M + c, M = diag(decay) @ Q (fixed by the seed)."""

    def __init__(self, dim: int = 512, seed: int = 0):
        rng = np.random.default_rng([seed, 12345])
        q = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
        self.m = (np.geomspace(3.0, 0.05, dim)[:, None] * q).astype(np.float32)
        self.c = rng.standard_normal(dim).astype(np.float32)
        self.seed, self.dim = seed, dim

    def batch(self, i: int, size: int) -> np.ndarray:
        g = np.random.default_rng([self.seed, i]).standard_normal((size, self.dim), dtype=np.float32)
        return g @ self.m + self.c


class TimedStream(SampleStream):
    """A SampleStream that adds up the time spent generating its batches."""

    gen_time = 0.0

    def batch(self, start, stop):
        t = time.perf_counter()
        b = super().batch(start, stop)
        self.gen_time += time.perf_counter() - t
        return b


# ---------------------------------------------------------------------- cases


class RawMoments:
    """Independent ground truth for w512: plain float64 sums of x and x xᵀ, then numpy eigh."""

    def __init__(self, dim: int):
        self.n, self.s, self.ss = 0, np.zeros(dim), np.zeros((dim, dim))

    def add(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        self.n += len(x)
        self.s += x.sum(0)
        self.ss += x.T @ x

    def components(self, k: int) -> np.ndarray:
        m = self.s / self.n
        vals, vecs = np.linalg.eigh((self.ss - self.n * np.outer(m, m)) / (self.n - 1))
        return vecs[:, ::-1][:, :k].T


def run_w512(n: int, k: int, batch: int) -> dict:
    src = SyntheticW()
    ipca = IncrementalPCA(n_components=k)
    stats = MeanCov(src.dim)
    raw = RawMoments(src.dim)
    t_gen = t_ipca = t_df = 0.0
    with Clock() as clock:
        for i, lo in enumerate(progress.bar(range(0, n, batch), desc="w512")):
            t = time.perf_counter()
            x = src.batch(i, min(batch, n - lo))
            t_gen += time.perf_counter() - t
            t = time.perf_counter()
            ipca.partial_fit(x)
            t_ipca += time.perf_counter() - t
            t = time.perf_counter()
            stats.add(torch.from_numpy(x))
            t_df += time.perf_counter() - t
            raw.add(x)
        t = time.perf_counter()
        res = pca_from_cov(stats, k)
        t_df += time.perf_counter() - t
    ref = SimpleNamespace(components=raw.components(k))
    return _summary(
        "w512", n, src.dim, k, batch, ipca, res, t_ipca, t_df, t_gen, clock, reference=ref, extra_gen=0.0, passes=1
    )


def run_dcgan(n: int, k: int, batch: int, reference: bool, device: str) -> dict:
    from dirfind import load_generator

    gen = load_generator("dcgan-digiface", device=device)
    stream = TimedStream(gen, n, "act:main.2", seed=0, batch_size=batch)
    ipca = IncrementalPCA(n_components=k)
    stats = MeanCov(stream.dim, gen.device) if reference else None
    t_ipca = t_ref = 0.0
    with Clock() as clock:
        for b in progress.bar(stream, desc="ipca", total=(n + batch - 1) // batch):
            x = b.flat.cpu().numpy()
            t = time.perf_counter()
            ipca.partial_fit(x)
            t_ipca += time.perf_counter() - t
            if stats is not None:
                t = time.perf_counter()
                stats.add(b.flat)
                t_ref += time.perf_counter() - t
        gen_one_pass = stream.gen_time
        stream.gen_time = 0.0
        t = time.perf_counter()
        res = randomized_pca(stream, k, seed=0)
        t_total = time.perf_counter() - t
        t_df = t_total - stream.gen_time
        extra_gen = stream.gen_time - gen_one_pass  # passes beyond the one IPCA also needed
        ref = None
        if stats is not None:
            t = time.perf_counter()
            ref = pca_from_cov(stats, k)
            t_ref += time.perf_counter() - t
    out = _summary(
        "dcgan-main2",
        n,
        stream.dim,
        k,
        batch,
        ipca,
        res,
        t_ipca,
        t_df,
        gen_one_pass,
        clock,
        reference=ref,
        extra_gen=extra_gen,
        passes=res.info["passes"],
    )
    if ref is not None:
        out["exact_reference_s"] = round(t_ref, 2)
    return out


def _summary(case, n, dim, k, batch, ipca, res, t_ipca, t_df, t_gen, clock, *, reference, extra_gen, passes) -> dict:
    comps_ipca = ipca.components_
    d = {
        "case": case,
        "n": n,
        "dim": dim,
        "k": k,
        "batch": batch,
        "dirfind_solver": res.info["solver"],
        "dirfind_passes": passes,
        "ipca_s": round(t_ipca, 2),
        "dirfind_s": round(t_df, 2),
        "speedup_estimator": round(t_ipca / t_df, 1),
        "generate_one_pass_s": round(t_gen, 2),
        "dirfind_extra_generator_passes_s": round(extra_gen, 2),
        "speedup_including_extra_passes": round(t_ipca / (t_df + extra_gen), 1),
        "angle_top20_ipca_vs_dirfind_rad": angle(comps_ipca[:20], res.components[:20]),
        "explained_top5_ipca": [round(float(v), 5) for v in ipca.explained_variance_ratio_[:5]],
        "explained_top5_dirfind": [round(float(v), 5) for v in res.ratio[:5]],
        "others_cpu_share": round(clock.others_share, 3),
        "wall_s": round(clock.wall, 1),
    }
    if reference is not None:
        d["angle_top20_dirfind_vs_exact_rad"] = angle(res.components[:20], reference.components[:20])
        d["angle_top20_ipca_vs_exact_rad"] = angle(comps_ipca[:20], reference.components[:20])
    return d


def environment() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": os.getloadavg()[0],
    }


# ---------------------------------------------------------------------- end to end: PCA + regression

#: The official run's wall times on this machine kind (issue 14; reference README section 2).
OFFICIAL_S = {"main.0": 322.9, "main.2": 391.7}
REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ganspace" / "dcgan_ganspace_reference.npz"


def official_pipeline(gen, layer: str, n: int, k: int = 80, batch: int = 500, chunk: int = 2000) -> dict:
    """The official GANSpace computation as the reference run called it (our code, its steps):
    ``torch.manual_seed(1)`` latents in batches of B = 500, the forward walked up to ``layer``,
    IncrementalPCA ``partial_fit`` on chunks of NB = max(B, 2000, 3k) rows; then ``linreg_lstsq``:
    ``torch.manual_seed(3)``, one discarded latent, max(10000, n) fresh samples collected in memory,
    coordinates ``(x - mean) @ comps.T / stdev`` and ``scipy.linalg.lstsq(gelsd)`` against z, unit rows."""
    import scipy.linalg

    stop = gen.activation_names().index(layer) + 1
    net = gen.net.main[:stop]
    forward = lambda z: net(z.view(-1, gen.z_dim, 1, 1)).reshape(len(z), -1).numpy()  # noqa: E731
    nb = max(batch, chunk, 3 * k)
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.manual_seed(1)
        ipca, pending, done = IncrementalPCA(n_components=k), [], 0
        while done < n:
            pending.append(forward(torch.randn(batch, gen.z_dim)))
            if sum(len(p) for p in pending) >= nb or done + sum(len(p) for p in pending) >= n:
                x = np.concatenate(pending)[: min(nb, n - done)]
                ipca.partial_fit(x)
                done, pending = done + len(x), []
        t_pca = time.perf_counter() - t0
        comps, mean, std = ipca.components_, ipca.mean_, np.sqrt(ipca.explained_variance_)
        torch.manual_seed(3)
        torch.randn(1, gen.z_dim)
        n_reg = max(10_000, n)
        zs = [torch.randn(batch, gen.z_dim) for _ in range((n_reg + batch - 1) // batch)]
        x = np.concatenate([forward(z) for z in zs])[:n_reg]
        z = torch.cat(zs)[:n_reg].numpy()
        a = (x - mean) @ comps.T / std
        m = scipy.linalg.lstsq(a, z, lapack_driver="gelsd")[0]
    lat = m / np.linalg.norm(m, axis=1, keepdims=True)
    return {"pca_s": t_pca, "total_s": time.perf_counter() - t0, "lat_comp": lat, "n": n, "n_reg": n_reg}


def run_e2e(layers: list[str], n: int, official_n: int, device: str) -> list[dict]:
    """Per layer, interleaved: the official pipeline at ``official_n`` samples, scaled linearly to n
    (IncrementalPCA's sampling + chunks grow with n, the regression with its max(10000, n) samples), then
    ``dirfind.ganspace`` end to end at n with its defaults (auto solver, default memory budget,
    regression over max(10000, n) fresh samples, latent sigma from as many more)."""
    from dirfind import load_generator
    from dirfind.methods.ganspace import ganspace

    gen = load_generator("dcgan-digiface", device=device)
    ref = np.load(REFERENCE)
    out = []
    for layer in layers:
        with Clock() as c_off:
            off = official_pipeline(gen, layer, official_n)
        with Clock() as c_df:
            bank = ganspace(gen, space=f"act:{layer}", n=n, k=80, seed=0)
        key = layer.replace(".", "")
        official_dirs = ref[f"{key}_lat_comp"]  # the official run's top 20 at n = 100,000
        cos = np.abs(np.sum(bank.directions[:10].astype(np.float64) * official_dirs[:10], 1))
        reg_s = off["total_s"] - off["pca_s"]
        scaled = off["pca_s"] * n / official_n + reg_s * max(10_000, n) / off["n_reg"]
        out.append(
            {
                "case": f"e2e-{layer}",
                "n": n,
                "dirfind_s": round(c_df.wall, 2),
                "dirfind_solver": bank.info["pca"]["solver"],
                "dirfind_passes": bank.info["pca"]["passes"],
                "official_n": official_n,
                "official_s": round(off["total_s"], 2),
                "official_pca_s": round(off["pca_s"], 2),
                "official_regression_n": off["n_reg"],
                "official_scaled_to_n_s": round(scaled, 1),
                "speedup_vs_same_run_official": round(scaled / c_df.wall, 2),
                "speedup_vs_issue_official": round(OFFICIAL_S[layer] / c_df.wall, 2),
                "abs_cos_top10_vs_official_reference": [round(float(v), 4) for v in cos],
                "others_cpu_share_official": round(c_off.others_share, 3),
                "others_cpu_share_dirfind": round(c_df.others_share, 3),
                "loadavg_1m_after": os.getloadavg()[0],
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def run_regression(layers: list[str], n: int, k: int, rounds: int, device: str) -> list[dict]:
    """Per layer, ``rounds`` interleaved pairs: GANSpace's regression pass over ``n`` fresh samples
    read in the generator's batches vs joined into the PCA's blocks (random orthonormal components)."""
    import importlib

    from dirfind import load_generator
    from dirfind.core.pca import PCAResult
    from dirfind.core.sampling import SampleStream

    gs = importlib.import_module("dirfind.methods.ganspace")  # the module, not the function it exports
    gen = load_generator("dcgan-digiface", device=device)
    out = []
    for layer in layers:
        p = gs.plan(gen, space=f"act:{layer}", n=n, k=k, seed=0)
        dim = p.stream.dim
        comps = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, k)))[0].T
        pca = PCAResult(comps, np.ones(k), float(k), np.zeros(dim), n, {})
        ways = {
            "generator_batches": {"batch_size": p.stream.forward_batch},
            "pca_blocks": {"batch_size": p.stream.batch_size, "forward_batch": p.stream.forward_batch},
        }
        secs: dict[str, list[float]] = {w: [] for w in ways}
        eqs = {}
        for r in range(rounds):
            for way in list(ways) if r % 2 == 0 else list(ways)[::-1]:
                stream = SampleStream(gen, n, f"act:{layer}", seed=0, stream=gs.STREAMS["regression"], **ways[way])
                reg = gs.LatentRegression(pca, gen.z_dim, gen.device)
                with Clock() as c:
                    for b in stream:
                        reg.update(b)
                secs[way].append(c.wall)
                eqs[way] = (reg.ata.cpu().numpy(), reg.atz.cpu().numpy())
        rel = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(*eqs.values(), strict=True))
        med = {w: float(np.median(v)) for w, v in secs.items()}
        out.append(
            {
                "case": f"regression-{layer}",
                "n": n,
                "dim": dim,
                "block_rows": p.stream.batch_size,
                "generator_batch": p.stream.forward_batch,
                "seconds": {w: [round(x, 2) for x in v] for w, v in secs.items()},
                "ratio_median": round(med["pca_blocks"] / med["generator_batches"], 2),
                "normal_equations_max_rel_diff": rel,
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (1e5 x 512, 6,000 x 8192)")
    ap.add_argument("--case", choices=["w512", "dcgan-main2", "e2e", "regression", "all"], default="all")
    ap.add_argument("--rounds", type=int, default=3, help="regression: interleaved pairs per layer")
    ap.add_argument("--layers", nargs="+", default=["main.0", "main.2"], help="e2e: DCGAN layers")
    ap.add_argument("--official-n", type=int, default=10_000, help="e2e: samples of the official pipeline's run")
    ap.add_argument("-n", type=int, default=None, help="samples (overrides the case default)")
    ap.add_argument("-k", type=int, default=80, help="components (GANSpace default 80)")
    ap.add_argument("--batch", type=int, default=2000, help="rows per estimator call (GANSpace NB = 2000)")
    ap.add_argument("--reference", action="store_true", help="dcgan-main2: also an exact PCA as ground truth")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    progress.configure(quiet=True)
    results = {"environment": environment(), "quick": args.quick, "cases": []}
    if args.case in ("w512", "all"):
        n = args.n or (100_000 if args.quick else 1_000_000)
        results["cases"].append(run_w512(n, args.k, args.batch))
        print(json.dumps(results["cases"][-1], indent=1), flush=True)
    if args.case in ("dcgan-main2", "all"):
        n = args.n or (6_000 if args.quick else 100_000)
        results["cases"].append(run_dcgan(n, args.k, args.batch, args.reference or args.quick, args.device))
        print(json.dumps(results["cases"][-1], indent=1), flush=True)
    e2e = []
    if args.case in ("e2e", "all"):
        n = args.n or (20_000 if args.quick else 100_000)
        official_n = min(args.official_n, n) if not args.quick else min(args.official_n, 4_000)
        e2e = run_e2e(args.layers, n, official_n, args.device)
        results["cases"] += e2e
    regression = []
    if args.case == "regression":
        regression = run_regression(args.layers, args.n or (20_000 if args.quick else 100_000), args.k, args.rounds,
                                    args.device)  # fmt: skip
        results["cases"] += regression
    for c in results["cases"]:
        if c["case"].startswith(("e2e", "regression")):
            continue
        print(
            f"{c['case']:12s} n={c['n']:>8,} D={c['dim']:>5}: IncrementalPCA {c['ipca_s']:8.1f} s, "
            f"dirfind {c['dirfind_s']:7.2f} s ({c['dirfind_solver']}, {c['dirfind_passes']} pass(es)) -> "
            f"{c['speedup_estimator']:.1f}x; top-20 angle to exact: IPCA "
            f"{c.get('angle_top20_ipca_vs_exact_rad', float('nan')):.1e}, dirfind "
            f"{c.get('angle_top20_dirfind_vs_exact_rad', float('nan')):.1e} rad; "
            f"IPCA vs dirfind {c['angle_top20_ipca_vs_dirfind_rad']:.1e} rad; "
            f"others' CPU share {c['others_cpu_share']:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    for c in e2e:
        print(
            f"{c['case']}: dirfind {c['dirfind_s']:.1f} s end to end at n={c['n']:,} ({c['dirfind_solver']}, "
            f"{c['dirfind_passes']} passes); official pipeline {c['official_s']:.1f} s at n={c['official_n']:,} "
            f"-> {c['official_scaled_to_n_s']:.0f} s scaled linearly; issue figure {OFFICIAL_S[c['case'][4:]]} s; "
            f"|cos| top-10 vs official reference {min(c['abs_cos_top10_vs_official_reference']):.3f}..."
            f"{max(c['abs_cos_top10_vs_official_reference']):.3f}"
        )
    if regression:
        print(
            "ratio (regression pass, PCA blocks / generator batches, medians): "
            + "; ".join(
                f"{c['case'][11:]} {c['ratio_median']:.2f}x (normal equations agree to "
                f"{c['normal_equations_max_rel_diff']:.1e})"
                for c in regression
            )
        )
    if e2e:
        print(
            "ratio (official / dirfind, end to end): "
            + "; ".join(
                f"{c['case'][4:]} {c['speedup_vs_same_run_official']:.1f}x vs the same run's official "
                f"(scaled), {c['speedup_vs_issue_official']:.1f}x vs the issue's {OFFICIAL_S[c['case'][4:]]} s; "
                f"top-1 |cos| {c['abs_cos_top10_vs_official_reference'][0]:.3f}"
                for c in e2e
            )
        )


if __name__ == "__main__":
    main()
