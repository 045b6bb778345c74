"""Distributed runs under ``torchrun``: the process group, rank-0 output, collectives that never hang.

Launched by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` in
the environment), :func:`init` joins the process group with a timeout: NCCL for CUDA tensors plus
gloo for CPU tensors where CUDA is available, gloo alone otherwise. Nothing else says a run is
distributed. Work is split in fixed units (stream batches, samples, render batches) dealt
round-robin over the processes, so results do not depend on how many there are (docs/distributed.md).

Failures never hang a run. Every collective here waits in a loop that polls the job's key-value
store; the first process to fail publishes its one-line message and exit code there
(:func:`agree_failure`), and every other process raises it (:class:`~dirfind.errors.RemoteFailure`)
at its next batch or collective. A lost process (killed) shows up as a failed collective or a
timeout (``DIRFIND_DIST_TIMEOUT`` seconds, default 1800): :class:`~dirfind.errors.DistributedError`.

Messages between processes are plain arrays plus JSON (:func:`pack`), never pickles.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist

from ..errors import BadInputError, DistributedError, RemoteFailure

TIMEOUT_ENV = "DIRFIND_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 1800.0
#: seconds the process that failed first waits for the others to read its failure before it exits
ACK_WAIT = 5.0
_ERR, _ACK, _OUTCOME = "error", "acks", "outcome"


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


class RemoteInterrupt(KeyboardInterrupt):
    """Another process of the run was interrupted (Ctrl-C, SIGTERM): stop here too, keeping progress."""


_state: dict[str, Any] = {"single": 0, "owned": False, "store": None, "last_check": 0.0, "seq": 0, "session": 0}
#: bytes moved by each kind of collective in this process (for benchmarks/distributed.py)
stats: dict[str, dict[str, int]] = {}


def env_world() -> World | None:
    """The world ``torchrun`` describes in the environment (None when not launched by it)."""
    try:
        size, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK") or 0)
    except (KeyError, ValueError):
        return None
    return World(rank, size, local) if size >= 1 and 0 <= rank < size else None


def world() -> World:
    """The current world: the initialised process group, or one process (also inside :func:`single`)."""
    if _state["single"] or not (tdist.is_available() and tdist.is_initialized()):
        return World()
    w = _state.get("world")
    if w is None or w.size != tdist.get_world_size():
        env = env_world()
        w = World(tdist.get_rank(), tdist.get_world_size(), env.local_rank if env else 0)
        _state["world"] = w
    return w


def is_main() -> bool:
    """True on rank 0 (and in any one-process run): the process that writes outputs and prints."""
    return world().is_main


@contextlib.contextmanager
def single() -> Iterator[None]:
    """Run the block as one process (no collectives), e.g. rank 0 alone running a command that is
    not split over processes."""
    _state["single"] += 1
    try:
        yield
    finally:
        _state["single"] -= 1


def timeout() -> float:
    """Seconds any collective may wait for the other processes (``DIRFIND_DIST_TIMEOUT``)."""
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise BadInputError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return value


# ---------------------------------------------------------------------- joining and leaving


def init() -> World:
    """Join the process group the environment describes (no-op for one process or when the caller
    already initialised torch.distributed). On CUDA machines the current device becomes
    ``cuda:LOCAL_RANK`` and CUDA tensors go through NCCL, CPU tensors through gloo."""
    env = env_world()
    if tdist.is_available() and tdist.is_initialized():
        if str(tdist.get_backend()).lower() == "nccl":  # its CPU collectives (messages, barriers) would fail
            raise DistributedError(
                "the process group has NCCL alone; dirfind also sends CPU tensors: initialise it with "
                "backend 'cpu:gloo,cuda:nccl'"
            )
        return world()
    if env is None or env.size == 1:
        return world()
    if not tdist.is_available():
        raise DistributedError("this torch build has no torch.distributed; run one process")
    cuda = torch.cuda.is_available() and tdist.is_nccl_available()
    if cuda:
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
    limit = timeout()
    try:
        tdist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=limit))
    except Exception as e:  # rendezvous failures: name the cause on one line
        raise DistributedError(f"could not join the distributed run: {' '.join(str(e).split())[:200]}") from None
    _state["owned"] = True
    return world()


def new_session() -> None:
    """Start a new command in the same process group (its failures and outcome get fresh keys);
    every process calls it the same number of times."""
    _state["session"] += 1
    _state["store"] = None


def initialized() -> bool:
    """Whether a torch.distributed process group exists in this process."""
    return tdist.is_available() and tdist.is_initialized()


def shutdown() -> None:
    """Leave the process group :func:`init` created (after a clean end only: pending collectives
    of a failed run could block it)."""
    if _state["owned"] and tdist.is_initialized():
        tdist.destroy_process_group()
    _state.update(owned=False, store=None, world=None)


# ---------------------------------------------------------------------- failures


def store() -> Any:
    """The run's key-value store (the one torch.distributed rendezvoused through), under a dirfind
    prefix; None outside distributed runs."""
    if not world().distributed:
        return None
    st = _state["store"]
    if st is None:
        try:
            base = tdist.distributed_c10d._get_default_store()
        except (RuntimeError, AttributeError, ValueError):
            return None
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        st = tdist.PrefixStore(f"dirfind/{restart}/{_state['session']}/", base)
        _state["store"] = st
    return st


def _published(st: Any) -> Exception | None:
    rec = json.loads(st.get(_ERR))
    if int(rec["code"]) == 130:
        return RemoteInterrupt(rec["line"])
    return RemoteFailure(rec["line"], rec["code"], rec.get("rank", -1))


def check_failure(force: bool = False) -> None:
    """Raise the failure another process published (at most every 0.2 s unless ``force``):
    :class:`~dirfind.errors.RemoteFailure`, or :class:`RemoteInterrupt` for an interruption."""
    st = store()
    if st is None:
        return
    now = time.monotonic()
    if not force and now - _state["last_check"] < 0.2:
        return
    _state["last_check"] = now
    try:
        found = st.check([_ERR])
    except Exception:
        raise DistributedError("lost the distributed run's key-value store (the process hosting it ended)") from None
    if found:
        raise _published(st)


def agree_failure(line: str, code: int) -> tuple[str, int]:
    """Publish how this process ends (unless another did first) and return the run's one ending:
    the first published (message, exit code). The first process to fail waits up to
    :data:`ACK_WAIT` seconds for the others to read it before it exits."""
    st = store()
    if st is None:
        return line, code
    w = world()
    try:
        got = st.compare_set(_ERR, "", json.dumps({"line": line, "code": int(code), "rank": w.rank}))
        rec = json.loads(got)
        st.add(_ACK, 1)
        if int(rec["rank"]) == w.rank and int(rec["code"]) != 130:  # interruptions reach every process anyway
            deadline = time.monotonic() + ACK_WAIT
            while st.add(_ACK, 0) < w.size and time.monotonic() < deadline:
                time.sleep(0.05)
        return str(rec["line"]), int(rec["code"])
    except Exception:  # the store is gone (its host ended): this process's own view is all there is
        return line, code


def publish_outcome(line: str, code: int) -> None:
    """Rank 0 of a command it runs alone: tell the waiting processes how it ended (and wait up to
    :data:`ACK_WAIT` seconds for them to read it: the store may live in this process)."""
    st = store()
    if st is None:
        return
    with contextlib.suppress(Exception):
        st.set(_OUTCOME, json.dumps({"line": line, "code": int(code)}))
        deadline = time.monotonic() + ACK_WAIT
        while st.add(_ACK, 0) < world().size - 1 and time.monotonic() < deadline:
            time.sleep(0.05)


def wait_outcome() -> tuple[str, int]:
    """The other ranks of a command rank 0 runs alone: wait (without a time limit) for its outcome."""
    st = store()
    if st is None:
        return "", 0
    while True:
        try:
            for key in (_OUTCOME, _ERR):
                if st.check([key]):
                    rec = json.loads(st.get(key))
                    st.add(_ACK, 1)
                    return str(rec["line"]), int(rec["code"])
        except Exception:
            return "dirfind: error: the distributed run's rank 0 was lost", DistributedError.exit_code
        time.sleep(0.2)


# ---------------------------------------------------------------------- collectives


def _count(kind: str, nbytes: int) -> None:
    s = stats.setdefault(kind, {"calls": 0, "bytes": 0, "max_bytes": 0})
    s["calls"] += 1
    s["bytes"] += int(nbytes)
    s["max_bytes"] = max(s["max_bytes"], int(nbytes))


def _wait(work: Any, what: str) -> None:
    """Wait for an async collective, polling for published failures, up to :func:`timeout` seconds."""
    limit = timeout()
    deadline = time.monotonic() + limit
    delay = 1e-4
    while not work.is_completed():
        check_failure()
        if time.monotonic() > deadline:
            raise DistributedError(
                f"timed out after {limit:g} s waiting for the other processes ({what}); a process may be lost "
                f"or stuck (raise {TIMEOUT_ENV} for long single-process steps)"
            )
        time.sleep(delay)
        delay = min(2 * delay, 0.02)
    try:
        work.wait()
    except RuntimeError as e:
        check_failure(force=True)
        msg = " ".join(str(e).split())[:160]
        raise DistributedError(f"a process of the distributed run was lost ({what}: {msg})") from None


def all_reduce(t: torch.Tensor, what: str = "all-reduce") -> torch.Tensor:
    """Sum ``t`` over the processes, in place (NCCL for CUDA tensors, gloo for CPU ones)."""
    if world().distributed:
        _count("all_reduce", t.numel() * t.element_size())
        _wait(tdist.all_reduce(t, async_op=True), what)
    return t


def all_reduce_array(a: np.ndarray, what: str = "all-reduce") -> np.ndarray:
    """Sum a numpy array over the processes (float64 on the CPU); returns a new array."""
    t = torch.from_numpy(np.array(a, np.float64))
    return all_reduce(t, what).numpy()


def barrier(what: str = "barrier") -> None:
    """Wait until every process gets here (a failure elsewhere is raised instead)."""
    all_reduce(torch.zeros(1), what)


def pack(meta: dict[str, Any] | None, arrays: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """A message as bytes: JSON (``meta`` + array names, dtypes, shapes) then the raw arrays."""
    arrays = {k: np.asarray(v, order="C") for k, v in (arrays or {}).items()}
    for k, v in arrays.items():
        if v.dtype.kind not in "biufcU":
            raise BadInputError(f"cannot send array {k!r} of dtype {v.dtype} between processes")
    head = json.dumps({"meta": meta, "arrays": [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]})
    parts = [struct.pack("<Q", len(head.encode())), head.encode(), *(v.tobytes() for v in arrays.values())]
    return np.frombuffer(b"".join(parts), np.uint8)


def unpack(buf: np.ndarray) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """The (meta, arrays) of a :func:`pack` message (arrays are copies)."""
    raw = memoryview(np.ascontiguousarray(buf, np.uint8))
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(bytes(raw[8 : 8 + n]))
    pos, arrays = 8 + n, {}
    for name, dtype, shape in head["arrays"]:
        dt = np.dtype(dtype)
        size = dt.itemsize * int(np.prod(shape, dtype=np.int64))
        arrays[name] = np.frombuffer(raw[pos : pos + size], dt).reshape(tuple(shape)).copy()
        pos += size
    return head["meta"], arrays


def broadcast_msg(
    meta: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None, src: int = 0
) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """Rank ``src``'s (meta, arrays), on every process."""
    w = world()
    if not w.distributed:
        return meta, dict(arrays or {})
    buf = pack(meta, arrays) if w.rank == src else None
    n = torch.tensor([0 if buf is None else len(buf)], dtype=torch.int64)
    _wait(tdist.broadcast(n, src, async_op=True), "broadcast")
    data = torch.from_numpy(buf.copy()) if buf is not None else torch.empty(int(n), dtype=torch.uint8)
    _count("broadcast", data.numel())
    _wait(tdist.broadcast(data, src, async_op=True), "broadcast")
    if w.rank == src:
        return meta, dict(arrays or {})
    return unpack(data.numpy())


