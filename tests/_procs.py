"""Test helper: run the CLI in a subprocess and SIGKILL it mid-way (for resume tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _slow_cli(args: list[str], delay: float, slow: str = "dirfind.sampling:SampleStream.batch") -> str:
    """Python code running the CLI with every call of ``slow`` ("module:attr.path") slowed down
    (so the test can kill it mid-way)."""
    module, path = slow.split(":")
    owner, _, name = path.rpartition(".")
    return (
        "import importlib, time, sys\n"
        f"m = importlib.import_module({module!r})\n"
        f"owner = m if not {owner!r} else eval({owner!r}, vars(m))\n"
        f"orig = getattr(owner, {name!r})\n"
        f"setattr(owner, {name!r}, lambda *a, **k: (time.sleep({delay}), orig(*a, **k))[1])\n"
        "from dirfind.cli import main\n"
        f"sys.exit(main({args!r}))\n"
    )


def kill_midway(
    args: list[str],
    cwd: Path,
    state: Path,
    min_pos: int,
    delay: float = 0.05,
    slow: str = "dirfind.sampling:SampleStream.batch",
) -> None:
    """Start the CLI in a subprocess and SIGKILL it once its saved progress passes ``min_pos``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _slow_cli(args, delay, slow)], cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the run ended (code {proc.returncode}) before it could be killed")
            if state.exists():
                try:
                    with np.load(state) as f:
                        meta = str(f["meta"][()])
                except (OSError, ValueError, KeyError):
                    meta = ""
                stages = json.loads(meta)["stages"] if meta else {}
                if any(v["pos"] >= min_pos and not v["done"] for v in stages.values()):
                    break
            time.sleep(0.02)
        else:
            raise AssertionError("no progress was saved in time")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
