"""Sample files: latents (and images named by index) of a seeded sample stream, for labelling.

Output ``.npz`` (loads with ``numpy.load(path, allow_pickle=False)``):

* ``indices`` (M,) int64 — global sample indices (``start .. stop-1`` of the shard);
* ``z`` (M, z_dim) float32 — the prior samples (see :mod:`dirfind.core.sampling` for the recipe);
* ``latents`` (M, *shape) float32 — the same samples in the requested space (= z for ``z``);
* ``meta`` — JSON: format, space, seed, n, range, generator identity and render settings.

While running, rows stream into memory-mapped ``.npy`` files in ``<out>.progress/``; the ``.npz``
is assembled at the end (streamed, memory stays bounded) and renamed into place atomically.
Images go to ``DIR/<index>.png`` (zero-padded), each written atomically, so a resumed run
rewrites at most the batch that was interrupted.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap

from .. import __version__
from ..bank import generator_identity
from ..errors import BadInputError, MismatchError, OutputError
from ..generators.base import Generator
from ..util.fileio import (
    check_dir_writable,
    check_writable,
    make_parents,
    missing_dirs,
    read_meta_npz,
    remove_created,
    write_meta_npz,
)
from ..util.images import to_uint8, write_png
from ..util.options import option
from .dist import gather_msgs, is_main, world
from .jobs import progress_dir, resumable
from .sampling import Batch, SampleStream, reduce_stream
from .shards import add_range, check_coverage, normalize_ranges, register_merger

FORMAT = "dirfind.samples"
FORMAT_VERSION = 1


def image_name(index: int, n: int) -> str:
    """File name of sample ``index`` of ``n``: zero-padded to at least 6 digits."""
    return f"{index:0{max(6, len(str(n - 1)))}d}.png"


class SampleWriter:
    """Reducer that stores each batch's z and latents in memory-mapped arrays and renders PNGs.

    ``folder`` holds this process's arrays (rank 0: the progress folder, another process: its part
    folder inside it, ``root``); ``ranges`` are the samples they hold. Distributed, every process
    writes the PNGs of its own batches and rank 0 collects the rows at the end (:meth:`all_reduce`).
    """

    #: rows per message when the rows move to rank 0
    CHUNK = 4096

    def __init__(
        self,
        stream: SampleStream,
        folder: Path,
        images: Path | None = None,
        resume: bool = False,
        root: Path | None = None,
    ):
        self.stream = stream
        self.images = images
        self.folder, self.root = Path(folder), Path(root or folder)
        self.ranges: list[tuple[int, int]] = []
        m = len(stream)
        mode = "r+" if resume and (self.folder / "z.npy").exists() else "w+"
        self.z, self.latents = self._open(self.folder, mode)
        if self.z.shape != (m, stream.gen.z_dim) or self.latents.shape[0] != m:
            raise BadInputError(
                f"{folder}: saved arrays do not match this run; start over with force=True", param="force"
            )
        if images is not None:
            images.mkdir(parents=True, exist_ok=True)

    def _open(self, folder: Path, mode: str) -> tuple[np.ndarray, np.ndarray]:
        m = len(self.stream)
        if mode == "r":
            return open_memmap(folder / "z.npy", mode="r"), open_memmap(folder / "latents.npy", mode="r")
        shapes = {"z.npy": (m, self.stream.gen.z_dim), "latents.npy": (m, *self.stream.feature_shape)}
        if mode == "w+":  # the rows live on disk (memory-mapped): refuse what the disk cannot hold, first
            need = sum(4 * math.prod(shape) for shape in shapes.values())
            free = shutil.disk_usage(folder).free
            if need > free:
                raise OutputError(
                    f"cannot write {m} samples: their arrays need {need / 2**30:.1f} GiB and {folder} has "
                    f"{free / 2**30:.1f} GiB free; use a smaller n"
                )
        try:
            z, lat = (open_memmap(folder / k, mode=mode, dtype=np.float32, shape=v) for k, v in shapes.items())
        except OSError as e:
            raise OutputError(f"cannot write the sample arrays in {folder}: {e.strerror or e}") from None
        return z, lat

    def update(self, batch: Batch) -> None:
        lo, hi = batch.start - self.stream.start, batch.stop - self.stream.start
        self.z[lo:hi] = batch.z.cpu().numpy()
        self.latents[lo:hi] = batch.latent.cpu().numpy()
        self.ranges = add_range(self.ranges, batch.start, batch.stop)
        if self.images is not None:
            gen = self.stream.gen
            with torch.inference_mode():
                imgs = to_uint8(gen.synthesis(batch.latent, self.stream.space.latent_space))
            for i, img in zip(batch.indices, imgs, strict=True):
                write_png(self.images / image_name(int(i), self.stream.n), img)

    def flush(self) -> None:
        self.z.flush()
        self.latents.flush()

    def state_dict(self) -> dict[str, np.ndarray]:
        """Where the rows live (relative to ``root``) and which samples they are: the rows
        themselves stay in the memory-mapped files."""
        rel = "" if self.folder == self.root else str(self.folder.relative_to(self.root))
        return {"dir": np.array(rel), "ranges": np.array(self.ranges, np.int64).reshape(-1, 2)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.ranges = normalize_ranges(np.asarray(state.get("ranges", np.zeros((0, 2), np.int64))).tolist())

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Copy the rows another process saved (in its part folder under ``root``) into these arrays."""
        z, lat = self._open(self.root / str(state["dir"][()]), "r")
        for lo, hi in np.asarray(state["ranges"]).reshape(-1, 2).tolist():
            a, b = lo - self.stream.start, hi - self.stream.start
            self.z[a:b], self.latents[a:b] = z[a:b], lat[a:b]
            self.ranges = add_range(self.ranges, lo, hi)
        del z, lat

    def all_reduce(self) -> None:
        """Rank 0 receives every other process's rows, one message of at most :attr:`CHUNK` rows
        per process per round (the other processes keep only their PNGs)."""
        w = world()
        mine = [] if w.is_main else self._chunks(self.ranges)
        rounds = max(int(m["chunks"]) for m, _ in gather_msgs({"chunks": len(mine)}, dst=None) or [])
        first = self.stream.start
        for t in range(rounds):
            group = mine[t] if t < len(mine) else []
            rows = {}
            if group:
                rows = {k: np.concatenate([a[lo - first : hi - first] for lo, hi in group]) for k, a in self._arrays()}
            for meta, got in gather_msgs({"ranges": group}, rows, dst=0) or []:
                pos = 0
                for lo, hi in meta["ranges"]:
                    for k, a in self._arrays():
                        a[lo - first : hi - first] = got[k][pos : pos + hi - lo]
                    pos += hi - lo
                    self.ranges = add_range(self.ranges, lo, hi)

    def _arrays(self) -> list[tuple[str, np.ndarray]]:
        return [("z", self.z), ("latents", self.latents)]

    def _chunks(self, ranges: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
        """``ranges`` packed into messages of at most :attr:`CHUNK` rows (a process's batches are
        dealt round-robin, so its ranges are many short ones)."""
        groups: list[list[tuple[int, int]]] = []
        size = self.CHUNK
        for lo, hi in ranges:
            for a in range(lo, hi, self.CHUNK):
                b = min(a + self.CHUNK, hi)
                if size + b - a > self.CHUNK:
                    groups.append([])
                    size = 0
                groups[-1].append((a, b))
                size += b - a
        return groups


def sample_meta(stream: SampleStream) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dirfind_version": __version__,
        "recipe": "z[i] = gen.draw_z(numpy.random.default_rng([seed, stream, i // block]), block)[i % block]",
        **stream.identity(),
        "generator_identity": generator_identity(stream.gen),
    }


