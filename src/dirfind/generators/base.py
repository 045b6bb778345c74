"""The generator adapter interface: every GAN family is wrapped to look the same to the methods.

Conventions
-----------
* Edit spaces: ``"z"`` (N, z_dim) for every family; style-based families add ``"w"`` (N, w_dim),
  one vector broadcast to every layer, and ``"w+"`` (N, num_ws, w_dim), one vector per
  latent-reading layer. A family may have ``w+`` without ``w`` when its layers read z directly
  (BigGAN: per-layer z, ``w_dim == z_dim``, ``embed(z, "w+")`` repeats z); then z plays w's
  part, see :meth:`Generator.layer_space`.
* Images are NCHW float in [-1, 1] (not clamped: real networks overshoot slightly).
* Render settings that are not part of a latent (truncation, noise mode, class, input transform)
  are one frozen :class:`~dirfind.generators.settings.RenderSettings`; :meth:`Generator.with_settings`
  returns a copy (sharing the weights) rendering with other settings.
* ``synthesis`` must be a pure tensor function of the latent (no in-place ops on it, no custom
  autograd functions without a forward-mode rule) so ``torch.func.jvp`` works through it.

A family implements every abstract member below; :func:`dirfind.generators.register` refuses a
class that leaves one out, and the adapter-contract test suite runs on every registered family.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
import torch

from ..errors import BadInputError, UnsupportedError
from .settings import RenderSettings

if TYPE_CHECKING:
    from .loading.checkpoint import Checkpoint

SPACES = ("z", "w", "w+")

#: Largest sizes a checkpoint may declare (latent width or channel count, image side, number of
#: w+ layers, classes). Published generators stay far below; a file declaring more (or zero) is
#: refused before anything of that size is allocated.
MAX_SIZES = {"width": 1 << 16, "resolution": 1 << 13, "layers": 1 << 10, "classes": 1 << 20}
_SIZE_KIND = {"resolution": "resolution", "num_ws": "layers", "num_classes": "classes"}

#: SeFa's layer selections: ``genforce`` (official: one reader per latent-reading layer) and
#: ``rosinality`` (``closed_form_factorization.py``: every conv reader plus the first to-RGB).
VARIANTS = ("genforce", "rosinality")


def check_sizes(**sizes: int | Sequence[int]) -> None:
    """A one-line :class:`BadInputError` unless every declared size (an int or a list of them) is
    an integer in 1..its bound in :data:`MAX_SIZES` (``num_classes`` may be 0). Names:
    ``resolution``, ``num_ws``, ``num_classes``; anything else is a width (latent dims, channels)."""
    for name, value in sizes.items():
        kind = _SIZE_KIND.get(name, "width")
        low, high = (0 if name == "num_classes" else 1), MAX_SIZES[kind]
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= high:
                shown = f"about 10^{len(str(v)) - 1}" if isinstance(v, int) and v > 10**12 else repr(v)
                raise BadInputError(f"implausible generator size: {name} = {shown} (expected {low}..{high})")


class LatentReader(NamedTuple):
    """A weight matrix that reads the latent: ``features = weight @ latent (+ ...)``.

    ``index``: the latent-reading layer (w+ index) it reads; ``kind``: ``"dense"``, ``"conv"``
    (a style affine of a convolution), ``"input"``, ``"torgb"`` or ``"first_torgb"`` (StyleGAN2's
    4x4 to-RGB, which rosinality's SeFa keeps)."""

    name: str
    index: int
    weight: torch.Tensor  # (out_features, space_dim)
    kind: str = "dense"


def select_readers(readers: Sequence[LatentReader], variant: str) -> list[LatentReader]:
    """SeFa's choice among the readers of the selected layers, by ``variant``.

    ``genforce``: per layer, the first non-to-RGB reader, else its last to-RGB (the final one).
    ``rosinality``: every reader but the to-RGBs, plus the first to-RGB."""
    if variant not in VARIANTS:
        raise BadInputError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}", param="variant")
    if variant == "rosinality":
        return [r for r in readers if r.kind != "torgb"]
    out = []
    for i in dict.fromkeys(r.index for r in readers):
        at = [r for r in readers if r.index == i]
        main = [r for r in at if r.kind not in ("torgb", "first_torgb")]
        out.append(main[0] if main else at[-1])
    return out


