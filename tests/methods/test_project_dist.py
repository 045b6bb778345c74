"""``dirfind project`` under torchrun (2 gloo processes on the CPU): the (image, restart) batches are
dealt over the processes and the projection file equals one process's bit for bit; a run
interrupted on rank 1 keeps both processes' progress (rank 1's as a part) and one process resumes
it to the same file."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import ROOT

#: rank 1 stops (as Ctrl-C would) in the 7th step it runs, after its first checkpoint (step 4)
DRIVER = """
import os, sys
import dirfind.methods.project.inversion as inv
calls, schedule = [0], inv.schedule
def interrupting(step, o):
    calls[0] += 1
    if os.environ.get("RANK") == "1" and calls[0] == 7:
        raise KeyboardInterrupt
    return schedule(step, o)
if os.environ.get("INTERRUPT"):
    inv.schedule = interrupting
from dirfind.cli import main
sys.exit(main(sys.argv[1:]))
"""

ARGS = ["project", "a.png", "b.png", "--ckpt", "dcgan-digiface", "--steps", "8", "--loss", "l2", "--restarts", "2",
        "--candidates", "2", "--batch-size", "1", "--checkpoint-steps", "4", "--seed", "3", "-q"]  # fmt: skip
KEYS = ("latents", "loss_curve", "restart_loss", "loss", "psnr", "ssim", "reconstructions")


def _torchrun(args: list[str], cwd, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "DIRFIND_DIST_TIMEOUT": "120", **env}
    env.pop("RANK", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--monitor-interval", "0.2"]
    return subprocess.run([*cmd, "driver.py", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _same(a, b) -> None:
    with np.load(a) as x, np.load(b) as y:
        for key in KEYS:
            np.testing.assert_array_equal(y[key], x[key], err_msg=key)


@pytest.mark.slow
def test_two_processes_project_like_one_and_an_interrupted_run_resumes_alone(cli, tmp_path, dcgan_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "driver.py").write_text(DRIVER)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the launched processes' kernels (OMP_NUM_THREADS=1): the same float sums
    try:
        assert cli(*ARGS, "-o", "one.npz").code == 0
        run = _torchrun([*ARGS, "-o", "two.npz", "--preview", "grid.png"], tmp_path)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        _same(tmp_path / "one.npz", tmp_path / "two.npz")
        assert (tmp_path / "grid.png").exists() and not (tmp_path / "two.npz.progress").exists()

        stopped = _torchrun([*ARGS, "-o", "cut.npz"], tmp_path, INTERRUPT="1")
        assert stopped.returncode != 0 and not (tmp_path / "cut.npz").exists()
        assert "dirfind: interrupted" in stopped.stdout + stopped.stderr, stopped.stderr[-3000:]
        progress = tmp_path / "cut.npz.progress"
        assert (progress / "state.npz").exists()
        assert list((progress / "parts").glob("*.r1.problems_*.npz")), "rank 1 saved its batch's progress"
        res = cli(*ARGS, "-o", "cut.npz", "--resume")
        assert res.code == 0, res
    finally:
        torch.set_num_threads(threads)
    _same(tmp_path / "one.npz", tmp_path / "cut.npz")
    assert not progress.exists()
