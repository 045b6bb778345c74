"""Rendering throughput: dirfind vs NVIDIA's reference code, StyleGAN2 and StyleGAN3-T, same weights.

For each family the script builds NVIDIA's own ``Generator`` (``--sg2-ref``: stylegan2-ada-pytorch,
``--sg3-ref``: stylegan3; run beside the project, never copied into it) with seeded random weights,
loads the same state dict into dirfind's adapter and times the synthesis of the same w+ latents:
``G.synthesis(ws, noise_mode="const", force_fp32=True)`` (the reference's eval path: fused
modulated convolution in float32, its pure-PyTorch ops on a CPU) against dirfind's
``gen.synthesis(ws, "w+")`` (the one path ``traverse``, ``sample --images``, ``evaluate`` and
``project`` render through; the modulated-conv formulation by the fixed rule, or with
``--autotune`` measured per layer on first use, ``DIRFIND_AUTOTUNE=1``). Batch 1
(``--images1`` images, one call each) and batch 32 (one call), both sides interleaved in the same
rounds, best of ``--repeats`` after one warm-up call (dirfind's warm-up includes its one-time
measurement; printed). Prints images/s, the max abs difference of the outputs, and as its last
line the ratios: dirfind batch 32 / NVIDIA batch 32 and dirfind batch 32 / dirfind batch 1.

  python benchmarks/render.py --quick   # 256 px, narrow (SG2 channel_base/max 2048/256, SG3 512/64), 1 round
  python benchmarks/render.py           # 256 px, channel_base 16384, channel_max 512 (paper256 / ffhqu-256)

The quick sizes keep every layer and resolution of the 256 px networks but far fewer channels; on a
quiet 2-core CPU they take a few minutes, the full sizes much longer (StyleGAN3 materialises its 4x
upsampled activations).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dirfind.generators.nets import measured  # noqa: E402
from dirfind.generators.nets.stylegan2 import build as build_sg2  # noqa: E402
from dirfind.generators.nets.stylegan2_config import config_from_nvidia_kwargs  # noqa: E402
from dirfind.generators.nets.stylegan3 import build as build_sg3  # noqa: E402
from dirfind.generators.nets.stylegan3_config import config_from_state_dict  # noqa: E402
from dirfind.generators.stylegan2 import StyleGAN2Generator  # noqa: E402
from dirfind.generators.stylegan3 import StyleGAN3Generator  # noqa: E402

REF_PACKAGES = ("dnnlib", "torch_utils", "training", "legacy")


@contextlib.contextmanager
def reference_code(root: str):
    """Import NVIDIA's packages from ``root`` (both clones name them alike: purge them after)."""
    sys.path.insert(0, root)
    if "pkg_resources" not in sys.modules:  # stylegan3's torch_utils imports it; new setuptools drop it
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            import types

            from packaging.version import parse

            sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)
    try:
        yield
    finally:
        sys.path.remove(root)
        for name in list(sys.modules):
            if name.split(".")[0] in REF_PACKAGES:
                del sys.modules[name]


