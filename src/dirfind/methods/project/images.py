"""Target images for projection: files, folders or globs of PNG/JPEG (any size and mode) fitted to a
generator's resolution and channel count, and optional masks.

Modes: grey (8/16-bit), RGB, palette, RGBA / LA (composited over white; with ``fit="pad"`` the padded
border is left out of the loss), EXIF orientation applied. ``crop`` centre-crops to a square, ``pad``
pads to one; then a Lanczos resize to the resolution. Every image is read before any work starts, so
a bad file stops the run at once (or is skipped with ``skip_bad``) and nothing computed is lost.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ...errors import BadInputError, NotFoundError
from ...util.fileio import sha256_file
from ...util.progress import warn

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
FITS = ("crop", "pad")


@dataclass
class Targets:
    """Fitted target images (M, C, R, R) float32 in [-1, 1], their masks (M, 1, R, R) in [0, 1] (None
    when every pixel counts), the files and their sha256, and the files that were skipped."""

    images: np.ndarray
    masks: np.ndarray | None
    paths: list[str]
    hashes: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)


def collect(specs: Sequence[str | Path]) -> list[Path]:
    """Image files named by ``specs``: files, folders (their image files, sorted) or glob patterns."""
    out: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES and f.is_file())
            if not found:
                raise NotFoundError(f"{p}: no image files ({', '.join(SUFFIXES)})", param="images")
            out += found
        elif p.exists():
            out.append(p)
        elif glob.has_magic(str(spec)):
            found = sorted(Path(f) for f in glob.glob(str(spec)) if Path(f).is_file())
            if not found:
                raise NotFoundError(f"no files match {spec}", param="images")
            out += found
        else:
            raise NotFoundError(f"image not found: {p}", param="images")
    if not out:
        raise BadInputError("no images given", param="images")
    return list(dict.fromkeys(out))


def _pixels(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) float RGB in [0, 1] and the alpha (H, W) in [0, 1] or None, for any PIL mode."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        g = arr / (65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0)
        return np.repeat(g[..., None], 3, axis=2), None
    if im.mode == "F":
        g = np.clip(np.asarray(im, dtype=np.float64), 0, 1)
        return np.repeat(g[..., None], 3, axis=2), None
    alpha = None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255
        alpha = rgba[..., 3]
        rgb = rgba[..., :3] * alpha[..., None] + (1 - alpha[..., None])  # over white
        return rgb, alpha
    return np.asarray(im.convert("RGB"), dtype=np.float64) / 255, alpha


def _fit(arr: np.ndarray, fit: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square ``arr`` (H, W, K) by centre crop or padding, resize to ``size``; returns it and the
    (size, size) map of real (not padded) pixels."""
    h, w = arr.shape[:2]
    valid = np.ones((h, w), np.float64)
    if fit == "crop":
        s = min(h, w)
        y, x = (h - s) // 2, (w - s) // 2
        arr, valid = arr[y : y + s, x : x + s], valid[y : y + s, x : x + s]
    else:
        s = max(h, w)
        y, x = (s - h) // 2, (s - w) // 2
        out = np.ones((s, s, arr.shape[2]), np.float64)
        out[y : y + h, x : x + w] = arr
        v = np.zeros((s, s), np.float64)
        v[y : y + h, x : x + w] = 1
        arr, valid = out, v
    return _resize(arr, size), _resize(valid[..., None], size)[..., 0]


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    if arr.shape[0] == size:
        return arr.astype(np.float32)
    chans = [Image.fromarray(arr[..., k].astype(np.float32), mode="F") for k in range(arr.shape[2])]
    res = [np.asarray(c.resize((size, size), Image.Resampling.LANCZOS)) for c in chans]
    return np.clip(np.stack(res, axis=2), 0, 1).astype(np.float32)


def read_image(path: str | Path, size: int, channels: int = 3, fit: str = "crop") -> tuple[np.ndarray, np.ndarray]:
    """One target: (channels, size, size) float32 in [-1, 1] and its (size, size) weight in [0, 1]
    (0 on padding and transparent pixels). A one-line error naming the file if it cannot be read."""
    if fit not in FITS:
        raise BadInputError(f"fit must be one of {', '.join(FITS)}, got {fit!r}", param="fit")
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            rgb, alpha = _pixels(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise BadInputError(
            f"{path}: not a readable image ({' '.join(str(e).split())[:100]})", param="images"
        ) from None
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise BadInputError(f"{path}: image of {rgb.shape[1]}x{rgb.shape[0]} px is too small", param="images")
    stack = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=2)
    fitted, valid = _fit(stack, fit, size)
    img = fitted[..., :3]
    weight = valid * (fitted[..., 3] if alpha is not None else 1)
    if channels == 1:
        img = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]  # ITU-R 601 luma, as PIL's L
    elif channels != 3:
        raise BadInputError(f"generators with {channels} channels cannot be fitted to photos", param="images")
    return (img.transpose(2, 0, 1) * 2 - 1).astype(np.float32), weight.astype(np.float32)


def read_mask(path: str | Path, size: int, fit: str = "crop") -> np.ndarray:
    """A mask image fitted like the targets: (size, size) in [0, 1] (grey level = weight)."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"mask not found: {path}", param="mask")
    try:
        with Image.open(path) as im:
            g = np.asarray(ImageOps.exif_transpose(im).convert("L"), dtype=np.float64) / 255
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadInputError(
            f"{path}: not a readable mask image ({' '.join(str(e).split())[:100]})", param="mask"
        ) from None
    m, valid = _fit(g[..., None], fit, size)
    m = m[..., 0] * valid
    if m.max() <= 0:
        raise BadInputError(f"{path}: the mask is empty (all zero)", param="mask")
    return m.astype(np.float32)


def read_targets(
    specs: Sequence[str | Path],
    size: int,
    channels: int = 3,
    fit: str = "crop",
    mask: str | Path | None = None,
    skip_bad: bool = False,
) -> Targets:
    """Every image of ``specs`` fitted to ``size`` (see :func:`read_image`), read before any work.

    A bad file is a one-line error naming it (and counting the others) unless ``skip_bad``, which
    warns and records it in :attr:`Targets.skipped` instead."""
    paths = collect(specs)
    imgs, weights, good, hashes, bad = [], [], [], [], []
    for p in paths:
        try:
            img, w = read_image(p, size, channels, fit)
        except BadInputError as e:
            bad.append({"path": str(p), "error": str(e)})
            continue
        imgs.append(img)
        weights.append(w)
        good.append(str(p))
        hashes.append(sha256_file(p))
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more bad file(s))" if len(bad) > 1 else ""
        raise BadInputError(f"{bad[0]['error']}{more}; nothing was computed; fix or remove it, or pass skip_bad=True",
                            param=("images", "skip_bad"))  # fmt: skip
    for b in bad:
        warn(f"warning: skipping {b['error']}")
    if not imgs:
        raise BadInputError("none of the images could be read", param="images")
    w = np.stack(weights)
    if mask is not None:
        w = w * read_mask(mask, size, fit)[None]
    if (w.reshape(len(w), -1).max(1) <= 0).any():
        raise BadInputError("an image has no pixel left to fit (mask and transparency cover it all)", param="mask")
    masks = None if np.all(w == 1) else w[:, None]
    return Targets(np.stack(imgs), masks, good, hashes, bad)
