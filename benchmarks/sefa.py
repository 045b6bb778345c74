"""`dirfind sefa` start to finish vs rosinality's ``closed_form_factorization.py``, beyond the torch import.

Both sides are whole processes, run in interleaved rounds with ``python -c "import torch"`` (the
interpreter plus torch, which every side pays) so that the import can be subtracted from both:

* **CFF**: rosinality's script if ``--cff PATH`` names a copy of it, else a stand-in that does
  what it does (``torch.load`` of the whole file, the conv modulation weights concatenated,
  ``torch.svd``, ``torch.save`` of the eigenvectors);
* **dirfind**: ``dirfind -q sefa --variant rosinality`` (the same weights and maths), with its
  fingerprint cache warm after the first round, as in a batch script of many ``sefa`` calls;
* **info**: ``dirfind -q info CKPT`` vs building the reference model (NVIDIA's
  ``training.networks.Generator`` of the same size, from ``--nvidia-ref``) when it is available.
* **NVIDIA pickle** (with ``--nvidia-ref``): a training snapshot of the same size written by NVIDIA's
  own code (``{G, D, G_ema, ...}``, persistent classes with their source embedded, ~0.4 GB), then
  ``dirfind sefa`` / ``info`` on it against a torch-only CFF equivalent that loads it with NVIDIA's
  ``legacy.load_network_pkl`` (G_ema's conv affines concatenated, ``torch.svd``).

The checkpoint is a rosinality-layout config-f 1024 generator (30 M parameters, ~120 MB) with
seeded random weights, written once to ``--workdir``. The directions are compared (|cos| of the
top ``--top``, the eigenvalues of a random matrix being well separated at the top). The last
line prints the ratio (dirfind beyond import / CFF beyond import) and the agreement.

  python benchmarks/sefa.py --quick                       # 3 rounds
  python benchmarks/sefa.py --rounds 7 --cff ~/stylegan2-pytorch/closed_form_factorization.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dirfind.generators.nets.stylegan2 import SG2Config, build  # noqa: E402

CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}

#: what closed_form_factorization.py does, for when no copy of it is given
CFF_STANDIN = """
import sys, torch
ckpt = torch.load(sys.argv[1])
mats = [v for k, v in ckpt["g_ema"].items() if "modulation" in k and "to_rgbs" not in k and "weight" in k]
eigvec = torch.svd(torch.cat(mats, 0)).V
torch.save({"ckpt": sys.argv[1], "eigvec": eigvec}, sys.argv[2])
"""


def make_checkpoint(path: Path, seed: int = 0) -> Path:
    """A rosinality config-f 1024 ``{"g_ema", "latent_avg"}`` file with seeded random weights."""
    if path.exists():
        return path
    cfg = SG2Config(layout="rosinality", resolution=1024, z_dim=512, w_dim=512, channels=CHANNELS,
                    mapping_dims=[512] * 9)  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in build(cfg).state_dict().items()}
    sd = {k: torch.randn(s, generator=gen).to(d) if d.is_floating_point else torch.zeros(s, dtype=d)
          for k, (s, d) in shapes.items()}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(512)}, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)
    return path


#: writes an NVIDIA training snapshot with NVIDIA's code (run with the reference clone on sys.path)
NVIDIA_SNAPSHOT = """
import copy, os, pickle, sys
import torch
from training.networks import Discriminator, Generator
torch.manual_seed(0)
kw = dict(c_dim=0, img_resolution=1024, img_channels=3)
arch = dict(channel_base=32768, channel_max=512)
G = Generator(z_dim=512, w_dim=512, mapping_kwargs={"num_layers": 8}, synthesis_kwargs=arch, **kw).eval()
D = Discriminator(**kw, **arch).eval()
snap = {"G": G, "D": D, "G_ema": copy.deepcopy(G), "augment_pipe": None, "training_set_kwargs": None}
with open(sys.argv[1] + ".tmp", "wb") as f:
    pickle.dump(snap, f)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