@dataclass(frozen=True)
class SampleOptions:
    """What to sample: ``n`` samples (all shards together) of stream 0 of ``seed``, stored in
    ``space``, optionally one shard and PNG images."""

    n: int = option(None, "Number of samples (all shards together).")
    space: str = option("z", "Latent space to store.", choices=("z", "w", "w+"))
    batch_size: int = option(64, "Samples per generator call.")
    shard: tuple[int, int] | None = option(None, "Process only shard K of N (disjoint sample ranges).")
    images: str | None = option(None, "Also render each sample to DIR/<index>.png.")
    seed: int = 0


def write_samples(
    gen: Generator,
    opts: SampleOptions | None = None,
    out: str | Path = "latents.npz",
    *,
    resume: bool = False,
    force: bool = False,
    every: float = 60.0,
    **changes: Any,
) -> dict[str, Any]:
    """Sample latents (and images) deterministically into a sample file; resumable.

    Parameters
    ----------
    gen : Generator
        The generator (its render settings are recorded).
    opts : SampleOptions, optional
        What to sample; keyword ``changes`` override its fields (``n=1000``, ``space="w"``).
    out : str or Path
        The ``.npz`` sample file (progress of an unfinished run in ``<out>.progress/``).
    resume, force, every
        Continue an interrupted run; overwrite existing outputs; seconds between checkpoints.

    Returns
    -------
    dict
        ``out``, ``images``, ``range``, ``count``, ``space``, ``shape`` and ``seed``.
    """
    from dataclasses import replace

    opts = replace(opts or SampleOptions(), **changes)
    if opts.n is None:
        raise BadInputError("n (the number of samples) is required", param="n")
    out = Path(out)
    stream = SampleStream(gen, opts.n, opts.space, seed=opts.seed, batch_size=opts.batch_size, shard=opts.shard)
    if stream.space.is_activation:
        raise BadInputError("sample files hold latents: space must be z, w or w+", param="space")
    check_writable(out, force)
    img_dir = Path(opts.images) if opts.images is not None else None
    meta = sample_meta(stream)
    ident = {k: v for k, v in meta.items() if k not in ("dirfind_version", "generator_identity")}
    ident["images"] = str(img_dir) if img_dir else None
    folder = progress_dir(out)
    if img_dir is not None:
        check_dir_writable(img_dir)
        if not (folder / "state.npz").exists():  # with progress, Job.open decides
            if img_dir.exists() and any(img_dir.iterdir()) and not force:
                raise OutputError(f"{img_dir} is not empty; pass force=True to write into it", param="force")
    created = [] if img_dir is None else missing_dirs(img_dir)  # removed again if the run leaves nothing
    try:
        with resumable(out, ident, resume=resume, force=force, every=every) as job:
            writer = SampleWriter(stream, job.part_dir(), img_dir, resume=job.resumed, root=folder)
            reduce_stream(stream, writer, job=job, stage="samples", desc="sample")
            writer.flush()
            if is_main():
                arrays = {
                    "indices": np.arange(stream.start, stream.stop, dtype=np.int64),
                    "z": writer.z,
                    "latents": writer.latents,
                }
                write_meta_npz(out, meta, arrays, force=True if job.resumed else force)
                del arrays
            del writer
    except BaseException:
        if created and not folder.exists() and is_main():  # no progress kept for --resume: the images go too
            shutil.rmtree(created[-1], ignore_errors=True)
            remove_created(created[:-1])
        raise
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
    """(meta, arrays) of a ``dirfind sample`` output (a one-line error naming the file when its
    metadata or arrays are malformed)."""
    meta, arrays = read_meta_npz(path, "dirfind sample file", FORMAT)
    n, start, stop = (meta.get(k) for k in ("n", "start", "stop"))
    if not all(type(v) is int for v in (n, start, stop)) or not 0 <= start <= stop <= n:
        raise BadInputError(f"{path}: malformed sample file (n, start, stop = {n!r}, {start!r}, {stop!r})")
    for key, ndim in (("indices", 1), ("z", 2), ("latents", 2)):
        a = arrays.get(key)
        if a is None or a.dtype.kind not in ("iu" if key == "indices" else "f") or a.ndim < ndim:
            what = "missing" if a is None else f"{a.dtype.name} {a.shape}"
            raise BadInputError(f"{path}: malformed sample file ({key} is {what})")
        if len(a) != stop - start:
            raise BadInputError(
                f"{path}: malformed sample file ({key} has {len(a)} rows for samples {start}..{stop - 1})"
            )
    return meta, arrays


