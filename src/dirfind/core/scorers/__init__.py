"""Built-in predictors, addressed by name wherever a ``module:function`` predictor is accepted:

* ``faces``: the offline face-attribute scorer (:mod:`.face`; needs ``pip install 'dirfind[faces]'``);
* ``image``: model-free image statistics (:func:`.image.image_statistics`).

``dirfind.core.scorers:faces`` and ``dirfind.core.scorers:image`` name the same callables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .image import image_statistics

_FACES: Any = None


def faces(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Face attributes (pose, mouth, eyes, face box, P(happy)) and image statistics of a batch."""
    global _FACES
    if _FACES is None:
        from .face import FaceScorer

        _FACES = FaceScorer()
    return _FACES(images)


def image(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Model-free image statistics of a batch (brightness, contrast, saturation, warmth, background)."""
    return image_statistics(images)


def _faces_factory() -> Callable[[torch.Tensor], Any]:
    from .face import FaceScorer

    scorer = FaceScorer()  # fails now (missing extra, download) rather than mid-run
    globals()["_FACES"] = scorer
    return scorer


#: name -> factory of the predictor (called once, so missing extras fail before any rendering)
BUILTIN: dict[str, Callable[[], Callable[[torch.Tensor], Any]]] = {
    "faces": _faces_factory,
    "image": lambda: image,
}
