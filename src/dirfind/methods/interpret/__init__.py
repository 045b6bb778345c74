"""Interpreting banks: measure directions (``evaluate``), name them (``label``) and compare banks
(``compare``)."""

from .compare import CompareOptions, compare, principal_angles
from .evaluate import EvaluateOptions, evaluate
from .label import LabelOptions, label

__all__ = ["CompareOptions", "EvaluateOptions", "LabelOptions", "compare", "evaluate", "label", "principal_angles"]
