"""``dirfind sample``: write latents (and images named by index) for external labelling.

Output ``.npz`` (loads with ``numpy.load(path, allow_pickle=False)``):

* ``indices`` (M,) int64 — global sample indices (``start .. stop-1`` of the shard);
* ``z`` (M, z_dim) float32 — the prior samples (see :mod:`dirfind.sampling` for the recipe);
* ``latents`` (M, *shape) float32 — the same samples in the requested space (= z for ``z``);
* ``meta`` — JSON: format, space, seed, n, range, generator identity and render settings.

While running, rows stream into memory-mapped ``.npy`` files in ``<out>.progress/``; the ``.npz``
is assembled at the end (streamed, memory stays bounded) and renamed into place atomically.
Images go to ``DIR/<index>.png`` (zero-padded), each written atomically, so a resumed run
rewrites at most the batch that was interrupted.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap
from PIL import Image

from . import __version__
from .bank import generator_identity
from .errors import BadInputError, MismatchError, OutputError
from .fileio import atomic_path, check_writable
from .generators.base import Generator
from .jobs import Job, progress_dir
from .render.images import to_uint8
from .sampling import Batch, SampleStream, reduce_stream

FORMAT = "dirfind.samples"
FORMAT_VERSION = 1


def image_name(index: int, n: int) -> str:
    """File name of sample ``index`` of ``n``: zero-padded to at least 6 digits."""
    return f"{index:0{max(6, len(str(n - 1)))}d}.png"


class SampleWriter:
    """Reducer that stores each batch's z and latents in memory-mapped arrays and renders PNGs."""

    def __init__(self, stream: SampleStream, folder: Path, images: Path | None = None, resume: bool = False):
        self.stream = stream
        self.images = images
        m = len(stream)
        mode = "r+" if resume and (folder / "z.npy").exists() else "w+"
        self.z = open_memmap(folder / "z.npy", mode=mode, dtype=np.float32, shape=(m, stream.gen.z_dim))
        self.latents = open_memmap(
            folder / "latents.npy", mode=mode, dtype=np.float32, shape=(m, *stream.feature_shape)
        )
        if self.z.shape != (m, stream.gen.z_dim) or self.latents.shape[0] != m:
            raise BadInputError(f"{folder}: saved arrays do not match this run; start over with --force")
        if images is not None:
            images.mkdir(parents=True, exist_ok=True)

    def update(self, batch: Batch) -> None:
        lo, hi = batch.start - self.stream.start, batch.stop - self.stream.start
        self.z[lo:hi] = batch.z.cpu().numpy()
        self.latents[lo:hi] = batch.latent.cpu().numpy()
        if self.images is not None:
            gen = self.stream.gen
            with torch.inference_mode():
                imgs = to_uint8(gen.synthesis(batch.latent, self.stream.space.latent_space))
            for i, img in zip(batch.indices, imgs, strict=True):
                _write_png(self.images / image_name(int(i), self.stream.n), img)

    def flush(self) -> None:
        self.z.flush()
        self.latents.flush()

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}  # the rows live in the memory-mapped files

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


def _write_png(path: Path, img: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sample_meta(stream: SampleStream) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dirfind_version": __version__,
        "recipe": "z[i] = gen.draw_z(numpy.random.default_rng([seed, stream, i // block]), block)[i % block]",
        **stream.identity(),
        "generator_identity": generator_identity(stream.gen),
    }


