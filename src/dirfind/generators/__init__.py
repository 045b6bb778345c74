"""Generator families behind one interface, and :func:`load_generator` to open any checkpoint.

Adding a family = one adapter module defining a concrete :class:`Generator` subclass decorated
with :func:`register` (plus its network under ``nets/``), and its import at the end of this file.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import BadInputError, IntegrityError, UnsupportedError
from ..fingerprints import fingerprint
from ..registry import HELPER_FAMILIES, SUPPORTED_FAMILIES, Entry, resolve
from ..util.device import resolve_device
from .base import SPACES, VARIANTS, Generator, LatentReader
from .loading.checkpoint import Checkpoint, checkpoint_root, read_checkpoint
from .settings import RenderSettings

#: Registered adapters by family name, in the order they are tried when sniffing a file.
FAMILIES: dict[str, type[Generator]] = {}

#: Families this version supports (``registry.SUPPORTED_FAMILIES``); others fail with a clear message.
KNOWN_FAMILIES = SUPPORTED_FAMILIES


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make an adapter available to :func:`load_generator`.

    Refuses an empty, undeclared or already registered family name and a class with abstract
    members left."""
    if not (isinstance(cls, type) and issubclass(cls, Generator)):
        raise TypeError(f"{cls!r} is not a Generator subclass")
    if not isinstance(cls.family, str) or not cls.family.strip():
        raise ValueError(f"{cls.__name__} has no family name")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise TypeError(f"{cls.__name__} does not implement {missing}")
    if cls.family in FAMILIES:
        raise ValueError(f"family {cls.family!r} is already registered by {FAMILIES[cls.family].__name__}")
    if cls.family not in SUPPORTED_FAMILIES:
        raise ValueError(f"family {cls.family!r} is not in registry.SUPPORTED_FAMILIES; add it there")
    if not cls.spaces or any(s not in SPACES for s in cls.spaces) or "z" not in cls.spaces:
        raise ValueError(f"{cls.__name__}.spaces must include z and be drawn from {SPACES}, got {cls.spaces}")
    FAMILIES[cls.family] = cls
    return cls


def _unsupported(family: str) -> UnsupportedError:
    have = ", ".join(FAMILIES) or "none"
    if family in HELPER_FAMILIES:
        return UnsupportedError(f"{family!r} registry entries are helper networks (losses), not generators")
    return UnsupportedError(f"generator family {family!r} is not supported yet (supported: {have})")


def load_generator(
    ckpt: str,
    device: str | torch.device = "cpu",
    *,
    settings: RenderSettings | Mapping[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    family: str | None = None,
    registry: dict[str, Entry] | None = None,
) -> Generator:
    """Open a checkpoint as an eval-mode, frozen generator adapter.

    Parameters
    ----------
    ckpt : str
        A local path, an ``https://`` URL or a registry name (``checkpoints.toml``).
    device : str or torch.device
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    settings : RenderSettings or mapping, optional
        Render settings: a full :class:`RenderSettings`, or changes to the family's defaults.
    dtype : torch.dtype, optional
        Synthesis precision (float16/bfloat16 on CUDA for families that support it).
    family : str, optional
        Force the family instead of taking it from the registry entry or the file's content.
    registry : dict, optional
        Registry entries to resolve names against (default: the installed ``checkpoints.toml``).

    Returns
    -------
    Generator
        The adapter, with ``fingerprint`` (sha256 of the checkpoint), ``checkpoint`` and
        ``checkpoint_path`` set.
    """
    res = resolve(ckpt, registry, fetch_missing=False)
    family = family or (res.entry.family if res.entry else None)
    if family is not None and family not in FAMILIES:
        raise _unsupported(family)
    if res.entry is not None or not res.path.exists():
        res = resolve(ckpt, registry)  # now download
    path = checkpoint_root(res.path)  # a member file of a folder checkpoint means the folder
    digest = fingerprint(path)
    if res.entry is not None and res.entry.sha256 and digest != res.entry.sha256.lower():
        raise IntegrityError(
            f"cached checkpoint {res.path} does not match the registry sha256; fetch {res.entry.name} again "
            "with force=True",
            param="force",
        )
    ck = read_checkpoint(path)
    if family is None:
        for cls in FAMILIES.values():
            if cls.accepts(ck):
                break
        else:
            why = next((f"{n}: {r}" for n, c in FAMILIES.items() if (r := c.rejection(ck))), None)
            raise BadInputError(
                f"{res.path.name} is not a generator checkpoint of a supported family ({', '.join(FAMILIES)})"
                + (f"; as a {why}" if why else "")
            )
    else:
        cls = FAMILIES[family]
    try:
        gen = cls.from_checkpoint(ck, entry=res.entry)
    except BadInputError as e:  # sizes checked while building name the file too
        raise (e if res.path.name in str(e) else e.with_prefix(f"{res.path.name}: ")) from None
    gen.fingerprint = digest
    gen.checkpoint = str(ckpt)
    gen.checkpoint_path = str(path.resolve())
    gen.eval().requires_grad_(False)
    gen = gen.to(resolve_device(device))
    if settings is not None:
        gen = gen.with_settings(settings) if isinstance(settings, RenderSettings) else gen.with_settings(**settings)
    if dtype is not None:
        gen.set_precision(dtype, channels_last=gen.device.type == "cuda")
    return gen


# Family adapters register themselves on import.
from . import dcgan  # noqa: E402,F401,I001
from . import stylegan2  # noqa: E402,F401,I001
from . import biggan  # noqa: E402,F401,I001
from . import pggan  # noqa: E402,F401,I001
from . import stylegan3  # noqa: E402,F401,I001

__all__ = [
    "FAMILIES",
    "KNOWN_FAMILIES",
    "SPACES",
    "VARIANTS",
    "Checkpoint",
    "Generator",
    "LatentReader",
    "RenderSettings",
    "load_generator",
    "read_checkpoint",
    "register",
]
