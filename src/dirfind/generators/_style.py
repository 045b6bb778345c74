"""What the StyleGAN2 and StyleGAN3 adapters share: z -> w -> w+ with truncation, synthesis
precision and the fused/non-fused modulated convolution choice, SeFa's readers, and images and
activations read off one synthesis pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import BadInputError
from .base import LatentReader


class StyleLatents:
    """What the StyleGAN2 and StyleGAN3 adapters share: z -> w -> w+ with truncation, SeFa's layer
    selection, and images and activations read off one synthesis pass. The host class provides
    ``net.mapping_forward(z, c)``, ``w_avg()``, ``_run(latent, space)`` (yielding ``(name,
    activation)`` pairs that end with ``("image", img)``) and ``_acts`` (the activation names)."""

    compute_dtype: torch.dtype = torch.float32
    memory_format: torch.memory_format | None = None
    #: True/False forces the fused/non-fused modulated convolution; None = the faster one, measured
    #: per device, dtype, batch and layer shape on first use (``nets.measured``)
    fused_modconv: bool | None = None
    #: on a CPU, at most this many bytes of estimated activations per synthesis pass (None: the
    #: render budget alone); where one image's tensors already fill the caches, batching only costs
    cpu_pass_bytes: int | None = None

    @property
    def dtype(self) -> torch.dtype:
        """Latents are float32 whatever the synthesis precision."""
        return torch.float32

    def _labels(self, n: int, device: torch.device) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        if self.settings.class_index is None:
            raise BadInputError(
                f"this generator is class-conditional ({self.num_classes} classes); pass class_index",
                param="class_index",
            )
        c = torch.zeros(n, self.num_classes, device=device)
        c[:, self.settings.class_index] = 1
        return c

    def embed(self, z: torch.Tensor, space: str) -> torch.Tensor:
        self.check_space(space)
        if space == "z":
            return z
        w = self.net.mapping_forward(z, self._labels(len(z), z.device))
        psi, cut = self.settings.truncation, self.settings.truncation_cutoff
        if space == "w":
            if psi != 1 and cut is not None and cut < self.num_ws:
                raise BadInputError(
                    "truncation_cutoff makes per-layer latents; use space w+", param="truncation_cutoff"
                )
            return w if psi == 1 else torch.lerp(self.w_avg().to(w), w, psi)
        ws = w[:, None].expand(-1, self.num_ws, -1)
        if psi != 1:
            avg = self.w_avg().to(w)
            cut = self.num_ws if cut is None else cut
            ws = torch.cat([torch.lerp(avg.expand_as(ws[:, :cut]), ws[:, :cut], psi), ws[:, cut:]], dim=1)
        return ws.contiguous()

    def per_layer_latents(self, latent: torch.Tensor, space: str) -> torch.Tensor:
        """Latents of ``space`` as (N, num_ws, w_dim) (z is mapped and truncated first)."""
        self.check_space(space)
        if space == "z":
            ws = self.embed(latent, "w+")
        elif space == "w":
            ws = latent[:, None].expand(-1, self.num_ws, -1)
        else:
            ws = latent
        if ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise BadInputError(f"latents of shape {tuple(latent.shape)} do not fit space {space}")
        return ws

    def set_precision(self, dtype: torch.dtype = torch.float32, channels_last: bool = False) -> Any:
        """Compute dtype of the synthesis (float32, float16 or bfloat16) and optional channels-last
        activations; the mapping and the latents stay float32."""
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise BadInputError(f"unsupported dtype {dtype}")
        self.compute_dtype = dtype
        self.memory_format = torch.channels_last if channels_last else None
        return self

    def _fused(self, n: int) -> bool | None:
        """The modulated-convolution choice for a batch of ``n``: forced, or None (measured per layer)."""
        return self.fused_modconv

    def _readers(self, layers: Sequence[int] | None, pairs: Sequence[tuple[str, int, Any, str]]) -> list[LatentReader]:
        """Readers (name, w+ index, affine, kind) of the selected w+ indices (default: all)."""
        sel = set(range(self.num_ws) if layers is None else self.check_layers(layers))
        return [LatentReader(n, i, a.effective_weight().float(), k) for n, i, a, k in pairs if i in sel]

    def _output(self, latent: torch.Tensor, space: str, name: str) -> torch.Tensor:
        for n, x in self._run(latent, space):
            if n == name:
                return x
        raise AssertionError(f"{name} not reached")

    def image_bytes(self) -> int | None:
        """Estimated peak activation bytes of synthesising one image; None: not split."""
        return None

    def render_chunk(self, latent: torch.Tensor) -> int:
        """Images per synthesis pass: all of ``latent``, or fewer where their estimated activations
        (:meth:`image_bytes`) exceed :func:`~dirfind.util.memory.render_budget` (on a CPU also
        :attr:`cpu_pass_bytes`); all when derivatives flow through the latents (or under
        ``torch.func`` transforms and compilation)."""
        from ..util.memory import render_budget
        from .nets.measured import measurable

        per = self.image_bytes()
        if per is None or not measurable(latent):
            return len(latent)
        budget = render_budget(latent.device)
        if latent.device.type == "cpu" and self.cpu_pass_bytes is not None:
            budget = min(budget, self.cpu_pass_bytes)
        return max(1, min(len(latent), budget // max(per, 1)))

    def synthesis(self, latent: torch.Tensor, space: str = "z") -> torch.Tensor:
        step = self.render_chunk(latent)
        if step >= len(latent):
            return self._output(latent, space, "image")
        n = len(latent)
        parts = [self._part(i, i + step, n)._output(latent[i : i + step], space, "image") for i in range(0, n, step)]
        return torch.cat(parts)

    def _part(self, i: int, j: int, n: int) -> Any:
        """This adapter for images i..j-1 of a batch of n: per-sample noise maps sliced to them."""
        maps = getattr(self, "given_noise", None)
        if maps is None:
            return self
        return self.with_noise([m[i:j] if m.shape[0] == n else m for m in maps])

    def activation_names(self) -> list[str]:
        return list(self._acts)

    def activation(self, latent: torch.Tensor, space: str, name: str) -> torch.Tensor:
        self.check_activation(name)
        return self._output(latent, space, name).float()
