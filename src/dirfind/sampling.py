"""The sampling engine: deterministic, shardable, resumable streams of latents and features.

Every method that needs many samples (GANSpace, InterFaceGAN, ...) consumes a :class:`SampleStream`:
an iterator of :class:`Batch` es (global sample indices, the z they came from, the latent in the
stream's latent space and the requested features) computed on the generator's device, fed to
*reducers* that keep bounded-size sufficient statistics and can save, load and merge their state.
:func:`reduce_stream` runs a reducer over a stream with tqdm progress on stderr and periodic
checkpoints in a :class:`~dirfind.jobs.Job`, so an interrupted run resumes at the last finished batch.

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

import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from .errors import BadInputError
from .generators.base import Generator
from .jobs import Job
from .progress import bar

#: Samples per random block (part of the sample recipe: changing it changes every stream).
BLOCK = 1024

#: Named independent sub-streams of one seed.
STREAMS = {"samples": 0, "regression": 1, "scale": 2}

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


# ---------------------------------------------------------------------- seeds, blocks and shards


def check_seed(seed: int | None) -> int:
    """The sampling seed (``None`` -> 0); must be a non-negative integer."""
    seed = 0 if seed is None else int(seed)
    if seed < 0:
        raise BadInputError(f"--seed must be >= 0, got {seed}")
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


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N) with 0 <= K < N (shard K of N); ``None`` -> None."""
    if spec is None:
        return None
    m = _SHARD.match(str(spec))
    if not m:
        raise BadInputError(f"--shard must look like K/N (e.g. 0/4), got {spec!r}")
    k, n = int(m[1]), int(m[2])
    if n < 1 or not 0 <= k < n:
        raise BadInputError(f"--shard {spec}: need N >= 1 and 0 <= K < N")
    return k, n


