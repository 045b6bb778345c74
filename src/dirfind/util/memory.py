"""How much memory a run may use: for keeping samples (the default of ``memory_budget`` options),
and for one synthesis pass (:func:`render_budget`)."""

from __future__ import annotations

import functools
import os

import torch

from ..errors import BadInputError

#: The default budget: this fraction of the memory available when the run starts.
MEMORY_FRACTION = 0.5


def _host_bytes(field: str, pages: str) -> int:
    """``field`` of /proc/meminfo in bytes, else ``sysconf(pages)`` pages, else 0."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError):
        return 0


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory available now: free device memory on CUDA, else the kernel's MemAvailable."""
    device = torch.device(device)
    if device.type == "cuda":  # an index-less "cuda" is the current device (mem_get_info wants an index)
        return int(torch.cuda.mem_get_info(torch.cuda.current_device() if device.index is None else device)[0])
    return _host_bytes("MemAvailable", "SC_AVPHYS_PAGES")


def total_bytes(device: torch.device | str = "cpu") -> int:
    """The machine's memory (CUDA: the device's), a figure that does not change between runs."""
    return _total_bytes(str(torch.device(device)))


@functools.cache
def _total_bytes(device: str) -> int:  # read once per device: every synthesis call asks
    if torch.device(device).type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return _host_bytes("MemTotal", "SC_PHYS_PAGES")


def local_processes() -> int:
    """Processes torchrun starts on this machine (1 outside torchrun)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))


def _sharing(device: torch.device | str) -> int:
    """Processes whose memory budgets share ``device``'s memory: on the CPU torchrun's local ones;
    a GPU is each process's own."""
    return 1 if torch.device(device).type == "cuda" else local_processes()


def memory_budget(budget: int | None, device: torch.device | str = "cpu") -> int:
    """``budget`` bytes (``None``: :data:`MEMORY_FRACTION` of :func:`available_bytes`; on the CPU
    shared by the processes torchrun starts on this machine, on CUDA each process's own device's)."""
    if budget is None:
        return int(MEMORY_FRACTION * available_bytes(device) / _sharing(device))
    if budget < 0:
        raise BadInputError(f"memory_budget must be >= 0 bytes, got {budget}", param="memory_budget")
    return int(budget)


#: One synthesis pass may fill this fraction of the machine's total memory (a CUDA device's: its own
#: memory serves the run alone).
RENDER_FRACTION = {"cpu": 0.25, "cuda": 0.5}


def render_budget(device: torch.device | str = "cpu") -> int:
    """Bytes of activations one synthesis pass may hold: a :data:`RENDER_FRACTION` of the total
    memory (not of what is free now, so a rerun splits a batch the same way); on the CPU shared by
    the processes torchrun starts on this machine."""
    fraction = RENDER_FRACTION.get(torch.device(device).type, RENDER_FRACTION["cpu"])
    return int(fraction * total_bytes(device) / _sharing(device))
