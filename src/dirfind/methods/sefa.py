"""SeFa: closed-form factorisation of the weights that read the latent (Shen & Zhou, CVPR 2021).

Stack the latent-reading weight matrices A (out_features x D, ``features = A @ latent``); the
directions are the eigenvectors of AᵀA, sorted by eigenvalue (descending) — the latent directions
that move the first-layer features most.

Variants:
* ``genforce`` (official genforce/sefa): every output feature (row of A) is normalised to unit
  L2 norm first, so no single channel dominates.
* ``rosinality`` (``closed_form_factorization.py``): no normalisation; with rosinality's own layer
  selection for StyleGAN2 (all conv modulations plus the first to-RGB).

Unlike the official code we use a symmetric eigensolver in float64 and sort by eigenvalue; the
eigenvalues are the scores. Each direction's sign is fixed so that its largest-magnitude entry is
positive, making output independent of the LAPACK build.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg

from ..bank import DirectionBank, generator_identity
from ..errors import BadInputError
from ..generators.base import Generator

VARIANTS = ("genforce", "rosinality")


def factorize(a: np.ndarray, normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decompose AᵀA for A (out x D): returns (eigenvalues desc, directions as rows)."""
    a = np.asarray(a, dtype=np.float64)
    if normalize:
        norms = np.linalg.norm(a, axis=1, keepdims=True)
        a = a / np.where(norms > 0, norms, 1.0)
    vals, vecs = scipy.linalg.eigh(a.T @ a)
    order = np.argsort(-vals, kind="stable")
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order].T
    pivot = np.abs(vecs).argmax(axis=1)
    vecs *= np.sign(vecs[np.arange(len(vecs)), pivot])[:, None]
    return vals, vecs


def sefa(
    gen: Generator,
    layers: Sequence[int] | None = None,
    k: int | None = None,
    variant: str = "genforce",
) -> DirectionBank:
    """SeFa directions of ``gen`` as a bank (space ``w`` for style-based families, else ``z``).

    ``layers``: latent-reading layers to factorise (and to edit); None = the variant's default.
    The bank records them wherever the generator can edit chosen layers (``layer_space()``: w, or
    z on families whose w+ is per-layer z, such as BigGAN).
    ``k``: keep the top-k directions (None = all).
    """
    if variant not in VARIANTS:
        raise BadInputError(f"SeFa variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    mats = gen.latent_weights(layers, variant)
    a = np.concatenate([m.detach().float().cpu().numpy() for m in mats.values()], axis=0)
    vals, vecs = factorize(a, normalize=(variant == "genforce"))
    total = float(vals.sum())
    if k is not None:
        if k < 1:
            raise BadInputError(f"-k must be at least 1, got {k}")
        vals, vecs = vals[:k], vecs[:k]
    space = "w" if "w" in gen.spaces else "z"
    return DirectionBank(
        directions=vecs.astype(np.float32),
        space=space,
        method="sefa",
        generator=generator_identity(gen),
        layers=None if (layers is None or gen.layer_space() != space) else list(layers),
        scores=vals.astype(np.float32),
        names=[f"sefa_{i}" for i in range(len(vals))],
        params={"variant": variant, "layers": None if layers is None else list(layers), "k": k},
        info={
            "weights": list(mats),
            "matrix_shape": list(a.shape),
            "score": "eigenvalue of AᵀA",
            "explained": (vals / total).tolist() if total > 0 else None,
        },
        step_unit="unit",
        default_range=(-3.0, 3.0),
    )
