"""Benchmark: exact forward-mode Jacobians and penalty estimators against their baselines, same run.

1. Full Jacobian of one sample (all outputs x all latent dims): dirfind's forward mode (D tangents,
   vmapped in chunks) vs reverse mode row by row (``torch.autograd.functional.jacobian``, one
   backward pass per output value, as LowRankGAN/ReSeFa compute it). Reports wall time, generator
   passes (tangent / cotangent vectors) and the max difference between the two.
2. One optimisation step of Hessian Penalty / OroJaR learning with the official finite differences
   vs exact forward-mode derivatives.

``--quick`` shrinks everything (Jacobian of a resized output for the reverse baseline is never used:
the baseline always computes the same full Jacobian, but on fewer rows in quick mode, extrapolated
per row and labelled so). StyleGAN2 (256 px, random weights) runs when the adapter is importable.

    python benchmarks/jacobian.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from dirfind.generators import load_generator
from dirfind.jacobian import jacobian, output_fn
from dirfind.methods.learn import LearnConfig, _step, search_slice


def _time(fn, reps: int = 1) -> tuple[float, object]:
    out, best = None, float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def reverse_rows(gen, latent, space, rows: int | None) -> tuple[float, torch.Tensor, int]:
    """Reverse-mode Jacobian row by row; ``rows`` limits the rows (quick mode), returns (s, J rows, rows)."""
    f = output_fn(gen, latent[None], space)
    x0 = torch.zeros(1, latent.numel() if space == "z" else gen.w_dim, dtype=gen.dtype)
    if rows is None:
        t, j = _time(lambda: torch.autograd.functional.jacobian(lambda d: f(d)[0], x0[0]))
        return t, j, j.shape[0]
    x = x0[0].clone().requires_grad_(True)

    def run():
        out = f(x[None])[0]
        return torch.stack([torch.autograd.grad(out[i], x, retain_graph=True)[0] for i in range(rows)])

    t, j = _time(run)
    return t, j, rows


def bench_jacobian(name: str, gen, space: str, quick: bool, chunk: int) -> dict:
    z = gen.z_from_seeds([0])
    latent = gen.embed(z, "z" if space == "z" else "w+")[0].detach()
    fwd_t, jf = _time(lambda: jacobian(gen, latent, space, chunk=chunk))
    m, d = jf.shape
    rows = min(m, 256) if quick else None
    rev_t, jr, nrows = reverse_rows(gen, latent, space, rows)
    rev_full = rev_t * m / nrows
    diff = float((jf[:nrows] - jr.reshape(nrows, -1)).abs().max())
    return {
        "generator": name,
        "outputs": m,
        "latent_dim": d,
        "forward_passes": d,
        "forward_calls": -(-d // chunk),
        "forward_s": round(fwd_t, 3),
        "reverse_passes": m,
        "reverse_rows_timed": nrows,
        "reverse_s": round(rev_full, 3),
        "reverse_extrapolated": nrows < m,
        "speedup": round(rev_full / fwd_t, 1),
        "max_abs_diff": diff,
    }


def bench_steps(gen, quick: bool) -> list[dict]:
    res = []
    batch = 4 if quick else 8
    for method in ("hessian", "orojar"):
        times = {}
        for est in ("fd", "exact"):
            cfg = LearnConfig(method=method, ndirs=10, batch_size=batch, estimator=est)
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
    """A random-weight 256-px StyleGAN2 through the sg2 adapter, or None while it has not landed."""
    try:
        from dirfind.generators import stylegan2  # noqa: F401
    except ImportError:
        return None
    make = getattr(stylegan2, "random_generator", None)
    if make is None:
        return None
    return make(resolution=256, seed=0)


def _extrap(r: dict) -> str:
    return f", extrapolated from {r['reverse_rows_timed']} rows" if r["reverse_extrapolated"] else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer reverse rows (extrapolated) and repetitions")
    ap.add_argument("--chunk", type=int, default=25, help="tangents per forward-mode call")
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
    out = {"env": env, "jacobian": [bench_jacobian("dcgan-digiface 64px", dcgan, "z", args.quick, args.chunk)]}
    sg2 = stylegan2_256()
    if sg2 is None:
        out["stylegan2_256"] = "pending: no StyleGAN2 adapter with random_generator() on this branch"
    else:
        out["jacobian"].append(bench_jacobian("stylegan2 256px random", sg2, "w", args.quick, args.chunk))
    out["steps"] = bench_steps(dcgan, args.quick)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"env: {json.dumps(env)}")
    for r in out["jacobian"]:
        print(
            f"{r['generator']}: J {r['outputs']}x{r['latent_dim']}  forward {r['forward_s']:.2f} s "
            f"({r['forward_passes']} passes, {r['forward_calls']} calls)  reverse {r['reverse_s']:.2f} s "
            f"({r['reverse_passes']} passes{_extrap(r)})"
            f"  speed-up x{r['speedup']}  max|diff| {r['max_abs_diff']:.2e}"
        )
    if isinstance(out.get("stylegan2_256"), str):
        print(f"stylegan2 256px: {out['stylegan2_256']}")
    for r in out["steps"]:
        print(
            f"{r['method']} step (batch {r['batch']}, 10 dirs): fd {1000 * r['fd_step_s']:.1f} ms "
            f"({r['fd_generator_passes']} passes)  exact {1000 * r['exact_step_s']:.1f} ms  "
            f"exact/fd x{r['exact_over_fd']}"
        )


if __name__ == "__main__":
    main()
