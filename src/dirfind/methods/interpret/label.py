"""``dirfind label``: name each direction after the attribute its traversal changes most.

From an evaluation's standardised responses r[k, a] (the change of attribute a over the range of
direction k, in units of a's spread over samples): an attribute t names the direction with the
sign of its change ("+smile", "-age") when |r_t| reaches ``min_effect`` and exceeds every rival by
``min_ratio``; otherwise the direction is "mixed". A rival b counts only with the part of its change
that does not follow t the way it does across the samples: |r_b - rho_tb r_t|, with rho_tb the
correlation of the two scores over the unedited samples (mouth width follows a smile; yaw follows
the face's horizontal position). Of the attributes that change enough, t is the one with the
largest ratio |r_t| / max_b |r_b - rho_tb r_t| (the one that explains the others best). Style banks
also get a layer-region hint (StyleGAN's coarse 0-3 / middle 4-7 / fine 8+ w+ layers). The result
is a new bank whose names are the labels (unique: repeats get ``.2``, ``.3`` by strength; mixed
directions ``mixed.<index>``) with the original names and the evidence in ``info["labels"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...bank import DirectionBank
from ...core.evaluation import Evaluation
from ...errors import BadInputError
from ...util.options import check_positive, option

#: StyleGAN's layer groups (w+ indices; Karras et al. 2019: coarse 4-8 px, middle 16-32 px, fine 64 px+)
LAYER_REGIONS = (("coarse", range(0, 4)), ("middle", range(4, 8)), ("fine", range(8, 10_000)))
STYLE_FAMILIES = ("stylegan2", "stylegan3")


@dataclass(frozen=True)
class LabelOptions:
    """Options of :func:`label` (the defaults of ``dirfind label``)."""

    min_effect: float = option(
        1.0,
        "Smallest attribute change over the range, in the attribute's spreads over samples, that names a direction.",
    )
    min_ratio: float = option(1.5, "How many times larger the top attribute's change must be than the next one's.")

    def __post_init__(self) -> None:
        check_positive(self.min_effect, "min_effect", 0, strict=True)
        check_positive(self.min_ratio, "min_ratio", 1)


def layer_hint(bank: DirectionBank, index: int) -> dict[str, Any] | None:
    """Share of the direction in StyleGAN's coarse/middle/fine w+ layers and the dominant group
    (None for banks that are not per-layer edits of a style-based generator)."""
    g = bank.generator
    if g.get("family") not in STYLE_FAMILIES or bank.space == "z":
        return None
    num_ws = int(g.get("num_ws") or 0)
    layers = bank.layers if bank.layers is not None else list(range(num_ws))
    if not layers:
        return None
    if bank.space == "w+":
        blocks = bank.directions[index].astype(np.float64).reshape(len(layers), -1)
        weight = (blocks**2).sum(1)
    else:
        weight = np.ones(len(layers))
    shares = {
        name: float(sum(w for layer, w in zip(layers, weight, strict=True) if layer in r)) for name, r in LAYER_REGIONS
    }
    total = sum(shares.values()) or 1.0
    shares = {k: v / total for k, v in shares.items()}
    top = max(shares, key=shares.get)
    return {"region": top if shares[top] >= 0.5 else "mixed layers", "shares": shares}


def _one(names: list[str], r: np.ndarray, rho: np.ndarray, o: LabelOptions) -> dict[str, Any]:
    """The label of one direction from its responses r (A,) (NaN = attribute did not vary) and the
    attributes' correlations rho (A, A) over the samples."""
    r = np.nan_to_num(r)

    def rivalry(t: int) -> tuple[int | None, np.ndarray, float]:
        rivals = np.abs(r - rho[t] * r[t])  # what each attribute does beyond following t
        rivals[t] = 0.0
        second = int(np.argmax(rivals)) if len(r) > 1 else None
        ratio = abs(r[t]) / rivals[second] if second is not None and rivals[second] > 0 else np.inf
        return second, rivals, float(ratio)

    # the attribute that explains the others best among those that change enough (else the largest)
    strong_ones = [t for t in range(len(r)) if abs(r[t]) >= o.min_effect]
    top = max(strong_ones, key=lambda t: (rivalry(t)[2], abs(r[t]))) if strong_ones else int(np.argmax(np.abs(r)))
    second, rivals, ratio_ = rivalry(top)
    ratio = None if not np.isfinite(ratio_) else ratio_
    strong = abs(r[top]) >= o.min_effect
    dominant = ratio is None or ratio >= o.min_ratio
    text = f"{'+' if r[top] > 0 else '-'}{names[top]}" if strong and dominant else "mixed"
    related = [names[b] for b in range(len(r)) if b != top and abs(rho[top, b]) >= 0.5 and abs(r[b]) >= o.min_effect]
    return {
        "label": text,
        "attribute": names[top],
        "response": float(r[top]),
        "runner_up": None if second is None else names[second],
        "runner_up_response": None if second is None else float(r[second]),
        "runner_up_residual": None if second is None else float(rivals[second]),
        "confidence": ratio,
        "related": related,
        "why": "" if text != "mixed" else ("too weak" if not strong else "no attribute dominates"),
    }


