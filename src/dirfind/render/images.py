"""Turning image tensors into files: grids (PNG/JPEG), looping GIFs, H.264 videos and numbered frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import BadInputError
from ..util.fileio import atomic_dir, atomic_path
from ..util.images import to_pil, to_uint8

GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4",)

__all__ = ["GRID_SUFFIXES", "grid", "output_kind", "to_uint8", "write_traversal"]


def grid(tiles: np.ndarray, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile an (rows, cols, H, W, C) uint8 array into one image with ``pad`` pixels between tiles."""
    rows, cols, h, w, c = tiles.shape
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), fill, np.uint8)
    for r in range(rows):
        for k in range(cols):
            out[r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = tiles[r, k]
    return out


def output_kind(out: str | Path) -> str:
    """``grid`` for image files, ``gif`` for .gif, ``video`` for .mp4, ``frames`` for a folder
    (trailing / or no suffix)."""
    s = str(out)
    suffix = Path(s).suffix.lower()
    if suffix == ".gif":
        return "gif"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in GRID_SUFFIXES:
        return "grid"
    if s.endswith(("/", "\\")) or suffix == "":
        return "frames"
    raise BadInputError(
        f"out {out}: use an image file (.png/.jpg), a .gif, an .mp4, or a folder ending in /", param="out"
    )


def write_traversal(
    tiles: np.ndarray, out: str | Path, force: bool = False, fps: float = 8.0, note: Any = None
) -> list[Path]:
    """Write an (rows, steps, H, W, C) traversal: a grid (rows x steps), a GIF or H.264 ``.mp4``
    whose frame s shows every row at step s and plays forth and back, or a folder of numbered PNG
    frames (same frames). ``note``: an :class:`~dirfind.render.annotate.Annotation` to write step
    values over the columns and names beside the rows."""
    kind = output_kind(out)
    path = Path(str(out).rstrip("/\\"))

    def layout(t: np.ndarray, cols: slice = slice(None)) -> np.ndarray:
        if note is None:
            return grid(t)
        from .annotate import Annotation, annotated_grid

        return annotated_grid(t, Annotation(note.columns[cols], note.rows, note.corner))

    if kind == "grid":
        with atomic_path(path, force=force) as tmp:
            to_pil(layout(tiles)).save(tmp, format=Image.registered_extensions()[path.suffix.lower()])
        return [path]
    frames = [layout(tiles[:, s : s + 1], slice(s, s + 1)) for s in range(tiles.shape[1])]
    if kind == "video":
        from .video import write_video

        return [write_video(frames + frames[-2:0:-1], path, fps=fps, force=force)]
    if kind == "gif":
        loop = frames + frames[-2:0:-1]  # ping-pong so the animation loops without a jump
        pil = [to_pil(f) for f in loop]
        with atomic_path(path, force=force) as tmp:
            pil[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=pil[1:],
                loop=0,
                duration=int(round(1000 / fps)),
                optimize=False,
            )
        return [path]
    written = []
    with atomic_dir(path, force=force) as tmp:
        for s, f in enumerate(frames):
            to_pil(f).save(tmp / f"{s:04d}.png")
            written.append(path / f"{s:04d}.png")
    return written
