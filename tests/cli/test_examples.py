"""The shipped examples run as documented (against this checkout's source)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT


def _env(tmp_path: Path) -> dict[str, str]:
    """PATH with a `dirfind` that runs this checkout, so the test does not depend on an install."""
    shim = tmp_path / "bin" / "dirfind"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dirfind "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT / "src")}


@pytest.mark.slow
def test_batch_script_job_array(tmp_path, dcgan_path):
    env = {**_env(tmp_path), "OUT": str(tmp_path / "runs"), "K": "2", "TASK": "0"}
    proc = subprocess.run(["bash", str(ROOT / "examples" / "sefa_batch.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "runs" / "dcgan-digiface" / "default"
    assert proc.stdout.strip() == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["d0.png", "d1.png", "directions.npz"]
    assert Image.open(out / "d1.png").size == (9 * 66 - 2, 6 * 66 - 2)
    # a re-run redoes nothing and still succeeds (outputs are never overwritten)
    mtime = (out / "d0.png").stat().st_mtime_ns
    assert subprocess.run(["bash", str(ROOT / "examples" / "sefa_batch.sh")], cwd=tmp_path, env=env,
                          capture_output=True, timeout=300).returncode == 0  # fmt: skip
    assert (out / "d0.png").stat().st_mtime_ns == mtime
    bad = subprocess.run(["bash", str(ROOT / "examples" / "sefa_batch.sh")], cwd=tmp_path,
                         env={**env, "TASK": "7"}, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "out of range" in bad.stderr


def test_quickstart(tmp_path, dcgan_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tiles = np.asarray(Image.open(tmp_path / "quickstart_d0.png"))
    assert tiles.shape == (4 * 66 - 2, 9 * 66 - 2, 3)
    assert "top SeFa scores" in proc.stdout


@pytest.mark.slow
def test_interfacegan_pipeline(tmp_path, dcgan_path):
    from dirfind import DirectionBank

    env = {**_env(tmp_path), "N": "600", "OUT": str(tmp_path / "run")}
    proc = subprocess.run(["bash", str(ROOT / "examples" / "interfacegan_pipeline.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    assert len(list((run / "faces").glob("*.png"))) == 600
    bounds = DirectionBank.load(run / "boundaries.npz")
    assert bounds.names == ["luminance", "asymmetry"]
    cond = DirectionBank.load(run / "asym_given_lum.npz")
    assert abs(float(cond.directions[0] @ bounds.directions[0])) < 1e-6
    assert float(cond.directions[0] @ bounds.directions[1]) > 0.5
    # the luminance edit brightens the face region of every row (7 steps, 4 seeds, 64 px tiles + 2 px gaps)
    grid = np.asarray(Image.open(run / "edit_d0.png").convert("L"), dtype=np.float64)
    tile = lambda r, c: grid[r * 66 + 16 : r * 66 + 48, c * 66 + 16 : c * 66 + 48].mean()  # noqa: E731
    for r in range(4):
        assert tile(r, 6) > tile(r, 0) + 10
