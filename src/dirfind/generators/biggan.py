"""BigGAN-deep (Brock et al. 2019) in the pytorch-pretrained-BigGAN layout (huggingface).

A checkpoint is a folder with ``config.json`` and ``pytorch_model.bin`` (a state dict); naming
either file works too. The network, as that implementation defines it:

* ``cond = [z, embeddings(one_hot(class))]`` (the class embedding is a bias-free linear map to
  z_dim); ``generator.gen_z`` maps ``cond`` to a 4x4x(16 ch) tensor (stored TF-style NHWC).
* ``generator.layers``: bottleneck residual blocks (``bn_i`` + ReLU + ``conv_i``, i = 0..3, 1x1 /
  3x3 / 3x3 / 1x1, nearest 2x upsample inside upsampling blocks, channel-dropping skip), with a
  self-attention layer inserted at ``attention_layer_position``.
* Conditional batch norm with *stored* statistics: ``running_means/vars`` hold one row per
  truncation value 0, 1/(n-1), ..., 1; the row is chosen by the truncation, and between rows the
  reference blends ``row[i]·frac + row[i+1]·(1-frac)`` (weights mirrored from ordinary linear
  interpolation); we reproduce it exactly. Gain ``1 + scale(cond)``, bias ``offset(cond)``.
* Every linear/conv is spectrally normalised and evaluated as in eval mode:
  ``W = weight_orig / (u · (W_mat v))`` from the stored ``weight_u``/``weight_v`` (no iteration).
* Final plain batch norm (stored statistics), ReLU, 3x3 conv, first 3 channels, tanh.

Class-conditional: the class is a render setting (``with_settings(class_index=)``;
default 0). The prior is the truncated normal ``truncnorm(-2, 2) * truncation`` of the reference's
``truncated_noise_sample``; the same truncation selects the batch-norm statistics.

Edit spaces ``z`` (default) and ``w+``, per-layer z: every latent-reading layer gets its own copy
of z, as GANSpace's layer-wise BigGAN edits do (BigGAN-deep has no z chunks, so a "layer" is a
module that reads ``cond``). ``num_ws = 1 + number of blocks``: index 0 is ``gen_z``, index i the
i-th residual block (its four conditional batch norms; the attention layer reads no latent).
``cond_i = [w+[:, i], embedding(class)]``; ``embed(z, "w+")`` repeats z, so identical copies render
exactly the z path. There is no ``w`` space (it would equal z): a z direction applied to chosen
layers is a z bank with ``layers`` (``Generator.layer_space() == "z"``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInputError
from ..util.progress import warn
from . import register
from .base import Generator, LatentReader, check_sizes
from .loading.checkpoint import Checkpoint, check_shapes, load_torch
from .nets.biggan import SN, Block, Trunk
from .settings import RenderSettings

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"
_REQUIRED = ("z_dim", "channel_width", "num_classes", "layers", "attention_layer_position")


def _is_biggan_state(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("embeddings.weight"), torch.Tensor)
        and isinstance(obj.get("generator.gen_z.weight_orig"), torch.Tensor)
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"{path}: not a readable BigGAN config.json ({e})") from None
    if not isinstance(cfg, dict):
        raise BadInputError(f"{path}: BigGAN config.json must be a JSON object")
    missing = [k for k in _REQUIRED if k not in cfg]
    if missing:
        raise BadInputError(f"{path}: BigGAN config.json lacks {', '.join(missing)}")
    cfg = {"eps": 1e-4, "n_stats": 51, **cfg}
    try:
        layers = [(bool(u), int(a), int(b)) for u, a, b in cfg["layers"]]
        cfg.update(
            layers=layers,
            z_dim=int(cfg["z_dim"]),
            channel_width=int(cfg["channel_width"]),
            num_classes=int(cfg["num_classes"]),
            n_stats=int(cfg["n_stats"]),
            eps=float(cfg["eps"]),
            attention_layer_position=int(cfg["attention_layer_position"]),
        )
    except (TypeError, ValueError):
        raise BadInputError(f"{path}: BigGAN config.json has malformed values") from None
    if cfg["n_stats"] < 2 or not layers:
        raise BadInputError(f"{path}: BigGAN config.json needs n_stats >= 2 and at least one layer")
    try:
        widths = [cfg["channel_width"] * m for _, a, b in layers for m in (a, b)]
        check_sizes(z_dim=cfg["z_dim"], num_classes=cfg["num_classes"], num_ws=len(layers) + 1, widths=widths)
        check_sizes(n_stats=cfg["n_stats"])
    except BadInputError as e:
        raise BadInputError(f"{path}: BigGAN config.json declares an {e}") from None
    return cfg


def _find_files(ck: Checkpoint) -> tuple[Path, Path | None]:
    """(pytorch_model.bin, config.json or None) of a folder checkpoint or a bare weights file."""
    if ck.kind == "folder":
        if WEIGHTS_NAME not in ck.files:
            raise BadInputError(f"{ck.path}: BigGAN folder has no {WEIGHTS_NAME}")
        return ck.files[WEIGHTS_NAME], ck.files.get(CONFIG_NAME)
    cfg = ck.path.with_name(CONFIG_NAME)
    return ck.path, cfg if cfg.is_file() else None


# ---------------------------------------------------------------------- the adapter
@register
class BigGANGenerator(Generator):
    """Adapter for pytorch-pretrained-BigGAN (BigGAN-deep) generators; edit spaces ``z`` and
    per-layer z (``w+``)."""

    family = "biggan"
    spaces = ("z", "w+")
    pca_activation = "generator.gen_z"  # the layer GANSpace uses for BigGAN

    def __init__(self, cfg: dict[str, Any]):
        ups = sum(1 for up, _, _ in cfg["layers"] if up)
        super().__init__(
            z_dim=cfg["z_dim"],
            w_dim=cfg["z_dim"],
            num_ws=1 + len(cfg["layers"]),
            resolution=4 * 2**ups,
            num_classes=cfg["num_classes"],
        )
        self.config = dict(cfg)
        self.embeddings = nn.Linear(cfg["num_classes"], cfg["z_dim"], bias=False)
        self.generator = Trunk(cfg)
        names = ["generator.gen_z"]
        names += [f"generator.layers.{i}" for i in range(len(self.generator.layers))]
        self._names = names + ["generator.bn", "generator.conv_to_rgb"]
        #: module names of the latent-reading layers, in w+ order
        self._latent_layers = ["generator.gen_z"] + [
            f"generator.layers.{i}" for i, m in enumerate(self.generator.layers) if isinstance(m, Block)
        ]

    # ------------------------------------------------------------------ loading
    @classmethod
    def accepts(cls, ck: Checkpoint) -> bool:
        if ck.kind == "folder":
            return WEIGHTS_NAME in ck.files or CONFIG_NAME in ck.files
        return ck.kind == "torch" and _is_biggan_state(ck.obj)

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint, entry: Any = None) -> BigGANGenerator:
        if ck.kind == "folder" and CONFIG_NAME in ck.files and WEIGHTS_NAME not in ck.files:
            raise BadInputError(f"{ck.path}: BigGAN folder has {CONFIG_NAME} but no {WEIGHTS_NAME}")
        weights, config = _find_files(ck)
        if config is None:
            raise BadInputError(f"{weights}: BigGAN weights need their {CONFIG_NAME} in the same folder")
        cfg = _read_config(config)
        sd = ck.obj if ck.kind == "torch" else load_torch(weights)
        if not _is_biggan_state(sd):
            raise BadInputError(
                f"{weights}: not a pytorch-pretrained-BigGAN state dict (no embeddings.weight / generator.gen_z)"
            )
        sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
        optional = lambda k: k.endswith(".weight_v")  # noqa: E731 (older files: derived below)
        check_shapes(lambda: cls(cfg), sd, f"{weights}: weights do not fit {config.name}", optional)
        gen = cls(cfg)
        missing_v = [k for k in gen.state_dict() if k.endswith(".weight_v") and k not in sd]
        try:
            result = gen.load_state_dict(sd, strict=False)
        except RuntimeError as e:
            msg = " ".join(str(e).split())
            raise BadInputError(f"{weights}: weights do not fit {config.name} ({msg[:200]})") from None
        bad = [k for k in result.missing_keys if k not in missing_v] + list(result.unexpected_keys)
        if bad:
            raise BadInputError(
                f"{weights}: weights do not fit {config.name} ({len(bad)} missing/unexpected keys, e.g. {bad[0]})"
            )
        if missing_v:
            # Older files without weight_v: derive v from u by one power-iteration step, which is
            # what the reference does on its first training-mode call (eval mode would use junk).
            warn(f"{weights.name}: no stored spectral-norm weight_v; deriving it from weight_u")
            for m in gen.modules():
                if isinstance(m, SN):
                    m.power_iteration(cfg["eps"])
        return gen

    # ------------------------------------------------------------------ settings
    def check_settings(self, s: RenderSettings) -> RenderSettings:
        """BigGAN's truncation must lie in (0, 1] (it also picks the stored batch-norm statistics),
        it has no truncation cutoff, and the class defaults to 0."""
        if not 0 < s.truncation <= 1:
            raise BadInputError(f"BigGAN truncation must be in (0, 1], got {s.truncation}", param="truncation")
        if s.truncation_cutoff is not None:
            raise BadInputError(
                "BigGAN has no truncation_cutoff: its truncation scales the z prior and picks the "
                "batch-norm statistics of every layer",
                param="truncation_cutoff",
            )
        if s.class_index is None:
            s = s.replace(class_index=0)
        return super().check_settings(s)

    def draw_z(self, rng: np.random.Generator | np.random.RandomState, n: int) -> np.ndarray:
        """``truncnorm(-2, 2) * truncation``, as the reference's ``truncated_noise_sample``."""
        from scipy.stats import truncnorm

        values = truncnorm.rvs(-2, 2, size=(n, self.z_dim), random_state=rng).astype(np.float32)
        return self.settings.truncation * values

    def one_hot(self, n: int, class_index: int | None = None) -> torch.Tensor:
        """(n, num_classes) one-hot rows of ``class_index`` (default: the configured class)."""
        c = self.settings.class_index if class_index is None else class_index
        if not 0 <= c < self.num_classes:
            raise BadInputError(f"class_index must be in 0..{self.num_classes - 1}, got {c}", param="class_index")
        vec = torch.zeros(n, self.num_classes, device=self.device, dtype=self.dtype)
        vec[:, c] = 1
        return vec

    def spectral_norm_step(self) -> None:
        """Advance every stored u, v by one power iteration, which is what the reference's first
        call in training mode does before rendering (its README example omits ``.eval()``)."""
        for m in self.modules():
            if isinstance(m, SN):
                m.power_iteration(self.config["eps"])

    # ------------------------------------------------------------------ forward
    def _per_layer(self, latent: torch.Tensor, space: str) -> torch.Tensor:
        """Latents of ``space`` as per-layer z, (N, num_ws, z_dim) (a view for ``z``)."""
        self.check_space(space)
        if space == "z":
            z = latent.reshape(-1, self.z_dim)
            return z[:, None].expand(-1, self.num_ws, -1)
        if latent.ndim != 3 or tuple(latent.shape[1:]) != (self.num_ws, self.z_dim):
            raise BadInputError(
                f"latents of shape {tuple(latent.shape)} do not fit space w+ (N, {self.num_ws}, {self.z_dim})"
            )
        return latent

    def _run(
        self,
        z: torch.Tensor,
        class_vector: torch.Tensor | None,
        truncation: float | None,
        stop: str | None = None,
        space: str = "z",
    ) -> torch.Tensor:
        t = self.settings.truncation if truncation is None else float(truncation)
        if not 0 < t <= 1:
            raise BadInputError(f"BigGAN truncation must be in (0, 1], got {t}", param="truncation")
        zs = self._per_layer(z, space)
        if class_vector is None:
            class_vector = self.one_hot(len(zs))
        embedding = self.embeddings(class_vector.to(zs.dtype))
        # one conditioning vector per latent-reading layer, (N, num_ws, 2 z_dim)
        conds = torch.cat([zs, embedding[:, None].expand(-1, self.num_ws, -1)], dim=2)
        g = self.generator
        x = g.gen_z(conds[:, 0]).reshape(-1, 4, 4, 16 * g.ch).permute(0, 3, 1, 2)
        if stop == "generator.gen_z":
            return x
        block = 0
        for i, layer in enumerate(g.layers):
            if isinstance(layer, Block):
                block += 1
                x = layer(x, conds[:, block], t)
            else:
                x = layer(x)
            if stop == f"generator.layers.{i}":
                return x
        x = g.bn(x, t)
        if stop == "generator.bn":
            return x
        x = g.conv_to_rgb(F.relu(x))
        if stop == "generator.conv_to_rgb":
            return x
        return torch.tanh(x[:, :3])

    def generate(self, z: torch.Tensor, class_vector: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """Images for explicit class vectors (e.g. mixtures of one-hots), as ``BigGAN(z, c, t)``."""
        if class_vector.ndim != 2 or class_vector.shape != (len(z), self.num_classes):
            raise BadInputError(f"class vectors must have shape ({len(z)}, {self.num_classes})")
        return self._run(z, class_vector, truncation)

    def embed(self, z: torch.Tensor, space: str) -> torch.Tensor:
        """``z``: z itself; ``w+``: one copy of z per latent-reading layer (the truncation is
        already in z, drawn from the truncated prior)."""
        self.check_space(space)
        return z if space == "z" else self._per_layer(z, "z").contiguous()

    def synthesis(self, latent: torch.Tensor, space: str = "z") -> torch.Tensor:
        return self._run(latent, None, None, space=space)

    def latent_readers(self, layers: Sequence[int] | None = None) -> list[LatentReader]:
        """Weights that read z, restricted to their z columns (their input is ``[z, class
        embedding]``). Default: ``generator.gen_z`` alone, the (16·ch·16, z_dim) matrix with
        ``features = A @ z + (class part) + bias`` (the SeFa paper's choice). With ``layers`` (w+
        indices): 0 is gen_z, block i stacks the scale and offset maps of its bn_0..bn_3
        (``gain - 1 = A_scale @ z + ...``) as rows, in that order."""
        out = []
        for i in [0] if layers is None else self.check_layers(layers):
            name = self._latent_layers[i]
            module = self.get_submodule(name)
            if i == 0:
                out.append(LatentReader(name, 0, module.weight()[:, : self.z_dim]))
                continue
            maps = [getattr(getattr(module, f"bn_{k}"), m) for k in range(4) for m in ("scale", "offset")]
            out.append(LatentReader(name, i, torch.cat([lin.weight()[:, : self.z_dim] for lin in maps]), "cbn"))
        return out

    def layer_names(self) -> list[str]:
        g = self.generator
        names = [f"generator.gen_z (linear [z {self.z_dim} | class {self.z_dim}] -> {16 * g.ch}x4x4)"]
        res = 4
        for name in self._latent_layers[1:]:
            block = self.get_submodule(name)
            cin, cout = block.bn_0.scale.weight_orig.shape[0], block.conv_3.weight_orig.shape[0]
            out_res = 2 * res if block.upsample else res
            size = f"{res}->{out_res} px" if block.upsample else f"{res} px"
            names.append(f"{name} (block {size}, {cin}->{cout} ch, 4 conditional BNs)")
            res = out_res
        return names

    def activation_names(self) -> list[str]:
        return list(self._names)

    def activation(self, latent: torch.Tensor, space: str, name: str) -> torch.Tensor:
        return self._run(latent, None, None, stop=self.check_activation(name), space=space)

    def describe(self) -> dict[str, Any]:
        keep = ("channel_width", "layers", "attention_layer_position", "n_stats", "eps")
        return {
            **super().describe(),
            "class_index": self.settings.class_index,
            "truncation": self.settings.truncation,
            **{k: self.config[k] for k in keep},
        }
