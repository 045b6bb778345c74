"""How much memory a run may use for keeping samples (the default of ``memory_budget`` options)."""

from __future__ import annotations

import os

import torch

from ..errors import BadInputError

#: The default budget: this fraction of the memory available when the run starts.
MEMORY_FRACTION = 0.5


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory available now: free device memory on CUDA, else the kernel's MemAvailable."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError):
        return 0


def memory_budget(budget: int | None, device: torch.device | str = "cpu") -> int:
    """``budget`` bytes (``None``: :data:`MEMORY_FRACTION` of :func:`available_bytes`, shared by
    the processes torchrun starts on this machine)."""
    if budget is None:
        procs = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
        return int(MEMORY_FRACTION * available_bytes(device) / procs)
    if budget < 0:
        raise BadInputError(f"memory_budget must be >= 0 bytes, got {budget}", param="memory_budget")
    return int(budget)
