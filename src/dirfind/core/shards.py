"""Shards: disjoint contiguous ranges of one seeded sample stream, so that merged results equal
an unsharded run (``--shard K/N`` job arrays, combined with ``dirfind merge``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import BadInputError, NotFoundError


def shard_range(n: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """The contiguous index range [start, stop) of shard (K, N) of ``n`` samples (all if None).
    The N ranges are disjoint and cover 0..n-1, so merged shard results equal the unsharded one."""
    if shard is None:
        return 0, n
    k, parts = shard
    return n * k // parts, n * (k + 1) // parts


def check_shard(shard: tuple[int, int] | None) -> tuple[int, int] | None:
    """``(K, N)`` with N >= 1 and 0 <= K < N, or None."""
    if shard is None:
        return None
    k, n = (int(v) for v in shard)
    if n < 1 or not 0 <= k < n:
        raise BadInputError(f"shard {k}/{n}: need N >= 1 and 0 <= K < N", param="shard")
    return k, n


def check_coverage(ranges: Sequence[tuple[int, int]], n: int) -> None:
    """Shard ranges must be disjoint and cover 0..n-1."""
    pos = 0
    for lo, hi in sorted(ranges):
        if lo < pos:
            raise BadInputError(f"shards overlap at sample {lo}")
        if lo > pos:
            raise BadInputError(f"samples {pos}..{lo - 1} are missing (a shard was not given)")
        pos = hi
    if pos != n:
        raise BadInputError(f"samples {pos}..{n - 1} are missing (a shard was not given)")


# ---------------------------------------------------------------------- merging shard outputs

#: shard output formats -> (function merging a list of files into one output, default output name);
#: registered by the modules that write them (sample files, GANSpace partial statistics)
MERGERS: dict[str, tuple[Callable[..., dict[str, Any]], str]] = {}


def register_merger(fmt: str, fn: Callable[..., dict[str, Any]], default_out: str) -> None:
    """Make :func:`merge` combine shard outputs whose metadata says ``format = fmt``."""
    MERGERS[fmt] = (fn, default_out)


def shard_format(paths: Sequence[str | Path]) -> str:
    """The one registered format all ``paths`` share (a one-line error naming a bad file)."""
    from ..util.fileio import read_meta_npz

    if not paths:
        raise BadInputError("no shard outputs given", param="parts")
    known = " or ".join(MERGERS) or "no formats known"
    kinds = set()
    for p in paths:
        try:
            fmt = read_meta_npz(p, "shard output", meta_only=True)[0].get("format")
        except NotFoundError:
            raise NotFoundError(f"file not found: {p}") from None
        except BadInputError as e:
            raise BadInputError(f"{e} ({known})") from None
        if fmt not in MERGERS:
            raise BadInputError(f"{p}: not a shard output ({known}; its format is {fmt!r})")
        kinds.add(fmt)
    if len(kinds) != 1:
        raise BadInputError(f"give shard outputs of one kind ({', '.join(MERGERS)}), not a mixture")
    return next(iter(kinds))


def merge(paths: Sequence[str | Path], out: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """Combine shard outputs of one run into one output (``out`` defaults by format); ``kwargs``
    go to the format's merger (``force``, and ``ckpt``/``device`` where a generator is needed)."""
    fmt = shard_format(paths)
    fn, default = MERGERS[fmt]
    res = fn(list(paths), out or default, **kwargs)
    return {"format": fmt, **res}


# ---------------------------------------------------------------------- sets of sample ranges


def normalize_ranges(ranges: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Sorted, merged, non-empty ``[lo, hi)`` ranges (touching ranges join)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted((int(a), int(b)) for a, b in ranges):
        if hi <= lo:
            continue
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def add_range(ranges: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """``ranges`` (normalised) plus ``[lo, hi)``; appending in increasing order costs O(1)."""
    if hi <= lo:
        return ranges
    if not ranges or lo > ranges[-1][1]:
        ranges.append((lo, hi))
        return ranges
    if lo >= ranges[-1][0]:
        ranges[-1] = (ranges[-1][0], max(ranges[-1][1], hi))
        return ranges
    return normalize_ranges([*ranges, (lo, hi)])


def overlapping(ranges: Sequence[Sequence[int]]) -> tuple[int, int] | None:
    """The first overlap between any two of ``ranges`` (unmerged), or None if they are disjoint."""
    pos = None
    for lo, hi in sorted((int(a), int(b)) for a, b in ranges if int(b) > int(a)):
        if pos is not None and lo < pos:
            return lo, min(hi, pos)
        pos = hi if pos is None else max(pos, hi)
    return None


def subtract_ranges(lo: int, hi: int, done: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """The parts of ``[lo, hi)`` not covered by ``done``."""
    out, pos = [], lo
    for a, b in normalize_ranges(done):
        if b <= pos or a >= hi:
            continue
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < hi:
        out.append((pos, hi))
    return out


def covered(ranges: Sequence[Sequence[int]]) -> int:
    """Number of samples in ``ranges`` (normalised first)."""
    return sum(b - a for a, b in normalize_ranges(ranges))
