"""Projection speed: seconds per image per 100 steps, dirfind's batched inversion vs a loop of
NVIDIA ``projector.py``'s shape, measured in the same run.

The baseline is written here (no NVIDIA code is copied): ``projector.py``'s loop as its paper and
code define it, one image at a time (batch 1): mean-w start, per-step learning-rate ramp, w noise,
synthesis with the const noise buffers set to trainable random maps, the distance, the noise
regulariser over each map's pyramid, Adam, and the maps' re-normalisation. dirfind runs the same
steps on the same images with ``--batch-size`` problems per call. Both use the same loss
(``--loss``; NVIDIA uses a VGG16 LPIPS TorchScript model from a URL, which dirfind does not fetch:
``vgg`` here is dirfind's VGG19 distance in both loops), the same generator and threads.

Generator: the NVIDIA FFHQ StyleGAN2 architecture at ``--resolution`` with seeded random weights
(as benchmarks/traverse.py), targets rendered from seeds 0.. of it.

  python benchmarks/project.py --quick                      # 64 px, 4 images, 20 steps, l2 and vgg
  python benchmarks/project.py --resolution 256 --images 8 --steps 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from traverse import random_generator  # noqa: E402

from dirfind.core.losses import ReconstructionLoss  # noqa: E402
from dirfind.methods.project import ProjectOptions, Targets, project  # noqa: E402
from dirfind.util import progress  # noqa: E402
from dirfind.util.device import resolve_device  # noqa: E402


def nvidia_loop(gen, target: torch.Tensor, loss: ReconstructionLoss, index: int, steps: int, seed: int = 0) -> float:
    """projector.py's loop for one image (batch 1); returns the final distance."""
    torch.manual_seed(seed)
    z = torch.from_numpy(np.random.RandomState(123).randn(10000, gen.z_dim).astype(np.float32))
    with torch.no_grad():
        w = torch.cat([gen.embed(c.to(gen.device), "w") for c in z.split(1024)])
    w_avg = w.mean(0, keepdim=True)
    w_std = float(((w - w_avg) ** 2).sum() / len(w)) ** 0.5
    w_opt = w_avg.clone().requires_grad_(True)
    bufs = [torch.randn(1, 1, *m.shape, device=gen.device).requires_grad_(True) for m in gen.noise_maps()]
    opt = torch.optim.Adam([w_opt, *bufs], betas=(0.9, 0.999), lr=0.1)
    idx = torch.tensor([index], device=gen.device)
    for step in range(steps):
        t = step / steps
        w_noise_scale = w_std * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
        lr_ramp = min(1.0, (1.0 - t) / 0.25)
        lr_ramp = 0.5 - 0.5 * math.cos(lr_ramp * math.pi)
        lr_ramp = lr_ramp * min(1.0, t / 0.05)
        for g in opt.param_groups:
            g["lr"] = 0.1 * lr_ramp
        ws = (w_opt + torch.randn_like(w_opt) * w_noise_scale)[:, None].repeat(1, gen.num_ws, 1)
        synth = gen.with_noise(bufs).synthesis(ws, "w+")
        dist = loss(synth, idx)[0].sum()
        reg = 0.0
        for v in bufs:
            n = v
            while True:
                reg += (n * torch.roll(n, shifts=1, dims=3)).mean() ** 2
                reg += (n * torch.roll(n, shifts=1, dims=2)).mean() ** 2
                if n.shape[2] <= 8:
                    break
                n = F.avg_pool2d(n, kernel_size=2)
        total = dist + reg * 1e5
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            for b in bufs:
                b -= b.mean()
                b *= b.square().mean().rsqrt()
    return float(dist.detach())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="64 px, 4 images, 20 steps")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None, help="dirfind problems per call (default: all images)")
    ap.add_argument("--losses", default="l2,vgg", help="comma-separated single loss terms to time")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    progress.configure(quiet=True)
    device = resolve_device(a.device)
    res = a.resolution or (64 if a.quick else 256)
    n = a.images or (4 if a.quick else 8)
    steps = a.steps or (20 if a.quick else 100)
    batch = a.batch_size or n
    gen = random_generator(res, device)
    with torch.no_grad():
        imgs = gen.synthesis(gen.z_from_seeds(list(range(n))).to(device), "z").clamp(-1, 1)
    targets = Targets(imgs.cpu().numpy(), None, [f"seed{i}" for i in range(n)], [str(i) for i in range(n)])
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "resolution": res,
        "images": n,
        "steps": steps,
        "batch": batch,
    }
    print(f"projection speed: StyleGAN2 {res}px random weights, {n} images x {steps} steps, {device}, "
          f"{info['threads']} threads, load {info['loadavg_before'][0]:.1f}", flush=True)  # fmt: skip
    rows = []
    for name in a.losses.split(","):
        terms = ((name, 1.0),)
        loss = ReconstructionLoss(terms, imgs)
        nvidia_loop(gen, imgs[:1], loss, 0, 2)  # warm-up (and the perceptual net's first load)
        t = time.perf_counter()
        ref = [nvidia_loop(gen, imgs[i : i + 1], loss, i, steps) for i in range(n)]
        base = (time.perf_counter() - t) / n / steps * 100
        t = time.perf_counter()
        out = project(gen, targets, ProjectOptions(space="w", steps=steps, loss=terms, batch_size=batch))
        ours = (time.perf_counter() - t) / n / steps * 100
        row = {
            "loss": name,
            "nvidia_loop_s_per_image_per_100_steps": base,
            "dirfind_s_per_image_per_100_steps": ours,
            "speedup": base / ours,
            "final_loss_nvidia_mean": float(np.mean(ref)),
            "final_loss_dirfind_mean": float(np.mean(out["loss"])),
        }
        rows.append(row)
        fl = f"{row['final_loss_nvidia_mean']:.4g} vs {row['final_loss_dirfind_mean']:.4g}"
        print(f"  {name:6s}: NVIDIA loop {base:8.2f} s, dirfind batch {batch} {ours:8.2f} s per image per 100 steps "
              f"(x{base / ours:.2f}); final loss {fl}", flush=True)  # fmt: skip
    info["loadavg_after"] = os.getloadavg()
    result = {**info, "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
