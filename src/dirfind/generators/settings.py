"""Render settings: everything besides the latent that decides an image, as one frozen value.

A generator holds one :class:`RenderSettings` (``gen.settings``); :meth:`Generator.with_settings`
returns a copy sharing the weights with other settings, so nothing has to be restored afterwards.
Banks, sample files and resumable runs record the settings they were made under.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import BadInputError

NOISE_MODES = ("const", "random", "none")


@dataclass(frozen=True)
class RenderSettings:
    """Truncation ``psi`` (towards the average latent) and its ``cutoff`` (first N w+ layers only),
    per-pixel noise mode (style-based families), class (class-conditional families) and an input
    ``transform`` = (tx, ty, degrees) (StyleGAN3, as ``gen_images.py --translate/--rotate``).
    Family-specific limits are checked by :meth:`Generator.check_settings`."""

    truncation: float = 1.0
    truncation_cutoff: int | None = None
    noise_mode: str = "const"
    class_index: int | None = None
    transform: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        try:
            psi = float(self.truncation)
        except (TypeError, ValueError):
            psi = math.nan
        if not math.isfinite(psi) or psi < 0:
            raise BadInputError(f"truncation must be a finite number >= 0, got {self.truncation}", param="truncation")
        object.__setattr__(self, "truncation", psi)
        for name in ("truncation_cutoff", "class_index"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, int) and not (isinstance(v, float) and v.is_integer()):
                    raise BadInputError(f"{name} must be a whole number, got {v!r}", param=name)
                if v < 0:
                    raise BadInputError(f"{name} must be >= 0, got {v}", param=name)
                object.__setattr__(self, name, int(v))
        if self.noise_mode not in NOISE_MODES:
            raise BadInputError(
                f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {self.noise_mode!r}", param="noise_mode"
            )
        if self.transform is not None:
            try:
                vals = tuple(float(v) for v in self.transform)
            except (TypeError, ValueError):
                vals = ()
            if len(vals) != 3 or not all(math.isfinite(v) for v in vals):
                raise BadInputError(
                    f"transform must be three finite numbers (tx, ty, degrees), got {self.transform!r}",
                    param="transform",
                )
            object.__setattr__(self, "transform", vals)

    def replace(self, **changes: Any) -> RenderSettings:
        """A copy with ``changes`` applied; ``None`` values leave a setting as it is."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise BadInputError(f"unknown render setting(s): {', '.join(sorted(unknown))}")
        given = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given) if given else self

    def identity(self) -> dict[str, Any]:
        """JSON-ready record for resume identities and sample files (``transform`` only when set,
        so that records made before it existed still match)."""
        out: dict[str, Any] = {
            "truncation": self.truncation,
            "truncation_cutoff": self.truncation_cutoff,
            "noise_mode": self.noise_mode,
            "class_index": self.class_index,
        }
        if self.transform is not None:
            out["transform"] = list(self.transform)
        return out

    def record(self) -> dict[str, Any]:
        """The settings that differ from the defaults (what a bank stores)."""
        default = RenderSettings().identity()
        return {k: v for k, v in self.identity().items() if k not in default or v != default[k]}

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> dict[str, Any]:
        """The render settings in a bank's or sample file's generator record, as ``replace`` changes."""
        if not isinstance(record, Mapping):
            return {}
        return {f.name: record[f.name] for f in fields(cls) if record.get(f.name) is not None}