def gather_msgs(
    meta: dict[str, Any] | None, arrays: dict[str, np.ndarray] | None = None, dst: int | None = 0
) -> list[tuple[dict[str, Any] | None, dict[str, np.ndarray]]] | None:
    """Every process's (meta, arrays) in rank order, on rank ``dst`` (None: on every process)."""
    w = world()
    if not w.distributed:
        return [(meta, dict(arrays or {}))]
    buf = pack(meta, arrays)
    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(w.size)]
    _wait(tdist.all_gather(sizes, torch.tensor([len(buf)], dtype=torch.int64), async_op=True), "gather")
    longest = int(max(s.item() for s in sizes))
    mine = torch.zeros(longest, dtype=torch.uint8)
    mine[: len(buf)] = torch.from_numpy(buf.copy())
    _count("gather", longest * w.size)
    if dst is None:
        out = [torch.empty(longest, dtype=torch.uint8) for _ in range(w.size)]
        _wait(tdist.all_gather(out, mine, async_op=True), "all-gather")
    else:
        out = [torch.empty(longest, dtype=torch.uint8) for _ in range(w.size)] if w.rank == dst else None
        _wait(tdist.gather(mine, out, dst=dst, async_op=True), "gather")
        if out is None:
            return None
    return [unpack(t[: int(s.item())].numpy()) for t, s in zip(out, sizes, strict=True)]


def next_seq() -> int:
    """A counter that advances identically on every process (names per-call store keys)."""
    _state["seq"] += 1
    return _state["seq"]
