"""Traversal throughput of a config-f-sized StyleGAN2 (random weights) at several batch sizes.

Times ``dirfind.render.traverse`` (edit latents, synthesise, convert to uint8; no file writing)
for one SeFa direction over ``--seeds`` samples x ``--steps`` steps, at each batch size, on the
current device. The baseline is batch size 1 (one image per generator call, the naive loop),
measured in the same run; every row prints images/s and the speed-up over it.

The model is the NVIDIA FFHQ-1024 architecture (``channel_base 32768``, ``channel_max 512``,
8 mapping layers, 30 M parameters, ``conv_clamp 256``) built from its init kwargs with random
weights (demodulation keeps activations at unit scale, so the cost is that of a real model).

  python benchmarks/traverse.py --quick                 # CPU-friendly: 128 px, batches 1 and 8, 8 images
  python benchmarks/traverse.py                         # 1024 px, batches 1/8/32, 64 images each
  python benchmarks/traverse.py --device cuda --dtype fp16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dirfind.generators.nets.stylegan2 import build  # noqa: E402
from dirfind.generators.nets.stylegan2_config import config_from_nvidia_kwargs  # noqa: E402
from dirfind.generators.stylegan2 import StyleGAN2Generator  # noqa: E402
from dirfind.methods.sefa import sefa  # noqa: E402
from dirfind.render import traverse  # noqa: E402
from dirfind.util import progress  # noqa: E402
from dirfind.util.device import resolve_device, resolve_dtype  # noqa: E402

FFHQ_KWARGS = {
    "z_dim": 512,
    "w_dim": 512,
    "c_dim": 0,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 8},
    "synthesis_kwargs": {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256},
}


def random_generator(
    resolution: int,
    device: torch.device,
    seed: int = 0,
    channel_base: int = 32768,
    channel_max: int = 512,
    w_dim: int = 512,
) -> StyleGAN2Generator:
    """The FFHQ architecture at ``resolution`` with seeded random weights, on ``device`` (smaller
    ``channel_base``/``channel_max``/``w_dim`` give a tiny model of the same structure)."""
    synth = {**FFHQ_KWARGS["synthesis_kwargs"], "channel_base": channel_base, "channel_max": channel_max}
    kw = {**FFHQ_KWARGS, "z_dim": w_dim, "w_dim": w_dim, "synthesis_kwargs": synth, "img_resolution": resolution}
    cfg = config_from_nvidia_kwargs(kw)
    gen = torch.Generator().manual_seed(seed)
    net = build(cfg)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("affine.bias"):
                p.fill_(1.0)
            elif name.endswith("noise_strength"):
                p.fill_(0.1)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=gen))
        for name, b in net.named_buffers():
            if name.endswith("noise_const"):
                b.copy_(torch.randn(b.shape, generator=gen))
    g = StyleGAN2Generator(net, cfg).eval().requires_grad_(False)
    return g.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_traverse(g, bank, seeds: list[int], steps: int, batch: int, repeats: int) -> float:
    """Best-of-``repeats`` seconds for one traversal (after a warm-up call)."""
    traverse(g, bank, [0], seeds=seeds[:1], steps=min(steps, batch), batch_size=batch)
    best = float("inf")
    for _ in range(repeats):
        _sync(g.device)
        t = time.perf_counter()
        traverse(g, bank, [0], seeds=seeds, steps=steps, batch_size=batch)
        _sync(g.device)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="128 px, batches 1 and 8, 8 images")
    ap.add_argument("--resolution", type=int, default=None, help="output size (default 1024, quick 256)")
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8,32; quick 1,8)")
    ap.add_argument("--images", type=int, default=None, help="images per traversal (default 64, quick 16)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--fused", default="auto", choices=["auto", "on", "off"], help="modulated-conv path")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per batch size (best of)")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    progress.configure(quiet=True)
    device = resolve_device(a.device)
    res = a.resolution or (128 if a.quick else 1024)
    batches = [int(b) for b in (a.batches or ("1,8" if a.quick else "1,8,32")).split(",")]
    n_img = a.images or (8 if a.quick else 64)
    repeats = a.repeats or (1 if a.quick or device.type == "cpu" else 3)
    steps = 8 if n_img % 8 == 0 else n_img
    seeds = list(range(max(1, n_img // steps)))

    g = random_generator(res, device)
    if a.dtype != "fp32":
        g.set_precision(resolve_dtype(a.dtype, device), channels_last=device.type == "cuda")
    g.fused_modconv = {"auto": None, "on": True, "off": False}[a.fused]
    bank = sefa(g, k=1)
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "resolution": res,
        "parameters": sum(p.numel() for p in g.parameters()),
        "dtype": a.dtype,
        "fused": a.fused,
        "images": len(seeds) * steps,
    }
    print(
        f"traverse throughput: StyleGAN2 {res}px ({info['parameters'] / 1e6:.1f} M params), {device} "
        f"{info['device_name']}, {a.dtype}, {info['images']} images per run, torch {torch.__version__}, "
        f"{info['threads']} threads",
        flush=True,
    )
    rows, base = [], None
    for b in batches:
        sec = time_traverse(g, bank, seeds, steps, b, repeats)
        ips = len(seeds) * steps / sec
        base = base or ips
        rows.append({"batch": b, "seconds": sec, "images_per_s": ips, "speedup_vs_batch1": ips / base})
        print(f"  batch {b:3d}: {ips:8.2f} images/s  ({sec:7.2f} s)  x{ips / base:5.2f} vs batch {batches[0]}")
    info["loadavg_after"] = os.getloadavg()
    out = {**info, "rows": rows, "baseline": f"batch {batches[0]} in the same run"}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
