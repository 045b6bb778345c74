"""The evaluation file (``dirfind evaluate --out report.npz``): per-direction metrics of a bank.

A self-describing ``.npz`` of plain arrays plus one JSON ``meta`` string (no pickles), versioned
like banks and tied to the bank and generator it measured by their fingerprints. ``meta`` holds
the run (samples, seed, steps, predictors, region), the bank and generator records and
``metrics``: a description of every array. Read it with :meth:`Evaluation.load` or plain numpy.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..bank import DirectionBank, _jsonable
from ..errors import BadInputError, MismatchError
from ..util.fileio import read_meta_npz, write_meta_npz

FORMAT = "dirfind.evaluation"
FORMAT_VERSION = 1

#: array name -> (shape in K directions, S steps, A attributes, h x w map; what it holds)
METRICS: dict[str, str] = {
    "dirs": "(K,) bank index of each evaluated direction",
    "names": "(K,) the bank's name of each evaluated direction",
    "alphas": "(S,) the steps, in the bank's step unit",
    "profile": "(K, S) mean |x(alpha) - x(0)| per pixel and channel, images in [0, 1]",
    "effect": "(K,) mean |x(hi) - x(lo)| per pixel and channel between the ends of the range",
    "monotone": "(K,) 1 if the profile grows with |alpha| on both sides of 0",
    "saturation": "(K,) 2 E(A/2) / E(A) - 1 averaged over both sides: 0 linear, > 0 saturating, < 0 accelerating",
    "change_map": "(K, h, w) mean over samples and channels of |x(hi) - x(lo)| (area-pooled to at most map_size)",
    "change_sq_map": "(K, h, w) the same for the squared change",
    "box50": "(K,) area share of the smallest axis-aligned box holding half the change (small = local)",
    "entropy": "(K,) spatial entropy of the change map over log(h w): 1 uniform, 0 one pixel",
    "outside_share": "(K,) share of the change outside the direction's own area (pixels >= half the map's max)",
    "outside_change": "(K,) mean |change| per pixel outside that area",
    "ssim": "(K,) mean SSIM (Wang et al. 2004; 11x11 Gaussian, sigma 1.5) between x(lo) and x(hi)",
    "inside_outside": "(K,) region only: mean squared change per pixel inside / outside the region",
    "inside_share": "(K,) region only: share of the |change| inside the region",
    "region": "(H, W) region only: the mask at image resolution (1 = inside)",
    "attr_names": "(A,) attribute names (predictor outputs)",
    "attr_mean": "(A,) mean attribute score of the unedited samples",
    "attr_sd": "(A,) standard deviation of the attribute over the unedited samples (its spread)",
    "attr_corr": "(A, A) correlation of the attributes over the unedited samples",
    "attr_profile": "(K, S, A) mean attribute score at each step",
    "slope": "(K, A) within-sample least-squares slope of the score along alpha (per step unit)",
    "corr": "(K, A) within-sample correlation of the score with alpha",
    "response": "(K, A) slope * (hi - lo) / attr_sd: attribute change over the range in sample spreads",
    "abs_change": "(K, A) mean |score(hi) - score(lo)| / attr_sd",
    "ad_mean": "(K, A) attribute dependency with target a: mean over the others of abs_change / abs_change[a]",
    "ad_max": "(K, A) the same, max over the other attributes",
    "map_corr": "(K, K) correlation of the change maps",
    "attr_cos": "(K, K) cosine of the attribute responses (empty without attributes)",
    "latent_cos": "(K, K) |cos| between the directions in the bank's space",
}


@dataclass
class Evaluation:
    """Measured behaviour of directions of one bank on one generator (see :data:`METRICS`)."""

    arrays: dict[str, np.ndarray]
    bank: dict[str, Any]
    generator: dict[str, Any]
    run: dict[str, Any]
    created: str = ""
    dirfind_version: str = __version__
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.created = self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def get(self, key: str) -> np.ndarray | None:
        return self.arrays.get(key)

    @property
    def dirs(self) -> list[int]:
        return [int(i) for i in self.arrays["dirs"]]

    @property
    def attributes(self) -> list[str]:
        return [str(a) for a in self.arrays.get("attr_names", np.zeros(0, str))]

    def meta(self) -> dict[str, Any]:
        return _jsonable(
            {
                "format": FORMAT,
                "format_version": self.format_version,
                "dirfind_version": self.dirfind_version,
                "created": self.created,
                "bank": self.bank,
                "generator": self.generator,
                "run": self.run,
                "metrics": {k: v for k, v in METRICS.items() if k in self.arrays},
                **self.extra,
            }
        )

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write atomically; an existing file needs ``force``."""
        return write_meta_npz(path, self.meta(), self.arrays, force=force)

    @classmethod
    def load(cls, path: str | Path) -> Evaluation:
        """Read an evaluation file (one-line errors for a missing, foreign or newer file)."""
        meta, arrays = read_meta_npz(path, "dirfind evaluation", FORMAT)
        version = meta.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise BadInputError(f"{path}: invalid evaluation format version {version!r}")
        if version > FORMAT_VERSION:
            raise BadInputError(f"{path}: evaluation format version {version} is newer than this dirfind; upgrade")
        for key in ("bank", "generator", "run"):
            if not isinstance(meta.get(key, {}), dict):
                raise BadInputError(f"{path}: malformed dirfind evaluation ({key} must be an object)")
        check_arrays(path, arrays)
        known = ("format", "format_version", "dirfind_version", "created", "bank", "generator", "run", "metrics")
        return cls(
            arrays=arrays,
            bank=meta.get("bank") or {},
            generator=meta.get("generator") or {},
            run=meta.get("run") or {},
            created=meta.get("created", ""),
            dirfind_version=meta.get("dirfind_version", ""),
            format_version=version,
            extra={k: v for k, v in meta.items() if k not in known},
        )

    def check_bank(self, bank: DirectionBank, force: bool = False) -> None:
        """Refuse an evaluation of another bank (different fingerprint) unless ``force``."""
        mine = self.bank.get("fingerprint")
        if mine and mine != bank.fingerprint() and not force:
            raise MismatchError(
                f"the evaluation measured another bank (sha256 {mine[:12]}...) than this one "
                f"(sha256 {bank.fingerprint()[:12]}...); pass force=True to use it anyway",
                param="force",
            )
        if max(self.dirs, default=-1) >= len(bank):
            raise MismatchError(f"the evaluation covers direction {max(self.dirs)}; the bank has {len(bank)}")