def label(
    bank: DirectionBank,
    evaluation: Evaluation,
    opts: LabelOptions | None = None,
    /,
    *,
    force: bool = False,
    **changes: Any,
) -> DirectionBank:
    """A copy of ``bank`` whose names are labels from ``evaluation``'s attribute responses.

    Parameters
    ----------
    bank : DirectionBank
        The bank that was evaluated (checked against the evaluation's fingerprint).
    evaluation : Evaluation
        ``dirfind evaluate`` results with at least one attribute (a predictor's scores).
    opts : LabelOptions, optional
        ``min_effect`` and ``min_ratio``; keyword ``changes`` override its fields.
    force : bool
        Use an evaluation of another bank (different fingerprint).

    Returns
    -------
    DirectionBank
        The same directions named by their labels; ``info["labels"]`` holds, per direction, the
        original name, the label, its evidence (responses, confidence, correlation, attribute
        dependency) and the layer hint. Directions the evaluation did not cover keep their names.
    """
    o = replace(opts or LabelOptions(), **changes)
    evaluation.check_bank(bank, force=force)
    attrs = evaluation.attributes
    if not attrs:
        raise BadInputError("the evaluation has no attribute scores; evaluate with predictors", param="predictors")
    resp = evaluation["response"]
    rho = evaluation.get("attr_corr")
    rho = np.eye(len(attrs)) if rho is None else np.nan_to_num(rho)
    records: list[dict[str, Any]] = []
    for row, k in enumerate(evaluation.dirs):
        rec = {"index": k, "original_name": bank.names[k], **_one(attrs, resp[row], rho, o)}
        a = attrs.index(rec["attribute"])
        rec["corr"] = float(evaluation["corr"][row, a])
        for key in ("ad_mean", "ad_max"):
            v = float(evaluation[key][row, a])
            rec[key] = None if not np.isfinite(v) else v
        rec["layers"] = layer_hint(bank, k)
        records.append(rec)
    names = list(bank.names)
    for rec in records:
        if rec["label"] == "mixed":
            names[rec["index"]] = f"mixed.{rec['index']}"
    for text in {r["label"] for r in records} - {"mixed"}:
        same = sorted((r for r in records if r["label"] == text), key=lambda r: -abs(r["response"]))
        for rank, rec in enumerate(same, 1):
            names[rec["index"]] = text if rank == 1 else f"{text}.{rank}"
    for rec in records:
        rec["name"] = names[rec["index"]]
    info = {
        **bank.info,
        "labels": records,
        "label_evidence": {
            "bank": evaluation.bank.get("path"),
            "bank_fingerprint": evaluation.bank.get("fingerprint"),
            "attributes": attrs,
            **evaluation.run,
            "min_effect": o.min_effect,
            "min_ratio": o.min_ratio,
        },
    }
    return replace(bank, names=names, info=info, extras=dict(bank.extras), created="")
