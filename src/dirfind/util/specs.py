"""Parsing of index specs used on the command line: ``all``, ``3``, ``0-5``, ``0,2,7-9``."""

from __future__ import annotations

from ..errors import BadInputError

#: Most indices one spec may expand to (``0-100000000`` is refused before any list is built).
MAX_INDICES = 1_000_000


def parse_indices(spec: str | int, n: int | None = None, what: str = "index") -> list[int]:
    """Expand a spec into a list of ints; ``all`` needs ``n``. Ranges are inclusive (``0-3`` = 0,1,2,3).

    With ``n`` given, every index must lie in ``0..n-1``. Order is kept, duplicates removed; at
    most :data:`MAX_INDICES` of them.
    """
    text = str(spec).strip().lower()
    if text in ("all", "*"):
        if n is None:
            raise BadInputError(f"{what} spec 'all' is not allowed here")
        return list(range(n))
    out: list[int] = []
    count = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise BadInputError(f"empty item in {what} spec {spec!r}")
        try:
            if "-" in part[1:]:
                cut = part.index("-", 1)
                lo, hi = int(part[:cut]), int(part[cut + 1 :])
                if hi < lo:
                    raise BadInputError(f"{what} range {part!r} is reversed")
                block = range(lo, hi + 1)
            else:
                block = range(int(part), int(part) + 1)
        except BadInputError:
            raise
        except ValueError:
            raise BadInputError(f"cannot parse {what} spec {spec!r} (use e.g. 3, 0-5 or 0,2,7-9)") from None
        count += len(block)
        if count > MAX_INDICES:
            raise BadInputError(f"{what} spec {spec!r} has more than {MAX_INDICES} entries")
        out.extend(block)
    if n is not None:
        bad = [i for i in out if not 0 <= i < n]
        if bad:
            raise BadInputError(f"{what} {bad[0]} out of range 0..{n - 1}")
    return list(dict.fromkeys(out))
