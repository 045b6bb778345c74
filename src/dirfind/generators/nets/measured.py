"""Choice between equivalent formulations of one op (fused vs non-fused modulated convolution,
and the like): a fixed rule by default, measured on this machine with ``DIRFIND_AUTOTUNE=1``.

By default every call takes the caller's ``rule``: a function of device, dtype and batch only,
derived from measurements (docs/benchmarks-stylegan2.md), so the same inputs give the same bits in
every run and every process (``--seed`` reproducibility, byte-identical distributed frames). With
``DIRFIND_AUTOTUNE=1`` the first call of an op with a given key (device, dtype, batch and layer shape) runs every
candidate once on the real inputs, times each (synchronising CUDA), keeps the fastest's index in an
in-process table and returns that candidate's output; later calls with the same key run only the
winner. Calls that cannot be timed honestly -- inputs that need gradients (the backward pass is not
timed), functorch-wrapped tensors (``torch.func.jvp``/``vmap``), ``torch.compile`` tracing, meta
tensors -- take the caller's ``fallback`` and record nothing. The candidates agree to float rounding
(tested), so the choice changes speed, not results beyond the last bits -- but those bits can
differ between runs and processes, which is why measuring is opt-in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Sequence

import torch

_CHOICES: dict[Hashable, int] = {}

#: environment variable that switches measuring on ("1"); unset or "0": the fixed rule
AUTOTUNE_ENV = "DIRFIND_AUTOTUNE"


def autotune() -> bool:
    """Whether candidates are timed on first use (``DIRFIND_AUTOTUNE=1``) instead of the fixed rule."""
    return os.environ.get(AUTOTUNE_ENV, "").strip() not in ("", "0")


def _wrapped(t: torch.Tensor) -> bool:
    probe = getattr(torch._C, "_functorch", None)
    return probe is not None and probe.is_functorch_wrapped_tensor(t)


def measurable(*tensors: torch.Tensor) -> bool:
    """Whether timing candidates on these inputs says something about the work they stand for."""
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)  # torch >= 2.3
    if compiling is not None and compiling():
        return False
    for t in tensors:
        if t.requires_grad or t.device.type == "meta" or _wrapped(t):
            return False
    return True


def shape_key(x: torch.Tensor, *rest: object) -> tuple:
    """What a measured choice depends on: ``x``'s device, dtype, memory format and shape (the batch
    included), plus the caller's own options (tensors among them stand for their shapes)."""
    cl = x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    more = tuple(tuple(r.shape) if isinstance(r, torch.Tensor) else r for r in rest)
    return (str(x.device), x.dtype, cl, tuple(x.shape), *more)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fastest(
    key: Hashable,
    candidates: Sequence[Callable[[], torch.Tensor]],
    inputs: Sequence[torch.Tensor],
    fallback: int,
    rule: int | None = None,
) -> torch.Tensor:
    """Output of ``candidates[rule]`` (default ``fallback``); with :func:`autotune`, of the fastest
    candidate for ``key``, measured once per process (see the module docstring). Inputs that
    cannot be timed (or need derivatives) always take ``candidates[fallback]``."""
    if not measurable(*inputs):
        return candidates[fallback]()
    if not autotune():
        return candidates[fallback if rule is None else rule]()
    if key in _CHOICES:
        return candidates[_CHOICES[key]]()
    device = inputs[0].device
    outs, secs = [], []
    for run in candidates:
        _sync(device)
        t = time.perf_counter()
        outs.append(run())
        _sync(device)
        secs.append(time.perf_counter() - t)
    best = min(range(len(secs)), key=secs.__getitem__)
    _CHOICES[key] = best
    return outs[best]


def choices() -> dict[Hashable, int]:
    """A copy of the choices measured so far in this process (key -> candidate index)."""
    return dict(_CHOICES)


def forget() -> None:
    """Drop every measured choice (the next call of each key measures again)."""
    _CHOICES.clear()
