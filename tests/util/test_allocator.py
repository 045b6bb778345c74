"""``import dirfind`` puts PyTorch's large CPU tensors on transparent huge pages unless the user
chose otherwise; where tensors live does not change a result."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from helpers import ROOT

PROBE = "import os, dirfind; print(os.environ.get('THP_MEM_ALLOC_ENABLE'))"


def _python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**base, "PYTHONPATH": str(ROOT / "src"), **env})  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_import_sets_huge_page_allocation_unless_already_chosen():
    assert _python(PROBE).strip() == "1"
    assert _python(PROBE, THP_MEM_ALLOC_ENABLE="0").strip() == "0"


def test_huge_page_allocation_gives_the_same_bank(tmp_path, dcgan_path):
    run = (
        "import sys, numpy as np; from dirfind import load_generator; from dirfind.methods import ganspace;"
        "b = ganspace(load_generator('dcgan-digiface'), space='act:main.2', n=3000, k=5, seed=1, n_regression=3000);"
        "np.save(sys.argv[-1], np.concatenate([b.directions.ravel(), b.scales, b.scores]))"
    )
    for v in ("0", "1"):
        _python(run.replace("sys.argv[-1]", repr(str(tmp_path / f"thp{v}.npy"))), THP_MEM_ALLOC_ENABLE=v)
    np.testing.assert_array_equal(np.load(tmp_path / "thp0.npy"), np.load(tmp_path / "thp1.npy"))
