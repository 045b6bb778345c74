"""The sampling engine: deterministic, shardable, resumable streams of latents and features.

Every method that needs many samples (GANSpace, InterFaceGAN, ...) consumes a :class:`SampleStream`:
an iterator of :class:`Batch` es (global sample indices, the z they came from, the latent in the
stream's latent space and the requested features) computed on the generator's device, fed to
*reducers* (:mod:`dirfind.core.reducers`) that keep bounded-size sufficient statistics and can
save, load and merge their state.
:func:`reduce_stream` runs a reducer over a stream with tqdm progress on stderr and periodic
checkpoints in a :class:`~dirfind.core.jobs.Job`, so an interrupted run resumes at the last finished batch.

Determinism. Sample ``i`` of stream ``(seed, stream)`` is row ``i % BLOCK`` of
``gen.draw_z(np.random.default_rng([seed, stream, i // BLOCK]), BLOCK)``: z depends only on the
index, never on the batch size, the shard or ``n`` (the first 1000 samples of a 1e6 run are the
1000 samples of a 1000 run). Fixed blocks keep this fast (one generator per 1024 samples, about
1 s per million 512-d latents, where ``RandomState(seed)`` per sample costs ~2 min per million)
and go through the family's own prior (``draw_z``), so truncated priors work unchanged.
``stream`` separates independent uses of one seed (GANSpace fits on stream 0, regresses on
fresh samples from stream 1 and measures latent sigmas on stream 2).
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import BadInputError, DistributedError, UnsupportedError
from ..generators.base import Generator
from ..util.progress import bar
from . import dist, parallel
from .jobs import Job
from .shards import add_range, covered, shard_range, subtract_ranges

#: Samples per random block (part of the sample recipe: changing it changes every stream).
BLOCK = 1024

#: Named independent sub-streams of one seed.
STREAMS = {"samples": 0, "regression": 1, "scale": 2}

# ---------------------------------------------------------------------- seeds, blocks and shards


def check_seed(seed: int | None) -> int:
    """The sampling seed (``None`` -> 0); must be a non-negative integer."""
    seed = 0 if seed is None else int(seed)
    if seed < 0:
        raise BadInputError(f"seed must be >= 0, got {seed}", param="seed")
    return seed


def draw_z(gen: Generator, start: int, stop: int, seed: int = 0, stream: int = 0) -> np.ndarray:
    """z (float32, (stop - start, z_dim)) of the samples with global indices ``start .. stop-1``."""
    if not 0 <= start <= stop:
        raise BadInputError(f"bad sample range {start}..{stop}")
    parts = []
    for b in range(start // BLOCK, (stop + BLOCK - 1) // BLOCK):
        block = gen.draw_z(np.random.default_rng([seed, stream, b]), BLOCK)
        lo, hi = max(start, b * BLOCK) - b * BLOCK, min(stop, (b + 1) * BLOCK) - b * BLOCK
        parts.append(block[lo:hi])
    if not parts:
        return np.zeros((0, gen.z_dim), np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


# ---------------------------------------------------------------------- feature spaces


@dataclass(frozen=True)
class FeatureSpace:
    """What a stream yields per sample: a latent (``z``/``w``/``w+``) or a named activation.

    ``latent_space`` is the space the latent of each batch lives in (the input of the activation).
    """

    spec: str
    kind: str  # "latent" | "act"
    latent_space: str
    name: str = ""

    @property
    def is_activation(self) -> bool:
        return self.kind == "act"


def feature_space(gen: Generator, spec: str, latent_space: str | None = None) -> FeatureSpace:
    """Parse ``z``, ``w``, ``w+`` or ``act:NAME`` for ``gen``. Activations are computed from
    ``latent_space`` (default: ``w`` for style-based families, else ``z``), as GANSpace does."""
    spec = str(spec).strip()
    if spec.startswith("act:"):
        name = gen.check_activation(spec[4:])
        lat = latent_space or ("w" if "w" in gen.spaces else "z")
        gen.check_space(lat)
        if lat == "w+":
            raise BadInputError("activations are computed from z or w latents, not w+", param="space")
        return FeatureSpace(spec, "act", lat, name)
    if spec not in ("z", "w", "w+"):
        raise BadInputError(f"space must be z, w, w+ or act:LAYER, got {spec!r}", param="space")
    gen.check_space(spec)
    return FeatureSpace(spec, "latent", spec)


# ---------------------------------------------------------------------- streams


def column_mean(x: torch.Tensor) -> torch.Tensor:
    """Float64 mean of the rows of a (B, D) float32 matrix, as one BLAS gemv."""
    return (torch.ones(len(x), dtype=x.dtype, device=x.device) @ x).double() / len(x)


@dataclass
class Batch:
    """One device batch of a stream: samples ``start .. stop-1``.

    ``z``: (B, z_dim) prior samples (None for given latents, ``core.latentstream``); ``latent``:
    the same in the stream's latent space; ``x``: the features (= ``latent`` for latent spaces);
    ``noise``: per-sample noise maps (one (B, 1, H, W) tensor per noise input) of given latents
    that carry them (projections), else None; all on the generator's device.
    """

    start: int
    stop: int
    z: torch.Tensor | None
    latent: torch.Tensor
    x: torch.Tensor
    noise: list[torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def indices(self) -> np.ndarray:
        return np.arange(self.start, self.stop, dtype=np.int64)

    @property
    def flat(self) -> torch.Tensor:
        """Features as a (B, D) matrix."""
        return self.x.reshape(len(self), -1)

    @functools.cached_property
    def feature_mean(self) -> torch.Tensor:
        """Float64 mean of :attr:`flat` (a float32 BLAS gemv), computed once: a kept batch is
        reread by every pass of a multi-pass solver, and the gemv is a whole read of the batch."""
        return column_mean(self.flat.float())


class SampleStream:
    """Samples ``start .. stop-1`` of stream (``seed``, ``stream``) through ``gen``, in device batches.

    ``space``: ``z``, ``w``, ``w+`` or ``act:NAME`` (see :func:`feature_space`). Iterating is
    deterministic and independent of ``batch_size``; ``shard`` restricts to one of N disjoint ranges.
    ``forward_batch``: at most this many samples per generator call within a batch (batches
    larger than a generator call make fewer, larger products for the reducers).
    """

    def __init__(
        self,
        gen: Generator,
        n: int,
        space: str = "z",
        *,
        seed: int | None = 0,
        stream: int = 0,
        batch_size: int = 256,
        shard: tuple[int, int] | None = None,
        latent_space: str | None = None,
        forward_batch: int | None = None,
    ):
        if n < 1:
            raise BadInputError(f"n must be at least 1, got {n}", param="n")
        if batch_size < 1:
            raise BadInputError(f"batch_size must be at least 1, got {batch_size}", param="batch_size")
        self.gen = gen
        self.n = int(n)
        self.seed = check_seed(seed)
        self.stream = int(stream)
        self.batch_size = int(batch_size)
        self.forward_batch = int(forward_batch) if forward_batch else self.batch_size
        if self.forward_batch < 1:
            raise BadInputError(f"forward_batch must be at least 1, got {forward_batch}", param="batch_size")
        self.shard = shard
        self.start, self.stop = shard_range(self.n, shard)
        if self.stop == self.start:
            raise BadInputError(f"shard {shard[0]}/{shard[1]} of {n} samples is empty; use fewer shards", param="shard")
        self.space = feature_space(gen, space, latent_space)
        self._shape: tuple[int, ...] | None = None
        self._kept: dict[int, Batch] | None = None
        self.kept_bytes = 0
        self._budget = 0

    def __len__(self) -> int:
        return self.stop - self.start

    # ------------------------------------------------------------------ recipe
    def identity(self) -> dict[str, Any]:
        """Everything that determines the samples (for resume checks and output metadata)."""
        g = self.gen
        return {
            "space": self.space.spec,
            "latent_space": self.space.latent_space,
            "n": self.n,
            "seed": self.seed,
            "stream": self.stream,
            "block": BLOCK,
            "start": self.start,
            "stop": self.stop,
            "shard": list(self.shard) if self.shard else None,
            "generator": {"family": g.family, "fingerprint": g.fingerprint, **g.settings.identity()},
        }

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one sample's features (computed once from a single forward)."""
        if self._shape is None:
            if self.space.kind == "latent":
                self._shape = tuple(self.gen.latent_shape(self.space.spec))
            else:
                _, lat = self.embed(draw_z(self.gen, 0, 1, self.seed, self.stream))
                self._shape = tuple(self.features(lat).shape[1:])
        return self._shape

    @property
    def dim(self) -> int:
        return int(np.prod(self.feature_shape))

    # ------------------------------------------------------------------ computing batches
    def embed(self, z: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, latent in the stream's latent space), both on the generator's device."""
        gen = self.gen
        zt = torch.as_tensor(z).to(gen.device, gen.dtype)
        with torch.inference_mode():
            return zt, gen.embed(zt, self.space.latent_space)

    def features(self, latent: torch.Tensor) -> torch.Tensor:
        """The stream's features of latents in its latent space (the latent itself for latent spaces)."""
        if self.space.kind == "latent":
            return latent
        with torch.inference_mode():
            return self.gen.activation(latent, self.space.latent_space, self.space.name).float()

    def sample_bytes(self) -> int:
        """Memory one sample's batch tensors take (z, latent, features; float32 or the generator's dtype)."""
        item = torch.empty((), dtype=self.gen.dtype).element_size()
        lat = int(np.prod(self.gen.latent_shape(self.space.latent_space)))
        return 4 * self.dim + item * (self.gen.z_dim + (lat if self.space.latent_space != "z" else 0))

    def keep_in_memory(self, budget: int) -> bool:
        """Keep the batches this process computes, up to ``budget`` bytes, so that later passes
        over the same samples (a multi-pass solver) read them instead of running the generator
        again; the kept batches are the very tensors first computed, so results do not change.
        Returns whether all of this stream's samples fit; a budget of 0 drops what is kept."""
        self._kept, self.kept_bytes, self._budget = ({} if budget > 0 else None), 0, int(budget)
        return len(self) * self.sample_bytes() <= self._budget

    def batch(self, start: int, stop: int) -> Batch:
        """The batch of samples ``start .. stop-1`` (any range, not only this stream's batches)."""
        kept = self._kept.get(start) if self._kept is not None else None
        if kept is not None and kept.stop == stop:
            return kept
        z_all, fb = draw_z(self.gen, start, stop, self.seed, self.stream), self.forward_batch
        parts = [self.embed(z_all[i : i + fb]) for i in range(0, len(z_all), fb)]
        feats = [self.features(lat) for _, lat in parts]
        if len(parts) == 1:
            (z, lat), x = parts[0], feats[0]
        else:
            z, lat = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            x = lat if self.space.kind == "latent" else torch.cat(feats)
        b = Batch(start, stop, z, lat, x)
        if self._kept is not None and start not in self._kept:
            size = sum({t.data_ptr(): t.nbytes for t in (b.z, b.latent, b.x)}.values())
            if self.kept_bytes + size <= self._budget:
                self._kept[start] = b
                self.kept_bytes += size
        return b

    def batches(self, start: int | None = None) -> Iterator[Batch]:
        """Batches from ``start`` (default: the stream's start) to the end of the stream."""
        pos = self.start if start is None else int(start)
        if not self.start <= pos <= self.stop:
            raise BadInputError(f"resume position {pos} outside the stream's range {self.start}..{self.stop}")
        while pos < self.stop:
            hi = min(pos + self.batch_size, self.stop)
            yield self.batch(pos, hi)
            pos = hi

    def __iter__(self) -> Iterator[Batch]:
        return self.batches()

    def grid(self, ranges: Sequence[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
        """The stream's batches ``start + i * batch_size`` (clipped to ``ranges``, default the whole
        stream) as (lo, hi) pairs: the fixed units a run is split into, whatever the process count."""
        return list(self.cells(ranges))

    def cells(self, ranges: Sequence[tuple[int, int]] | None = None) -> Iterator[tuple[int, int]]:
        """:meth:`grid`, one pair at a time (a stream of 10^11 samples is never listed)."""
        for lo, hi in [(self.start, self.stop)] if ranges is None else ranges:
            pos = lo
            while pos < hi:
                cell = self.start + ((pos - self.start) // self.batch_size + 1) * self.batch_size
                yield pos, min(cell, hi)
                pos = min(cell, hi)


# ---------------------------------------------------------------------- latents by index


class StreamLatents:
    """Training features of samples ``0 .. n-1`` of a sample stream, recomputed on demand.

    ``rows[idx]`` draws the blocks holding ``idx`` (the recipe above), embeds
    them in ``space`` on the generator's device and returns (len(idx), D) float32 features
    (``layers`` of w+ concatenated). Nothing but the requested rows is kept.
    """

    def __init__(
        self,
        gen: Generator,
        n: int,
        space: str,
        *,
        seed: int = 0,
        stream: int = 0,
        layers: Sequence[int] | None = None,
        batch_size: int = 256,
    ):
        self.gen, self.n, self.space, self.seed, self.stream = gen, int(n), space, int(seed), int(stream)
        self.layers = None if layers is None else list(layers)
        self.batch_size = batch_size
        shape = gen.latent_shape(space)
        dim = (len(self.layers) * shape[-1]) if (space == "w+" and self.layers is not None) else int(np.prod(shape))
        self.shape = (self.n, dim)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, np.int64).ravel()
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n):
            raise BadInputError(f"sample index out of range 0..{self.n - 1}")
        z = np.empty((len(idx), self.gen.z_dim), np.float32)
        blocks = idx // BLOCK
        for b in np.unique(blocks):
            sel = np.flatnonzero(blocks == b)
            rows = self.gen.draw_z(np.random.default_rng([self.seed, self.stream, int(b)]), BLOCK)
            z[sel] = rows[idx[sel] - b * BLOCK]
        out = np.empty((len(idx), self.shape[1]), np.float32)
        with torch.inference_mode():
            for lo in range(0, len(idx), self.batch_size):
                zt = torch.from_numpy(z[lo : lo + self.batch_size]).to(self.gen.device, self.gen.dtype)
                lat = self.gen.embed(zt, self.space)
                if self.space == "w+" and self.layers is not None:
                    lat = lat[:, self.layers]
                out[lo : lo + len(zt)] = lat.reshape(len(zt), -1).float().cpu().numpy()
        return out


# ---------------------------------------------------------------------- running reducers


class _Interrupts:
    """Defers Ctrl-C and SIGTERM (sent by batch schedulers before a kill) to the next batch
    boundary, so a checkpoint never holds a half-applied batch. A second signal stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def reduce_stream(
    stream: SampleStream,
    reducer: Any,
    *,
    job: Job | None = None,
    stage: str = "stream",
    desc: str | None = None,
) -> Any:
    """Feed every batch of ``stream`` to ``reducer.update`` and return the reducer.

    With a ``job``: a finished ``stage`` is not redone (its final state is loaded); an unfinished
    one continues with the batches not yet folded in. The reducer's state and its sample ranges
    are saved every ``job.every`` seconds, at the end of the stage, and on Ctrl-C / SIGTERM
    (deferred to the end of the current batch, then re-raised as KeyboardInterrupt). Each process
    folds its batches in index order, none twice. A reducer may define ``flush()`` (called before
    each checkpoint) for state that lives in files.

    Under torch.distributed the batches still to do are dealt round-robin over the processes;
    each checkpoints its own part, and at the end the parts are combined on every process
    (``reducer.all_reduce()`` if it has one, else every state is gathered and folded in rank
    order with ``reducer.merge_state``). The contract is in docs/distributed.md.
    """
    w = dist.world()
    if w.distributed and not (hasattr(reducer, "all_reduce") or hasattr(reducer, "merge_state")):
        raise UnsupportedError(f"{type(reducer).__name__} cannot be split over processes (no merge_state)")
    done: list[tuple[int, int]] = []
    if job is not None:
        saved = job.resume_stage(stage, reducer, stream.start, stream.stop)
        if saved is not None:
            if saved.done:
                return reducer
            done = saved.ranges
    mine = parallel.deal(stream.cells(subtract_ranges(stream.start, stream.stop, done)))
    part = list(done) if w.is_main else []  # the sample ranges this process's state holds

    def checkpoint(finished: bool = False) -> None:
        if job is None:
            return
        if hasattr(reducer, "flush"):
            reducer.flush()
        job.save_stage(stage, stream.start, part, reducer.state_dict(), done=finished)

    initial = covered(done)
    progress = parallel.Progress(initial) if w.distributed else None
    last = time.monotonic()
    with (
        _Interrupts() as interrupts,
        bar(total=len(stream), initial=initial, desc=desc, unit="sample") as pbar,
    ):
        for lo, hi in mine:
            reducer.update(stream.batch(lo, hi))
            part = add_range(part, lo, hi)
            if progress is None:
                pbar.update(hi - lo)
            else:
                progress.add(hi - lo, pbar)
                try:
                    dist.check_failure()
                except dist.RemoteInterrupt:
                    interrupts.requested = True
                except DistributedError:  # the run lost a process: keep this one's work for --resume
                    checkpoint()
                    raise
            if interrupts.requested:
                checkpoint()
                raise KeyboardInterrupt
            if job is not None and time.monotonic() - last >= job.every:
                checkpoint()
                last = time.monotonic()
        if progress is not None:
            checkpoint()  # this process's part is safe before it waits for the others
            progress.flush(pbar)
            parallel.combine(reducer)
            if job is not None:
                job.drop_part(stage)
    checkpoint(finished=True)
    if interrupts.requested:
        raise KeyboardInterrupt
    return reducer