def _write_npz(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], force: bool) -> None:
    with atomic_path(path, force=force, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def write_samples(
    gen: Generator,
    n: int,
    out: str | Path,
    *,
    space: str = "z",
    seed: int = 0,
    batch_size: int = 64,
    shard: tuple[int, int] | None = None,
    images: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    every: float = 60.0,
) -> dict[str, Any]:
    """Sample ``n`` latents (or shard K/N of them) into ``out`` (+ PNGs in ``images``); resumable."""
    out = Path(out)
    stream = SampleStream(gen, n, space, seed=seed, batch_size=batch_size, shard=shard)
    if stream.space.is_activation:
        raise BadInputError("dirfind sample writes latents: --space must be z, w or w+")
    check_writable(out, force)
    img_dir = Path(images) if images is not None else None
    meta = sample_meta(stream)
    ident = {k: v for k, v in meta.items() if k not in ("dirfind_version", "generator_identity")}
    ident["images"] = str(img_dir) if img_dir else None
    folder = progress_dir(out)
    if img_dir is not None and not (folder / "state.npz").exists():  # with progress, Job.open decides
        if img_dir.exists() and any(img_dir.iterdir()) and not force:
            raise OutputError(f"{img_dir} is not empty; pass --force to write into it")
    job = Job.open(folder, ident, resume=resume, force=force, every=every)
    writer = SampleWriter(stream, folder, img_dir, resume=job.resumed)
    reduce_stream(stream, writer, job=job, stage="samples", desc="sample")
    writer.flush()
    arrays = {"indices": np.arange(stream.start, stream.stop, dtype=np.int64), "z": writer.z, "latents": writer.latents}
    _write_npz(out, meta, arrays, force=True if job.resumed else force)
    del writer
    job.finish()
    return {
        "out": str(out),
        "images": str(img_dir) if img_dir else None,
        "range": [stream.start, stream.stop],
        "count": len(stream),
        "space": stream.space.spec,
        "shape": list(stream.feature_shape),
        "seed": stream.seed,
    }


# ---------------------------------------------------------------------- reading and merging


def read_samples(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of a ``dirfind sample`` output."""
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        meta = json.loads(str(data.pop("meta")[()]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise BadInputError(f"{path}: not a readable sample file ({' '.join(str(e).split())[:100]})") from None
    if meta.get("format") != FORMAT:
        raise BadInputError(f"{path}: not a dirfind sample file")
    return meta, data


def check_coverage(ranges: list[tuple[int, int]], n: int) -> None:
    """Shard ranges must be disjoint and cover 0..n-1."""
    pos = 0
    for lo, hi in sorted(ranges):
        if lo < pos:
            raise BadInputError(f"shards overlap at sample {lo}")
        if lo > pos:
            raise BadInputError(f"samples {pos}..{lo - 1} are missing (a shard was not given)")
        pos = hi
    if pos != n:
        raise BadInputError(f"samples {pos}..{n - 1} are missing (a shard was not given)")


_RECIPE_KEYS = ("space", "latent_space", "n", "seed", "stream", "block", "generator")


def merge_samples(paths: list[str | Path], out: str | Path, force: bool = False) -> dict[str, Any]:
    """Concatenate shard outputs (same run, disjoint ranges covering all n samples) into one file."""
    out = Path(out)
    check_writable(out, force)
    metas = [read_samples(p)[0] for p in paths]
    first = metas[0]
    for p, m in zip(paths, metas, strict=True):
        diff = [k for k in _RECIPE_KEYS if m.get(k) != first.get(k)]
        if diff:
            raise MismatchError(f"{p} comes from a different run ({', '.join(diff)} differ)")
    n = int(first["n"])
    check_coverage([(m["start"], m["stop"]) for m in metas], n)
    order = sorted(range(len(paths)), key=lambda i: metas[i]["start"])
    with tempfile.TemporaryDirectory(dir=out.parent if str(out.parent) else ".") as tmp:
        merged: dict[str, np.ndarray] = {}
        for i in order:
            _, arrays = read_samples(paths[i])
            lo, hi = metas[i]["start"], metas[i]["stop"]
            for key in ("indices", "z", "latents"):
                if key not in merged:
                    merged[key] = open_memmap(
                        Path(tmp) / f"{key}.npy", mode="w+", dtype=arrays[key].dtype, shape=(n, *arrays[key].shape[1:])
                    )
                merged[key][lo:hi] = arrays[key]
            del arrays
        meta = {**first, "start": 0, "stop": n, "shard": None, "merged_from": [str(p) for p in paths]}
        _write_npz(out, meta, merged, force)
        merged.clear()
    return {"out": str(out), "count": n, "parts": len(paths)}
