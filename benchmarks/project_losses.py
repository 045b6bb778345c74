"""Which reconstruction loss projects best: a held-out comparison on the real DCGAN (docs/projection.md).

Held-out set: images the DCGAN made from seeds 1000.. (never used to choose anything else), saved as
8-bit PNGs and read back, plus scikit-image's astronaut photo (a real face). Each loss in
``--losses`` projects them with the same options (``--steps``, ``--restarts``, seed 0); the metrics of
the final reconstructions are PSNR and SSIM against the targets and an independent perceptual
distance (LPIPS-style SqueezeNet, ``lpips``, which no candidate optimises unless listed).

  python benchmarks/project_losses.py --n 8 --steps 150 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dirfind import load_generator  # noqa: E402
from dirfind.core.losses import ReconstructionLoss  # noqa: E402
from dirfind.methods.project import ProjectOptions, project, read_targets  # noqa: E402
from dirfind.util import progress  # noqa: E402
from dirfind.util.images import to_uint8, write_png  # noqa: E402


def parse_loss(text: str) -> tuple[tuple[str, float], ...]:
    return tuple((p.split(":")[0], float(p.split(":")[1]) if ":" in p else 1.0) for p in text.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="generated held-out images (seeds 1000..)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--restarts", type=int, default=1)
    ap.add_argument("--losses", default="l2;vgg;vgg:1,l2:1;msssim:1,l2:1", help="';'-separated loss specs")
    ap.add_argument("--no-photo", action="store_true", help="leave out the astronaut photo")
    ap.add_argument("--json", default=None)
    ap.add_argument("--dir", default="/tmp/dirfind-project-losses")
    args = ap.parse_args()
    progress.configure(quiet=True)
    gen = load_generator("dcgan-digiface")
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        imgs = to_uint8(gen.synthesis(gen.z_from_seeds(range(1000, 1000 + args.n)), "z"))
    files = []
    for i, img in enumerate(imgs):
        write_png(folder / f"seed{1000 + i}.png", img)
        files.append(folder / f"seed{1000 + i}.png")
    if not args.no_photo:
        import skimage.data
        from PIL import Image

        Image.fromarray(skimage.data.astronaut()).save(folder / "astronaut.png")
        files.append(folder / "astronaut.png")
    targets = read_targets(files, gen.resolution, gen.channels)
    judge = ReconstructionLoss((("lpips", 1.0),), torch.from_numpy(targets.images))
    rows = []
    for spec in args.losses.split(";"):
        t0 = time.perf_counter()
        r = project(gen, targets, ProjectOptions(steps=args.steps, restarts=args.restarts, loss=parse_loss(spec)))
        secs = time.perf_counter() - t0
        rec = torch.from_numpy(r["reconstructions"]).permute(0, 3, 1, 2).float() / 127.5 - 1
        lp = judge(rec, torch.arange(len(rec)))[0].numpy()
        gen_rows = slice(0, args.n)
        row = {
            "loss": spec,
            "seconds": round(secs, 1),
            "psnr_generated": float(r["psnr"][gen_rows].mean()),
            "ssim_generated": float(r["ssim"][gen_rows].mean()),
            "lpips_generated": float(lp[gen_rows].mean()),
            "psnr_photo": None if args.no_photo else float(r["psnr"][-1]),
            "ssim_photo": None if args.no_photo else float(r["ssim"][-1]),
            "lpips_photo": None if args.no_photo else float(lp[-1]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {
        "hardware": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "n_generated": args.n,
        "steps": args.steps,
        "restarts": args.restarts,
        "results": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
