"""Options dataclasses: each method's one source of defaults and of the help text front ends show."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


def option(default: Any = None, help: str = "", *, choices: Sequence[str] | None = None, metavar: str = "") -> Any:
    """A dataclass field with a default and, in its metadata, the help text (and allowed values)."""
    meta = {"help": help, "choices": tuple(choices) if choices else None, "metavar": metavar}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use an immutable default (tuple) for option fields")
    return dataclasses.field(default=default, metadata=meta)


def describe(cls: type, name: str) -> tuple[Any, dict[str, Any]]:
    """(default, metadata) of field ``name`` of options dataclass ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.default, dict(f.metadata)
    raise KeyError(f"{cls.__name__} has no option {name!r}")


def check_choice(value: str, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else a one-line error naming the parameter."""
    from ..errors import BadInputError

    if value not in choices:
        raise BadInputError(f"{name} must be one of {', '.join(choices)}, got {value!r}", param=name)
    return value


def check_positive(value: float | int, name: str, minimum: float | int = 1, *, strict: bool = False) -> None:
    """A one-line error unless ``value >= minimum`` (``> minimum`` with ``strict``) and finite."""
    import math

    from ..errors import BadInputError

    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        rel = "greater than" if strict else "at least"
        raise BadInputError(f"{name} must be {rel} {minimum:g}, got {value}", param=name)
