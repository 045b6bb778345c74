"""The evaluation reducer: render every direction's traversal for each batch of seeded samples (or
of given latents, with their noise maps) and fold what is measured into additive float64 sums
(state that saves, loads and merges by addition).

Each sample's contribution is added on its own, in sample order, so the sums do not depend on the
batch size; the parts of a distributed run (or of resumed runs) merge by adding their states.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...bank import DirectionBank
from ...core.dist import all_reduce_array, single
from ...core.edits import base_latents, working_space
from ...core.predictors import as_score_matrix, failure
from ...core.reducers import saved_arrays
from ...core.sampling import Batch
from ...errors import BadInputError
from ...generators.base import Generator
from ...render.batched import render
from ...render.edit import bank_edit, traversal_latents
from .metrics import ssim

Predictor = tuple[str, Callable[[torch.Tensor], Any]]


def to_model_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 NHWC images as the NCHW [-1, 1] float tensor predictors take."""
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


def score(predictors: Sequence[Predictor], images: torch.Tensor, where: str = "") -> tuple[np.ndarray, list[str]]:
    """(B, A) float64 scores of every predictor side by side, and their names (made unique); a
    predictor that raises or returns no usable numbers is a one-line error naming it (and ``where``)."""
    cols, names = [], []
    for label, fn in predictors:
        try:
            with torch.inference_mode():
                out = fn(images)
        except Exception as e:  # the user's code: name it, one line (--debug shows its traceback)
            at = f" on {where}" if where else ""
            raise BadInputError(f"predictors: {label} failed{at}: {failure(e)}", param="predictors") from e
        try:
            s, found = as_score_matrix(out, len(images))
        except BadInputError as e:
            raise BadInputError(f"predictors: {label}: {e}", param="predictors") from None
        base = getattr(fn, "__name__", None) or label.rpartition(":")[2] or "score"
        found = found or ([base] if s.shape[1] == 1 else [f"{base}_{j}" for j in range(s.shape[1])])
        cols.append(s)
        names.extend(found)
    if not cols:
        return np.zeros((len(images), 0)), []
    unique, seen = [], {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}.{seen[n]}")
    return np.concatenate(cols, axis=1), unique


