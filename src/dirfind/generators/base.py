"""The generator adapter interface: every GAN family is wrapped to look the same to the methods.

Conventions
-----------
* Edit spaces: ``"z"`` (N, z_dim) for every family; style-based families add ``"w"`` (N, w_dim),
  one vector broadcast to every layer, and ``"w+"`` (N, num_ws, w_dim), one vector per
  latent-reading layer. A family may have ``w+`` without ``w`` when its layers read z directly
  (BigGAN: per-layer z, ``w_dim == z_dim``, ``embed(z, "w+")`` repeats z); then z plays w's
  part, see :meth:`Generator.layer_space`.
* Images are NCHW float in [-1, 1] (not clamped: real networks overshoot slightly).
* Render settings that are not part of a latent (truncation, noise mode, class, and for families
  with ``supports_transform`` an input translation/rotation) live on the adapter and are changed
  with :meth:`Generator.configure`, like ``module.eval()``.
* ``synthesis`` must be a pure tensor function of the latent (no in-place ops on it, no custom
  autograd functions without a forward-mode rule) so ``torch.func.jvp`` works through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import BadInputError, UnsupportedError

SPACES = ("z", "w", "w+")


class Generator(torch.nn.Module):
    """Base class of all generator adapters. Subclasses set the class attributes and implement
    :meth:`embed`, :meth:`synthesis`, :meth:`latent_weights`, :meth:`activation_names` and
    :meth:`activation`; they are registered with :func:`dirfind.generators.register`.
    """

    #: family name used in checkpoints.toml and banks ("dcgan", "stylegan2", ...)
    family: ClassVar[str] = ""
    #: edit spaces this family supports, first = default
    spaces: ClassVar[tuple[str, ...]] = ("z",)
    #: activation GANSpace decomposes by default when the family has no w space (None = ask)
    pca_activation: ClassVar[str | None] = None
    #: whether ``configure(transform=(tx, ty, degrees))`` is meaningful (StyleGAN3's input transform)
    supports_transform: ClassVar[bool] = False
    #: whether the synthesis adds per-pixel noise (``noise_mode`` matters: StyleGAN2)
    has_noise: ClassVar[bool] = False

    def __init__(
        self,
        *,
        z_dim: int,
        resolution: int,
        channels: int = 3,
        w_dim: int | None = None,
        num_ws: int = 1,
        num_classes: int = 0,
    ):
        super().__init__()
        self.z_dim = int(z_dim)
        self.w_dim = int(w_dim if w_dim is not None else z_dim)
        self.num_ws = int(num_ws)
        self.resolution = int(resolution)
        self.channels = int(channels)
        self.num_classes = int(num_classes)
        self.fingerprint = ""  # sha256 of the checkpoint content, set by the loader
        self.checkpoint = ""  # the checkpoint reference as the user gave it
        self.checkpoint_path = ""  # the local file it resolved to
        self.truncation_psi = 1.0
        self.truncation_cutoff: int | None = None
        self.noise_mode = "const"
        self.class_index: int | None = None
        self.transform: tuple[float, float, float] | None = None

    # ------------------------------------------------------------------ settings
    def configure(
        self,
        *,
        truncation: float | None = None,
        truncation_cutoff: int | None = None,
        noise_mode: str | None = None,
        class_index: int | None = None,
        transform: Sequence[float] | None = None,
    ) -> Generator:
        """Set render settings; ``None`` leaves a setting unchanged. Returns ``self``.

        ``transform = (tx, ty, degrees)``: translate and rotate the image as NVIDIA's
        ``gen_images.py --translate tx,ty --rotate deg`` does (families with
        ``supports_transform`` only; ``(0, 0, 0)`` is the identity)."""
        if truncation is not None:
            if not np.isfinite(truncation) or truncation < 0:
                raise BadInputError(f"truncation must be a finite number >= 0, got {truncation}")
            self.truncation_psi = float(truncation)
        if truncation_cutoff is not None:
            if not 0 <= truncation_cutoff <= self.num_ws:
                raise BadInputError(f"truncation cutoff must be in 0..{self.num_ws}, got {truncation_cutoff}")
            self.truncation_cutoff = int(truncation_cutoff)
        if noise_mode is not None:
            if noise_mode not in ("const", "random", "none"):
                raise BadInputError(f"noise mode must be const, random or none, got {noise_mode!r}")
            self.noise_mode = noise_mode
        if class_index is not None:
            if self.num_classes == 0:
                raise BadInputError(f"--class given but this {self.family} generator is unconditional")
            if not 0 <= class_index < self.num_classes:
                raise BadInputError(f"class must be in 0..{self.num_classes - 1}, got {class_index}")
            self.class_index = int(class_index)
        if transform is not None:
            if not self.supports_transform:
                raise UnsupportedError(
                    f"--transform (input translation/rotation) is only available for StyleGAN3; "
                    f"this is a {self.family} generator"
                )
            try:
                vals = tuple(float(v) for v in transform)
            except (TypeError, ValueError):
                vals = ()
            if len(vals) != 3 or not np.isfinite(vals).all():
                raise BadInputError(f"transform must be three finite numbers tx,ty,degrees, got {transform!r}")
            self.transform = vals
        return self

    def render_settings(self) -> dict[str, Any]:
        """The current render settings as :meth:`configure` keywords, JSON-ready, for recording
        with samples, banks and resumable runs (``transform`` only when set, so that records made
        before it existed still match)."""
        out = {
            "truncation": self.truncation_psi,
            "truncation_cutoff": self.truncation_cutoff,
            "noise_mode": self.noise_mode,
            "class_index": self.class_index,
        }
        if self.transform is not None:
            out["transform"] = list(self.transform)
        return out

    def set_precision(self, dtype: torch.dtype = torch.float32, channels_last: bool = False) -> Generator:
        """Compute dtype (and channels-last layout) of the synthesis network, a CUDA speed-up;
        latents stay float32. Families that do not override this render in float32 only."""
        if dtype != torch.float32:
            raise UnsupportedError(f"{self.family} generators render in float32 only (--dtype fp32)")
        return self

    # ------------------------------------------------------------------ latents
    def space_dim(self, space: str) -> int:
        """Dimension of one direction vector in ``space`` (``w+`` directions are per layer)."""
        self.check_space(space)
        return self.z_dim if space == "z" else self.w_dim

    def latent_shape(self, space: str) -> tuple[int, ...]:
        """Shape of one latent (without the batch axis) in ``space``."""
        self.check_space(space)
        if space == "z":
            return (self.z_dim,)
        if space == "w":
            return (self.w_dim,)
        return (self.num_ws, self.w_dim)

    def layer_space(self) -> str | None:
        """The space whose one vector ``w+`` repeats per layer, so that a direction of it can be
        applied to chosen layers only: ``w`` for style-based families, ``z`` for families whose
        ``w+`` is per-layer copies of z (no ``w`` space), None without ``w+``."""
        if "w+" not in self.spaces:
            return None
        return "w" if "w" in self.spaces else "z"

    def check_space(self, space: str) -> str:
        if space not in self.spaces:
            raise BadInputError(
                f"space {space!r} is not available for {self.family}; choose from {', '.join(self.spaces)}"
            )
        return space

    def draw_z(self, rng: np.random.Generator | np.random.RandomState, n: int) -> np.ndarray:
        """Draw ``n`` latents from the family's prior with ``rng`` (float32, (n, z_dim))."""
        return rng.standard_normal((n, self.z_dim)).astype(np.float32)

    def z_from_seeds(self, seeds: Sequence[int]) -> torch.Tensor:
        """One latent per seed, ``RandomState(seed)`` as NVIDIA's ``gen_images.py`` does, so
        ``--seeds 0-3`` shows the same faces in dirfind and the reference scripts."""
        if len(seeds) == 0:
            return torch.zeros(0, self.z_dim)
        z = np.concatenate([self.draw_z(np.random.RandomState(int(s) % 2**32), 1) for s in seeds])
        return torch.from_numpy(z)

    def embed(self, z: torch.Tensor, space: str) -> torch.Tensor:
        """Map z to a latent of ``space``, applying the truncation settings. Identity for ``z``."""
        self.check_space(space)
        if space == "z":
            return z
        raise NotImplementedError

    def synthesis(self, latent: torch.Tensor, space: str) -> torch.Tensor:
        """Render images (NCHW in [-1, 1]) from latents of ``space``."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z -> images with the current settings."""
        return self.synthesis(z, "z")

    # ------------------------------------------------------------------ what methods read
    def latent_weights(self, layers: Sequence[int] | None = None, variant: str = "genforce") -> dict[str, torch.Tensor]:
        """Named weight matrices that read the latent, each (out_features, space_dim), in layer
        order, as SeFa factorises them. ``layers`` indexes latent-reading layers (None = the
        variant's default selection); ``variant`` names a reference implementation's choice."""
        raise NotImplementedError

    def layer_names(self) -> list[str]:
        """Human-readable description of each latent-reading layer (index = w+ layer)."""
        return [f"layer {i}" for i in range(self.num_ws)]

    def activation_names(self) -> list[str]:
        """Names of intermediate activations that :meth:`activation` can return."""
        raise NotImplementedError

    def activation(self, latent: torch.Tensor, space: str, name: str) -> torch.Tensor:
        """Output of the named intermediate layer for latents of ``space`` (stops there)."""
        raise NotImplementedError

    def check_activation(self, name: str) -> str:
        names = self.activation_names()
        if name not in names:
            raise BadInputError(f"unknown activation {name!r} for {self.family}; choose from {', '.join(names)}")
        return name

    # ------------------------------------------------------------------ identity
    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for t in self.parameters():
            return t.dtype
        return torch.float32

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (used by ``dirfind info`` and stored in banks)."""
        return {
            "family": self.family,
            "checkpoint": self.checkpoint,
            "fingerprint": self.fingerprint,
            "z_dim": self.z_dim,
            "w_dim": self.w_dim,
            "num_ws": self.num_ws,
            "resolution": self.resolution,
            "channels": self.channels,
            "num_classes": self.num_classes,
            "spaces": list(self.spaces),
            "parameters": int(sum(p.numel() for p in self.parameters())),
        }
