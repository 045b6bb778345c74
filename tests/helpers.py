"""Helpers shared by the test modules (paths, CLI error checks, derivative checks, crafted pickles,
killing a CLI run mid-way)."""

from __future__ import annotations

import copy
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
PREDICTORS = ROOT / "examples" / "predictors.py"
LUMINANCE = f"{PREDICTORS}:luminance"

#: every family's checkpoint for the method matrices: family -> (checkpoint, render options,
#: adapter family); None: the real dcgan-digiface, from the session fixture
FAMILIES: dict[str, tuple[str | None, list[str], str]] = {
    "dcgan": (None, [], "dcgan"),
    "stylegan2-rosinality": (str(FIX / "stylegan2" / "stylegan2_rosinality_tiny32.pt"), [], "stylegan2"),
    "stylegan2-nvidia": (str(FIX / "stylegan2" / "stylegan2_ada_tiny32.pkl"), [], "stylegan2"),
    "stylegan2-nvidia-cond": (str(FIX / "stylegan2" / "stylegan2_ada_cond4_tiny32.pkl"), ["--class", "2"], "stylegan2"),
    "biggan": (str(FIX / "biggan" / "biggan_deep_tiny64"), ["--class", "3"], "biggan"),
    "pggan": (str(FIX / "pggan" / "pggan_genforce_tiny32.pth"), [], "pggan"),
    "stylegan3-t": (str(FIX / "stylegan3" / "stylegan3_t_tiny32.pkl"), [], "stylegan3"),
    "stylegan3-r": (str(FIX / "stylegan3" / "stylegan3_r_tiny32.pkl"), [], "stylegan3"),
}

#: each method's CLI arguments (before --ckpt/--out), kept small: the point is that each runs on each family
METHODS: dict[str, list[str]] = {
    "sefa": ["sefa", "-k", "5"],
    "ganspace": ["ganspace", "-n", "400", "-k", "5", "--batch-size", "100", "--regression-n", "400"],
    "interfacegan": ["interfacegan", "-n", "200", "--predictor", LUMINANCE, "--ratio", "0.25", "--batch-size", "50"],
    "jacobian": ["jacobian", "-k", "3", "--seeds", "0", "--size", "16"],
    "hessian": ["hessian", "-k", "3", "--steps", "2", "--batch-size", "2"],
    "orojar": ["orojar", "-k", "3", "--steps", "2", "--batch-size", "2", "--estimator", "exact"],
}


def one_line_error(res, code: int, logs: bool = False) -> str:
    """Assert a CLI result failed with ``code`` and one ``dirfind: error:`` line on stderr, the only
    line (``logs``: after the run's log lines); return it."""
    assert res.code == code, res
    assert "Traceback" not in res.err, res.err
    lines = [ln for ln in res.err.splitlines() if ln.strip() and "%|" not in ln]
    if logs:
        assert sum("error" in ln for ln in lines) == 1, res.err
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("dirfind: error: "), res.err
    return lines[0]


def interrupt_second_update(monkeypatch, cls) -> None:
    """Make ``cls.update`` fold in one batch, then raise KeyboardInterrupt (a Ctrl-C mid-run);
    ``monkeypatch.undo()`` or setting it back restores it."""
    real, calls = cls.update, []

    def flaky(self, batch):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(batch.start)
        real(self, batch)

    monkeypatch.setattr(cls, "update", flaky)


def close(a, b, atol: float = 1e-4) -> None:
    """``a`` (tensor or array) equals ``b`` within ``atol`` (max abs)."""
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a
    np.testing.assert_allclose(a, b, rtol=0, atol=atol)


def float64_copy(gen):
    """A float64 copy of a generator adapter (weights and synthesis precision), for exact derivative checks."""
    g = copy.deepcopy(gen).double()
    if hasattr(g, "compute_dtype"):
        g.compute_dtype = torch.float64
    return g


