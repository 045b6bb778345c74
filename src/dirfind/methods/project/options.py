"""``ProjectOptions``: the one source of projection defaults (NVIDIA ``projector.py``'s schedule)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...core.losses import parse_terms
from ...util.options import check_choice, check_positive, option
from .images import FITS

#: the default reconstruction loss (docs/projection.md: vgg beats l2 on held-out images; this sum is unmeasured)
DEFAULT_LOSS = (("vgg", 1.0), ("l2", 1.0))


@dataclass(frozen=True)
class ProjectOptions:
    """How images are projected (the defaults of ``dirfind project``). All fields but
    ``checkpoint_steps`` and ``batch_size`` define a run's identity."""

    space: str | None = option(
        None, "Latent space to optimise (default: w for style-based families, else z).", choices=("z", "w", "w+")
    )
    steps: int = option(1000, "Optimisation steps per image.")
    loss: tuple[tuple[str, float], ...] = option(
        DEFAULT_LOSS, "Loss terms and weights, e.g. vgg:1,l2:1 (l2, l1, msssim, vgg, lpips).", metavar="NAME:W,..."
    )
    restarts: int = option(1, "Independent starts per image; the lowest final loss is kept.")
    batch_size: int = option(8, "Optimisation problems (image x restart) per generator call.")
    lr: float = option(0.1, "Peak Adam learning rate.")
    lr_rampup: float = option(0.05, "Share of the steps the learning rate ramps up over.")
    lr_rampdown: float = option(0.25, "Share of the steps it ramps down over (cosine).")
    noise_factor: float = option(0.05, "Initial latent noise, in units of the latent's spread.")
    noise_ramp: float = option(0.75, "Share of the steps the latent noise fades over (quadratic).")
    noise_regularize: float = option(1e5, "Weight of the noise-map regulariser (style-based families).")
    optimize_noise: bool = option(True, "Optimise the per-pixel noise maps where the family has them.")
    candidates: int = option(16, "z latents: prior draws per restart; the closest (by the loss) is its start.")
    prior: float = option(0.1, "Weight of the z prior (mean(z^2) - 1)^2 that keeps z typical (z latents).")
    fit: str = option("crop", "Square the images by centre crop or padding.", choices=FITS)
    w_avg_samples: int = option(10000, "Samples for the mean latent and its spread.")
    checkpoint_steps: int = option(100, "Save progress every N steps.")
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss", parse_terms(self.loss))
        check_choice(self.fit, "fit", FITS)
        if self.space is not None:
            check_choice(self.space, "space", ("z", "w", "w+"))
        for name in ("steps", "restarts", "batch_size", "checkpoint_steps", "w_avg_samples", "candidates"):
            check_positive(getattr(self, name), name)
        check_positive(self.lr, "lr", 0, strict=True)
        for name in ("lr_rampup", "lr_rampdown", "noise_ramp"):
            check_positive(getattr(self, name), name, 0, strict=True)
        for name in ("noise_factor", "noise_regularize", "prior"):
            check_positive(getattr(self, name), name, 0)

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("checkpoint_steps", "batch_size"):
            d.pop(key)
        d["loss"] = [list(t) for t in self.loss]
        return d
