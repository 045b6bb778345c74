"""InterFaceGAN (Shen et al., CVPR 2020): a linear SVM separates samples with high and low attribute
scores; the unit normal of its hyperplane is the editing direction.

The split follows the official ``utils/manipulator.py:train_boundary`` step by step: sort by score
(descending), take the ``ratio`` highest as positives and as many lowest as negatives, shuffle each
side (positives first, then negatives, from one legacy ``RandomState``), put ``int(chosen * (1 -
val_split))`` of each side into training and the rest into validation, fit ``SVC(kernel='linear',
C)``, and report accuracy on the validation set and on the *remaining* middle samples, which are
labelled positive when their score is at least ``(max + min) / 2``. ``seed=S`` therefore draws the
very split the official code draws after ``np.random.seed(S)``.

Additions over the official function: the hyperplane's offset (``intercept``, in distance units:
``n·x + intercept`` is the signed distance), a seeded split, explicit ``indices`` to reproduce a
split, ``LinearSVC`` for large sets, and :func:`project_boundary` for any number of conditions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from ...errors import BadInputError, MismatchError
from ...util.options import check_choice, option

SOLVERS = ("svc", "linearsvc")


@dataclass(frozen=True)
class FitOptions:
    """How boundaries are fitted (the official ``train_boundary`` defaults; ``dirfind interfacegan``)."""

    ratio: float = option(0.02, "Samples per side: a fraction in (0, 1] of all samples, or a count.")
    val_split: float = option(0.3, "Fraction of each side held out for validation.")
    C: float = option(1.0, "SVM regularisation parameter.")
    solver: str = option(
        "svc", "svc: libsvm linear SVC (official); linearsvc: liblinear, faster on large sets.", choices=SOLVERS
    )
    invalid_value: float | None = option(None, "Drop samples whose score equals this value (official invalid_value).")
    max_iter: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.val_split < 1:
            raise BadInputError(f"val_split must be in [0, 1), got {self.val_split}", param="val_split")
        if not np.isfinite(self.C) or self.C <= 0:
            raise BadInputError(f"C must be positive, got {self.C}", param="C")
        check_choice(self.solver, "solver", SOLVERS)
        chosen_count(2, self.ratio)  # checks the ratio itself

    def check_samples(self, n: int) -> None:
        """Refuse before any expensive work (scoring a million images) when ``n`` samples are too few."""
        check_options(n, self.ratio, self.val_split, self.C, self.solver)


#: rows per chunk when scoring the remaining samples (bounded memory for streamed latents)
_CHUNK = 8192


class Rows(Protocol):
    """Anything indexable by an int64 index array returning (len, D) rows: an ndarray, or
    :class:`~dirfind.core.sampling.StreamLatents` that recomputes latents from the sample recipe."""

    shape: tuple[int, ...]

    def __getitem__(self, idx: np.ndarray) -> np.ndarray: ...


@dataclass
class Split:
    """Which samples train and validate the SVM (indices into the caller's arrays)."""

    train_idx: np.ndarray  # first half positives (label 1), second half negatives (label 0)
    val_idx: np.ndarray  # same layout
    remaining_idx: np.ndarray  # neither tail
    remaining_labels: np.ndarray  # 1 where score >= decision_value
    chosen: int  # samples per side
    decision_value: float  # (max + min) / 2 of the scores, labels the remaining samples

    @property
    def train_labels(self) -> np.ndarray:
        return _labels(len(self.train_idx) // 2)

    @property
    def val_labels(self) -> np.ndarray:
        return _labels(len(self.val_idx) // 2)


@dataclass
class Boundary:
    """A fitted hyperplane ``normal · x + intercept = 0`` (unit normal towards higher scores)."""

    normal: np.ndarray  # (D,) float32, unit
    intercept: float  # signed distance of the origin from the hyperplane
    val_correct: int
    val_total: int
    remaining_correct: int
    remaining_total: int
    chosen: int
    train_per_side: int
    val_per_side: int
    remaining_positive: int
    remaining_negative: int
    decision_value: float
    solver: str
    converged: bool = True
    split: Split | None = field(default=None, repr=False)

    @property
    def val_accuracy(self) -> float | None:
        return self.val_correct / self.val_total if self.val_total else None

    @property
    def remaining_accuracy(self) -> float | None:
        return self.remaining_correct / self.remaining_total if self.remaining_total else None

    def metadata(self) -> dict[str, Any]:
        """JSON-friendly summary (everything but the arrays)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("normal", "split")}
        d["val_accuracy"] = self.val_accuracy
        d["remaining_accuracy"] = self.remaining_accuracy
        return d


def _labels(per_side: int) -> np.ndarray:
    return np.concatenate([np.ones(per_side, np.int64), np.zeros(per_side, np.int64)])


# ---------------------------------------------------------------------- inputs


def check_scores(scores: np.ndarray, n: int | None = None, what: str = "scores") -> np.ndarray:
    """Scores as float64 (N,) or (N, K); NaN/inf, empty input and length mismatches are errors."""
    s = np.asarray(scores)
    if s.dtype.kind not in "fiub":
        raise BadInputError(f"{what} must be numbers, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim not in (1, 2) or s.shape[0] == 0 or s.size == 0:
        raise BadInputError(f"{what} must be a non-empty (N,) or (N, K) array, got shape {s.shape}")
    bad = ~np.isfinite(s)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise BadInputError(f"{what} contain {int(bad.sum())} NaN/inf value(s) (first at row {first})")
    if n is not None and s.shape[0] != n:
        raise MismatchError(f"{what} have {s.shape[0]} rows but there are {n} latents")
    return s


def chosen_count(n: int, ratio: float) -> int:
    """Samples per side: ``int(n * ratio)`` for a fraction in (0, 1], else the count; at most n // 2."""
    if not np.isfinite(ratio) or ratio <= 0:
        raise BadInputError(f"ratio must be positive (a fraction in (0, 1] or a count), got {ratio}", param="ratio")
    if ratio <= 1:
        k = int(n * ratio)
    else:
        if ratio != int(ratio):
            raise BadInputError(
                f"ratio above 1 is a count of samples per side and must be whole, got {ratio}", param="ratio"
            )
        k = int(ratio)
    return min(k, n // 2)


def check_options(n: int, ratio: float, val_split: float, C: float, solver: str) -> None:
    """Validate the fitting options before any expensive work (e.g. scoring a million images)."""
    if not 0 <= val_split < 1:
        raise BadInputError(f"val_split must be in [0, 1), got {val_split}", param="val_split")
    if not np.isfinite(C) or C <= 0:
        raise BadInputError(f"C must be positive, got {C}", param="C")
    if solver not in SOLVERS:
        raise BadInputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}", param="solver")
    chosen = chosen_count(n, ratio)
    if chosen < 2 or int(chosen * (1.0 - val_split) + 1e-9) < 1:
        raise BadInputError(f"too few samples: {n} samples with ratio {ratio:g} give {chosen} per side", param="ratio")


def _order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, as the official ``argsort(...)[::-1]`` (ties in its order)."""
    return np.argsort(scores.reshape(-1, 1), axis=0)[::-1, 0]


def make_split(
    scores: np.ndarray,
    ratio: float = 0.02,
    val_split: float = 0.3,
    seed: int | None = 0,
    indices: tuple[Sequence[int], Sequence[int]] | None = None,
) -> Split:
    """The official top/bottom split of 1-D ``scores`` (see the module docstring).

    ``indices=(train_idx, val_idx)`` reuses a given split instead of shuffling: each must list
    positives (top tail) in its first half and negatives (bottom tail) in its second half.
    """
    s = check_scores(scores)
    if s.ndim != 1:
        raise BadInputError(f"make_split takes one score column, got shape {s.shape}")
    if not 0 <= val_split < 1:
        raise BadInputError(f"val_split must be in [0, 1), got {val_split}", param="val_split")
    n = len(s)
    if s.max() == s.min():
        raise BadInputError(f"all {n} scores are equal ({s[0]:g}); there is no attribute to separate")
    chosen = chosen_count(n, ratio)
    # official: train_num = int(chosen * split_ratio); the epsilon keeps 1 - 0.9 from rounding 40 down to 39
    train_num = int(chosen * (1.0 - val_split) + 1e-9)
    if chosen < 2 or train_num < 1:
        raise BadInputError(
            f"too few samples: {n} scores with ratio {ratio:g} give {chosen} per side and {train_num} per side "
            "for training; use more samples or a larger ratio",
            param="ratio",
        )
    order = _order(s)
    top, bottom = order[:chosen], order[n - chosen :]
    if s[top].min() <= s[bottom].max():
        raise BadInputError(
            f"the top and bottom {chosen} scores overlap (tied values around {s[top].min():g}); "
            "the scores do not separate two groups at this ratio",
            param="ratio",
        )
    if indices is None:
        rng = np.random.RandomState(0 if seed is None else int(seed))
        pos = np.arange(chosen)
        rng.shuffle(pos)
        neg = np.arange(chosen)
        rng.shuffle(neg)
        pos, neg = top[pos], bottom[neg]
        train_idx = np.concatenate([pos[:train_num], neg[:train_num]])
        val_idx = np.concatenate([pos[train_num:], neg[train_num:]])
    else:
        train_idx, val_idx = (np.asarray(i, np.int64).ravel() for i in indices)
        _check_given(train_idx, "train", top, bottom, n)
        _check_given(val_idx, "validation", top, bottom, n)
        train_num = len(train_idx) // 2
    remaining = order[chosen : n - chosen]
    decision = float((s[order[0]] + s[order[-1]]) / 2)
    return Split(
        train_idx=train_idx.astype(np.int64),
        val_idx=val_idx.astype(np.int64),
        remaining_idx=remaining.astype(np.int64),
        remaining_labels=(s[remaining] >= decision).astype(np.int64),
        chosen=chosen,
        decision_value=decision,
    )


def _check_given(idx: np.ndarray, what: str, top: np.ndarray, bottom: np.ndarray, n: int) -> None:
    if len(idx) % 2 or (what == "train" and len(idx) == 0):
        raise BadInputError(f"{what} indices must hold as many positives as negatives, got {len(idx)} indices")
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise BadInputError(f"{what} indices out of range 0..{n - 1}")
    h = len(idx) // 2
    if not (np.isin(idx[:h], top).all() and np.isin(idx[h:], bottom).all()):
        raise BadInputError(
            f"{what} indices must list top-tail samples first and bottom-tail samples second "
            f"(tails of {len(top)} per side at this ratio)"
        )


# ---------------------------------------------------------------------- fitting


def _classifier(solver: str, C: float, seed: int | None, max_iter: int | None) -> Any:
    from sklearn import svm

    if solver == "svc":
        return svm.SVC(kernel="linear", C=C, max_iter=-1 if max_iter is None else max_iter)
    if solver == "linearsvc":
        return svm.LinearSVC(C=C, dual="auto", random_state=seed, max_iter=max_iter or 10_000)
    raise BadInputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}", param="solver")


def fit_split(
    latents: np.ndarray | Rows,
    split: Split,
    C: float = 1.0,
    solver: str = "svc",
    seed: int | None = 0,
    max_iter: int | None = None,
) -> Boundary:
    """Fit the linear SVM on ``split`` and measure validation and remaining-set accuracy."""
    from sklearn.exceptions import ConvergenceWarning

    if not np.isfinite(C) or C <= 0:
        raise BadInputError(f"C must be positive, got {C}", param="C")
    clf = _classifier(solver, C, seed, max_iter)
    x = _rows(latents, split.train_idx)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(x, split.train_labels)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    w = np.asarray(clf.coef_, np.float64).ravel()
    norm = float(np.linalg.norm(w))
    if not np.isfinite(norm) or norm == 0:
        raise BadInputError("the SVM found no separating direction (zero normal); check the scores")
    b = float(np.ravel(clf.intercept_)[0])

    def correct(idx: np.ndarray, labels: np.ndarray) -> int:
        hits = 0
        for lo in range(0, len(idx), _CHUNK):
            rows = _rows(latents, idx[lo : lo + _CHUNK])
            hits += int((clf.predict(rows) == labels[lo : lo + _CHUNK]).sum())
        return hits

    val_per_side = len(split.val_idx) // 2
    return Boundary(
        normal=(w / norm).astype(np.float32),
        intercept=b / norm,
        val_correct=correct(split.val_idx, split.val_labels),
        val_total=len(split.val_idx),
        remaining_correct=correct(split.remaining_idx, split.remaining_labels),
        remaining_total=len(split.remaining_idx),
        chosen=split.chosen,
        train_per_side=len(split.train_idx) // 2,
        val_per_side=val_per_side,
        remaining_positive=int(split.remaining_labels.sum()),
        remaining_negative=int(len(split.remaining_labels) - split.remaining_labels.sum()),
        decision_value=split.decision_value,
        solver=solver,
        converged=converged,
        split=split,
    )


def _rows(latents: np.ndarray | Rows, idx: np.ndarray) -> np.ndarray:
    x = np.asarray(latents[idx], dtype=np.float64)
    x = x.reshape(len(idx), -1)
    if not np.isfinite(x).all():
        raise BadInputError("latents contain NaN or inf")
    return x


def train_boundary(
    latents: np.ndarray | Rows,
    scores: np.ndarray,
    ratio: float = 0.02,
    val_split: float = 0.3,
    C: float = 1.0,
    solver: str = "svc",
    seed: int | None = 0,
    indices: tuple[Sequence[int], Sequence[int]] | None = None,
    invalid_value: float | None = None,
    max_iter: int | None = None,
) -> Boundary:
    """Fit an InterFaceGAN boundary to (N, D) ``latents`` and (N,) ``scores`` (module docstring).

    ``invalid_value``: drop samples whose score equals it (the official ``invalid_value``); the
    split's indices then refer to the kept samples. ``indices`` reproduces a given split.
    """
    n = latents.shape[0]
    if len(latents.shape) < 2:
        raise BadInputError(f"latents must be (N, D), got shape {tuple(latents.shape)}")
    s = check_scores(scores, n)
    if s.ndim != 1:
        raise BadInputError(f"train_boundary takes one score column, got shape {s.shape}")
    if invalid_value is not None:
        keep = np.flatnonzero(s != invalid_value)
        if len(keep) < n:
            latents = _Subset(latents, keep)
            s = s[keep]
    split = make_split(s, ratio, val_split, seed, indices)
    return fit_split(latents, split, C=C, solver=solver, seed=seed, max_iter=max_iter)


class _Subset:
    """Rows ``keep`` of ``base``, indexable like an array (no copy of the base)."""

    def __init__(self, base: np.ndarray | Rows, keep: np.ndarray):
        self.base, self.keep = base, keep
        self.shape = (len(keep), *tuple(base.shape[1:]))

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return self.base[self.keep[idx]]
