"""Generator families behind one interface, and :func:`load_generator` to open any checkpoint.

Adding a family = one module defining a :class:`Generator` subclass with ``accepts`` and
``from_checkpoint`` classmethods, decorated with :func:`register`, plus its import below.
"""

from __future__ import annotations

import torch

from ..device import resolve_device
from ..errors import BadInputError, IntegrityError, UnsupportedError
from ..fileio import sha256_path
from ..registry import Entry, resolve
from .base import SPACES, Generator
from .checkpoint import Checkpoint, checkpoint_root, read_checkpoint

#: Registered adapters by family name, in the order they are tried when sniffing a file.
FAMILIES: dict[str, type[Generator]] = {}

#: Families that checkpoints.toml may name; those without an adapter fail with a clear message.
KNOWN_FAMILIES = ("dcgan", "stylegan2", "stylegan3", "biggan", "pggan")


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make an adapter available to :func:`load_generator`."""
    FAMILIES[cls.family] = cls
    return cls


def _unsupported(family: str) -> UnsupportedError:
    have = ", ".join(FAMILIES) or "none"
    return UnsupportedError(f"generator family {family!r} is not supported yet (supported: {have})")


def load_generator(
    ckpt: str,
    device: str | torch.device = "cpu",
    *,
    family: str | None = None,
    registry: dict[str, Entry] | None = None,
) -> Generator:
    """Open a checkpoint (path, URL or registry name) as an eval-mode, frozen :class:`Generator`.

    The family comes from ``family``, else the registry entry, else the file's content.
    """
    res = resolve(ckpt, registry, fetch_missing=False)
    family = family or (res.entry.family if res.entry else None)
    if family is not None and family not in FAMILIES:
        raise _unsupported(family)
    if res.entry is not None or not res.path.exists():
        res = resolve(ckpt, registry)  # now download
    path = checkpoint_root(res.path)  # a member file of a folder checkpoint means the folder
    fingerprint = sha256_path(path)
    if res.entry is not None and res.entry.sha256 and fingerprint != res.entry.sha256.lower():
        raise IntegrityError(
            f"cached checkpoint {res.path} does not match the registry sha256; "
            f"run `dirfind checkpoints fetch {res.entry.name} --force`"
        )
    ck = read_checkpoint(path)
    if family is None:
        for cls in FAMILIES.values():
            if cls.accepts(ck):
                break
        else:
            raise BadInputError(
                f"{res.path.name} is not a generator checkpoint of a supported family ({', '.join(FAMILIES)})"
            )
    else:
        cls = FAMILIES[family]
    gen = cls.from_checkpoint(ck, entry=res.entry)
    gen.fingerprint = fingerprint
    gen.checkpoint = str(ckpt)
    gen.checkpoint_path = str(path.resolve())
    gen.eval().requires_grad_(False)
    return gen.to(resolve_device(device))


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
    "Checkpoint",
    "Generator",
    "load_generator",
    "read_checkpoint",
    "register",
]
