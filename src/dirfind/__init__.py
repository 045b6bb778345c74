"""dirfind: find and render interpretable directions in the latent space of pretrained GANs.

Library entry points (the CLI is a thin layer over these)::

    from dirfind import load_generator, DirectionBank
    from dirfind.methods import sefa
    from dirfind.render import traverse

    gen = load_generator("dcgan-digiface")
    bank = sefa(gen, k=10)
    bank.save("directions.npz")
    traverse(gen, bank, dirs=[0], seeds=range(4), steps=9, out="grid.png")

Names are imported on first use, so ``import dirfind`` (and ``dirfind --help``) stays light.
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

# PyTorch's CPU allocator puts tensors of >= 2 MiB on transparent huge pages with this set (read at
# its first such allocation): fresh large tensors then fault in a fraction of the pages, 1.4-1.6x
# on GANSpace over activations (docs/benchmarks-ganspace.md). THP_MEM_ALLOC_ENABLE=0 opts out.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

_LAZY = {
    "DirectionBank": "dirfind.bank",
    "DirfindError": "dirfind.errors",
    "Generator": "dirfind.generators",
    "RenderSettings": "dirfind.generators",
    "load_generator": "dirfind.generators",
}

__all__ = ["DirectionBank", "DirfindError", "Generator", "RenderSettings", "__version__", "load_generator"]


def __getattr__(name: str) -> object:  # no typing import: the CLI starts with this module
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dirfind' has no attribute {name!r}")
