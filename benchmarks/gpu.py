"""One-command GPU check: StyleGAN2 synthesis throughput, FLOPs and the fraction of the device's peak.

On a CUDA machine (well under 5 minutes on a current GPU)::

    python benchmarks/gpu.py                 # 256 and 1024 px; fp32/fp16/bf16; channels-last; compile
    python benchmarks/gpu.py --json gpu.json # also write every row

On a CPU-only machine, ``--dry-run`` runs every code path on a tiny model for a few iterations
(CI does this, so the script does not rot)::

    python benchmarks/gpu.py --dry-run

For each resolution, dtype, memory format and compile setting it renders random-weight StyleGAN2
(the FFHQ architecture, NVIDIA layout) at batches 1..64 through dirfind's render path, prints
images/s, the model's FLOPs per image (``torch.utils.flop_counter``) and the achieved fraction of
the device's peak for that dtype (looked up from the device name; printed). It also times a
forward-mode Jacobian (``torch.func.jvp`` under ``vmap``) on the device. The last line is the
headline: bf16 1024 px synthesis at batch 64 as a fraction of the bf16 peak (goal: >= 50%).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from traverse import random_generator  # noqa: E402

from dirfind.core.jvp import jacobian  # noqa: E402
from dirfind.render.batched import render  # noqa: E402
from dirfind.util import progress  # noqa: E402

#: dense peak TFLOP/s by (device-name substring, dtype): vendor datasheets (tensor cores for
#: fp16/bf16; fp32 = CUDA cores without TF32). First match wins, so specific names come first.
PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"fp32": 67.0, "fp16": 989.0, "bf16": 989.0}),
    ("H100 PCIe", {"fp32": 51.0, "fp16": 756.0, "bf16": 756.0}),
    ("H100", {"fp32": 67.0, "fp16": 989.0, "bf16": 989.0}),
    ("GH200", {"fp32": 67.0, "fp16": 989.0, "bf16": 989.0}),
    ("A100", {"fp32": 19.5, "fp16": 312.0, "bf16": 312.0}),
    ("L40S", {"fp32": 91.6, "fp16": 362.0, "bf16": 362.0}),
    ("L40", {"fp32": 90.5, "fp16": 181.0, "bf16": 181.0}),
    ("L4", {"fp32": 30.3, "fp16": 121.0, "bf16": 121.0}),
    ("A10", {"fp32": 31.2, "fp16": 125.0, "bf16": 125.0}),
    ("RTX 4090", {"fp32": 82.6, "fp16": 165.0, "bf16": 165.0}),
    ("RTX 3090", {"fp32": 35.6, "fp16": 71.0, "bf16": 71.0}),
    ("V100", {"fp32": 15.7, "fp16": 125.0}),
    ("T4", {"fp32": 8.1, "fp16": 65.0}),
]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def peak_tflops(name: str, dtype: str) -> float | None:
    """The dense peak of ``dtype`` for a device called ``name`` (None if not in the table)."""
    for key, peaks in PEAKS:
        if key.lower() in name.lower():
            return peaks.get(dtype)
    return None


def flops_per_image(gen: Any, ws: torch.Tensor) -> float:
    """FLOPs of one synthesis of one image (counted by torch's flop counter on a batch of 1)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        gen.synthesis(ws[:1], "w+")
    return float(fc.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_render(gen: Any, ws: torch.Tensor, batch: int, iters: int, device: torch.device, fn: Any = None) -> float:
    """Images per second of ``iters`` batches of ``batch`` rendered to uint8 (after one warm-up)."""
    x = ws[:batch].repeat((batch + len(ws) - 1) // len(ws), 1, 1)[:batch]
    run = fn or (lambda t: render(gen, t, "w+", batch_size=batch, desc=None))
    run(x)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        run(x)
    sync(device)
    return batch * iters / (time.perf_counter() - t0)


def jacobian_rate(gen: Any, device: torch.device, chunk: int) -> dict[str, float]:
    """Seconds for the full Jacobian of a 64 px grey output w.r.t. w (w_dim forward-mode passes)."""
    from dirfind.core.jvp import OutputTransform

    w = gen.embed(torch.randn(1, gen.z_dim, device=device), "w+")[0]
    t = OutputTransform(size=min(64, gen.resolution), channels="mean")
    jacobian(gen, w, "w", None, t, chunk=chunk)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    j = jacobian(gen, w, "w", None, t, chunk=chunk)
    sync(device)
    return {"jacobian_s": time.perf_counter() - t0, "jacobian_shape": list(j.shape)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny model, few iterations: checks every path.")
    ap.add_argument("--device", default=None, help="Default: cuda if available (else cpu with --dry-run).")
    ap.add_argument("--resolutions", default="256,1024")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true", help="Skip the torch.compile rows.")
    ap.add_argument("--json", default=None, help="Write every row to this file.")
    args = ap.parse_args()
    progress.configure(quiet=True)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and not args.dry_run:
        sys.exit("no CUDA device: run with --dry-run to check the script on a CPU")
    resolutions = [32] if args.dry_run else [int(r) for r in args.resolutions.split(",")]
    batches = [1, 2] if args.dry_run else [int(b) for b in args.batches.split(",")]
    iters = 1 if args.dry_run else args.iters
    dtypes = ["fp32", "bf16"] if args.dry_run else list(DTYPES)
    tiny = {"channel_base": 256, "channel_max": 16, "w_dim": 16} if args.dry_run else {}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device {name}; torch {torch.__version__}; {'dry run' if args.dry_run else 'full run'}")
    rows: list[dict[str, Any]] = []
    headline = None
    for res in resolutions:
        for dt in dtypes:
            if dt == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
                print(f"{res}px {dt}: not supported by this GPU")
                continue
            for channels_last in (False, True):
                for compiled in (False, True) if not args.no_compile else (False,):
                    gen = random_generator(res, device, **tiny)
                    gen.set_precision(DTYPES[dt], channels_last=channels_last)
                    ws = gen.embed(torch.randn(max(batches), gen.z_dim, device=device), "w+")
                    fn = None
                    if compiled:
                        if args.dry_run:
                            print(f"{res}px {dt} compile: skipped in a dry run (needs minutes of compilation)")
                            continue
                        synth = torch.compile(lambda t, g=gen: g.synthesis(t, "w+"), dynamic=False)
                        fn = lambda t, s=synth: s(t)  # noqa: E731
                    flops = flops_per_image(gen, ws)
                    peak = peak_tflops(name, dt) if device.type == "cuda" else None
                    for b in batches:
                        rate = time_render(gen, ws, b, iters, device, fn)
                        frac = None if peak is None else rate * flops / (peak * 1e12)
                        row = {"resolution": res, "dtype": dt, "channels_last": channels_last, "compile": compiled,
                               "batch": b, "img_s": rate, "gflops_per_img": flops / 1e9,
                               "peak_tflops": peak, "fraction_of_peak": frac}  # fmt: skip
                        rows.append(row)
                        pk = "peak unknown" if peak is None else f"{100 * frac:.1f}% of {peak:g} TFLOP/s"
                        mode = f"{'cl' if channels_last else 'nc'} {'compiled' if compiled else 'eager':8s}"
                        print(
                            f"{res:5d}px {dt} {mode} batch {b:3d}: {rate:9.2f} img/s  {flops / 1e9:9.4g} GFLOP/img  "
                            + pk
                        )
                        if res == 1024 and dt == "bf16" and b == 64 and frac is not None:
                            headline = max(headline or 0.0, frac)
    jac = jacobian_rate(random_generator(resolutions[0], device, **tiny), device, chunk=8 if args.dry_run else 64)
    print(f"forward-mode Jacobian at {resolutions[0]} px, {jac['jacobian_shape']}: {jac['jacobian_s']:.3f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "rows": rows, **jac}, indent=2))
    if headline is None:
        print("headline: bf16 1024 px synthesis at batch 64 not measured (dry run or unknown peak)")
    else:
        print(f"headline: bf16 1024 px synthesis at batch 64 reaches {100 * headline:.1f}% of the bf16 peak (goal 50%)")


if __name__ == "__main__":
    main()