#: arrays every evaluation holds, and those it holds when it has attributes (see ``metrics.finalise``)
REQUIRED = ("dirs", "names", "alphas", "profile", "effect", "monotone", "saturation", "change_map", "box50")
REQUIRED += ("entropy", "outside_share", "ssim", "map_corr")
WITH_ATTRIBUTES = ("attr_mean", "attr_sd", "attr_corr", "slope", "corr", "response", "abs_change", "ad_mean")


def check_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """One-line errors naming the file unless the arrays have the kinds and shapes of :data:`METRICS`
    (K directions, S steps, A attributes agreeing across arrays), so readers can index them freely."""
    names = arrays.get("attr_names", np.zeros(0, str))
    required = REQUIRED + (WITH_ATTRIBUTES if names.size else ())
    missing = [k for k in required if k not in arrays]
    if missing:
        raise BadInputError(f"{path}: not a complete dirfind evaluation (missing {', '.join(missing)})")
    dirs = arrays["dirs"]
    if dirs.dtype.kind not in "iu" or dirs.ndim != 1 or not len(dirs) or (dirs < 0).any():
        raise BadInputError(
            f"{path}: malformed dirfind evaluation (dirs must be direction indices, got {dirs.dtype} {dirs.shape})"
        )
    alphas = arrays["alphas"]
    sizes = {"K": len(dirs), "S": alphas.shape[0] if alphas.ndim == 1 else -1, "A": len(names)}
    for key, arr in arrays.items():
        spec = METRICS.get(key, "").partition(")")[0].lstrip("(").replace(" ", "")
        if not spec or (key == "attr_cos" and arr.size == 0):  # no attributes: an empty matrix
            continue
        dims = [d for d in spec.split(",") if d]
        text = key in ("names", "attr_names")
        ok = arr.dtype.kind == "U" if text else arr.dtype.kind in "biuf"
        if not ok or arr.ndim != len(dims) or any(sizes.get(d, n) != n for d, n in zip(dims, arr.shape, strict=True)):
            want = " x ".join(str(sizes.get(d, d)) for d in dims)
            raise BadInputError(
                f"{path}: malformed dirfind evaluation ({key} must be {want} {'text' if text else 'numbers'}, "
                f"got {arr.dtype} {arr.shape})"
            )


def bank_record(bank: DirectionBank, path: str | Path | None = None) -> dict[str, Any]:
    """What an evaluation records about the bank it measured."""
    return {
        "path": None if path is None else str(path),
        "fingerprint": bank.fingerprint(),
        "method": bank.method,
        "space": bank.space,
        "layers": bank.layers,
        "step_unit": bank.step_unit,
        "num_directions": len(bank),
        "names": bank.names,
        "params": bank.params,
    }
