"""Splitting work over the processes of a distributed run (:mod:`dirfind.core.dist`): fixed units
dealt round-robin, results gathered in order, rank-0-only steps shared, reducer states combined,
and a global progress count for rank 0's bars. With one process every helper is the plain loop.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .dist import broadcast_msg, check_failure, gather_msgs, next_seq, store, world
from .jobs import StageState

Arrays = dict[str, np.ndarray]
#: ``fn(name, saved, checkpoint, tick)`` of :func:`run_units`
UnitFn = Callable[[str, Any, Callable[[int, Arrays], None], Callable[[int], None]], Arrays]


def deal(items: Iterable[Any]) -> Iterator[Any]:
    """This process's share of ``items``: every ``size``-th one from its rank (round-robin), lazily."""
    w = world()
    return itertools.islice(items, w.rank, None, w.size)


def map_ordered(
    count: int, fn: Callable[[int], dict[str, np.ndarray]], *, everywhere: bool = True
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(i, fn(i))`` for i = 0 .. count-1 in order, item i computed by process ``i % size``; on
    every process (``everywhere``) or on rank 0 only (the others yield nothing). Consume it fully
    on every process: each round of ``size`` items is a collective."""
    w = world()
    if not w.distributed:
        for i in range(count):
            yield i, fn(i)
        return
    for base in range(0, count, w.size):
        i = base + w.rank
        res = fn(i) if i < count else {}
        got = gather_msgs({"i": i}, res, dst=None if everywhere else 0)
        for meta, arrays in got or []:
            if meta["i"] < count:
                yield meta["i"], arrays


def run_units(
    job: Any, names: list[str], fn: UnitFn, *, sizes: dict[str, int] | None = None, pbar: Any = None
) -> dict[str, dict[str, np.ndarray]]:
    """Independent units of work (``names``) as one resumable, distributed job: the units not done
    are dealt round-robin, ``fn(name, saved, checkpoint, tick)`` computes one from its saved
    :class:`~dirfind.core.jobs.StageState` (or None), calling ``checkpoint(pos, arrays)`` to save
    its progress (rank 0 in the state, others in parts) and ``tick(n)`` to advance ``pbar`` (all
    processes' work; ``sizes``: each unit's total, for the done ones). Every unit's final arrays are
    returned on every process, in no particular order of computation."""
    w = world()
    saved = {n: job.unit_state(n) for n in names} if w.is_main else {}
    started = [n for n, s in saved.items() if s is not None and not s.done]
    meta, _ = broadcast_msg({"done": [n for n, s in saved.items() if s is not None and s.done], "started": started})
    done = set(meta["done"])
    todo = [n for n in names if n not in done]
    owner = {n: j % w.size for j, n in enumerate(todo)}
    for n in meta["started"] if w.distributed else []:  # their saved state to the process that continues them
        m, arrays = broadcast_msg({"pos": saved[n].pos} if w.is_main else None, saved[n].arrays if w.is_main else None)
        if owner[n] == w.rank and not w.is_main:
            saved[n] = StageState(int(m["pos"]), False, arrays)
    finished = sum((sizes or {}).get(n, 0) for n in done)
    progress = Progress(finished) if w.distributed else None

    def tick(n: int) -> None:
        if progress is not None:
            progress.add(n, pbar)
            check_failure()
        elif pbar is not None:
            pbar.update(n)

    if pbar is not None:
        pbar.update(finished)
    results = {}
    for n in deal(todo):

        def checkpoint(pos: int, arrays: dict[str, np.ndarray], n: str = n) -> None:
            job.save_unit(n, pos, arrays)

        results[n] = fn(n, saved.get(n), checkpoint, tick)
        job.save_unit(n, 0, results[n], done=True)
    if not w.distributed:
        return {**{n: saved[n].arrays for n in done}, **results}
    if progress is not None:
        progress.flush(pbar)
    _wait_all(f"units/{next_seq()}")  # a process done early waits for the others' last units without a limit
    got = gather_msgs({"names": list(results)}, _flat(results), dst=0)
    if w.is_main:
        for m, arrays in got[1:]:
            for n, r in _unflat(arrays, m["names"]).items():
                job.save_unit(n, 0, r, done=True)
        results = {n: job.unit_state(n).arrays for n in names}
    _, flat = broadcast_msg({}, _flat(results) if w.is_main else None)
    return _unflat(flat, names)


def _wait_all(key: str) -> None:
    """Wait until every process has reached this point (polling for failures, no time limit)."""
    st = store()
    if st is None:
        return
    st.add(key, 1)
    while int(st.add(key, 0)) < world().size:
        check_failure()
        time.sleep(0.05)


def _flat(units: dict[str, Arrays]) -> Arrays:
    return {f"{n}/{k}": v for n, r in units.items() for k, v in r.items()}


def _unflat(flat: Arrays, names: list[str]) -> dict[str, Arrays]:
    return {n: {k[len(n) + 1 :]: v for k, v in flat.items() if k.startswith(n + "/")} for n in names}


def on_main(
    fn: Callable[[], Any],
    encode: Callable[[Any], tuple[dict[str, Any], dict[str, np.ndarray]]],
    decode: Callable[[dict[str, Any], dict[str, np.ndarray]], Any],
) -> Any:
    """``fn()`` computed by rank 0 alone and shared with every process (through ``encode`` /
    ``decode``); the others wait without a time limit (rank-0 steps may be long: eigensolvers, SVMs)."""
    w = world()
    if not w.distributed:
        return fn()
    key = f"main/{next_seq()}"
    st = store()
    if w.is_main:
        value = fn()
        if st is not None:
            st.set(key, "1")
        meta, arrays = encode(value)
        broadcast_msg(meta, arrays)
        return value
    while st is not None and not st.check([key]):
        check_failure()
        time.sleep(0.05)
    meta, arrays = broadcast_msg()
    return decode(meta or {}, arrays)


class Progress:
    """Samples done by all processes together, for rank 0's progress bar: each process adds its
    own (sent to the store at most twice a second), rank 0 reads the total."""

    def __init__(self, initial: int = 0) -> None:
        self.key = f"progress/{next_seq()}"
        self.initial = int(initial)
        self.pending = 0
        self.last = 0.0

    def add(self, n: int, pbar: Any = None) -> None:
        self.pending += int(n)
        if time.monotonic() - self.last >= 0.5:
            self.flush(pbar)

    def flush(self, pbar: Any = None) -> None:
        st = store()
        self.last = time.monotonic()
        if st is None:
            return
        total = int(st.add(self.key, self.pending))
        self.pending = 0
        if pbar is not None and world().is_main:
            pbar.n = self.initial + total
            pbar.refresh()


def combine(reducer: Any) -> Any:
    """Make every process's ``reducer`` hold the state of all processes' samples: its own
    ``all_reduce()`` if it has one, else all states gathered and folded in rank order with
    ``merge_state`` (so the result is the same on every process)."""
    if not world().distributed:
        return reducer
    if hasattr(reducer, "all_reduce"):
        reducer.all_reduce()
        return reducer
    states = gather_msgs({}, reducer.state_dict(), dst=None) or []
    reducer.load_state_dict(states[0][1])
    for _, state in states[1:]:
        reducer.merge_state(state)
    return reducer


def bank_on_main(fn: Callable[[], Any]) -> Any:
    """A :class:`~dirfind.bank.DirectionBank` computed by rank 0 alone (e.g. an SVM fit) and
    shared with every process as its file's bytes."""
    return on_main(fn, _encode_bank, _decode_bank)


def _encode_bank(bank: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bank.npz"
        bank.save(path)
        return {}, {"file": np.frombuffer(path.read_bytes(), np.uint8)}


def _decode_bank(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    from ..bank import DirectionBank

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bank.npz"
        path.write_bytes(arrays["file"].tobytes())
        return DirectionBank.load(path)