class TraversalStats:
    """Reducer of :class:`~dirfind.core.sampling.SampleStream` batches for ``dirfind evaluate``.

    Seeded batches are embedded in the bank's working space; batches of given latents
    (:class:`~dirfind.core.latentstream.LatentStream`) are already there and render with their own
    noise maps. For every sample: the unedited image x0 (the first direction's image at a step of 0, when the
    steps include 0) and, per direction, the images x(alpha) at each step are rendered (through
    :func:`dirfind.render.batched.render`, as ``traverse`` renders them) and measured in [0, 1]
    units: change profiles, the change maps between the range ends (area-pooled to ``map_size``),
    SSIM of the ends, inside/outside sums of a region, and the scores of the predictors with the
    sums their slopes, correlations and spreads need.
    """

    def __init__(
        self,
        gen: Generator,
        bank: DirectionBank,
        dirs: Sequence[int],
        alphas: Sequence[float],
        *,
        predictors: Sequence[Predictor] = (),
        attributes: Sequence[str] = (),
        mask: np.ndarray | None = None,
        map_size: int = 256,
        batch_size: int = 64,
    ):
        self.gen, self.bank, self.dirs = gen, bank, list(dirs)
        self.alphas = np.asarray(alphas, np.float64)
        if len(self.alphas) < 2 or not np.all(np.diff(self.alphas) > 0):
            raise BadInputError("evaluation needs at least two increasing steps", param="steps")
        self.predictors, self.attributes = list(predictors), list(attributes)
        self.batch_size = batch_size
        self.space, self.layers = bank_edit(gen, bank)
        self.work = working_space(self.space, self.layers)
        res = gen.resolution
        self.map_hw = (min(res, map_size), min(res, map_size))
        self.mask = None if mask is None else torch.from_numpy(np.asarray(mask, bool)).to(gen.device)
        if self.mask is not None and tuple(self.mask.shape) != (res, res):
            raise BadInputError(f"the region mask must be {res}x{res}, got {tuple(self.mask.shape)}", param="mask")
        self.cdtype = torch.float32  # per image; the sums over samples are float64
        zero = np.flatnonzero(self.alphas == 0)
        self.zero = int(zero[0]) if len(zero) else None  # the step that leaves the latent as it is
        k, s, a = len(self.dirs), len(self.alphas), len(self.attributes)
        shapes = {
            "n": (),
            "profile": (k, s),
            "abs_map": (k, *self.map_hw),
            "sq_map": (k, *self.map_hw),
            "effect": (k,),
            "ssim": (k,),
            "region_sums": (k, 4),  # inside |d|, inside d^2, outside |d|, outside d^2 (sums over pixels)
            "y0": (a,),
            "y0_sq": (a,),
            "y0_cross": (a, a),
            "y": (k, s, a),
            "ay": (k, a),
            "yy_within": (k, a),
            "abs_dy": (k, a),
        }
        self.state = {name: np.zeros(shape, np.float64) for name, shape in shapes.items()}

    # ------------------------------------------------------------------ reducer protocol
    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.state.items()}

    def _saved(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return saved_arrays(state, {k: v.shape for k, v in self.state.items()})

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.state = {k: np.array(v, np.float64) for k, v in self._saved(state).items()}

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Fold in the saved state of disjoint samples (another process's part): a sum."""
        for k, v in self._saved(state).items():
            self.state[k] = self.state[k] + v

    def all_reduce(self) -> None:
        """Sum every process's state (float64, one all-reduce per array; in place, the same everywhere)."""
        for k, v in self.state.items():
            self.state[k] = all_reduce_array(v, "evaluation sums")

    def _add(self, name: str, contrib: torch.Tensor | np.ndarray, index: Any = ()) -> None:
        """Add per-sample contributions (leading axis = samples) one sample at a time, in order."""
        c = contrib.double().cpu().numpy() if isinstance(contrib, torch.Tensor) else np.asarray(contrib, np.float64)
        acc = self.state[name]
        for row in c:
            acc[index] += row

    # ------------------------------------------------------------------ one batch
    def _images(self, latents: torch.Tensor, noise: list[torch.Tensor] | None = None) -> np.ndarray:
        """Working-space latents (any leading shape) rendered to uint8 NHWC, as ``traverse`` does
        (by this process alone: in a distributed run each process reduces its own batches);
        ``noise``: the samples' own noise maps, leading shape as the latents'."""
        with single():
            return render(self.gen, latents, self.work, batch_size=self.batch_size, desc=None, noise=noise)

    def _as_float(self, u8: np.ndarray) -> torch.Tensor:
        """uint8 (…, H, W, C) as (…, C, H, W) in [0, 1] on the device."""
        t = torch.from_numpy(u8).to(self.gen.device)
        return t.movedim(-1, -3).to(self.cdtype) / 255

    def _scores(self, u8: np.ndarray, batch: Batch) -> np.ndarray:
        flat = u8.reshape(-1, *u8.shape[-3:])
        s, _ = score(self.predictors, to_model_input(flat, self.gen.device), f"samples {batch.start}..{batch.stop - 1}")
        return s.reshape(*u8.shape[:-3], s.shape[1])

    def _traversal(self, base: torch.Tensor, k: int, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Direction ``k`` of the samples ``base``: images in [0, 1] (B, S, C, H, W) and their
        float64 scores (B, S, A) (None without attributes)."""
        lat = traversal_latents(self.gen, self.bank, base, [k], self.alphas.tolist())[0]  # (B, S, ...)
        noise = None if batch.noise is None else [n[:, None] for n in batch.noise]  # (B, 1, 1, H, W)
        u8 = self._images(lat, noise)
        return self._as_float(u8), (torch.from_numpy(self._scores(u8, batch)) if self.attributes else None)

    def update(self, batch: Batch) -> None:
        # seeded samples are embedded; given latents (no z) are already in the working space
        base = batch.latent if batch.z is None else base_latents(self.gen, batch.z, self.space, self.layers)
        # a step of 0 adds nothing to the latent (exactly): the first direction's images and scores
        # there are the unedited ones, which then need no render of their own
        first = self._traversal(base, self.dirs[0], batch) if self.zero is not None and self.dirs else None
        if first is not None:
            x0 = first[0][:, self.zero]
            y0 = None if first[1] is None else first[1][:, self.zero].numpy()
        else:
            x0_u8 = self._images(base, batch.noise)
            x0 = self._as_float(x0_u8)  # (B, C, H, W)
            y0 = self._scores(x0_u8, batch) if self.attributes else None
        self.state["n"] += len(x0)
        if y0 is not None:
            self._add("y0", y0)
            self._add("y0_sq", y0**2)
            self._add("y0_cross", y0[:, :, None] * y0[:, None, :])
        centred = torch.as_tensor(self.alphas - self.alphas.mean())
        for row, k in enumerate(self.dirs):
            x, y = first if row == 0 and first is not None else self._traversal(base, k, batch)  # (B, S, C, H, W)
            self._add("profile", (x - x0[:, None]).abs().mean((2, 3, 4)), row)
            end = x[:, -1] - x[:, 0]  # (B, C, H, W)
            d_abs, d_sq = end.abs().mean(1), (end**2).mean(1)  # (B, H, W)
            self._add("effect", d_abs.mean((1, 2)), row)
            self._add("abs_map", _pool(d_abs, self.map_hw), row)
            self._add("sq_map", _pool(d_sq, self.map_hw), row)
            self._add("ssim", ssim(x[:, 0], x[:, -1]), row)
            if self.mask is not None:
                m = self.mask
                sums = torch.stack([d_abs[:, m].sum(1), d_sq[:, m].sum(1), d_abs[:, ~m].sum(1), d_sq[:, ~m].sum(1)], 1)
                self._add("region_sums", sums, row)
            if y is not None:
                self._add("y", y, row)
                self._add("ay", torch.einsum("bsa,s->ba", y, centred), row)
                self._add("yy_within", (y**2).sum(1) - y.sum(1) ** 2 / y.shape[1], row)
                self._add("abs_dy", (y[:, -1] - y[:, 0]).abs(), row)


def _pool(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-pool (B, H, W) maps to ``size`` (unchanged when they already have it)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.adaptive_avg_pool2d(maps[:, None], size)[:, 0]
