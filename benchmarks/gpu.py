"""One-command GPU check: StyleGAN2 synthesis throughput, FLOPs and the fraction of the device's peak.

On a CUDA machine (about 4 minutes by default, whatever the GPU: see ``--budget-s``)::

    python benchmarks/gpu.py --json gpu.json   # 256 and 1024 px; fp32/fp16/bf16; NCHW/channels-last; compile

On a CPU-only machine, ``--dry-run`` runs every code path but compilation on a tiny model for a
few iterations (CI does this, so the script does not rot)::

    python benchmarks/gpu.py --dry-run

It renders random-weight StyleGAN2 (the FFHQ architecture, NVIDIA layout) at batches 1..64 for each
resolution, dtype, memory format and compile setting, and prints images/s (synthesis on the device;
for eager channels-last rows also dirfind's render path to host uint8, what ``traverse`` runs), the
model's FLOPs per image (``torch.utils.flop_counter``) and the achieved fraction of the device's
peak for that dtype: the datasheet's (looked up from the device name; fp32 convolutions count
against TF32 where cuDNN may use it) and a dense bf16/fp16 matrix product's measured in the same
run. It also compares the fused and non-fused modulated convolution on the device, cuDNN autotuning
on and off, and times a forward-mode Jacobian (``torch.func.jvp`` under ``vmap``).

Cases run in priority order -- the headline first -- and each is started only if its estimated cost
fits the remaining budget; the rest are listed as skipped. Every case's failure (out of memory, a
compiler error) is reported and the run goes on. ``--json`` is rewritten after every case, so a
run cut short keeps what it measured. The last line is the headline: bf16 1024 px synthesis at
batch 64 as a fraction of the bf16 peak (goal: >= 50%).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from traverse import random_generator  # noqa: E402

from dirfind.core.jvp import OutputTransform, jacobian  # noqa: E402
from dirfind.render.batched import render  # noqa: E402
from dirfind.util import progress  # noqa: E402

#: dense peak TFLOP/s by (device-name substring, dtype): vendor datasheets (tensor cores for
#: fp16/bf16/tf32; fp32 = CUDA cores). First match wins, so specific names come first.
PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H200 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.0, "bf16": 835.0}),
    ("H200", {"fp32": 67.0, "tf32": 494.5, "fp16": 989.0, "bf16": 989.0}),
    ("H100 PCIe", {"fp32": 51.0, "tf32": 378.0, "fp16": 756.0, "bf16": 756.0}),
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.0, "bf16": 835.0}),
    ("H100", {"fp32": 67.0, "tf32": 494.5, "fp16": 989.0, "bf16": 989.0}),
    ("GH200", {"fp32": 67.0, "tf32": 494.5, "fp16": 989.0, "bf16": 989.0}),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0}),
    ("L40S", {"fp32": 91.6, "tf32": 183.0, "fp16": 362.0, "bf16": 362.0}),
    ("L40", {"fp32": 90.5, "tf32": 90.5, "fp16": 181.0, "bf16": 181.0}),
    ("L4", {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0}),
    ("A10", {"fp32": 31.2, "tf32": 62.5, "fp16": 125.0, "bf16": 125.0}),
    ("RTX 4090", {"fp32": 82.6, "tf32": 82.6, "fp16": 165.0, "bf16": 165.0}),
    ("RTX 3090", {"fp32": 35.6, "tf32": 35.6, "fp16": 71.0, "bf16": 71.0}),
    ("V100", {"fp32": 15.7, "fp16": 125.0}),
    ("T4", {"fp32": 8.1, "fp16": 65.0}),
]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: modulated-convolution formulations a case can force (None: the library's rule)
MODCONV = {"rule": None, "fused": True, "shared": False}


def peak_tflops(name: str, dtype: str) -> float | None:
    """The dense peak of ``dtype`` for a device called ``name`` (None if not in the table); fp32
    convolutions count against TF32 when cuDNN may use it (PyTorch's default)."""
    if dtype == "fp32" and torch.backends.cudnn.allow_tf32:
        dtype = "tf32"
    for key, peaks in PEAKS:
        if key.lower() in name.lower():
            return peaks.get(dtype)
    return None


@dataclasses.dataclass(frozen=True)
class Case:
    """One measurement: a model configuration at one batch size."""

    res: int
    dtype: str
    channels_last: bool
    compiled: bool
    batch: int
    modconv: str = "rule"
    cudnn_benchmark: bool = True

    @property
    def config(self) -> tuple[int, str, bool]:
        return self.res, self.dtype, self.channels_last

    def label(self) -> str:
        extra = "" if self.modconv == "rule" else f" {self.modconv}"
        extra += "" if self.cudnn_benchmark else " no-cudnn-bench"
        mode = f"{'cl' if self.channels_last else 'nc'} {'compiled' if self.compiled else 'eager':8s}"
        return f"{self.res:5d}px {self.dtype} {mode} batch {self.batch:3d}{extra}"


def plan(resolutions: list[int], dtypes: list[str], batches: list[int], compile: bool) -> list[Case]:
    """Every case in priority order: the headline (largest resolution, bf16, channels-last, largest
    batch) eager and compiled; the eager sweep; the modulated-conv and cuDNN comparisons; then
    the other compiled configurations, largest batch first (each costs a compilation)."""
    rs, bs = sorted(resolutions, reverse=True), sorted(batches, reverse=True)
    ds = sorted(dtypes, key=["bf16", "fp16", "fp32"].index)
    top = Case(rs[0], ds[0], True, False, bs[0])
    cases = [top, dataclasses.replace(top, compiled=True)] if compile else [top]
    cases += [Case(r, d, cl, False, b) for r in rs for d in ds for cl in (True, False) for b in bs]
    mid = min(bs, key=lambda b: abs(b - 8))
    for r, b in ((rs[0], bs[0]), (rs[-1], mid)):
        cases += [Case(r, d, True, False, b, modconv=m) for d in ds for m in ("fused", "shared")]
    cases.append(dataclasses.replace(top, cudnn_benchmark=False))
    if compile:
        cases += [Case(r, d, cl, True, b) for b in bs for cl in (True, False) for r in rs for d in ds]
    return list(dict.fromkeys(cases))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_s(run: Callable[[], Any], batch: int, device: torch.device, min_time: float) -> tuple[float, float]:
    """(images/s, seconds of the first call): one warm-up call (compilation, autotuning), one to
    size the loop, then enough calls for ``min_time`` seconds (at least 2) timed as one block."""
    t0 = time.perf_counter()
    run()
    sync(device)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    run()
    sync(device)
    once = time.perf_counter() - t0
    n = max(2, math.ceil(min_time / max(once, 1e-6)))
    t0 = time.perf_counter()
    for _ in range(n):
        run()
    sync(device)
    return batch * n / (time.perf_counter() - t0), first


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int) -> float:
    """Measured dense matrix-product rate (the achievable tensor-core peak, for comparison)."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    n, t0 = 10, time.perf_counter()
    for _ in range(n):
        a @ b
    sync(device)
    return 2 * size**3 * n / (time.perf_counter() - t0) / 1e12


def flops_per_image(gen: Any, ws: torch.Tensor) -> float:
    """FLOPs of one synthesis of one image (counted by torch's flop counter on a batch of 1)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        gen.synthesis(ws[:1], "w+")
    return float(fc.get_total_flops())


def jacobian_rate(gen: Any, device: torch.device, chunk: int) -> dict[str, Any]:
    """Seconds for the full Jacobian of a 64 px grey output w.r.t. w (w_dim forward-mode passes)."""
    w = gen.embed(torch.randn(1, gen.z_dim, device=device), "w+")[0]
    t = OutputTransform(size=min(64, gen.resolution), channels="mean")
    jacobian(gen, w, "w", None, t, chunk=chunk)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    j = jacobian(gen, w, "w", None, t, chunk=chunk)
    sync(device)
    return {"jacobian_s": time.perf_counter() - t0, "jacobian_shape": list(j.shape), "jvp_chunk": chunk}


def jacobian_report(gen: Any, device: torch.device, dry: bool) -> dict[str, Any]:
    """:func:`jacobian_rate` printed, or its failure reported (the run goes on)."""
    try:
        jac = jacobian_rate(gen, device, chunk=8 if dry else 64)
    except Exception as e:  # noqa: BLE001 - report and go on
        jac = {"error": f"{type(e).__name__}: {e}"[:300]}
        print(f"forward-mode Jacobian failed: {jac['error']}")
    else:
        print(f"forward-mode Jacobian at {gen.resolution} px, {jac['jacobian_shape']}: {jac['jacobian_s']:.3f} s")
    return jac


class Bench:
    """Models, compiled functions and FLOP counts per configuration, built on first use: one
    network per resolution and dtype (its weights are cast), shared by the adapters of its
    memory formats and modulated-conv forms; one set of latents per resolution."""

    def __init__(self, device: torch.device, tiny: dict[str, int], max_batch: int) -> None:
        self.device, self.tiny, self.max_batch = device, tiny, max_batch
        self.nets: dict[tuple[int, str], Any] = {}
        self.latents: dict[int, torch.Tensor] = {}
        self.gens: dict[tuple, Any] = {}
        self.compiled: dict[tuple, Any] = {}
        self.flops: dict[tuple, float] = {}

    def gen(self, case: Case) -> tuple[Any, torch.Tensor]:
        key = (*case.config, case.modconv)
        if key not in self.gens:
            if (case.res, case.dtype) not in self.nets:
                g = random_generator(case.res, self.device, **self.tiny)
                if case.res not in self.latents:
                    self.latents[case.res] = g.embed(torch.randn(self.max_batch, g.z_dim, device=self.device), "w+")
                self.nets[case.res, case.dtype] = g.set_precision(DTYPES[case.dtype])
            g = copy.copy(self.nets[case.res, case.dtype])  # the adapter's settings alone: weights shared
            g.set_precision(DTYPES[case.dtype], channels_last=case.channels_last)
            g.fused_modconv = MODCONV[case.modconv]
            self.gens[key] = g
        return self.gens[key], self.latents[case.res]

    def flop_count(self, case: Case) -> float:
        if case.config not in self.flops:
            self.flops[case.config] = flops_per_image(*self.gen(dataclasses.replace(case, modconv="rule")))
        return self.flops[case.config]

    def synth(self, case: Case) -> Callable[[torch.Tensor], torch.Tensor]:
        g, _ = self.gen(case)
        if not case.compiled:
            return lambda t: g.synthesis(t, "w+")
        if case.config not in self.compiled:
            self.compiled[case.config] = torch.compile(lambda t: g.synthesis(t, "w+"), dynamic=False)
        return self.compiled[case.config]

    def measure(self, case: Case, min_time: float) -> dict[str, Any]:
        g, ws = self.gen(case)
        x = ws[: case.batch]
        synth = self.synth(case)
        torch.backends.cudnn.benchmark = case.cudnn_benchmark

        def run() -> None:
            with torch.inference_mode():
                synth(x)

        rate, first = images_per_s(run, case.batch, self.device, min_time)
        row: dict[str, Any] = {"img_s": rate, "first_call_s": first}
        if not case.compiled and case.channels_last and case.modconv == "rule" and case.cudnn_benchmark:
            row["render_img_s"], _ = images_per_s(
                lambda: render(g, x, "w+", batch_size=case.batch, desc=None), case.batch, self.device, min_time
            )
        return row


def write_json(path: str | None, report: dict[str, Any]) -> None:
    """Rewrite ``path`` atomically (temp file + rename)."""
    if path:
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(report, indent=2))
        os.replace(tmp, path)