def shard_range(n: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """The contiguous index range [start, stop) of shard (K, N) of ``n`` samples (all if None).
    The N ranges are disjoint and cover 0..n-1, so merged shard results equal the unsharded one."""
    if shard is None:
        return 0, n
    k, parts = shard
    return n * k // parts, n * (k + 1) // parts


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
            raise BadInputError("activations are computed from z or w latents, not w+")
        return FeatureSpace(spec, "act", lat, name)
    if spec not in ("z", "w", "w+"):
        raise BadInputError(f"space must be z, w, w+ or act:LAYER, got {spec!r}")
    gen.check_space(spec)
    return FeatureSpace(spec, "latent", spec)


# ---------------------------------------------------------------------- streams


@dataclass
class Batch:
    """One device batch of a stream: samples ``start .. stop-1``.

    ``z``: (B, z_dim) prior samples; ``latent``: the same in the stream's latent space;
    ``x``: the features (= ``latent`` for latent spaces), all on the generator's device.
    """

    start: int
    stop: int
    z: torch.Tensor
    latent: torch.Tensor
    x: torch.Tensor

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def indices(self) -> np.ndarray:
        return np.arange(self.start, self.stop, dtype=np.int64)

    @property
    def flat(self) -> torch.Tensor:
        """Features as a (B, D) matrix."""
        return self.x.reshape(len(self), -1)


class SampleStream:
    """Samples ``start .. stop-1`` of stream (``seed``, ``stream``) through ``gen``, in device batches.

    ``space``: ``z``, ``w``, ``w+`` or ``act:NAME`` (see :func:`feature_space`). Iterating is
    deterministic and independent of ``batch_size``; ``shard`` restricts to one of N disjoint ranges.
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
    ):
        if n < 1:
            raise BadInputError(f"-n must be at least 1, got {n}")
        if batch_size < 1:
            raise BadInputError(f"--batch-size must be at least 1, got {batch_size}")
        self.gen = gen
        self.n = int(n)
        self.seed = check_seed(seed)
        self.stream = int(stream)
        self.batch_size = int(batch_size)
        self.shard = shard
        self.start, self.stop = shard_range(self.n, shard)
        if self.stop == self.start:
            raise BadInputError(f"shard {shard[0]}/{shard[1]} of {n} samples is empty; use fewer shards")
        self.space = feature_space(gen, space, latent_space)
        self._shape: tuple[int, ...] | None = None

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
            "generator": {"family": g.family, "fingerprint": g.fingerprint, **g.render_settings()},
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

    def batch(self, start: int, stop: int) -> Batch:
        """The batch of samples ``start .. stop-1`` (any range, not only this stream's batches)."""
        z, lat = self.embed(draw_z(self.gen, start, stop, self.seed, self.stream))
        return Batch(start, stop, z, lat, self.features(lat))

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


# ---------------------------------------------------------------------- reducers


class Reducer(Protocol):
    """Consumes batches into bounded-size state that can be saved, restored and merged."""

    def update(self, batch: Batch) -> None: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...


class MeanCov:
    """Streaming float64 mean and scatter matrix of (B, D) features.

    Each batch is centred on its own mean and merged with Chan et al.'s pairwise update
    (``M2 = M2_a + M2_b + n_a n_b / n * d dᵀ``), which stays accurate when the mean is large
    compared with the spread (ReLU activations). On the CPU the batch scatter is a BLAS ``dsyrk``
    (half the flops of a matmul; the lower triangle is filled, :meth:`cov` symmetrises).
    Memory: D x D float64 (512 MB at D = 8192).
    """

    def __init__(self, dim: int, device: torch.device | str = "cpu"):
        self.dim = int(dim)
        self.device = torch.device(device)
        self.n = 0
        self.mean = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        self.m2 = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=self.device)
        self._lower_only = self.device.type == "cpu"
        self._buf: np.ndarray | None = None

    def update(self, batch: Batch | torch.Tensor) -> None:
        x = batch.flat if isinstance(batch, Batch) else batch
        self.add(x)

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(len(x), -1)
        nb = len(x)
        if nb == 0:
            return
        if x.shape[1] != self.dim:
            raise BadInputError(f"features have dimension {x.shape[1]}, expected {self.dim}")
        if self._lower_only:
            self._add_cpu(x.detach().cpu().numpy())
            return
        x = x.to(self.device, torch.float64)
        mb = x.mean(0)
        xc = x - mb
        self.m2.addmm_(xc.T, xc)
        self._merge_moments(nb, mb, None)

    def _add_cpu(self, x: np.ndarray) -> None:
        """CPU path in numpy + BLAS (no torch thread pool spinning between BLAS calls), centring
        in a reused float64 buffer; the scatter and rank-1 updates fill the lower triangle."""
        from scipy.linalg.blas import dsyr, dsyrk

        nb = len(x)
        if self._buf is None or len(self._buf) < nb:
            self._buf = np.empty((nb, self.dim))
        buf = self._buf[:nb]
        np.copyto(buf, x)
        mb = buf.mean(0)
        buf -= mb
        c = self.m2.numpy().T  # Fortran-ordered view of the C-ordered m2: its upper = our lower triangle
        dsyrk(1.0, buf.T, beta=1.0, c=c, trans=0, lower=0, overwrite_c=1)
        mean = self.mean.numpy()
        na, n = self.n, self.n + nb
        d = mb - mean
        if na:
            dsyr(na * nb / n, d, lower=0, a=c, overwrite_a=1)
        mean += d * (nb / n)
        self.n = n

    def _merge_moments(self, nb: int, mb: torch.Tensor, m2b: torch.Tensor | None) -> None:
        na, n = self.n, self.n + nb
        d = mb - self.mean
        if m2b is not None:
            self.m2 += m2b
        if na:
            self.m2.addr_(d, d, alpha=na * nb / n)
        self.mean += d * (nb / n)
        self.n = n

    def _full_m2(self) -> torch.Tensor:
        m2 = self.m2
        if self._lower_only:
            m2 = torch.tril(m2) + torch.tril(m2, -1).T
        return m2

    def merge(self, other: MeanCov) -> MeanCov:
        """Add another accumulator's samples (e.g. another shard); returns self."""
        if other.dim != self.dim:
            raise BadInputError(f"cannot merge statistics of dimension {other.dim} into {self.dim}")
        if other.n:
            self.m2 = self._full_m2().contiguous()  # full is also a valid "lower" state for later adds
            self._merge_moments(other.n, other.mean.to(self.device), other._full_m2().to(self.device))
        return self

    def cov(self, ddof: int = 1) -> torch.Tensor:
        """The covariance matrix (D x D float64), ``ddof=1`` as scikit-learn's PCA."""
        if self.n <= ddof:
            raise BadInputError(f"need more than {ddof} samples for a covariance, got {self.n}")
        return self._full_m2() / (self.n - ddof)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "n": np.array(self.n, np.int64),
            "mean": self.mean.cpu().numpy(),
            "m2": self._full_m2().cpu().numpy(),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        m2 = np.asarray(state["m2"], np.float64)
        if m2.shape != (self.dim, self.dim):
            raise BadInputError(f"saved statistics have shape {m2.shape}, expected ({self.dim}, {self.dim})")
        self.n = int(state["n"])
        self.mean = torch.from_numpy(np.array(state["mean"], np.float64)).to(self.device)
        self.m2 = torch.from_numpy(np.array(m2)).to(self.device)  # full symmetric: tril stays valid


class Collector:
    """Keeps per-sample float32 arrays (e.g. z, scores) for samples ``start .. stop-1`` in memory."""

    def __init__(self, start: int, stop: int, fields: dict[str, tuple[int, ...]]):
        self.start, self.stop = int(start), int(stop)
        self.data = {k: np.zeros((stop - start, *shape), np.float32) for k, shape in fields.items()}
        self.filled = 0

    def put(self, start: int, values: dict[str, np.ndarray | torch.Tensor]) -> None:
        for k, v in values.items():
            v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            self.data[k][start - self.start : start - self.start + len(v)] = v.reshape(len(v), *self.data[k].shape[1:])

    def update(self, batch: Batch) -> None:
        self.put(batch.start, {k: getattr(batch, k) for k in self.data if hasattr(batch, k)})

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.data)

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for k in self.data:
            self.data[k][...] = state[k]


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
    one continues after its last checkpointed batch. The reducer's state and the position are
    saved every ``job.every`` seconds, at the end of the stage, and on Ctrl-C / SIGTERM (deferred to
    the end of the current batch, then re-raised as KeyboardInterrupt). Batches are fed in order,
    so a checkpoint at position p means samples start..p-1 are in the state, none twice. A reducer
    may define ``flush()`` (called before each checkpoint) for state that lives in files.
    """
    pos = stream.start
    if job is not None:
        saved = job.stage(stage)
        if saved is not None:
            reducer.load_state_dict(saved.arrays)
            if saved.done:
                return reducer
            pos = saved.pos

    def checkpoint(p: int, done: bool = False) -> None:
        if job is None:
            return
        if hasattr(reducer, "flush"):
            reducer.flush()
        job.set_stage(stage, p, reducer.state_dict(), done=done)
        job.save()

    last = time.monotonic()
    with (
        _Interrupts() as interrupts,
        bar(total=len(stream), initial=pos - stream.start, desc=desc, unit="sample") as pbar,
    ):
        for batch in stream.batches(pos):
            reducer.update(batch)
            pos = batch.stop
            pbar.update(len(batch))
            if interrupts.requested:
                checkpoint(pos)
                raise KeyboardInterrupt
            if job is not None and time.monotonic() - last >= job.every:
                checkpoint(pos)
                last = time.monotonic()
    checkpoint(pos, done=True)
    return reducer
