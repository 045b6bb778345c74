"""H.264 video of traversal frames through the ffmpeg binary that ``imageio-ffmpeg`` ships
(``pip install 'dirfind[video]'``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import OutputError, UnsupportedError
from ..util.fileio import atomic_path


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UnsupportedError(
            "writing .mp4 needs the optional extra: pip install 'dirfind[video]' (imageio-ffmpeg)"
        ) from None
    return imageio_ffmpeg


def check_video() -> None:
    """Fail early (one line) when the video extra is missing."""
    _ffmpeg()


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float = 8.0, force: bool = False) -> Path:
    """Write HWC uint8 RGB frames as an H.264 (yuv420p) ``.mp4``, atomically; frames are padded
    with white to even sizes (yuv420p needs them)."""
    ff = _ffmpeg()
    path = Path(path)
    h, w = frames[0].shape[:2]
    hh, ww = h + h % 2, w + w % 2
    with atomic_path(path, force=force, suffix=".mp4") as tmp:
        writer = ff.write_frames(
            str(tmp), (ww, hh), fps=fps, codec="libx264", pix_fmt_out="yuv420p", macro_block_size=1, quality=8
        )
        try:
            writer.send(None)
            for f in frames:
                f = np.repeat(f, 3, axis=-1) if f.shape[-1] == 1 else f[..., :3]
                canvas = np.full((hh, ww, 3), 255, np.uint8)
                canvas[:h, :w] = f
                writer.send(np.ascontiguousarray(canvas))
            writer.close()
        except (OSError, RuntimeError) as e:
            raise OutputError(f"cannot write {path}: ffmpeg failed ({' '.join(str(e).split())[:120]})") from None
    return path