def estimate(case: Case, seen: dict[Any, float]) -> float:
    """Seconds a case is expected to take: its images times the seconds per image seen so far at
    its resolution (eager; a guess before the first), plus the longest compilation seen (or a
    guess) for a compiled case."""
    per_img = seen.get(case.res, 0.1 * (case.res / 1024) ** 2)
    eager = max(0.5, per_img * max(case.batch, 8))
    return eager + (seen.get("compile_s", 90.0) if case.compiled else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny model, no compilation: checks every path.")
    ap.add_argument("--device", default=None, help="Default: cuda if available (else cpu with --dry-run).")
    ap.add_argument("--resolutions", default="256,1024")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--dtypes", default="fp32,fp16,bf16")
    ap.add_argument("--min-time", type=float, default=0.3, help="Seconds timed per case (after warm-up).")
    ap.add_argument("--budget-s", type=float, default=240.0, help="Start no case expected to end after this.")
    ap.add_argument("--no-compile", action="store_true", help="Skip the torch.compile rows.")
    ap.add_argument("--peak", default="", help="Peaks to use instead of the table, e.g. bf16=989,fp32=67 (TFLOP/s).")
    ap.add_argument("--json", default=None, help="Write every row to this file (rewritten after each case).")
    args = ap.parse_args()
    start = time.perf_counter()
    progress.configure(quiet=True)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and not args.dry_run:
        sys.exit("no CUDA device: run with --dry-run to check the script on a CPU")
    dry = args.dry_run
    try:
        given = {k.strip(): float(v) for k, v in (kv.split("=") for kv in args.peak.split(",") if kv.strip())}
    except ValueError:
        sys.exit(f"--peak wants DTYPE=TFLOPS pairs separated by commas, got {args.peak!r}")
    resolutions = [32] if dry else [int(r) for r in args.resolutions.split(",")]
    batches = [1, 2] if dry else [int(b) for b in args.batches.split(",")]
    dtypes = ["fp32", "bf16"] if dry else args.dtypes.split(",")
    if bad := [d for d in dtypes if d not in DTYPES]:
        sys.exit(f"unknown dtype {bad[0]!r}: use fp32, fp16 or bf16")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        print("bf16: not supported by this GPU")
        dtypes = [d for d in dtypes if d != "bf16"] or ["fp16"]
    tiny = {"channel_base": 256, "channel_max": 16, "w_dim": 16} if dry else {}
    min_time = 0.01 if dry else args.min_time
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        p = torch.cuda.get_device_properties(device)
        about = f"{p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB; CUDA {torch.version.cuda}"
        about += f", cuDNN {torch.backends.cudnn.version()}"
    else:
        name, about = platform.processor() or platform.machine() or "cpu", f"{os.cpu_count()} CPUs"
    print(f"device {name} ({about}); torch {torch.__version__}; {'dry run' if dry else 'full run'}")
    report: dict[str, Any] = {"device": name, "about": about, "torch": torch.__version__, "rows": [], "skipped": []}
    for d in ("bf16", "fp16"):
        if d in dtypes:
            report[f"matmul_tflops_{d}"] = mm = matmul_tflops(device, DTYPES[d], 256 if dry else 8192)
            print(
                f"dense {d} matrix product: {mm:.1f} TFLOP/s measured; datasheet {given.get(d, peak_tflops(name, d))}"
            )
    bench, seen, headline = Bench(device, tiny, max(batches)), {}, None
    cases = plan(resolutions, dtypes, batches, compile=not args.no_compile)
    top = (cases[0].res, cases[0].dtype, cases[0].batch)  # the headline: the best of these rows
    deadline = start + args.budget_s
    jac_at = 1 if args.no_compile else 2  # right after the headline rows
    for i, case in enumerate(cases):
        if i == jac_at:
            report["jacobian"] = jacobian_report(random_generator(min(resolutions), device, **tiny), device, dry)
        if case.compiled and dry:
            report["skipped"].append(f"{case.label()} (dry run: no compilation)")
            continue
        if time.perf_counter() + estimate(case, seen) > deadline:
            report["skipped"].append(f"{case.label()} (budget)")
            continue
        t0 = time.perf_counter()
        row: dict[str, Any] = {"label": " ".join(case.label().split()), **dataclasses.asdict(case)}
        try:
            flops = bench.flop_count(case)
            row.update(bench.measure(case, min_time), gflops_per_img=flops / 1e9)
        except Exception as e:  # noqa: BLE001 - out of memory, a compiler error: report and go on
            row["error"] = f"{type(e).__name__}: {e}"[:300]
            print(f"{case.label()}: FAILED {row['error']}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
        else:
            peak = given.get(case.dtype, peak_tflops(name, case.dtype) if device.type == "cuda" else None)
            frac = None if peak is None else row["img_s"] * flops / (peak * 1e12)
            mm = report.get(f"matmul_tflops_{case.dtype}")
            row.update(
                peak_tflops=peak, fraction_of_peak=frac, fraction_of_matmul=mm and row["img_s"] * flops / (mm * 1e12)
            )
            pk = "peak unknown" if peak is None else f"{100 * frac:.1f}% of {peak:g} TFLOP/s"
            more = f"; render {row['render_img_s']:.2f} img/s" if "render_img_s" in row else ""
            print(f"{case.label()}: {row['img_s']:9.2f} img/s  {flops / 1e9:9.4g} GFLOP/img  {pk}{more}")
            if (case.res, case.dtype, case.batch) == top:
                headline = max(headline or row, row, key=lambda r: r["img_s"])
            if case.compiled:
                seen["compile_s"] = max(seen.get("compile_s", 0.0), row["first_call_s"])
            else:  # a running mean of the seconds per image of eager cases at this resolution
                per_img = (time.perf_counter() - t0) / max(case.batch, 8)
                seen[case.res] = per_img if case.res not in seen else (seen[case.res] + per_img) / 2
        row["case_s"] = time.perf_counter() - t0
        report["rows"].append(row)
        report["elapsed_s"] = time.perf_counter() - start
        write_json(args.json, report)
    for s in report["skipped"]:
        print(f"skipped: {s}")
    report["elapsed_s"] = time.perf_counter() - start
    write_json(args.json, report)
    print(f"{len(report['rows'])} cases in {report['elapsed_s']:.0f} s; {len(report['skipped'])} skipped")
    what = f"headline: {top[1]} {top[0]} px synthesis at batch {top[2]}"
    if headline is None:
        print(f"{what} not measured (skipped or failed)")
    elif headline["fraction_of_peak"] is None:
        print(f"{what}: {headline['img_s']:.2f} img/s ({headline['label']}); peak unknown for this device")
    else:
        mm = headline["fraction_of_matmul"]
        vs_mm = "" if mm is None else f", {100 * mm:.1f}% of the measured matrix product"
        print(
            f"{what}: {headline['img_s']:.2f} img/s = {100 * headline['fraction_of_peak']:.1f}% of the"
            f" {top[1]} peak ({headline['peak_tflops']:g} TFLOP/s){vs_mm} ({headline['label']}; goal 50%)"
        )


if __name__ == "__main__":
    main()
