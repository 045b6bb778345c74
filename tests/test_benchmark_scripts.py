"""The GPU check (benchmarks/gpu.py) must not rot on machines without a GPU: its ``--dry-run``
runs every code path (fp32 and bf16, both memory formats, the FLOP counter, batched rendering,
the forward-mode Jacobian) on a tiny model on the CPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers import ROOT


def test_gpu_check_dry_run_runs_every_path():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    rows = [ln for ln in lines if re.search(r"px (fp32|bf16) (nc|cl) eager +batch +\d+: +[\d.]+ img/s", ln)]
    assert len(rows) == 2 * 2 * 2, r.stdout  # 2 dtypes x 2 memory formats x batches 1, 2
    flops = {float(re.search(r"([\d.e+-]+) GFLOP/img", ln).group(1)) for ln in rows}
    assert all(f > 0 for f in flops), rows
    assert any(ln.startswith("forward-mode Jacobian at 32 px") for ln in lines), r.stdout
    assert lines[-1].startswith("headline: "), r.stdout
