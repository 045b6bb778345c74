"""Turning image tensors into files: grids (PNG/JPEG), looping GIFs, H.264 videos and numbered frames."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import BadInputError
from ..util.fileio import atomic_dir, atomic_path, check_writable
from ..util.images import to_pil, to_uint8

GRID_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4",)

__all__ = ["GRID_SUFFIXES", "grid", "output_kind", "to_uint8", "traversal_sink", "write_traversal"]


#: pixels between the tiles of a grid
PAD = 2


def grid(tiles: np.ndarray, pad: int = PAD, fill: int = 255) -> np.ndarray:
    """Tile an (rows, cols, H, W, C) uint8 array into one image with ``pad`` pixels between tiles."""
    rows, cols, h, w, c = tiles.shape
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), fill, np.uint8)
    for r in range(rows):
        for k in range(cols):
            out[r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = tiles[r, k]
    return out


def output_kind(out: str | Path, param: str = "out") -> str:
    """``grid`` for image files, ``gif`` for .gif, ``video`` for .mp4, ``frames`` for a folder
    (trailing / or no suffix); ``param`` names the option in the error for anything else."""
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
        f"{param} {out}: use an image file (.png/.jpg), a .gif, an .mp4, or a folder ending in /", param=param
    )


def check_traversal_out(out: str | Path, force: bool = False, param: str = "out") -> str:
    """Before anything is rendered: ``out``'s kind (:func:`output_kind`), the video extra for .mp4,
    and that it can be written (:func:`~dirfind.util.fileio.check_writable`); returns the kind."""
    kind = output_kind(out, param)
    if kind == "video":
        from .video import check_video

        check_video()
    check_writable(str(out).rstrip("/\\"), force, directory=kind == "frames")
    return kind


#: Largest image (or GIF frame set) a traversal holds in memory to encode; larger requests are
#: refused before anything is rendered (frames/ stream to disk one frame at a time).
MAX_IMAGE_BYTES = 2**31
#: Most steps (frames) one traversal renders.
MAX_STEPS = 100_000
#: Widths/heights the encoders can store (libjpeg, libwebp and GIF limits; PNG allows 2**31 - 1).
MAX_SIDE = {".jpg": 65_500, ".jpeg": 65_500, ".webp": 16_383, ".gif": 65_535}


def grid_shape(rows: int, cols: int, tile: tuple[int, int, int], pad: int = PAD) -> tuple[int, int, int]:
    """(height, width, channels) of a rows x cols grid of (H, W, C) tiles."""
    h, w, c = tile
    return rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c


def check_traversal_size(out: str | Path | None, rows: int, steps: int, tile: tuple[int, int, int]) -> None:
    """Refuse (one line) a traversal that cannot be encoded or held in memory, before rendering:
    the grid (or one frame of frames/) over :data:`MAX_IMAGE_BYTES`, a GIF whose frames together
    are, a side over the format's limit, or more than :data:`MAX_STEPS` steps."""
    kind = "images" if out is None else output_kind(out)
    if rows < 1:
        raise BadInputError("nothing to render: no seeds or latents", param=("seeds", "latents"))
    if steps > MAX_STEPS:
        raise BadInputError(f"steps must be at most {MAX_STEPS}, got {steps}", param="steps")
    h, w, c = grid_shape(rows, 1 if kind == "frames" else steps, tile)
    held = h * w * c * (3 if kind in ("gif", "video") else 1)  # an animation also keeps every frame (and a copy)
    side = MAX_SIDE.get(Path(str(out)).suffix.lower(), 2**31 - 1) if kind in ("grid", "gif") else 2**31 - 1
    what = {"frames": "one frame", "gif": "the GIF", "video": "the video"}.get(kind, "the grid")
    if held > MAX_IMAGE_BYTES or max(h, w) > side:
        raise BadInputError(
            f"{rows} rows x {steps} steps is too large to render: {what} would be {w}x{h} px "
            f"({held / 2**30:.1f} GiB, limit {MAX_IMAGE_BYTES / 2**30:g} GiB; side limit {side} px); "
            "use fewer seeds, directions or steps",
            param=("seeds", "steps"),
        )


