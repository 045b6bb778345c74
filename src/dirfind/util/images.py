"""Image arrays and files: NCHW [-1, 1] tensors to uint8 NHWC, PNGs written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .fileio import atomic_path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """NCHW float in [-1, 1] -> NHWC uint8 (clamped, rounded), on the CPU."""
    x = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(img: np.ndarray) -> Image.Image:
    """An HWC uint8 array (1 or 3 channels) as a PIL image."""
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def write_png(path: Path, img: np.ndarray) -> None:
    """Write one HWC uint8 image as PNG atomically (temp file + rename, the umask's mode),
    replacing an earlier file of the same name (a resumed run rewrites its last batch)."""
    with atomic_path(path, force=True, suffix=".png") as tmp:
        to_pil(img).save(tmp, format="PNG")
