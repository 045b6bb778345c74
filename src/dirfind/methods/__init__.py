"""Direction-discovery methods: each module maps a generator and one options dataclass to a bank.

``sefa`` (closed form), ``ganspace`` (PCA), ``jacobian`` (LowRankGAN / ReSeFa), ``learn``
(Hessian Penalty / OroJaR) and the ``interfacegan`` package (supervised boundaries).
"""

from .ganspace import GanspaceOptions, ganspace
from .jacobian import JacobianOptions, jacobian_directions
from .learn import HessianOptions, OrojarOptions, learn
from .sefa import SefaOptions, sefa

__all__ = [
    "GanspaceOptions",
    "HessianOptions",
    "JacobianOptions",
    "OrojarOptions",
    "SefaOptions",
    "ganspace",
    "jacobian_directions",
    "learn",
    "sefa",
]