"""

#: CFF on an NVIDIA pickle in plain torch: NVIDIA's own loader, G_ema's affines as CFF selects them
#: (every conv's and the first, 4x4 to-RGB's: rosinality's ``to_rgb1``), the same SVD
NVIDIA_CFF = """
import sys
sys.path.insert(0, sys.argv[1])
import torch
import legacy
with open(sys.argv[2], "rb") as f:
    G = legacy.load_network_pkl(f)["G_ema"]
mods = G.synthesis.named_modules()
mats = [m.affine.weight for n, m in mods if hasattr(m, "affine") and ("torgb" not in n or n == "b4.torgb")]
torch.save({"eigvec": torch.svd(torch.cat(mats, 0).detach()).V}, sys.argv[3])
"""


def make_pickle(path: Path, ref: Path) -> Path:
    """An NVIDIA config-f 1024 training snapshot written by NVIDIA's code (seeded default init)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ref)}
        subprocess.run([sys.executable, "-c", NVIDIA_SNAPSHOT, str(path)], check=True, env=env)
    return path


def top_cos(bank: Path, factor: Path, top: int) -> float:
    """Smallest |cos| between a bank's top directions and a CFF factor file's (rows = directions)."""
    from dirfind.bank import DirectionBank

    theirs = torch.load(factor, weights_only=True)["eigvec"].double().numpy().T
    ours = DirectionBank.load(bank).directions.astype(np.float64)
    cos = np.abs(np.sum(ours[:top] * theirs[:top], axis=1) / np.linalg.norm(theirs[:top], axis=1))
    return float(cos.min())


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)[:200]}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="3 rounds")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/dirfind-bench-sefa"))
    p.add_argument("--cff", type=Path, help="a copy of rosinality's closed_form_factorization.py")
    p.add_argument("--nvidia-ref", type=Path, default=Path("/work/refs/sg2ada"),
                   help="a clone of NVlabs/stylegan2-ada-pytorch (for the info baseline)")  # fmt: skip
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    rounds = 3 if a.quick else a.rounds
    ckpt = make_checkpoint(a.workdir / "rosinality-config-f-1024.pt")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DIRFIND_CACHE": str(a.workdir / "cache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as users run it: modules compiled once (the warm-up), not every run
    py = sys.executable
    cff_out, bank = a.workdir / "factor.pt", a.workdir / "sefa.npz"
    cff = [py, str(a.cff), "--out", str(cff_out), str(ckpt)] if a.cff else [py, "-c", CFF_STANDIN, str(ckpt)]
    cff += [] if a.cff else [str(cff_out)]
    cmds = {
        "import torch": [py, "-c", "import torch"],
        # dirfind freezes its imports out of the cyclic GC (cli._freeze_imports), which also spares it
        # the ~0.3 s final collection over torch's objects at exit: this baseline shows its work alone
        "import torch + gc.freeze": [py, "-c", "import torch, gc; gc.freeze()"],
        "CFF": cff,
        "dirfind sefa": [
            py,
            "-m",
            "dirfind",
            "-q",
            "sefa",
            "--ckpt",
            str(ckpt),
            "--variant",
            "rosinality",
            "-o",
            str(bank),
            "--force",
        ],  # fmt: skip
        "dirfind info": [py, "-m", "dirfind", "-q", "info", str(ckpt)],
    }
    ref = a.nvidia_ref if (a.nvidia_ref / "training" / "networks.py").exists() else None
    if ref is not None:
        build_ref = (
            f"import sys; sys.path.insert(0, {str(ref)!r}); import torch; "
            "from training.networks import Generator; "
            "Generator(z_dim=512, w_dim=512, c_dim=0, img_resolution=1024, img_channels=3, "
            "mapping_kwargs={'num_layers': 8}, synthesis_kwargs={'channel_base': 32768, 'channel_max': 512})"
        )
        cmds["build reference model"] = [py, "-c", build_ref]
        pkl = make_pickle(a.workdir / "nvidia-config-f-1024.pkl", ref)
        pkl_out, pkl_bank = a.workdir / "factor-pkl.pt", a.workdir / "sefa-pkl.npz"
        cmds["CFF equivalent, pkl"] = [py, "-c", NVIDIA_CFF, str(ref), str(pkl), str(pkl_out)]
        cmds["dirfind sefa, pkl"] = [
            py, "-m", "dirfind", "-q", "sefa", "--ckpt", str(pkl), "--variant", "rosinality",
            "-o", str(pkl_bank), "--force",
        ]  # fmt: skip
        cmds["dirfind info, pkl"] = [py, "-m", "dirfind", "-q", "info", str(pkl)]
    for warm in [k for k in cmds if k.startswith("dirfind")]:  # warm-up: the fingerprint cache and compiled modules
        subprocess.run(cmds[warm], check=True, env=env, capture_output=True)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for r in range(rounds):
        names = list(cmds)
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order each round
            times[name].append(wall(cmds[name], env))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["import torch"]
    beyond = {k: v - base for k, v in med.items() if not k.startswith("import torch")}
    work = med["dirfind sefa"] - med["import torch + gc.freeze"]
    rows = zip(times["dirfind sefa"], times["CFF"], times["import torch"], strict=True)
    pairs = [(s - i) / (c - i) for s, c, i in rows]
    cpu = platform.processor() or platform.machine()
    result = {
        "machine": f"{cpu}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "rounds": rounds,
        "median_s": med,
        "beyond_import_s": beyond,
        "sefa_ratio": beyond["dirfind sefa"] / beyond["CFF"],
        "sefa_ratio_pairwise_median": statistics.median(pairs),
        "sefa_work_beyond_frozen_import_s": work,
        "sefa_work_ratio": work / beyond["CFF"],
        "min_abs_cos_top": top_cos(bank, cff_out, a.top),
    }
    if "build reference model" in beyond:
        result["info_ratio"] = beyond["dirfind info"] / beyond["build reference model"]
        result["pkl"] = {
            "sefa_ratio_vs_cff": beyond["dirfind sefa, pkl"] / beyond["CFF"],
            "sefa_ratio_vs_cff_equivalent_on_pkl": beyond["dirfind sefa, pkl"] / beyond["CFF equivalent, pkl"],
            "sefa_work_beyond_frozen_import_s": med["dirfind sefa, pkl"] - med["import torch + gc.freeze"],
            "info_ratio": beyond["dirfind info, pkl"] / beyond["build reference model"],
            "min_abs_cos_top": top_cos(pkl_bank, pkl_out, a.top),
        }
    print(json.dumps(result, indent=1), file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    info = f"; info / building the reference model x{result['info_ratio']:.2f}" if "info_ratio" in result else ""
    if "pkl" in result:
        q = result["pkl"]
        info += (
            f"; NVIDIA pkl: sefa x{q['sefa_ratio_vs_cff']:.2f} of CFF (x{q['sefa_ratio_vs_cff_equivalent_on_pkl']:.2f}"
            f" of its equivalent on the pkl), |cos| >= {q['min_abs_cos_top']:.6f}, info x{q['info_ratio']:.2f}"
        )
    print(
        f"sefa beyond the torch import: dirfind {beyond['dirfind sefa']:.2f}s vs CFF {beyond['CFF']:.2f}s = "
        f"x{result['sefa_ratio']:.2f} (pairwise median x{result['sefa_ratio_pairwise_median']:.2f}; its work "
        f"beyond an import with gc.freeze {work:.2f}s = x{result['sefa_work_ratio']:.2f}); "
        f"top-{a.top} |cos| >= {result['min_abs_cos_top']:.6f}{info}"
    )
    return result


if __name__ == "__main__":
    main()
