"""dirfind: find and render interpretable directions in the latent space of pretrained GANs.

Library entry points (the CLI is a thin layer over these)::

    from dirfind import load_generator, DirectionBank
    from dirfind.methods import sefa
    from dirfind.render import traverse

    gen = load_generator("dcgan-digiface")
    bank = sefa(gen, k=10)
    bank.save("directions.npz")
    traverse(gen, bank, dirs=[0], seeds=range(4), steps=9, out="grid.png")
"""

__version__ = "0.1.0"

from .bank import DirectionBank  # noqa: E402
from .errors import DirfindError  # noqa: E402
from .generators import Generator, load_generator  # noqa: E402

__all__ = ["DirectionBank", "DirfindError", "Generator", "__version__", "load_generator"]
