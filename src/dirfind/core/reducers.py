"""Reducers of sample streams: bounded-size state built batch by batch that can be saved,
restored and merged (the streaming covariance, per-sample collectors).

To be split over processes and resumed with any number of them, a reducer also folds in a state
saved by another process (``merge_state``: its samples are disjoint from this one's) and may
combine all processes' states at once (``all_reduce``); see docs/distributed.md."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from ..errors import BadInputError
from .dist import all_reduce, all_reduce_array
from .sampling import Batch


def saved_arrays(state: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The named numeric arrays of a saved reducer state, each of the shape this run needs (a
    one-line error otherwise: a saved state is restored only into the run that wrote it)."""
    out = {}
    for k, shape in shapes.items():
        a = np.asarray(state[k]) if k in state else None
        if a is None or a.dtype.kind not in "biuf" or a.shape != tuple(shape):
            got = "missing" if a is None else f"{a.dtype.name} {a.shape}"
            raise BadInputError(f"saved {k} is {got}, this run needs shape {tuple(shape)}")
        out[k] = a
    return out


class Reducer(Protocol):
    """Consumes batches into bounded-size state that can be saved, restored and merged."""

    def update(self, batch: Batch) -> None: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Fold in the state of disjoint samples (another process's, or a saved part)."""


def pooled_mean(n: int, mean: torch.Tensor, what: str) -> tuple[int, torch.Tensor]:
    """(total count, common mean) of every process's (count, float64 mean): one all-reduce."""
    head = torch.cat([torch.tensor([float(n)], dtype=torch.float64, device=mean.device), mean * n])
    all_reduce(head, what)
    total = int(round(float(head[0])))
    return total, head[1:] / max(total, 1)


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

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Fold in saved statistics of other samples (Chan's pairwise merge)."""
        other = MeanCov(self.dim, self.device)
        other.load_state_dict(state)
        self.merge(other)

    def all_reduce(self) -> None:
        """Combine every process's statistics in float64: one sum of counts and mean-weighted sums
        gives the common mean, a second sums each process's scatter about it (exact Chan merge)."""
        n, mean = pooled_mean(self.n, self.mean, "covariance means")
        if n == 0:
            return
        d = self.mean - mean
        m2 = self._full_m2() + self.n * torch.outer(d, d)
        all_reduce(m2, "covariance")
        self.n, self.mean, self.m2 = n, mean, m2.contiguous()

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
        st = saved_arrays(state, {"n": (), "mean": (self.dim,), "m2": (self.dim, self.dim)})
        self.n = int(st["n"])
        self.mean = torch.from_numpy(np.array(st["mean"], np.float64)).to(self.device)
        self.m2 = torch.from_numpy(np.array(st["m2"], np.float64)).to(self.device)  # full symmetric: tril stays valid


class Collector:
    """Keeps per-sample float32 arrays (e.g. z, scores) for samples ``start .. stop-1`` in memory;
    ``filled`` marks the rows it holds."""

    def __init__(self, start: int, stop: int, fields: dict[str, tuple[int, ...]]):
        self.start, self.stop = int(start), int(stop)
        self.data = {k: np.zeros((stop - start, *shape), np.float32) for k, shape in fields.items()}
        self.filled = np.zeros(stop - start, bool)

    def put(self, start: int, values: dict[str, np.ndarray | torch.Tensor]) -> None:
        for k, v in values.items():
            v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            self.data[k][start - self.start : start - self.start + len(v)] = v.reshape(len(v), *self.data[k].shape[1:])
            self.filled[start - self.start : start - self.start + len(v)] = True

    def update(self, batch: Batch) -> None:
        self.put(batch.start, {k: getattr(batch, k) for k in self.data if hasattr(batch, k)})

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**self.data, "_filled": self.filled.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        st = saved_arrays(state, {k: v.shape for k, v in self.data.items()})
        for k in self.data:
            self.data[k][...] = st[k]
        has = "_filled" in state
        self.filled[...] = saved_arrays(state, {"_filled": self.filled.shape})["_filled"] if has else True

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Take the rows another part holds (its ``_filled`` ones)."""
        state = saved_arrays(state, {"_filled": self.filled.shape, **{k: v.shape for k, v in self.data.items()}})
        rows = np.asarray(state["_filled"], bool)
        for k in self.data:
            self.data[k][rows] = state[k][rows]
        self.filled |= rows

    def all_reduce(self) -> None:
        """Every process's rows on every process (each row is held by one process: a sum)."""
        for k in self.data:
            vals = np.where(self.filled.reshape(-1, *[1] * (self.data[k].ndim - 1)), self.data[k], 0)
            self.data[k][...] = all_reduce_array(vals, "collected rows")
        self.filled[...] = all_reduce_array(self.filled.astype(np.float64), "collected rows") > 0
