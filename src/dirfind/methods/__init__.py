"""Direction-discovery methods: each module maps a generator and one options dataclass to a bank.

``sefa`` (closed form), ``ganspace`` (PCA), ``jacobian`` (LowRankGAN / ReSeFa), ``learn``
(Hessian Penalty / OroJaR) and the ``interfacegan`` package (supervised boundaries). Names are
imported on first use, so ``from dirfind.methods import sefa`` does not load the others.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_LAZY = {
    "GanspaceOptions": "ganspace",
    "ganspace": "ganspace",
    "HessianOptions": "learn",
    "OrojarOptions": "learn",
    "learn": "learn",
    "JacobianOptions": "jacobian",
    "jacobian_directions": "jacobian",
    "SefaOptions": "sefa",
    "sefa": "sefa",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """Keeps ``sefa``, ``ganspace`` and ``learn`` the functions, as eager imports would: importing a
    submodule of the same name binds the module here, which would shadow the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
