"""Benchmark: exact forward-mode Jacobians and penalty estimators against their baselines, same run.

1. Full Jacobian of one sample (all outputs x all latent dims): dirfind's forward mode (D tangents,
   vmapped in chunks) vs reverse mode row by row (``torch.autograd.functional.jacobian``, one
   backward pass per output value, as LowRankGAN/ReSeFa compute it). Reports wall time, generator
   passes (tangent / cotangent vectors) and the max difference between the two.
2. One optimisation step of Hessian Penalty / OroJaR learning with the official finite differences
   vs exact forward-mode derivatives.

``--quick`` times fewer reverse rows / forward tangents and extrapolates linearly (labelled in the
output). The 256-px StyleGAN2 (FFHQ architecture, random weights) is always extrapolated: its full
reverse-mode Jacobian (196,608 backward passes) would take days on a CPU.

    python benchmarks/jacobian.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from dirfind.core.jvp import jacobian, jvps, output_fn
from dirfind.generators import load_generator
from dirfind.methods.learn import HessianOptions, OrojarOptions, _step, search_slice


def _time(fn, reps: int = 1) -> tuple[float, object]:
    out, best = None, float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_jacobian(name: str, gen, space: str, chunk: int, max_tangents: int | None, max_rows: int | None) -> dict:
    """Forward mode (D tangents) vs reverse mode (one backward pass per output row) for one sample.

    ``max_tangents`` / ``max_rows`` time only that many tangents / rows and extrapolate linearly
    (quick mode and the 256-px StyleGAN2, whose full reverse Jacobian takes days on a CPU).
    """
    z = gen.z_from_seeds([0])
    latent = gen.embed(z.to(gen.device), "z" if space == "z" else "w+")[0].detach()
    dim = gen.space_dim(space)
    f = output_fn(gen, latent[None], space)
    x0 = torch.zeros(1, dim, device=gen.device)
    n_t = dim if max_tangents is None else min(dim, max_tangents)
    if n_t == dim:
        fwd_t, jf = _time(lambda: jacobian(gen, latent, space, chunk=chunk))
    else:
        eye = torch.eye(dim, device=gen.device)[:n_t, None]

        def fwd():
            with torch.no_grad():
                return torch.cat([jvps(f, x0, eye[i : i + chunk])[:, 0] for i in range(0, n_t, chunk)]).t()

        fwd_t, jf = _time(fwd)
    m = jf.shape[0]
    n_r = m if max_rows is None else min(m, max_rows)
    x = x0[0].clone().requires_grad_(True)

    def rev():
        if n_r == m:
            return torch.autograd.functional.jacobian(lambda d: f(d[None])[0], x0[0])
        out = f(x[None])[0]
        return torch.stack([torch.autograd.grad(out[i], x, retain_graph=True)[0] for i in range(n_r)])

    rev_t, jr = _time(rev)
    fwd_full, rev_full = fwd_t * dim / n_t, rev_t * m / n_r
    diff = float((jf[:n_r] - jr.reshape(n_r, -1)[:, :n_t]).abs().max())
    return {
        "generator": name,
        "outputs": m,
        "latent_dim": dim,
        "forward_passes": dim,
        "forward_calls": -(-dim // chunk),
        "forward_tangents_timed": n_t,
        "forward_s": round(fwd_full, 3),
        "reverse_passes": m,
        "reverse_rows_timed": n_r,
        "reverse_s": round(rev_full, 3),
        "speedup": round(rev_full / fwd_full, 1),
        "max_abs_diff": diff,
    }


def bench_steps(gen, quick: bool) -> list[dict]:
    res = []
    batch = 4 if quick else 8
    for method in ("hessian", "orojar"):
        times = {}
        for est in ("fd", "exact"):
            cfg = {"hessian": HessianOptions, "orojar": OrojarOptions}[method](
                ndirs=10, batch_size=batch, estimator=est
            )
            sl = search_slice("all", gen.z_dim)
            a = torch.nn.Parameter(torch.randn(10, gen.z_dim, generator=torch.Generator().manual_seed(0)) * 0.1)
            opt = torch.optim.Adam([a], lr=0.01)
            _step(gen, cfg, a, opt, 0, sl)  # warm-up
            reps = 2 if quick else 5
            times[est], _ = _time(lambda cfg=cfg, a=a, opt=opt, sl=sl: _step(gen, cfg, a, opt, 1, sl), reps)
        passes = {"hessian": "1+2k = 5", "orojar": "1+k = 3"}[method]
        res.append(
            {
                "method": method,
                "batch": batch,
                "fd_step_s": round(times["fd"], 4),
                "fd_generator_passes": passes,
                "exact_step_s": round(times["exact"], 4),
                "exact_over_fd": round(times["exact"] / times["fd"], 2),
            }
        )
    return res


def stylegan2_256():
    """The FFHQ-architecture StyleGAN2 at 256 px with seeded random weights (benchmarks/traverse.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_traverse", Path(__file__).with_name("traverse.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.random_generator(256, torch.device("cpu"))


def _extrap(r: dict, what: str) -> str:
    """Say when a figure was extrapolated from fewer tangents ('f') or rows ('r')."""
    if what == "f":
        timed, total = r["forward_tangents_timed"], r["latent_dim"]
    else:
        timed, total = r["reverse_rows_timed"], r["outputs"]
    return f", extrapolated from {timed}" if timed < total else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer reverse rows (extrapolated) and repetitions")
    ap.add_argument("--chunk", type=int, default=25, help="tangents per forward-mode call")
    ap.add_argument("--skip-stylegan2", action="store_true", help="only the DCGAN and the penalty steps")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "quick": args.quick,
    }
    dcgan = load_generator("dcgan-digiface", device="cpu")
    rows = 256 if args.quick else None
    out = {"env": env, "jacobian": [bench_jacobian("dcgan-digiface 64px", dcgan, "z", args.chunk, None, rows)]}
    if not args.skip_stylegan2:
        sg2 = stylegan2_256()
        tangents = 8 if args.quick else 64
        out["jacobian"].append(
            bench_jacobian("stylegan2 256px random, w", sg2, "w", min(args.chunk, 8), tangents, 4 if args.quick else 16)
        )
    out["steps"] = bench_steps(dcgan, args.quick)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"env: {json.dumps(env)}")
    for r in out["jacobian"]:
        print(
            f"{r['generator']}: J {r['outputs']}x{r['latent_dim']}  forward {r['forward_s']:.2f} s "
            f"({r['forward_passes']} passes, {r['forward_calls']} calls{_extrap(r, 'f')})  "
            f"reverse {r['reverse_s']:.2f} s "
            f"({r['reverse_passes']} passes{_extrap(r, 'r')})"
            f"  speed-up x{r['speedup']}  max|diff| {r['max_abs_diff']:.2e}"
        )
    for r in out["steps"]:
        print(
            f"{r['method']} step (batch {r['batch']}, 10 dirs): fd {1000 * r['fd_step_s']:.1f} ms "
            f"({r['fd_generator_passes']} passes)  exact {1000 * r['exact_step_s']:.1f} ms  "
            f"exact/fd x{r['exact_over_fd']}"
        )


if __name__ == "__main__":
    main()
