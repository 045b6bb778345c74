"""User predictors: ``module:function`` callables that score rendered images.

* :func:`load_predictor` imports ``module:function`` (or ``path/to/file.py:function``) mapping
  images in [-1, 1] (NCHW tensor on the generator's device) to scores;
* :class:`PredictorScores` is a sampling-engine reducer: it renders each batch, scores it and keeps
  only the scores, so predictor runs never hold the images and resume like ``dirfind sample``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BadInputError, NotFoundError
from ..generators.base import Generator
from .sampling import Batch, SampleStream, reduce_stream

# ---------------------------------------------------------------------- predictors


def load_predictor(spec: str) -> Callable[[torch.Tensor], Any]:
    """Import ``module:function`` or ``path/to/file.py:function`` (the user's own code), or build a
    built-in predictor named ``faces`` or ``image`` (:mod:`dirfind.core.scorers`)."""
    from .scorers import BUILTIN

    if spec in BUILTIN:
        return BUILTIN[spec]()
    if ":" not in spec:
        raise BadInputError(
            f"predictor must be faces, image, module:function or file.py:function, got {spec!r}", param="predictor"
        )
    mod_name, _, func = spec.rpartition(":")
    if not func or not mod_name:
        raise BadInputError(
            f"predictor must look like module:function or file.py:function, got {spec!r}", param="predictor"
        )
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
    the samples ``dirfind sample`` writes with that seed), rendered and scored batch by batch; resumable
    through ``job`` (stage ``scores``)."""
    stream = SampleStream(gen, n, space, seed=seed, batch_size=batch_size)
    reducer = reduce_stream(stream, PredictorScores(stream, predictor), job=job, stage="scores", desc="score")
    if reducer.scores is None:
        raise BadInputError("the predictor produced no scores")
    return reducer.scores, reducer.names
