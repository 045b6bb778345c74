"""Wall time of 1 vs 2 processes (torchrun, gloo on the CPU) for `ganspace` and `sample`, and the
communication volume of each kind of collective.

Each job runs as: one process with 2 threads (torch's default here, the baseline), one process
with 1 thread, and 2 processes x 1 thread under `python -m torch.distributed.run` (torchrun's
default OMP_NUM_THREADS=1). The variants are interleaved, each repeated; the script prints the
command time (on rank 0, from the call of the command to its end: loading the checkpoint
included, interpreter start and imports not), the whole process time (launch to exit), the ratio
to the baseline's median, and the machine load around every run (other people's processes skew
the figures on a shared machine), then the bytes each kind of collective moved on rank 0.

    python benchmarks/distributed.py --quick        # ~3 min on 2 cores
    python benchmarks/distributed.py                 # larger n (~15 min)
    python benchmarks/distributed.py --device cuda --nproc 8   # on a GPU machine: 1 vs all GPUs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SG2 = ROOT / "tests" / "fixtures" / "stylegan2" / "stylegan2_ada_tiny32.pkl"


def jobs(quick: bool) -> dict[str, list[str]]:
    n, nreg, ns = (6000, 4000, 2000) if quick else (30000, 20000, 10000)
    return {
        "ganspace act:main.2 (randomized, D=8192)": [
            "ganspace", "--ckpt", "dcgan-digiface", "--space", "act:main.2", "-n", str(n), "-k", "20",
            "--regression-n", str(nreg), "--batch-size", "500",
        ],
        "ganspace w (exact, StyleGAN2 tiny)": [
            "ganspace", "--ckpt", str(SG2), "--space", "w", "-n", str(10 * n), "-k", "20", "--batch-size", "1000",
        ],
        "sample --images (DCGAN 64 px)": ["sample", "--ckpt", "dcgan-digiface", "-n", str(ns), "--images", "imgs"],
    }  # fmt: skip


def worker(argv: list[str]) -> None:
    """Inside each process: run one command through the CLI and report its time and traffic."""
    args, out = json.loads(argv[0]), argv[1]
    from dirfind.cli import main
    from dirfind.core import dist

    dist.init()
    t0 = time.perf_counter()
    code = main(args)
    seconds = time.perf_counter() - t0
    w = dist.world()
    if w.is_main:
        Path(out).write_text(json.dumps({"code": code, "seconds": seconds, "world": w.size, "stats": dist.stats}))
    sys.stdout.flush()
    os._exit(code)


def run(args: list[str], nproc: int, threads: int, device: str, workdir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    env.setdefault("DIRFIND_CACHE", str(ROOT / "tests" / ".cache"))
    result = workdir / "result.json"
    result.unlink(missing_ok=True)
    for p in workdir.glob("*"):
        if p.is_dir():
            subprocess.run(["rm", "-rf", str(p)], check=True)
        elif p.suffix == ".npz":
            p.unlink()
    full = ["-q", "--device", device, *args, "--out", "out.npz"]
    me = [str(Path(__file__).resolve()), "--worker", json.dumps(full), str(result)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), *me]
    else:
        cmd = [sys.executable, *me]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not result.exists():
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    res = json.loads(result.read_text())
    res.update(wall=wall, load=[load0, os.getloadavg()[0]])
    return res


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} logical CPUs, {gpu}; torch {torch.__version__}, Python {sys.version.split()[0]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nproc", type=int, default=2, help="processes of the distributed variant")
    ap.add_argument("--json", default=None, help="also write all measurements to this file")
    a = ap.parse_args()
    print(machine())
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if a.device == "cpu":
        variants = [("1 process x 2 threads", 1, 2), ("1 process x 1 thread", 1, 1)]
        variants.append((f"{a.nproc} processes x 1 thread", a.nproc, 1))
    else:
        variants = [("1 process (1 GPU)", 1, 4), (f"{a.nproc} processes ({a.nproc} GPUs)", a.nproc, 4)]
    table, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in jobs(a.quick).items():
            times: dict[str, list[dict]] = {v[0]: [] for v in variants}
            for _ in range(a.repeats):  # interleaved rounds
                for label, nproc, threads in variants:
                    times[label].append(run(args, nproc, threads, a.device, Path(tmp)))
            base = statistics.median(r["seconds"] for r in times[variants[0][0]])
            for label, _, _ in variants:
                rs = times[label]
                sec = [r["seconds"] for r in rs]
                table.append((name, label, min(sec), statistics.median(sec), statistics.median(r["wall"] for r in rs),
                              base / statistics.median(sec), max(max(r["load"]) for r in rs)))  # fmt: skip
                records.append({"job": name, "variant": label, "runs": rs})
            dist_stats = times[variants[-1][0]][-1]["stats"]
            print(f"\n{name}: collectives of rank 0 ({variants[-1][0]})")
            for kind, s in sorted(dist_stats.items()):
                per_call = s["bytes"] / s["calls"] / 1e3
                print(f"  {kind:<10} {s['calls']:5d} calls  {s['bytes'] / 1e6:10.3f} MB in all  "
                      f"{per_call:10.1f} kB per call  largest {s['max_bytes'] / 1e6:8.3f} MB")  # fmt: skip
    print(f"\n{'job':<42} {'variant':<24} {'min s':>7} {'median s':>9} {'process s':>10} {'x base':>7} {'max load':>8}")
    for row in table:
        print(f"{row[0]:<42} {row[1]:<24} {row[2]:7.2f} {row[3]:9.2f} {row[4]:10.2f} {row[5]:7.2f} {row[6]:8.2f}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine(), "records": records}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
    else:
        main()
