"""Throughput of ``dirfind evaluate`` against rendering the same traversals with ``traverse``.

Both render K directions x N samples x S steps through the same batched render path on the same
device; ``evaluate`` also renders the N unedited samples and measures everything (change maps and
profiles, SSIM, region sums, predictor scores). The baseline is ``traverse`` (edit, synthesise,
convert to uint8, no file writing) on the same images, measured in the same run; each row prints
images/s and the ratio to it. ``evaluate`` should cost little more than rendering.

  python benchmarks/evaluate.py --quick                        # the real DCGAN, 4 directions x 16 x 5
  python benchmarks/evaluate.py --predictor image --predictor faces
  python benchmarks/evaluate.py --generator stylegan2 --resolution 256 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dirfind.methods.interpret import evaluate  # noqa: E402
from dirfind.methods.sefa import sefa  # noqa: E402
from dirfind.render import traverse  # noqa: E402
from dirfind.util import progress  # noqa: E402
from dirfind.util.device import resolve_device  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fn, repeats: int, device: torch.device) -> float:
    """Best-of-``repeats`` seconds of ``fn()`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 directions x 16 samples x 5 steps, one repeat")
    ap.add_argument("--generator", default="dcgan", choices=["dcgan", "stylegan2"], help="dcgan = dcgan-digiface")
    ap.add_argument("--resolution", type=int, default=128, help="stylegan2 (random FFHQ-architecture weights)")
    ap.add_argument("--dirs", type=int, default=None, help="directions (default 8, quick 4)")
    ap.add_argument("-n", type=int, default=None, help="samples (default 64, quick 16)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--predictor", action="append", default=[], help="also time evaluate with these predictors")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (best of; default 3, quick 1)")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    progress.configure(quiet=True)
    device = resolve_device(a.device)
    k, n = a.dirs or (4 if a.quick else 8), a.n or (16 if a.quick else 64)
    repeats = a.repeats or (1 if a.quick else 3)
    if a.generator == "dcgan":
        from dirfind import load_generator

        g = load_generator("dcgan-digiface", device=device)
    else:
        from traverse import random_generator

        g = random_generator(a.resolution, device)
    bank = sefa(g, k=k)
    images = k * n * a.steps
    info = {
        "generator": a.generator,
        "resolution": g.resolution,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "images": images,
        "batch_size": a.batch_size,
    }
    print(
        f"evaluate vs traverse: {a.generator} {g.resolution}px on {device} {info['device_name']}, "
        f"{k} directions x {n} samples x {a.steps} steps = {images} images, batch {a.batch_size}, "
        f"torch {torch.__version__}, {info['threads']} threads",
        flush=True,
    )

    def run_traverse() -> None:
        traverse(g, bank, list(range(k)), seeds=list(range(n)), steps=a.steps, batch_size=a.batch_size)

    rows = []
    base_s = best_of(run_traverse, repeats, device)
    base = images / base_s
    rows.append({"what": "traverse (baseline)", "seconds": base_s, "images_per_s": base, "ratio": 1.0})
    print(f"  {'traverse (baseline)':<34} {base:9.1f} images/s  ({base_s:7.2f} s)", flush=True)
    for preds in [[], *([p] for p in a.predictor), *([a.predictor] if len(a.predictor) > 1 else [])]:
        label = "evaluate" + (f" + {', '.join(preds)}" if preds else "")
        sec = best_of(
            lambda p=preds: evaluate(g, bank, n=n, steps=a.steps, batch_size=a.batch_size, predictors=tuple(p)),
            repeats,
            device,
        )
        ips = images / sec
        rows.append({"what": label, "seconds": sec, "images_per_s": ips, "ratio": ips / base})
        print(f"  {label:<34} {ips:9.1f} images/s  ({sec:7.2f} s)  x{ips / base:5.2f} of traverse", flush=True)
    info["loadavg_after"] = os.getloadavg()
    out = {**info, "rows": rows, "baseline": "traverse of the same images in the same run"}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