def _randomise(net: torch.nn.Module, seed: int) -> None:
    """Seeded weights on top of the reference's init: nonzero noise strengths and biases, so every
    term of the synthesis is exercised, and StyleGAN2 to-RGB weights scaled down so the images stay
    near a trained model's range (the 1e-4 agreement is then not a relative 4e-6)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
            elif name.endswith("bias") and not name.endswith("affine.bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif ".torgb." in name and name.endswith("weight") and "affine" not in name:
                p.mul_(0.25)  # images in about a trained model's range, not +-20
        for name, b in net.named_buffers():
            if name.endswith("noise_const"):
                b.copy_(torch.randn(b.shape, generator=gen))


#: (channel_base, channel_max) per family for --quick; the full run uses (16384, 512) for both
QUICK_SIZES = {"sg2": (2048, 256), "sg3": (512, 64)}


def sizes(family: str, a: argparse.Namespace) -> tuple[int, int]:
    """(channel_base, channel_max) of ``family`` in this run."""
    return a.channel_base or QUICK_SIZES[family][0], a.channel_max or QUICK_SIZES[family][1]


def make_pair(family: str, res: int, a: argparse.Namespace) -> tuple:
    """(NVIDIA generator, dirfind adapter, kwargs) with identical weights."""
    cbase, cmax = sizes(family, a)
    torch.manual_seed(a.seed)
    if family == "sg2":
        kw = {
            "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": res, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 8},
            "synthesis_kwargs": {
                "channel_base": cbase, "channel_max": cmax, "num_fp16_res": 4, "conv_clamp": 256,
            },
        }  # fmt: skip
        with reference_code(a.sg2_ref):
            from training.networks import Generator

            ref = Generator(**kw)
        net = build_sg2(config_from_nvidia_kwargs(kw))
        _randomise(ref, a.seed)
        net.load_state_dict(ref.state_dict())
        ours = StyleGAN2Generator(net, net.cfg)
    else:
        kw = {
            "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": res, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2}, "channel_base": cbase, "channel_max": cmax,
            "conv_kernel": 3, "use_radial_filters": False,
        }  # fmt: skip
        with reference_code(a.sg3_ref):
            from training.networks_stylegan3 import Generator

            ref = Generator(**kw)
        _randomise(ref, a.seed)
        sd = ref.state_dict()
        cfg = config_from_state_dict(sd, kw)
        net = build_sg3(cfg)
        net.load_state_dict(sd)
        ours = StyleGAN3Generator(net, cfg)
    return ref.eval().requires_grad_(False), ours.eval().requires_grad_(False), kw


def _timed(fn, ws: torch.Tensor) -> tuple[float, torch.Tensor]:
    t = time.perf_counter()
    out = fn(ws)
    return time.perf_counter() - t, out


def bench_family(family: str, a: argparse.Namespace, log) -> dict:
    ref, ours, kw = make_pair(family, a.resolution, a)
    params = sum(p.numel() for p in ours.parameters())
    gen = torch.Generator().manual_seed(a.seed + 1)
    with torch.no_grad():
        ws = ref.mapping(torch.randn(a.batch, 512, generator=gen), None)
        sides = {
            "nvidia": lambda w: ref.synthesis(w, noise_mode="const", force_fp32=True),
            "dirfind": lambda w: ours.synthesis(w, "w+"),
        }
        measured.forget()
        first, best, out = {}, {}, {}
        nb = {"nvidia": a.ref_batch, "dirfind": a.batch}  # NVIDIA's batch may be smaller (memory)
        for name, fn in sides.items():  # warm-up (dirfind: includes its one-time measurement)
            first[(name, 1)], out[(name, 1)] = _timed(fn, ws[:1])
            first[(name, nb[name])], out[(name, nb[name])] = _timed(fn, ws[: nb[name]])
        for r in range(a.repeats):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name in order:
                fn = sides[name]
                sec = sum(_timed(fn, ws[i : i + 1])[0] for i in range(a.images1))
                best[(name, 1)] = min(best.get((name, 1), float("inf")), sec / a.images1)
                sec, o = _timed(fn, ws[: nb[name]])
                best[(name, nb[name])] = min(best.get((name, nb[name]), float("inf")), sec / nb[name])
                out[(name, nb[name])] = o
            log(f"  {family} round {r + 1}/{a.repeats} done")
    m = min(a.batch, a.ref_batch)
    diff = (out[("dirfind", a.batch)][:m] - out[("nvidia", a.ref_batch)][:m]).abs().max().item()
    diff1 = (out[("dirfind", 1)] - out[("nvidia", 1)]).abs().max().item()
    rows = {f"{n}_b{b}": 1 / s for (n, b), s in best.items()}
    picks = measured.choices()
    modconv = {k: v for k, v in picks.items() if k[3][0] == a.batch and k[5] in ("sg2", "sg3")}
    n_fused, n_all = sum(1 for v in modconv.values() if v == 0), len(modconv)
    return {
        "family": family, "channels": sizes(family, a), "parameters": params, "images_per_s": rows,
        "warmup_s": {f"{n}_b{b}": s for (n, b), s in first.items()},
        "max_abs_diff": max(diff, diff1), "output_absmax": out[("nvidia", a.ref_batch)].abs().max().item(),
        "fused_layers_at_batch": f"{n_fused}/{n_all}",
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="narrow channels (QUICK_SIZES), 1 round, 2 batch-1 images")
    ap.add_argument("--families", default="sg2,sg3", help="comma-separated: sg2 (StyleGAN2), sg3 (StyleGAN3-T)")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--channel-base", type=int, default=None, help="default 16384 (quick: QUICK_SIZES)")
    ap.add_argument("--channel-max", type=int, default=None, help="default 512 (quick: QUICK_SIZES)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--ref-batch", type=int, default=None,
        help="NVIDIA's batch (default --batch; smaller where its batch does not fit in memory: say so)",
    )  # fmt: skip
    ap.add_argument("--images1", type=int, default=None, help="images timed one by one at batch 1 (default 8, quick 2)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved rounds, best of (default 3, quick 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--autotune", action="store_true", help="dirfind measures its formulations (DIRFIND_AUTOTUNE=1)")
    ap.add_argument("--sg2-ref", default="/work/refs/sg2ada", help="a clone of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--sg3-ref", default="/work/refs/sg3", help="a clone of NVlabs/stylegan3")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    if a.autotune:
        os.environ[measured.AUTOTUNE_ENV] = "1"
    if not a.quick:
        a.channel_base, a.channel_max = a.channel_base or 16384, a.channel_max or 512
    a.images1 = a.images1 or (2 if a.quick else 8)
    a.ref_batch = a.ref_batch or a.batch
    a.repeats = a.repeats or (1 if a.quick else 3)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    info = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "loadavg_before": os.getloadavg(),
        "resolution": a.resolution, "batch": a.batch, "ref_batch": a.ref_batch, "repeats": a.repeats,
        "images1": a.images1,
    }  # fmt: skip
    print(
        f"render throughput, {a.resolution} px, CPU ({info['machine']}), torch {torch.__version__}, "
        f"{info['threads']} threads, load {info['loadavg_before'][0]:.1f}",
        flush=True,
    )
    results, ratios = [], []
    for fam in a.families.split(","):
        r = bench_family(fam, a, log)
        ips, b, rb = r["images_per_s"], a.batch, a.ref_batch
        label = {"sg2": "StyleGAN2", "sg3": "StyleGAN3-T"}[fam]
        cbase, cmax = sizes(fam, a)
        print(
            f"{label} (channel_base {cbase}, channel_max {cmax}, {r['parameters'] / 1e6:.1f} M params), "
            f"images/s (best of {a.repeats}):"
        )
        for side, sb in (("nvidia", rb), ("dirfind", b)):
            print(f"  {side:8s} batch 1: {ips[f'{side}_b1']:7.2f}   batch {sb}: {ips[f'{side}_b{sb}']:7.2f}")
        print(
            f"  dirfind warm-up at batch {b} (measures both formulations): {r['warmup_s'][f'dirfind_b{b}']:.1f} s, "
            f"fused layers chosen at batch {b}: {r['fused_layers_at_batch']}; max abs diff {r['max_abs_diff']:.2e} "
            f"(outputs up to {r['output_absmax']:.2f})",
            flush=True,
        )
        results.append(r)
        ratios.append(
            f"{label} dirfind b{b}/NVIDIA b{rb} x{ips[f'dirfind_b{b}'] / ips[f'nvidia_b{rb}']:.2f}, "
            f"dirfind b{b}/b1 x{ips[f'dirfind_b{b}'] / ips['dirfind_b1']:.2f}, max|diff| {r['max_abs_diff']:.1e}"
        )
    info["loadavg_after"] = os.getloadavg()
    out = {**info, "results": results}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, default=str))
    print("ratio: " + "; ".join(ratios))
    return out


if __name__ == "__main__":
    main()
