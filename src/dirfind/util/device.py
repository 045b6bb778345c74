"""Device (``auto|cpu|cuda[:N]``) and compute dtype (``fp32|fp16|bf16``) resolution."""

from __future__ import annotations

import os

import torch

from ..errors import BadInputError
from .memory import local_processes

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def local_cuda() -> torch.device:
    """This process's GPU: ``cuda:LOCAL_RANK`` under torchrun (modulo the devices present), else ``cuda``."""
    local = os.environ.get("LOCAL_RANK")
    if local is None or not local.isdigit():
        return torch.device("cuda")
    return torch.device("cuda", int(local) % max(1, torch.cuda.device_count()))


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks this process's CUDA device when there is one (``cuda:LOCAL_RANK`` under
    torchrun), else the CPU; plain ``cuda`` means this process's device too."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return local_cuda() if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" and torch.cuda.is_available():
        return local_cuda()
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BadInputError(f"device {spec}: CUDA is not available on this machine", param="device")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadInputError(
                f"device {spec}: only {torch.cuda.device_count()} CUDA device(s) present", param="device"
            )
        if dev.index is not None and local_processes() > 1 and dev != local_cuda():
            raise BadInputError(  # NCCL refuses two processes on one GPU, at the first collective
                f"device {spec}: under torchrun each process uses its own GPU ({local_cuda()} for this one); "
                "use device cuda or auto",
                param="device",
            )
        return dev
    raise BadInputError(f"device must be auto, cpu, cuda or cuda:N, got {spec!r}", param="device")


def resolve_dtype(spec: str | None, device: torch.device) -> torch.dtype:
    """fp32 everywhere; fp16/bf16 only on CUDA (the CPU path is the fp32 reference)."""
    if spec is None:
        return torch.float32
    key = spec.strip().lower()
    if key not in DTYPES:
        raise BadInputError(f"dtype must be fp32, fp16 or bf16, got {spec!r}", param="dtype")
    dtype = DTYPES[key]
    if dtype != torch.float32 and device.type != "cuda":
        raise BadInputError(f"dtype {spec} needs a CUDA device (CPU renders in fp32)", param="dtype")
    return dtype
