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
from .dist import all_reduce_array, gather_msgs
from .reducers import saved_arrays
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
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:  # the user's code: its failure is bad input, not a dirfind bug
            sys.modules.pop(name, None)
            raise BadInputError(f"cannot import predictor {spec}: {failure(e)}", param="predictor") from e
    else:
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            raise NotFoundError(f"predictor module {mod_name!r} not found ({e}); is it on PYTHONPATH?") from None
        except Exception as e:
            raise BadInputError(f"cannot import predictor {spec}: {failure(e)}", param="predictor") from e
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


def failure(e: BaseException) -> str:
    """An exception of the user's code as one short line: its type and message."""
    return f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"


def _column(v: Any, batch: int, what: str) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().float().cpu().numpy()
    try:
        a = np.asarray(v)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"dtype {a.dtype}")
        a = a.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"{what} is not numeric ({' '.join(str(e).split())[:80]})") from None
    if not np.isfinite(a).all():
        raise BadInputError(f"{what} contains NaN or inf")
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] != batch:
        raise BadInputError(f"{what} must have shape (B,) or (B, K) for B={batch} images, got {a.shape}")
    return a


class PredictorScores:
    """Reducer: render each batch, score it with ``predictor``, keep (n, K) float64 scores
    (``filled`` marks the rows scored so far)."""

    def __init__(self, stream: SampleStream, predictor: Callable[[torch.Tensor], Any], name: str | None = None):
        self.stream = stream
        self.predictor = predictor
        self.name = name or getattr(predictor, "__qualname__", "predictor")
        self.scores: np.ndarray | None = None
        self.names: list[str] | None = None
        self.filled = np.zeros(len(stream), bool)

    def update(self, batch: Batch) -> None:
        gen = self.stream.gen
        with torch.inference_mode():
            images = gen.synthesis(batch.latent, self.stream.space.latent_space)
            try:
                out = self.predictor(images)
            except Exception as e:  # the user's code: name it, one line (--debug shows its traceback)
                where = f"samples {batch.start}..{batch.stop - 1}"
                raise BadInputError(f"predictor {self.name} failed on {where}: {failure(e)}", param="predictor") from e
        try:
            s, names = as_score_matrix(out, len(batch))
        except BadInputError as e:
            raise BadInputError(f"predictor {self.name}: {e}", param="predictor") from None
        if self.scores is None:
            self.scores = np.full((len(self.stream), s.shape[1]), np.nan)
            self.names = names
        if s.shape[1] != self.scores.shape[1]:
            raise BadInputError(
                f"predictor {self.name} returned {s.shape[1]} scores per image, earlier {self.scores.shape[1]}",
                param="predictor",
            )
        lo = batch.start - self.stream.start
        self.scores[lo : lo + len(batch)] = s
        self.filled[lo : lo + len(batch)] = True

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {} if self.scores is None else {"scores": self.scores, "filled": self.filled.copy()}
        if self.names is not None:
            out["names"] = np.array(self.names, dtype=str)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if "scores" in state:
            width = np.shape(state["scores"])[1:] or (0,)
            self.scores = np.array(saved_arrays(state, {"scores": (len(self.stream), *width)})["scores"], np.float64)
            if "filled" in state:
                self.filled = np.array(saved_arrays(state, {"filled": (len(self.stream),)})["filled"], bool)
            else:
                self.filled = ~np.isnan(self.scores[:, 0])
        if "names" in state:
            self.names = [str(n) for n in np.atleast_1d(state["names"])]
            if self.scores is not None and len(self.names) != self.scores.shape[1]:
                raise BadInputError(f"saved names ({len(self.names)}) do not match the saved scores")

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """Take the rows another part scored."""
        if "scores" not in state:
            return
        if self.scores is None:
            self.load_state_dict(state)
            return
        theirs = np.asarray(saved_arrays(state, {"scores": self.scores.shape})["scores"], np.float64)
        has = "filled" in state
        rows = np.asarray(saved_arrays(state, {"filled": self.filled.shape})["filled"], bool) if has else None
        rows = ~np.isnan(theirs[:, 0]) if rows is None else rows
        self.scores[rows] = theirs[rows]
        self.filled |= rows
        if self.names is None and "names" in state:
            self.names = [str(n) for n in state["names"]]

    def all_reduce(self) -> None:
        """Every process's scores on every process (each row was scored by one process: a sum)."""
        heads = [m for m, _ in gather_msgs({"k": None if self.scores is None else self.scores.shape[1],
                                            "names": self.names}, dst=None) or []]  # fmt: skip
        ks = {h["k"] for h in heads if h["k"] is not None}
        if len(ks) > 1:
            raise BadInputError(f"the predictor returned {sorted(ks)} scores per image on different processes")
        if not ks:
            return
        if self.scores is None:
            self.scores = np.full((len(self.stream), ks.pop()), np.nan)
        self.names = next((h["names"] for h in heads if h["names"] is not None), None)
        vals = all_reduce_array(np.where(self.filled[:, None], self.scores, 0.0), "scores")
        count = all_reduce_array(self.filled.astype(np.float64), "scores")
        self.filled = count > 0
        self.scores = np.where(self.filled[:, None], vals, np.nan)


def predict_stream(
    gen: Generator,
    n: int,
    predictor: Callable[[torch.Tensor], Any],
    *,
    space: str = "z",
    seed: int = 0,
    batch_size: int = 64,
    job: Any = None,
    name: str | None = None,
) -> tuple[np.ndarray, list[str] | None]:
    """Scores (n, K) and names of samples ``0 .. n-1`` of the sample stream (``seed``, stream 0,
    the samples ``dirfind sample`` writes with that seed), rendered and scored batch by batch; resumable
    through ``job`` (stage ``scores``). ``name``: how errors name the predictor."""
    stream = SampleStream(gen, n, space, seed=seed, batch_size=batch_size)
    scorer = PredictorScores(stream, predictor, name)
    reducer = reduce_stream(stream, scorer, job=job, stage="scores", desc="score")
    if reducer.scores is None:
        raise BadInputError("the predictor produced no scores")
    return reducer.scores, reducer.names
