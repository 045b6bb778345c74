"""Progress bars and log lines, both on stderr so stdout stays for results.

The CLI calls :func:`configure` once (``-q`` turns both off); library users get bars by default
and log lines through the standard ``logging`` module (logger ``"dirfind"``).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

logger = logging.getLogger("dirfind")
_state = {"bars": True, "muted": False}


def configure(quiet: bool = False, debug: bool = False) -> None:
    """Route ``dirfind`` log lines to stderr and switch progress bars on or off."""
    quiet = quiet or _state["muted"]
    _state["bars"] = not quiet
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logger.setLevel(logging.ERROR if _state["muted"] else level)
    if not any(getattr(h, "_dirfind", False) for h in logger.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("%(message)s"))
        h._dirfind = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (it may be replaced after configure)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def mute() -> None:
    """No bars, logs or warnings from now on, whatever ``configure`` is told later (the processes
    of a distributed run other than rank 0)."""
    _state["muted"] = True
    configure(quiet=True)


def bars_enabled() -> bool:
    return _state["bars"]


def bar(
    iterable: Any = None, *, total: float | None = None, desc: str | None = None, enabled: bool | None = None, **kw: Any
) -> tqdm:
    """A tqdm bar on stderr; disabled when quiet (``enabled=None`` follows :func:`configure`).
    tqdm (its notebook-aware ``tqdm.auto``) is imported on the first bar: short commands skip it."""
    from tqdm.auto import tqdm

    on = (_state["bars"] if enabled is None else enabled) and not _state["muted"]
    return tqdm(
        iterable, total=total, desc=desc, disable=not on, file=sys.stderr, leave=False, dynamic_ncols=True, **kw
    )


def log(msg: str) -> None:
    logger.info(msg)


def warn(msg: str) -> None:
    logger.warning(msg)