_RECIPE_KEYS = ("space", "latent_space", "n", "seed", "stream", "block", "generator")


def merge_samples(paths: list[str | Path], out: str | Path, *, force: bool = False, **_: Any) -> dict[str, Any]:
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
    created = make_parents(out)  # the merge's scratch folder sits next to out
    try:
        with tempfile.TemporaryDirectory(dir=out.parent if str(out.parent) else ".") as tmp:
            merged: dict[str, np.ndarray] = {}
            for i in order:
                _, arrays = read_samples(paths[i])
                lo, hi = metas[i]["start"], metas[i]["stop"]
                for key in ("indices", "z", "latents"):
                    row = arrays[key].shape[1:]
                    if key in merged and row != merged[key].shape[1:]:
                        raise MismatchError(
                            f"{paths[i]}: {key} rows of shape {row}, other shards {merged[key].shape[1:]}"
                        )
                    if key not in merged:
                        merged[key] = open_memmap(
                            Path(tmp) / f"{key}.npy",
                            mode="w+",
                            dtype=arrays[key].dtype,
                            shape=(n, *arrays[key].shape[1:]),
                        )
                    merged[key][lo:hi] = arrays[key]
                del arrays
            meta = {**first, "start": 0, "stop": n, "shard": None, "merged_from": [str(p) for p in paths]}
            write_meta_npz(out, meta, merged, force)
            merged.clear()
    except BaseException:
        remove_created(created)
        raise
    return {"out": str(out), "count": n, "parts": len(paths)}


register_merger(FORMAT, merge_samples, "latents.npz")