def assert_jvp_matches_vjp(f, x: torch.Tensor, v: torch.Tensor, seed: int = 0, rtol: float = 1e-6) -> torch.Tensor:
    """Forward mode (``torch.func.jvp``) through ``f`` at ``x`` along ``v`` equals reverse mode:
    ``<u, J v> = <J^T u, v>`` for a random ``u`` (an exact identity: no finite-difference step that
    could cross a kink). ``rtol`` is relative to ``sum |u| |J v|``: 1e-6 covers the float32 rounding
    of the few ops NVIDIA's networks keep in float32 (filters, fp32 accumulations) whatever CPU
    kernels run; a wrong or missing derivative is off by O(1). Returns ``J v``."""
    out, tangent = torch.func.jvp(f, (x,), (v,))
    u = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    _, pullback = torch.func.vjp(f, x)
    (jt_u,) = pullback(u)
    lhs, rhs = float((u * tangent).sum()), float((jt_u * v).sum())
    scale = float(u.abs().mul(tangent.abs()).sum()) + 1e-300
    assert abs(lhs - rhs) <= rtol * scale, (lhs, rhs, scale)
    assert tangent.abs().max() > 0, "the derivative is identically zero"
    return tangent


def persistent_pickle(meta: dict, keys: tuple[str, ...] = ("G", "G_ema")) -> bytes:
    """Pickle ``{key: <persistent object>}`` the way NVIDIA's persistence decorator does."""
    mod = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called (pickling only)
        raise AssertionError

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg = types.ModuleType("torch_utils")
    pkg.persistence = mod

    class Persistent:
        def __reduce__(self):
            return (_reconstruct_persistent_obj, (meta,))

    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules.update({"torch_utils": pkg, "torch_utils.persistence": mod})
    try:
        return pickle.dumps({k: Persistent() for k in keys}, protocol=4)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Module:
    """A NetNode pickled back the way NVIDIA's persistence decorator pickles a module (inside
    :func:`persistent_pickle`, which provides the ``torch_utils.persistence`` stand-in)."""

    def __init__(self, node, src: str):
        self.node, self.src = node, src

    def __reduce__(self):
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (node_meta(self.node, self.src),))


def node_meta(node, src: str = "", **extra) -> dict:
    """The persistence ``meta`` of a :class:`NetNode` tree (children pickled as persistent modules
    too), with ``module_src`` = ``src`` and ``extra`` state entries: for :func:`persistent_pickle`."""

    def read(d: dict) -> dict:  # lazily read tensors (LazyTensor) as the tensors they stand for
        return {k: v.read() if hasattr(v, "read") else v for k, v in d.items()}

    state = {
        "_parameters": read(node.params),
        "_buffers": read(node.buffers),
        "_modules": {k: _Module(v, src) for k, v in node.children.items()},
        "_init_args": node.init_args,
        "_init_kwargs": node.init_kwargs,
        "_non_persistent_buffers_set": set(node.non_persistent),
        **node.attrs,
        **extra,
    }
    return {"type": "class", "version": 6, "module_src": src, "class_name": node.class_name, "state": state}


# ---------------------------------------------------------------------- killing a run mid-way


def _slow_cli(args: list[str], delay: float, slow: str) -> str:
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
    min_pos: int | None,
    delay: float = 0.05,
    slow: str = "dirfind.core.sampling:SampleStream.batch",
) -> None:
    """Start the CLI in a subprocess and SIGKILL it once its saved progress passes ``min_pos``
    (``None``: as soon as the file ``state`` exists, whatever it is)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _slow_cli(args, delay, slow)], cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the run ended (code {proc.returncode}) before it could be killed")
            if min_pos is None and state.exists():
                break
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


class LatentOnlyGenerator:
    """Mixin for toy generators in tests that define only ``embed`` (and maybe ``synthesis``): the
    rest of the adapter interface, refused. Put it before ``Generator`` in the bases."""

    @classmethod
    def accepts(cls, ck):
        return False

    @classmethod
    def from_checkpoint(cls, ck, entry=None):
        raise NotImplementedError

    def latent_readers(self, layers=None):
        return []

    def activation_names(self):
        return []

    def activation(self, latent, space, name):
        raise NotImplementedError


#: a predictor module (write it as ``p.py``) whose functions fail as users' predictors do: raise,
#: return text or NaN, or raise on the second (``late``) or third (``later``) call
FAILING_PREDICTORS = """
import torch
def raises(images):
    raise RuntimeError("model weights missing")
def text(images):
    return ["high"] * len(images)
def nans(images):
    return torch.full((len(images),), float("nan"))
def late(images, calls=[]):
    calls.append(1)
    if len(calls) == 2:
        raise ValueError("second batch")
    return images.mean((1, 2, 3))
def later(images, calls=[]):
    calls.append(1)
    if len(calls) == 3:
        raise ValueError("third batch")
    return images.mean((1, 2, 3))
"""
