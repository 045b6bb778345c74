"""Self-explaining grids: step values over the columns and direction names beside the rows
(drawn with PIL's bundled default font; no font files are fetched)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .images import grid


@dataclass(frozen=True)
class Annotation:
    """Text around a (rows, cols) grid: one label per column and per row, and a corner caption."""

    columns: tuple[str, ...]
    rows: tuple[str, ...]
    corner: str = ""


def step_labels(alphas: Sequence[float]) -> tuple[str, ...]:
    """Column labels for steps: ``-3``, ``-1.5``, ``0``, ``+1.5``, ``+3``."""
    return tuple("0" if a == 0 else f"{a:+.3g}" for a in alphas)


def annotated_grid(tiles: np.ndarray, note: Annotation, pad: int = 2) -> np.ndarray:
    """Tile (rows, cols, H, W, C) uint8 images like :func:`~dirfind.render.images.grid` and write
    the column labels above and the row labels to the left; returns an RGB image."""
    rows, cols, h, w, _ = tiles.shape
    body = grid(tiles, pad=pad)
    if body.shape[-1] == 1:
        body = np.repeat(body, 3, axis=-1)
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size(text: str) -> tuple[int, int]:
        x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font)
        return x1 - x0, y1 - y0

    texts = [*note.columns, *note.rows, note.corner]
    line = max(size(t)[1] for t in texts) if any(texts) else 0
    left = max([size(t)[0] for t in (*note.rows, note.corner)] + [0]) + 8
    top = line + 8
    canvas = Image.new("RGB", (left + body.shape[1], top + body.shape[0]), "white")
    canvas.paste(Image.fromarray(body), (left, top))
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(note.columns[:cols]):
        tw, _ = size(text)
        x = left + c * (w + pad) + (w - tw) // 2
        draw.text((x, 3), text, fill="black", font=font)
    for r, text in enumerate(note.rows[:rows]):
        _, th = size(text)
        draw.text((4, top + r * (h + pad) + (h - th) // 2), text, fill="black", font=font)
    if note.corner:
        draw.text((4, 3), note.corner, fill="dimgray", font=font)
    return np.asarray(canvas)