class TraversalSink:
    """Receives a traversal one step (column) at a time: pasted into a grid canvas (grids, GIFs,
    in-memory results) or written as the next numbered frame (frames/), so neither the float
    images nor a second copy of the tiles are ever held."""

    def __init__(self, kind: str, rows: int, steps: int, tile: tuple[int, int, int], folder: Path | None = None):
        self.kind, self.rows, self.steps, self.tile = kind, rows, steps, tile
        self.folder = folder
        self.names = [f"{s:0{max(4, len(str(steps - 1)))}d}.png" for s in range(steps)]
        self.canvas = None if kind == "frames" else np.full(grid_shape(rows, steps, tile), 255, np.uint8)

    def put(self, step: int, column: np.ndarray) -> None:
        """Step ``step``: the (rows, H, W, C) tiles of every row."""
        if self.canvas is None:
            to_pil(grid(column[:, None])).save(self.folder / self.names[step], format="PNG")
            return
        h, w, _ = self.tile
        for r in range(self.rows):
            self.canvas[r * (h + PAD) : r * (h + PAD) + h, step * (w + PAD) : step * (w + PAD) + w] = column[r]

    @property
    def tiles(self) -> np.ndarray | None:
        """The (rows, steps, H, W, C) tiles as a view of the canvas (None for frames/)."""
        if self.canvas is None:
            return None
        h, w, c = self.tile
        sy, sx, sc = self.canvas.strides
        shape, strides = (self.rows, self.steps, h, w, c), ((h + PAD) * sy, (w + PAD) * sx, sy, sx, sc)
        return np.lib.stride_tricks.as_strided(self.canvas, shape, strides, writeable=False)

    def frame(self, step: int) -> np.ndarray:
        """The image of step ``step`` (every row at that step), from the canvas."""
        w = self.tile[1]
        return self.canvas[:, step * (w + PAD) : step * (w + PAD) + w]


@contextlib.contextmanager
def traversal_sink(
    out: str | Path | None,
    rows: int,
    steps: int,
    tile: tuple[int, int, int],
    *,
    force: bool = False,
    fps: float = 8.0,
    note: Any = None,
) -> Iterator[TraversalSink]:
    """A :class:`TraversalSink` whose result is written atomically to ``out`` when the block ends
    (a grid, a GIF or H.264 ``.mp4`` whose frame s shows every row at step s and plays forth and
    back, or a folder of numbered PNG frames; ``None``: kept in memory only). ``note``: an
    :class:`~dirfind.render.annotate.Annotation` (step values over the columns, names beside the
    rows). Plain frames/ stream to disk; the rest is encoded from the grid at the end.
    ``sink.files`` lists what was written."""
    check_traversal_size(out, rows, steps, tile)
    kind = "images" if out is None else output_kind(out)
    path = None if out is None else Path(str(out).rstrip("/\\"))
    if kind == "frames" and note is None:
        with atomic_dir(path, force=force) as tmp:
            sink = TraversalSink(kind, rows, steps, tile, folder=tmp)
            yield sink
        sink.files = [path / n for n in sink.names]
        return
    sink = TraversalSink("images" if kind == "frames" else kind, rows, steps, tile)
    yield sink
    sink.files = [] if path is None else _encode(sink, path, kind, fps=fps, force=force, note=note)


def _encode(sink: TraversalSink, path: Path, kind: str, *, fps: float, force: bool, note: Any) -> list[Path]:
    """Write a filled sink's grid, animation or annotated frames to ``path``."""

    def image(cols: slice) -> np.ndarray:
        if note is None:
            return sink.canvas if cols == slice(None) else sink.frame(cols.start)
        from .annotate import Annotation, annotated_grid

        return annotated_grid(sink.tiles[:, cols], Annotation(note.columns[cols], note.rows, note.corner))

    if kind == "grid":
        with atomic_path(path, force=force) as tmp:
            to_pil(image(slice(None))).save(tmp, format=Image.registered_extensions()[path.suffix.lower()])
        return [path]
    frames = [image(slice(s, s + 1)) for s in range(sink.steps)]
    if kind == "video":
        from .video import write_video

        return [write_video(frames + frames[-2:0:-1], path, fps=fps, force=force)]
    if kind == "gif":
        loop = [to_pil(f) for f in frames + frames[-2:0:-1]]  # ping-pong: the animation loops without a jump
        with atomic_path(path, force=force) as tmp:
            loop[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=loop[1:],
                loop=0,
                duration=int(round(1000 / fps)),
                optimize=False,
            )
        return [path]
    with atomic_dir(path, force=force) as tmp:  # annotated frames/
        for name, f in zip(sink.names, frames, strict=True):
            to_pil(f).save(tmp / name, format="PNG")
    return [path / n for n in sink.names]


def write_traversal(
    tiles: np.ndarray, out: str | Path, force: bool = False, fps: float = 8.0, note: Any = None
) -> list[Path]:
    """Write an in-memory (rows, steps, H, W, C) traversal to ``out`` (see :func:`traversal_sink`)."""
    rows, steps = tiles.shape[:2]
    with traversal_sink(out, rows, steps, tuple(tiles.shape[2:]), force=force, fps=fps, note=note) as sink:
        for s in range(steps):
            sink.put(s, tiles[:, s])
    return sink.files