class Generator(torch.nn.Module, metaclass=abc.ABCMeta):
    """Base class of all generator adapters. Subclasses set the class attributes, implement the
    abstract members and are registered with :func:`dirfind.generators.register`."""

    #: family name used in checkpoints.toml and banks ("dcgan", "stylegan2", ...)
    family: ClassVar[str] = ""
    #: edit spaces this family supports, first = default
    spaces: ClassVar[tuple[str, ...]] = ("z",)
    #: activation GANSpace decomposes by default when the family has no w space (None = ask)
    pca_activation: ClassVar[str | None] = None
    #: whether the ``transform`` render setting is meaningful (StyleGAN3's input transform)
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
        check_sizes(
            z_dim=z_dim,
            w_dim=z_dim if w_dim is None else w_dim,
            resolution=resolution,
            channels=channels,
            num_ws=num_ws,
            num_classes=num_classes,
        )
        self.z_dim = int(z_dim)
        self.w_dim = int(w_dim if w_dim is not None else z_dim)
        self.num_ws = int(num_ws)
        self.resolution = int(resolution)
        self.channels = int(channels)
        self.num_classes = int(num_classes)
        self.fingerprint = ""  # sha256 of the checkpoint content, set by the loader
        self.checkpoint = ""  # the checkpoint reference as the user gave it
        self.checkpoint_path = ""  # the local file it resolved to
        self._settings = self.check_settings(RenderSettings())

    # ------------------------------------------------------------------ loading (abstract)
    @classmethod
    @abc.abstractmethod
    def accepts(cls, ck: Checkpoint) -> bool:
        """Whether a deserialised checkpoint holds a generator of this family (cheap, no building)."""

    @classmethod
    @abc.abstractmethod
    def from_checkpoint(cls, ck: Checkpoint, entry: Any = None) -> Generator:
        """Build the adapter from a checkpoint this family accepts; a clear error otherwise."""

    @classmethod
    def rejection(cls, ck: Checkpoint) -> str | None:
        """Why a checkpoint that looks like this family's (but is not accepted) is refused, for the
        error message when no family accepts it; None when it does not look like one."""
        return None

    # ------------------------------------------------------------------ settings
    @property
    def settings(self) -> RenderSettings:
        """The render settings this adapter renders with (frozen; see :meth:`with_settings`)."""
        return self._settings

    def check_settings(self, s: RenderSettings) -> RenderSettings:
        """Validate ``s`` for this generator (and fill family defaults); returns the settings to use."""
        if s.truncation_cutoff is not None and s.truncation_cutoff > self.num_ws:
            raise BadInputError(
                f"truncation_cutoff must be in 0..{self.num_ws}, got {s.truncation_cutoff}", param="truncation_cutoff"
            )
        if s.class_index is not None:
            if self.num_classes == 0:
                raise BadInputError(
                    f"class_index given but this {self.family} generator is unconditional", param="class_index"
                )
            if not s.class_index < self.num_classes:
                raise BadInputError(
                    f"class_index must be in 0..{self.num_classes - 1}, got {s.class_index}", param="class_index"
                )
        if s.transform is not None and not self.supports_transform:
            raise UnsupportedError(
                f"transform (input translation/rotation) is only available for StyleGAN3; "
                f"this is a {self.family} generator",
                param="transform",
            )
        return s

    def with_settings(self, settings: RenderSettings | None = None, /, **changes: Any) -> Generator:
        """A copy of this adapter (sharing its weights) that renders with ``settings`` (default:
        the current ones) updated by ``changes`` (``None`` values leave a setting unchanged)."""
        new = (settings or self._settings).replace(**changes)
        new = self.check_settings(new)
        if new == self._settings:
            return self
        other = copy.copy(self)
        other._settings = new
        return other

    #: per-sample noise maps replacing the stored ones (see :meth:`with_noise`); None = the settings' noise
    given_noise: tuple[torch.Tensor, ...] | None = None

    def noise_maps(self) -> list[torch.Tensor]:
        """The stored per-pixel noise maps (H, W) the synthesis adds with ``noise_mode="const"``, in
        synthesis order; empty for families without noise inputs."""
        return []

    def with_noise(self, maps: Sequence[torch.Tensor] | None) -> Generator:
        """A copy (sharing the weights) whose synthesis adds the given per-sample noise maps, one
        (N, 1, H, W) tensor per entry of :meth:`noise_maps` (N = the batch), instead of the stored
        ones; None restores them. Projection optimises these maps as NVIDIA's ``projector.py`` does."""
        if maps is not None:
            shapes = [tuple(m.shape) for m in self.noise_maps()]
            if len(maps) != len(shapes) or any(tuple(m.shape[-2:]) != s for m, s in zip(maps, shapes, strict=False)):
                raise BadInputError(
                    f"noise maps of shapes {[tuple(m.shape) for m in maps]} do not fit this {self.family} "
                    f"generator's {len(shapes)} noise inputs {shapes}"
                )
        other = copy.copy(self)
        other.given_noise = None if maps is None else tuple(maps)
        return other

    def set_precision(self, dtype: torch.dtype = torch.float32, channels_last: bool = False) -> Generator:
        """Compute dtype (and channels-last layout) of the synthesis network, a CUDA speed-up;
        latents stay float32. Families that do not override this render in float32 only."""
        if dtype != torch.float32:
            raise UnsupportedError(f"{self.family} generators render in float32 only (dtype fp32)", param="dtype")
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
                f"space {space!r} is not available for {self.family}; choose from {', '.join(self.spaces)}",
                param="space",
            )
        return space

    def draw_z(self, rng: np.random.Generator | np.random.RandomState, n: int) -> np.ndarray:
        """Draw ``n`` latents from the family's prior with ``rng`` (float32, (n, z_dim))."""
        return rng.standard_normal((n, self.z_dim)).astype(np.float32)

    def z_from_seeds(self, seeds: Sequence[int]) -> torch.Tensor:
        """One latent per seed, ``RandomState(seed)`` as NVIDIA's ``gen_images.py`` does, so
        seeds 0-3 show the same faces in dirfind and the reference scripts."""
        if len(seeds) == 0:
            return torch.zeros(0, self.z_dim)
        z = np.concatenate([self.draw_z(np.random.RandomState(int(s) % 2**32), 1) for s in seeds])
        return torch.from_numpy(z)

    @abc.abstractmethod
    def embed(self, z: torch.Tensor, space: str) -> torch.Tensor:
        """Map z to a latent of ``space``, applying the truncation settings (z itself for ``z``)."""

    @abc.abstractmethod
    def synthesis(self, latent: torch.Tensor, space: str) -> torch.Tensor:
        """Render images (NCHW in [-1, 1]) from latents of ``space``."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z -> images with the current settings."""
        return self.synthesis(z, "z")

    # ------------------------------------------------------------------ what methods read
    @abc.abstractmethod
    def latent_readers(self, layers: Sequence[int] | None = None) -> list[LatentReader]:
        """The weights that read the latent, in layer order, for the latent-reading ``layers``
        (w+ indices; None = the family's default choice for SeFa)."""

    def latent_weights(self, layers: Sequence[int] | None = None, variant: str = "genforce") -> dict[str, torch.Tensor]:
        """Named matrices (out_features, space_dim) SeFa factorises: :meth:`latent_readers` of
        ``layers`` chosen by ``variant`` (:func:`select_readers`)."""
        chosen = select_readers(self.latent_readers(layers), variant)
        return {r.name: r.weight for r in chosen}

    def layer_names(self) -> list[str]:
        """Human-readable description of each latent-reading layer (index = w+ layer)."""
        return [f"layer {i}" for i in range(self.num_ws)]

    @abc.abstractmethod
    def activation_names(self) -> list[str]:
        """Names of intermediate activations that :meth:`activation` can return."""

    @abc.abstractmethod
    def activation(self, latent: torch.Tensor, space: str, name: str) -> torch.Tensor:
        """Output of the named intermediate layer for latents of ``space`` (stops there)."""

    def check_activation(self, name: str) -> str:
        names = self.activation_names()
        if name not in names:
            raise BadInputError(
                f"unknown activation {name!r} for {self.family}; choose from {', '.join(names)}", param="space"
            )
        return name

    def check_layers(self, layers: Sequence[int]) -> list[int]:
        """Distinct w+ indices in 0..num_ws-1, as a list (a one-line error otherwise)."""
        sel = [int(i) for i in layers]
        bad = [i for i in sel if not 0 <= i < self.num_ws]
        if bad:
            raise BadInputError(f"layer {bad[0]} out of range 0..{self.num_ws - 1}", param="layers")
        if not sel or len(set(sel)) != len(sel):
            raise BadInputError(f"layers must be distinct indices in 0..{self.num_ws - 1}, got {sel}", param="layers")
        return sel

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
