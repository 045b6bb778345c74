"""The GPU check (benchmarks/gpu.py) must not rot on machines without a GPU: its ``--dry-run``
runs every code path but compilation (fp32 and bf16, both memory formats, both modulated-conv
forms, the FLOP counter, batched rendering, the forward-mode Jacobian, the JSON report) on a tiny
model on the CPU, and a spent budget skips cases instead of overrunning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from helpers import ROOT


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--dry-run", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_gpu_check_dry_run_runs_every_path(tmp_path):
    out = tmp_path / "gpu.json"
    r = _run("--json", str(out), "--peak", "bf16=0.02,fp32=0.05")  # a CPU has no table entry
    lines = r.stdout.splitlines()
    rows = [ln for ln in lines if re.search(r"px (fp32|bf16) (nc|cl) eager +batch +\d+: +[\d.]+ img/s", ln)]
    assert len(rows) == 2 * 2 * 2, r.stdout  # 2 dtypes x 2 memory formats x batches 1, 2
    flops = {float(re.search(r"([\d.e+-]+) GFLOP/img", ln).group(1)) for ln in rows}
    assert all(f > 0 for f in flops), rows
    assert sum("render" in ln for ln in rows) == 4  # channels-last rows also time the render path
    forms = [ln for ln in lines if re.search(r"batch +2 (fused|shared): +[\d.]+ img/s", ln)]
    assert len(forms) == 2 * 2, r.stdout
    assert any(ln.startswith("forward-mode Jacobian at 32 px") for ln in lines), r.stdout
    head = re.fullmatch(
        r"headline: bf16 32 px synthesis at batch 2: ([\d.]+) img/s = ([\d.]+)% of the bf16 .*", lines[-1]
    )
    assert head, r.stdout
    report = json.loads(out.read_text())
    best = max(row["img_s"] for row in report["rows"] if row["dtype"] == "bf16" and row["batch"] == 2)
    assert abs(float(head.group(1)) - best) < 0.01 and abs(float(head.group(2)) - 100 * best * flops.pop() / 20) < 0.1
    assert len(report["rows"]) == 8 + 4 + 1 and not any("error" in row for row in report["rows"])
    assert all(row["img_s"] > 0 and row["gflops_per_img"] > 0 for row in report["rows"])
    assert report["jacobian"]["jacobian_shape"] == [32 * 32, 16]
    assert report["skipped"] and all("no compilation" in s for s in report["skipped"])


def test_gpu_check_skips_what_the_budget_does_not_fit(tmp_path):
    out = tmp_path / "gpu.json"
    r = _run("--budget-s", "0", "--json", str(out))
    report = json.loads(out.read_text())
    assert report["rows"] == []
    assert sum(s.endswith("(budget)") for s in report["skipped"]) == 8 + 4 + 1
    assert r.stdout.splitlines()[-1].startswith("headline: ") and "skipped: " in r.stdout
