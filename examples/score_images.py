"""Score a folder of PNGs (e.g. from ``dirfind sample --images DIR``) into a CSV for ``dirfind interfacegan``.

Stands in for any external labeller (a classifier, human ratings): one row per image, the file name
first, then one column per attribute. Here the attributes are the model-free statistics of
``examples/predictors.py``.

    python examples/score_images.py faces/ scores.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predictors import face_attributes  # noqa: E402


def main(folder: str, out: str, batch: int = 256) -> None:
    files = sorted(Path(folder).glob("*.png"))
    if not files:
        sys.exit(f"score_images: no .png files in {folder}")
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "luminance", "asymmetry"])
        for i in range(0, len(files), batch):
            chunk = files[i : i + batch]
            arr = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in chunk])
            images = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1  # NCHW in [-1, 1]
            scores = face_attributes(images)
            for p, lum, asym in zip(chunk, scores["luminance"].tolist(), scores["asymmetry"].tolist(), strict=True):
                writer.writerow([p.name, f"{lum:.6f}", f"{asym:.6f}"])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python examples/score_images.py IMAGE_DIR OUT.csv")
    main(sys.argv[1], sys.argv[2])
