"""Attribute scores for supervised methods (InterFaceGAN): score files, user predictors, streamed latents.

* :func:`read_scores` reads ``.npy`` (N,) / (N, K) or ``.csv`` (optional index column, one column
  per attribute, header names become direction names).
* :func:`load_predictor` imports a user callable ``module:function`` (or ``path/to/file.py:function``)
  mapping images in [-1, 1] (NCHW tensor on the generator's device) to scores.
* :class:`PredictorScores` is a sampling-engine reducer: it renders each batch, scores it and keeps
  only the scores, so ``--predictor`` runs never hold the images and resume like ``dirfind sample``.
* :class:`StreamLatents` gives latent rows of any sample indices by recomputing them from the sample
  recipe, so the SVM's training rows are fetched without storing every latent.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import BadInputError, MismatchError, NotFoundError
from .generators.base import Generator
from .sampling import BLOCK, Batch, SampleStream

#: CSV columns that identify the sample rather than score it
INDEX_COLUMNS = ("index", "idx", "sample", "id", "seed")
FILE_COLUMNS = ("file", "filename", "image", "path", "name")
_DIGITS = re.compile(r"(\d+)(?:\.[A-Za-z0-9]+)?$")


# ---------------------------------------------------------------------- score files


def read_scores(path: str | Path, indices: np.ndarray | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(scores (M, K) float64, column names, row positions into the latents) from a score file.

    ``indices``: the global sample indices of the latents (``dirfind sample``'s ``indices``);
    a CSV index column (or image file names like ``000123.png``) is matched against them, so the
    CSV may list a subset of the samples in any order. Without an index column, row i scores latent i.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"scores file not found: {path}")
    if path.suffix.lower() == ".csv":
        values, names, pos = _read_csv(path, indices)
    else:
        values, names, pos = _read_npy(path)
    if pos is None:
        if indices is not None and len(values) != len(indices):
            raise MismatchError(f"{path}: {len(values)} score rows but {len(indices)} latents")
        pos = np.arange(len(values))
    return values, names, pos


def _read_npy(path: Path) -> tuple[np.ndarray, list[str], None]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        msg = " ".join(str(e).split())[:100]
        raise BadInputError(f"{path}: not a readable .npy or .csv score file ({msg})") from None
    if not isinstance(arr, np.ndarray):
        raise BadInputError(f"{path}: expected one .npy array of scores, got an .npz archive")
    if arr.dtype.kind not in "fiub":
        raise BadInputError(f"{path}: scores must be numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise BadInputError(f"{path}: scores must have shape (N,) or (N, K), got {arr.shape}")
    stem = path.stem
    names = [stem] if arr.shape[1] == 1 else [f"{stem}_{k}" for k in range(arr.shape[1])]
    return arr.astype(np.float64), names, None


def _read_csv(path: Path, indices: np.ndarray | None) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BadInputError(f"{path}: not a readable CSV file ({e})") from None
    if not rows:
        raise BadInputError(f"{path}: the CSV file is empty")
    has_header = not all(_is_number(c) for c in rows[0])
    header = [c.strip() for c in rows[0]] if has_header else [f"score_{k}" for k in range(len(rows[0]))]
    body = rows[1:] if has_header else rows
    if not body:
        raise BadInputError(f"{path}: the CSV file has a header but no rows")
    width = len(header)
    for i, r in enumerate(body):
        if len(r) != width:
            raise BadInputError(f"{path}: row {i + 1 + has_header} has {len(r)} columns, the header has {width}")
    lower = [h.lower() for h in header]
    key = next((j for j, h in enumerate(lower) if h in INDEX_COLUMNS + FILE_COLUMNS), None) if has_header else None
    cols = [j for j in range(width) if j != key]
    if not cols:
        raise BadInputError(f"{path}: no score columns (only {header[key]!r})")
    values = np.empty((len(body), len(cols)), np.float64)
    for i, r in enumerate(body):
        for k, j in enumerate(cols):
            cell = r[j].strip()
            try:
                values[i, k] = float(cell) if cell else np.nan
            except ValueError:
                raise BadInputError(
                    f"{path}: row {i + 1 + has_header}, column {header[j]!r}: {cell!r} is not a number"
                ) from None
    names = [header[j] for j in cols]
    if key is None:
        return values, names, None
    ids = np.array([_sample_id(r[key], path, i + 2) for i, r in enumerate(body)], np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise BadInputError(f"{path}: sample {uniq[counts > 1][0]} is scored more than once")
    if indices is None:
        indices = np.arange(int(ids.max()) + 1 if len(ids) else 0)
    pos = {int(g): p for p, g in enumerate(np.asarray(indices))}
    missing = [int(g) for g in ids if int(g) not in pos]
    if missing:
        raise MismatchError(f"{path}: sample {missing[0]} is not among the latents ({len(missing)} such rows)")
    return values, names, np.array([pos[int(g)] for g in ids], np.int64)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _sample_id(cell: str, path: Path, line: int) -> int:
    cell = cell.strip()
    if re.fullmatch(r"\d+", cell):
        return int(cell)
    m = _DIGITS.search(Path(cell).name)
    if not m:
        raise BadInputError(f"{path}: line {line}: cannot read a sample index from {cell!r}")
    return int(m[1])


# ---------------------------------------------------------------------- predictors


def load_predictor(spec: str) -> Callable[[torch.Tensor], Any]:
    """Import ``module:function`` or ``path/to/file.py:function`` (the user's own code)."""
    if ":" not in spec:
        raise BadInputError(f"--predictor must look like module:function or file.py:function, got {spec!r}")
    mod_name, _, func = spec.rpartition(":")
    if not func or not mod_name:
        raise BadInputError(f"--predictor must look like module:function or file.py:function, got {spec!r}")
    if mod_name.endswith(".py") or "/" in mod_name or "\\" in mod_name:
        file = Path(mod_name)
        if not file.exists():
            raise NotFoundError(f"predictor file not found: {file}")
        name = f"dirfind_predictor_{abs(hash(str(file.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, file)
        if module_spec is None or module_spec.loader is None:
            raise BadInputError(f"cannot import {file} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            raise NotFoundError(f"predictor module {mod_name!r} not found ({e}); is it on PYTHONPATH?") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise NotFoundError(f"{mod_name} has no callable {func!r}")
    return fn


def as_score_matrix(out: Any, batch: int) -> tuple[np.ndarray, list[str] | None]:
    """A predictor's output as (B, K) float64 plus names (from a dict's keys, else None)."""
    names = None
    if isinstance(out, dict):
        names = [str(k) for k in out]
        cols = [_column(v, batch, f"predictor output {k!r}") for k, v in out.items()]
        if not cols:
            raise BadInputError("the predictor returned an empty dict")
        return np.concatenate(cols, axis=1), names
    return _column(out, batch, "predictor output"), names


def _column(v: Any, batch: int, what: str) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().float().cpu().numpy()
    a = np.asarray(v, np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] != batch:
        raise BadInputError(f"{what} must have shape (B,) or (B, K) for B={batch} images, got {a.shape}")
    return a


class PredictorScores:
    """Reducer: render each batch, score it with ``predictor``, keep (n, K) float64 scores."""

    def __init__(self, stream: SampleStream, predictor: Callable[[torch.Tensor], Any]):
        self.stream = stream
        self.predictor = predictor
        self.scores: np.ndarray | None = None
        self.names: list[str] | None = None

    def update(self, batch: Batch) -> None:
        gen = self.stream.gen
        with torch.inference_mode():
            images = gen.synthesis(batch.latent, self.stream.space.latent_space)
            out = self.predictor(images)
        s, names = as_score_matrix(out, len(batch))
        if self.scores is None:
            self.scores = np.full((len(self.stream), s.shape[1]), np.nan)
            self.names = names
        if s.shape[1] != self.scores.shape[1]:
            raise BadInputError(f"the predictor returned {s.shape[1]} scores per image, earlier {self.scores.shape[1]}")
        lo = batch.start - self.stream.start
        self.scores[lo : lo + len(batch)] = s

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {} if self.scores is None else {"scores": self.scores}
        if self.names is not None:
            out["names"] = np.array(self.names, dtype=str)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if "scores" in state:
            self.scores = np.array(state["scores"], np.float64)
        if "names" in state:
            self.names = [str(n) for n in state["names"]]


# ---------------------------------------------------------------------- latents by index


class StreamLatents:
    """Training features of samples ``0 .. n-1`` of a sample stream, recomputed on demand.

    ``rows[idx]`` draws the blocks holding ``idx`` (the recipe in :mod:`dirfind.sampling`), embeds
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


def predict_stream(
    gen: Generator,
    n: int,
    predictor: Callable[[torch.Tensor], Any],
    *,
    space: str = "z",
    seed: int = 0,
    batch_size: int = 64,
    job: Any = None,
) -> tuple[np.ndarray, list[str] | None]:
    """Scores (n, K) and names of samples ``0 .. n-1`` of the sample stream (``seed``, stream 0,
    the samples ``dirfind sample --seed`` writes), rendered and scored batch by batch; resumable
    through ``job`` (stage ``scores``)."""
    from .sampling import reduce_stream

    stream = SampleStream(gen, n, space, seed=seed, batch_size=batch_size)
    reducer = reduce_stream(stream, PredictorScores(stream, predictor), job=job, stage="scores", desc="score")
    if reducer.scores is None:
        raise BadInputError("the predictor produced no scores")
    return reducer.scores, reducer.names
