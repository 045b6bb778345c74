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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..bank import DirectionBank, generator_identity
from ..errors import BadInputError
from ..generators.base import VARIANTS, Generator
from ..util.options import check_choice, option


@dataclass(frozen=True)
class SefaOptions:
    """Options of :func:`sefa` (the defaults of ``dirfind sefa``)."""

    layers: Sequence[int] | None = option(
        None, "Latent-reading layers to factorise (w+ indices; default: the variant's choice).", metavar="SPEC"
    )
    k: int | None = option(None, "Keep the top K directions (default: all).")
    variant: str = option(
        "genforce",
        "genforce = official SeFa (unit-normalised features); rosinality = unnormalised.",
        choices=VARIANTS,
    )

    def __post_init__(self) -> None:
        check_choice(self.variant, "variant", VARIANTS)
        if self.k is not None and self.k < 1:
            raise BadInputError(f"k must be at least 1, got {self.k}", param="k")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))


def factorize(a: np.ndarray, normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decompose AᵀA for A (out x D): returns (eigenvalues desc, directions as rows)."""
    a = np.asarray(a, dtype=np.float64)
    if normalize:
        norms = np.linalg.norm(a, axis=1, keepdims=True)
        a = a / np.where(norms > 0, norms, 1.0)
    vals, vecs = np.linalg.eigh(a.T @ a)  # LAPACK syevd, as scipy's; numpy is already loaded
    order = np.argsort(-vals, kind="stable")
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order].T
    pivot = np.abs(vecs).argmax(axis=1)
    vecs *= np.sign(vecs[np.arange(len(vecs)), pivot])[:, None]
    return vals, vecs


def sefa(gen: Generator, opts: SefaOptions | None = None, /, **changes: Any) -> DirectionBank:
    """SeFa directions of ``gen`` as a bank (space ``w`` for style-based families, else ``z``).

    Parameters
    ----------
    gen : Generator
        The generator whose latent-reading weights are factorised.
    opts : SefaOptions, optional
        ``layers`` (latent-reading layers to factorise and to edit; None = the variant's default),
        ``k`` (keep the top k; None = all) and ``variant`` (``genforce`` or ``rosinality``);
        keyword ``changes`` override its fields (``sefa(gen, k=10)``).

    Returns
    -------
    DirectionBank
        Unit eigenvectors of AᵀA by descending eigenvalue (the scores). The bank records the
        layers wherever the generator can edit chosen layers (``layer_space()``: w, or z on
        families whose w+ is per-layer z, such as BigGAN).
    """
    o = replace(opts or SefaOptions(), **changes)
    layers = None if o.layers is None else list(o.layers)
    mats = gen.latent_weights(layers, o.variant)
    a = np.concatenate([m.detach().float().cpu().numpy() for m in mats.values()], axis=0)
    vals, vecs = factorize(a, normalize=(o.variant == "genforce"))
    total = float(vals.sum())
    if o.k is not None:
        vals, vecs = vals[: o.k], vecs[: o.k]
    space = "w" if "w" in gen.spaces else "z"
    return DirectionBank(
        directions=vecs.astype(np.float32),
        space=space,
        method="sefa",
        generator=generator_identity(gen),
        layers=None if (layers is None or gen.layer_space() != space) else layers,
        scores=vals.astype(np.float32),
        names=[f"sefa_{i}" for i in range(len(vals))],
        params={"variant": o.variant, "layers": layers, "k": o.k},
        info={
            "weights": list(mats),
            "matrix_shape": list(a.shape),
            "score": "eigenvalue of AᵀA",
            "explained": (vals / total).tolist() if total > 0 else None,
        },
        step_unit="unit",
        default_range=(-3.0, 3.0),
    )
