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

from ..bank import DirectionBank
from ..errors import BadInputError, MismatchError

SOLVERS = ("svc", "linearsvc")
#: rows per chunk when scoring the remaining samples (bounded memory for streamed latents)
_CHUNK = 8192


class Rows(Protocol):
    """Anything indexable by an int64 index array returning (len, D) rows: an ndarray, or
    :class:`~dirfind.scores.StreamLatents` that recomputes latents from the sample recipe."""

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
        raise BadInputError(f"--ratio must be positive (a fraction in (0, 1] or a count), got {ratio}")
    if ratio <= 1:
        k = int(n * ratio)
    else:
        if ratio != int(ratio):
            raise BadInputError(f"--ratio above 1 is a count of samples per side and must be whole, got {ratio}")
        k = int(ratio)
    return min(k, n // 2)


def check_options(n: int, ratio: float, val_split: float, C: float, solver: str) -> None:
    """Validate the fitting options before any expensive work (e.g. scoring a million images)."""
    if not 0 <= val_split < 1:
        raise BadInputError(f"--val-split must be in [0, 1), got {val_split}")
    if not np.isfinite(C) or C <= 0:
        raise BadInputError(f"--C must be positive, got {C}")
    if solver not in SOLVERS:
        raise BadInputError(f"--solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    chosen = chosen_count(n, ratio)
    if chosen < 2 or int(chosen * (1.0 - val_split) + 1e-9) < 1:
        raise BadInputError(f"too few samples: {n} samples with --ratio {ratio:g} give {chosen} per side")


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
        raise BadInputError(f"--val-split must be in [0, 1), got {val_split}")
    n = len(s)
    if s.max() == s.min():
        raise BadInputError(f"all {n} scores are equal ({s[0]:g}); there is no attribute to separate")
    chosen = chosen_count(n, ratio)
    # official: train_num = int(chosen * split_ratio); the epsilon keeps 1 - 0.9 from rounding 40 down to 39
    train_num = int(chosen * (1.0 - val_split) + 1e-9)
    if chosen < 2 or train_num < 1:
        raise BadInputError(
            f"too few samples: {n} scores with --ratio {ratio:g} give {chosen} per side and {train_num} per side "
            "for training; use more samples or a larger --ratio"
        )
    order = _order(s)
    top, bottom = order[:chosen], order[n - chosen :]
    if s[top].min() <= s[bottom].max():
        raise BadInputError(
            f"the top and bottom {chosen} scores overlap (tied values around {s[top].min():g}); "
            "the scores do not separate two groups at this --ratio"
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
            f"(tails of {len(top)} per side at this --ratio)"
        )


# ---------------------------------------------------------------------- fitting


def _classifier(solver: str, C: float, seed: int | None, max_iter: int | None) -> Any:
    from sklearn import svm

    if solver == "svc":
        return svm.SVC(kernel="linear", C=C, max_iter=-1 if max_iter is None else max_iter)
    if solver == "linearsvc":
        return svm.LinearSVC(C=C, dual="auto", random_state=seed, max_iter=max_iter or 10_000)
    raise BadInputError(f"--solver must be one of {', '.join(SOLVERS)}, got {solver!r}")


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
        raise BadInputError(f"--C must be positive, got {C}")
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


# ---------------------------------------------------------------------- conditions


def project_boundary(normal: np.ndarray, conditions: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """``n - C (CᵀC)⁻¹ Cᵀ n`` renormalised: the part of ``normal`` orthogonal to every condition.

    ``conditions``: (M, D) rows (or a list of (D,) vectors), any M >= 0. Computed in float64 with a
    least-squares solve, so nearly dependent conditions still give an orthogonal result.
    """
    n = np.asarray(normal, np.float64).ravel()
    c = np.asarray(conditions, np.float64)
    if c.size == 0:
        return (n / np.linalg.norm(n)).astype(np.float32)
    c = c.reshape(-1, c.shape[-1])
    if c.shape[1] != n.shape[0]:
        raise MismatchError(f"condition directions have dimension {c.shape[1]}, the boundary has {n.shape[0]}")
    if not np.isfinite(c).all():
        raise BadInputError("condition directions contain NaN or inf")
    coef, *_ = np.linalg.lstsq(c.T, n, rcond=None)  # minimises |Cᵀ-columns · coef - n|: the projection onto span(C)
    new = n - c.T @ coef
    for _ in range(2):  # re-orthogonalise away float64 round-off (one pass is usually enough)
        coef, *_ = np.linalg.lstsq(c.T, new, rcond=None)
        new = new - c.T @ coef
    norm = np.linalg.norm(new)
    if norm < 1e-6 * np.linalg.norm(n):
        raise BadInputError("the boundary lies in the span of its conditions; nothing is left after projection")
    return new / norm


def projected_intercept(normal: np.ndarray, intercept: float, projected: np.ndarray) -> float:
    """Offset of the projected hyperplane through the original's closest point to the origin
    (``-intercept * normal``): ``intercept * (normal · projected)``."""
    return float(intercept * np.dot(np.asarray(normal, np.float64), np.asarray(projected, np.float64)))


# ---------------------------------------------------------------------- banks


def features(latents: np.ndarray, space: str, layers: Sequence[int] | None) -> np.ndarray:
    """(N, D) training features: w+ latents keep only ``layers`` (concatenated), others flatten."""
    x = np.asarray(latents)
    if space == "w+" and layers is not None:
        x = x[:, list(layers)]
    return x.reshape(len(x), -1)


def boundary_bank(
    boundaries: Sequence[Boundary],
    names: Sequence[str],
    *,
    space: str,
    generator: dict[str, Any],
    layers: Sequence[int] | None = None,
    params: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    directions: np.ndarray | None = None,
    intercepts: Sequence[float] | None = None,
) -> DirectionBank:
    """A bank with one unit normal per boundary (``step_unit='distance'``, ``intercepts`` set).

    ``directions``/``intercepts`` override the fitted ones (e.g. after projection onto conditions).
    Each direction's score is its validation accuracy (remaining-set accuracy without validation).
    """
    dirs = np.stack([b.normal for b in boundaries]) if directions is None else np.asarray(directions)
    icpt = [b.intercept for b in boundaries] if intercepts is None else list(intercepts)
    scores = [
        b.val_accuracy
        if b.val_accuracy is not None
        else (b.remaining_accuracy if b.remaining_accuracy is not None else 0.0)
        for b in boundaries
    ]
    meta = dict(info or {})
    meta["boundaries"] = [{"name": nm, **b.metadata()} for nm, b in zip(names, boundaries, strict=True)]
    meta["score"] = "validation accuracy of the linear SVM"
    return DirectionBank(
        directions=dirs.astype(np.float32),
        space=space,
        method="interfacegan",
        generator=generator,
        layers=None if (layers is None or space == "z") else list(layers),
        scores=np.asarray(scores, np.float32),
        names=list(names),
        params=dict(params or {}),
        info=meta,
        step_unit="distance",
        default_range=(-3.0, 3.0),
        intercepts=np.asarray(icpt, np.float32),
    )


def parse_condition(spec: str) -> tuple[str, list[int]]:
    """``BANK:INDEX[,INDEX...]`` (index specs like ``0-2,5``) -> (bank path, indices)."""
    from ..specs import parse_indices

    path, sep, idx = str(spec).rpartition(":")
    if not sep or not path or not idx.strip():
        raise BadInputError(f"--condition must look like BANK.npz:INDEX[,INDEX...], got {spec!r}")
    return path, parse_indices(idx, None, "direction")


def load_conditions(
    specs: Sequence[str], space: str, dim: int, layers: Sequence[int] | None
) -> tuple[np.ndarray, list]:
    """Condition directions (M, dim) from ``--condition`` specs, checked against the new boundary's space."""
    rows, used = [], []
    for spec in specs:
        path, idx = parse_condition(spec)
        bank = DirectionBank.load(path)
        idx = bank.check_indices(idx)
        if bank.space != space or bank.dim != dim:
            raise MismatchError(
                f"condition bank {path} edits {bank.space} (dimension {bank.dim}); the boundary lives in "
                f"{space} (dimension {dim})"
            )
        if space == "w+" and (bank.layers or None) != (list(layers) if layers is not None else None):
            raise MismatchError(f"condition bank {path} covers w+ layers {bank.layers}, the boundary {layers}")
        rows.append(bank.directions[idx])
        used.append({"bank": str(path), "indices": idx, "names": [bank.names[i] for i in idx]})
    return (np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)), used


def fit_bank(
    latents: np.ndarray | Rows,
    scores: np.ndarray,
    names: Sequence[str],
    *,
    space: str,
    generator: dict[str, Any],
    layers: Sequence[int] | None = None,
    ratio: float = 0.02,
    val_split: float = 0.3,
    C: float = 1.0,
    solver: str = "svc",
    seed: int | None = 0,
    invalid_value: float | None = None,
    conditions: np.ndarray | None = None,
    condition_info: list | None = None,
    source: str = "",
    max_iter: int | None = None,
    progress: Any = None,
    extra_info: dict[str, Any] | None = None,
) -> DirectionBank:
    """One boundary per score column (each with a fresh ``seed`` split, as separate official calls),
    optionally projected orthogonal to ``conditions``, as an InterFaceGAN bank."""
    s = check_scores(scores, latents.shape[0])
    s = s[:, None] if s.ndim == 1 else s
    if len(names) != s.shape[1]:
        raise BadInputError(f"{s.shape[1]} score columns but {len(names)} names")
    if len(set(names)) != len(names):
        raise BadInputError(f"score column names must be distinct, got {list(names)}")
    boundaries, dirs, icpts, extra = [], [], [], []
    for k, name in enumerate(names):
        b = train_boundary(
            latents, s[:, k], ratio, val_split, C, solver, seed, invalid_value=invalid_value, max_iter=max_iter
        )
        if progress is not None:
            progress(name, b)
        n, c = b.normal.astype(np.float64), b.intercept
        info: dict[str, Any] = {}
        if conditions is not None and len(conditions):
            try:
                p = project_boundary(n, conditions)
            except BadInputError as e:
                raise BadInputError(f"boundary {name!r}: {e}") from None
            info = {
                "cos_with_unconditioned": float(p @ n),
                "max_abs_dot_with_conditions": float(np.abs(np.asarray(conditions, np.float64) @ p).max()),
            }
            c, n = projected_intercept(n, c, p), p
        boundaries.append(b)
        dirs.append(n)
        icpts.append(c)
        extra.append(info)
        if not b.converged:
            from ..progress import warn

            warn(f"warning: the {solver} solver did not converge for {name!r}; consider --solver svc or more samples")
    col = s
    bank_info = {
        "source": source,
        "num_samples": int(len(s)),
        "score_stats": {
            nm: {
                "mean": float(col[:, k].mean()),
                "std": float(col[:, k].std()),
                "min": float(col[:, k].min()),
                "max": float(col[:, k].max()),
            }  # fmt: skip
            for k, nm in enumerate(names)
        },
        "conditions": condition_info or [],
        "projection": extra if conditions is not None and len(conditions) else None,
        "intercept": "signed distance = direction · latent + intercept (latent in the bank's space)",
        **(extra_info or {}),
    }
    params = {
        "ratio": ratio,
        "val_split": val_split,
        "C": C,
        "solver": solver,
        "seed": seed,
        "space": space,
        "layers": None if layers is None else list(layers),
        "invalid_value": invalid_value,
        "conditions": [f"{c['bank']}:{','.join(map(str, c['indices']))}" for c in (condition_info or [])],
    }
    return boundary_bank(
        boundaries,
        names,
        space=space,
        generator=generator,
        layers=layers,
        params=params,
        info=bank_info,
        directions=np.stack(dirs),
        intercepts=icpts,
    )
