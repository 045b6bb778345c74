"""InterFaceGAN (Shen et al., CVPR 2020): linear-SVM boundaries as editing directions.

:mod:`.fit` reproduces the official split and SVM, :mod:`.conditions` projects boundaries
orthogonal to others, :mod:`.banks` turns boundaries into banks, :mod:`.scores` reads score files,
:mod:`.pipeline` gathers training rows from sample files or a predictor run, and
:mod:`.boundary_files` converts official ``boundary.npy`` files.
"""

from .conditions import Condition, project_boundary
from .fit import Boundary, FitOptions, make_split, train_boundary
from .pipeline import from_files, from_predictor

__all__ = [
    "Boundary",
    "Condition",
    "FitOptions",
    "from_files",
    "from_predictor",
    "make_split",
    "project_boundary",
    "train_boundary",
]
