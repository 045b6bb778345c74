"""Resumable jobs: a progress folder next to the output holding the state of an unfinished run.

A long command (``dirfind sample``, ``dirfind ganspace``) keeps ``<out>.progress/`` while it runs:
``state.npz`` (JSON metadata + named arrays, always replaced atomically, so a kill at any moment
leaves the previous complete state) plus any files the command streams into (memory-mapped
arrays). Resuming continues from it after checking that the run's *identity* (generator
fingerprint, seed, sample count, method options) is unchanged; on success the output is written
atomically and the folder removed.

State is organised in *stages* (one pass over a sample stream each): a stage records the sample
ranges folded into its arrays (``pos``: the end of the first contiguous one) and whether it is
done; free-form arrays and values carry what a method computes between stages.

Distributed runs (:mod:`dirfind.core.dist`): rank 0 keeps ``state.npz``; every other process saves
its own *part* of each unfinished stage, ``parts/<run>.r<rank>.<stage>.npz`` (its ranges and its
reducer state). Resuming, with any number of processes, rank 0 merges every part into its state
(parts it merged are listed in its stage, so none counts twice) and the others do the rest.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    EXIT_DISTRIBUTED,
    BadInputError,
    DirfindError,
    DistributedError,
    MismatchError,
    OutputError,
    UnsupportedError,
)
from ..util.fileio import check_writable, missing_dirs, read_meta_npz, remove_created, write_meta_npz
from ..util.progress import log
from .dist import barrier, broadcast_msg, world
from .shards import normalize_ranges, overlapping

FORMAT = "dirfind.job"
PART_FORMAT = "dirfind.job-part"
STATE = "state.npz"
PARTS = "parts"


def progress_dir(out: str | Path) -> Path:
    """The progress folder of an output path: ``<out>.progress``."""
    out = Path(str(out).rstrip("/\\"))
    return out.with_name(out.name + ".progress")


def json_normal(x: Any) -> Any:
    """JSON round trip, so identities compare the way they are stored (tuples -> lists, ...)."""
    return json.loads(json.dumps(x, sort_keys=True, default=str))


@dataclass
class StageState:
    """A saved stage: its position (end of the first contiguous range), whether it is done, its
    arrays and the sample ranges they hold."""

    pos: int
    done: bool
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    ranges: list[tuple[int, int]] = field(default_factory=list)


class Job:
    """State of one resumable run, kept in ``folder`` (None = in memory only, nothing written).

    ``every``: minimum seconds between periodic checkpoints (0 = after every batch).
    """

    def __init__(self, folder: str | Path | None, identity: dict[str, Any], every: float = 60.0):
        self.folder = None if folder is None else Path(folder)
        self.identity = json_normal(identity)
        self.every = float(every)
        self.stages: dict[str, dict[str, Any]] = {}
        self.values: dict[str, Any] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.resumed = False
        self.run = uuid.uuid4().hex[:8]  # names this run's part files (distributed runs)
        self.parts: dict[str, tuple[list[tuple[int, int]], dict[str, np.ndarray]]] = {}  # rank > 0
        self._merged: dict[str, list[str]] = {}  # stage -> part files folded into rank 0's state
        self._cleanup: set[Path] = set()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        folder: str | Path | None,
        identity: dict[str, Any],
        *,
        resume: bool = False,
        force: bool = False,
        every: float = 60.0,
    ) -> Job:
        """Start a job in ``folder``, or continue the one there with ``resume``.

        Existing progress without ``resume`` is an error unless ``force`` (which discards it), so
        an accidental re-run never throws away hours of sampling. Under torch.distributed (call it
        on every process) rank 0 opens the folder and shares the state with the others.
        """
        if folder is None:
            return cls(None, identity, every)
        if world().distributed:
            return cls._open_distributed(Path(folder), identity, resume=resume, force=force, every=every)
        return cls._open_local(folder, identity, resume=resume, force=force, every=every)

    @classmethod
    def _open_distributed(
        cls, folder: Path, identity: dict[str, Any], *, resume: bool, force: bool, every: float
    ) -> Job:
        job = None
        if world().is_main:
            job = cls._open_local(folder, identity, resume=resume, force=force, every=every)
            if not job.resumed:
                job.save()  # a state from the start: parts of other processes never sit in a state-less folder
            meta = {"identity": job.identity, "stages": job.stages, "values": json_normal(job.values)}
            meta.update(resumed=job.resumed, run=job.run)
            data = {k: v for k, v in job.arrays.items() if k.startswith("data/")}
            broadcast_msg(meta, data)
        else:
            meta, data = broadcast_msg()
            job = cls(folder, identity, every)
            job.stages, job.values, job.arrays = meta["stages"], meta["values"], data
            job.resumed, job.run = bool(meta["resumed"]), str(meta["run"])
            (folder / PARTS).mkdir(parents=True, exist_ok=True)
        barrier("opening the progress folder")
        return job

    @classmethod
    def _open_local(
        cls, folder: str | Path, identity: dict[str, Any], *, resume: bool, force: bool, every: float
    ) -> Job:
        folder = Path(folder)
        state = folder / STATE
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder} exists and is not a progress folder")
        if resume and state.exists():
            job = cls.load(folder, every)
            diff = _diff(job.identity, json_normal(identity))
            if diff:
                raise MismatchError(
                    f"{folder} belongs to a different run ({diff}); rerun with the same options or pass "
                    "force=True without resume=True to start over",
                    param=("force", "resume"),
                )
            job.resumed = True
            done = ", ".join(f"{k} {'done' if v['done'] else 'at ' + str(v['pos'])}" for k, v in job.stages.items())
            log(f"resuming from {folder} ({done or 'nothing done yet'})")
            return job
        if resume and folder.is_dir() and not state.exists():
            # killed before its first checkpoint: nothing was saved, so the run starts from zero
            log(f"no saved progress in {folder}; starting from the beginning")
            shutil.rmtree(folder)
        elif folder.exists() and any(folder.iterdir()):
            if not force:
                raise OutputError(
                    f"{folder} holds an unfinished run; pass resume=True to continue it or force=True to start over",
                    param=("resume", "force"),
                )
            shutil.rmtree(folder)
        elif resume:
            log(f"no saved progress in {folder}; starting from the beginning")
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder, identity, every)

    @classmethod
    def load(cls, folder: str | Path, every: float = 60.0) -> Job:
        folder = Path(folder)
        path = folder / STATE
        try:
            meta, data = read_meta_npz(path, "dirfind progress state", FORMAT)
        except BadInputError as e:
            raise BadInputError(f"{e}; start over with force=True", param="force") from None
        identity, stages, values = meta.get("identity"), meta.get("stages", {}), meta.get("values", {})
        valid = isinstance(identity, dict) and isinstance(stages, dict) and isinstance(values, dict)
        if not valid or not all(_valid_stage(v) for v in stages.values()):
            raise BadInputError(f"{path}: malformed progress state; start over with force=True", param="force")
        job = cls(folder, identity, every)
        job.stages, job.values, job.arrays = stages, values, data
        return job

    def _load_saved(self, name: str, reducer: Any, arrays: dict[str, np.ndarray], merge: bool = False) -> None:
        """Load (or merge) saved arrays of stage ``name`` into ``reducer``; a one-line error naming
        the state file if they do not fit it."""
        try:
            (reducer.merge_state if merge else reducer.load_state_dict)(arrays)
        except (KeyError, ValueError, TypeError, IndexError) as e:
            where = self.folder / STATE if self.folder is not None else "saved state"
            msg = " ".join(str(e).split())[:120]
            raise BadInputError(
                f"{where}: malformed saved state of stage {name} ({msg}); start over with force=True", param="force"
            ) from None

    # ------------------------------------------------------------------ stages
    def stage(self, name: str) -> StageState | None:
        """Saved state of stage ``name`` (None if it never checkpointed). Under torch.distributed it
        is rank 0's, on every process (call it on all of them)."""
        local = self._stage(name)
        if self.folder is None or not world().distributed:
            return local
        info = None if local is None else {"pos": local.pos, "done": local.done, "ranges": local.ranges}
        meta, arrays = broadcast_msg({"info": info}, local.arrays if local is not None else {})
        if meta["info"] is None:
            return None
        i = meta["info"]
        return StageState(int(i["pos"]), bool(i["done"]), arrays, [tuple(r) for r in i["ranges"]])

    def _stage(self, name: str) -> StageState | None:
        info = self.stages.get(name)
        if info is None:
            return None
        prefix = f"stage/{name}/"
        arrays = {k[len(prefix) :]: v for k, v in self.arrays.items() if k.startswith(prefix)}
        ranges = [tuple(int(x) for x in r) for r in info.get("ranges", [])]
        return StageState(int(info["pos"]), bool(info["done"]), arrays, ranges)

    def set_stage(
        self,
        name: str,
        pos: int,
        arrays: dict[str, np.ndarray],
        done: bool = False,
        ranges: list[tuple[int, int]] | None = None,
    ) -> None:
        self.drop_stage(name)
        self.stages[name] = {"pos": int(pos), "done": bool(done)}
        if ranges is not None:
            self.stages[name]["ranges"] = [[int(a), int(b)] for a, b in normalize_ranges(ranges)]
        if self._merged.get(name):
            self.stages[name]["merged"] = sorted(self._merged[name])
        for k, v in arrays.items():
            self.arrays[f"stage/{name}/{k}"] = np.asarray(v)

    def drop_stage(self, name: str) -> None:
        """Forget a stage (e.g. a finished pass whose result now lives in free-form arrays)."""
        info = self.stages.pop(name, None)
        if info is not None and info.get("done") and self.folder is not None:  # its parts are obsolete
            self._cleanup.update(self._part_files(name))
        prefix = f"stage/{name}/"
        for k in [k for k in self.arrays if k.startswith(prefix)]:
            del self.arrays[k]

    # ------------------------------------------------------------------ free-form state
    def put(self, **arrays: np.ndarray) -> None:
        for k, v in arrays.items():
            self.arrays[f"data/{k}"] = np.asarray(v)

    def get(self, key: str) -> np.ndarray | None:
        return self.arrays.get(f"data/{key}")

    # ------------------------------------------------------------------ files
    def save(self) -> None:
        """Write the state atomically (a kill during the write keeps the previous state): rank 0
        (or the only process) writes ``state.npz``, any other process its parts."""
        if self.folder is None:
            return
        if not world().is_main:
            for name, (ranges, arrays) in self.parts.items():
                meta = {"format": PART_FORMAT, "identity": self.identity, "stage": name, "run": self.run}
                meta.update(rank=world().rank, ranges=[[int(a), int(b)] for a, b in ranges])
                write_meta_npz(self._part_path(name), meta, arrays, force=True)
            return
        meta = {
            "format": FORMAT,
            "identity": self.identity,
            "stages": self.stages,
            "values": json_normal(self.values),
        }
        write_meta_npz(self.folder / STATE, meta, self.arrays, force=True)
        for path in sorted(self._cleanup):  # parts now held by the state just written
            path.unlink(missing_ok=True)
        self._cleanup.clear()

    def finish(self) -> None:
        """The run's output is written: delete the progress folder (rank 0)."""
        if self.folder is not None and self.folder.exists() and world().is_main:
            shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ parts of distributed stages
    def part_dir(self) -> Path | None:
        """Where this process keeps files of its own (rank 0: the progress folder itself)."""
        if self.folder is None:
            return None
        if world().is_main:
            return self.folder
        path = self.folder / PARTS / f"{self.run}.r{world().rank}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _part_path(self, name: str) -> Path:
        return self.folder / PARTS / f"{self.run}.r{world().rank}.{name}.npz"

    def _part_files(self, name: str) -> list[Path]:
        folder = self.folder / PARTS
        return sorted(folder.glob(f"*.r*.{name}.npz")) if folder.is_dir() else []

    def set_part(self, name: str, ranges: list[tuple[int, int]], arrays: dict[str, np.ndarray]) -> None:
        """This process's part of stage ``name`` (saved by :meth:`save` on ranks > 0)."""
        self.parts[name] = (list(ranges), {k: np.asarray(v) for k, v in arrays.items()})

    def drop_part(self, name: str) -> None:
        self.parts.pop(name, None)

    def save_stage(
        self, name: str, start: int, ranges: list[tuple[int, int]], arrays: dict[str, np.ndarray], done: bool = False
    ) -> None:
        """Checkpoint this process's state of stream stage ``name`` (samples in ``ranges``): rank 0's
        goes into ``state.npz``, another process's into its part; a done stage is rank 0's to save."""
        ranges = normalize_ranges(ranges)
        pos = ranges[0][1] if ranges and ranges[0][0] <= start else start
        if done or world().is_main or self.folder is None:
            self.set_stage(name, pos, arrays, done=done, ranges=ranges)
            if done and self.folder is not None:
                self._cleanup.update(self._part_files(name))
        else:
            self.set_part(name, ranges, arrays)
        if not done or world().is_main:
            self.save()

    def resume_stage(self, name: str, reducer: Any, start: int, stop: int | None = None) -> StageState | None:
        """Continue stream stage ``name``: rank 0 loads its saved state into ``reducer`` and merges
        every other saved part (``reducer.merge_state``); every process gets whether the stage is
        done and the sample ranges already folded in. A done stage's final state is loaded into
        ``reducer`` on every process. Call it on every process."""
        w = world()
        info: dict[str, Any] | None = None
        if w.is_main or self.folder is None:
            info = self._resume_local(name, reducer, start, stop)
        if not w.distributed or self.folder is None:
            return None if info is None else StageState(info["pos"], info["done"], {}, info["ranges"])
        meta, _ = broadcast_msg({"info": info})
        info = meta["info"]
        if info is None:
            return None
        if info["done"]:
            _, state = broadcast_msg({}, reducer.state_dict() if w.is_main else None)
            if not w.is_main:
                reducer.load_state_dict(state)
        ranges = [tuple(r) for r in info["ranges"]]
        return StageState(int(info["pos"]), bool(info["done"]), {}, ranges)

    # ------------------------------------------------------------------ independent units of work
    def save_unit(self, name: str, pos: int, arrays: dict[str, np.ndarray], done: bool = False) -> None:
        """Checkpoint unit ``name`` (work no other unit depends on, at step ``pos``): rank 0's goes
        into ``state.npz``, another process's into its own part file (written once, now)."""
        if world().is_main or self.folder is None:
            self.set_stage(name, pos, arrays, done=done)
            if done and self.folder is not None:
                self._cleanup.update(self._part_files(name))
            self.save()
            return
        self.set_part(name, [(0, int(pos))], {**arrays, "unit_done": np.asarray(bool(done))})
        self.save()
        self.drop_part(name)

    def unit_state(self, name: str) -> StageState | None:
        """Rank 0: the furthest saved state of unit ``name``, its own or a part any process saved."""
        best = self._stage(name)
        for path in [] if self.folder is None else self._part_files(name):
            meta, arrays = read_meta_npz(path, "dirfind progress part", PART_FORMAT)
            if json_normal(meta.get("identity")) != self.identity or meta.get("stage") != name:
                raise BadInputError(f"{path}: a progress part of a different run; remove it or start over")
            try:
                pos, done = int(meta["ranges"][0][1]), bool(arrays.pop("unit_done"))
            except (KeyError, IndexError, TypeError, ValueError):
                raise BadInputError(f"{path}: malformed progress part; remove it or start over") from None
            if best is None or (done, pos) > (best.done, best.pos):
                best = StageState(pos, done, arrays, [(0, pos)])
        return best

    def _resume_local(self, name: str, reducer: Any, start: int, stop: int | None) -> dict[str, Any] | None:
        saved = self._stage(name)
        if saved is not None and stop is not None and not start <= saved.pos <= stop:
            raise BadInputError(
                f"{self.folder / STATE}: stage {name} is at sample {saved.pos}, outside this run's {start}..{stop}; "
                "start over with force=True",
                param="force",
            )
        ranges = list(saved.ranges) if saved is not None else []
        if saved is not None and not ranges and saved.pos > start:  # a state saved before ranges existed
            ranges = [(start, saved.pos)]
        if saved is not None:
            self._load_saved(name, reducer, saved.arrays)
            if saved.done:
                return {"pos": saved.pos, "done": True, "ranges": ranges}
        merged = set(self.stages.get(name, {}).get("merged", []))
        parts = [] if self.folder is None else [p for p in self._part_files(name) if p.name not in merged]
        for path in parts:
            meta, arrays = read_meta_npz(path, "dirfind progress part", PART_FORMAT)
            if json_normal(meta.get("identity")) != self.identity or meta.get("stage") != name:
                raise BadInputError(f"{path}: a progress part of a different run; remove it or start over")
            theirs = [tuple(int(x) for x in r) for r in meta.get("ranges", [])]
            clash = overlapping([*ranges, *theirs])
            if clash is not None:
                raise BadInputError(f"{path}: progress parts overlap at samples {clash[0]}..{clash[1] - 1}")
            if not hasattr(reducer, "merge_state"):
                raise UnsupportedError(
                    f"{type(reducer).__name__} cannot combine the progress of several processes (no merge_state)"
                )
            self._load_saved(name, reducer, arrays, merge=bool(saved is not None or ranges))
            ranges = normalize_ranges([*ranges, *theirs])
            self._merged.setdefault(name, []).append(path.name)
            self._cleanup.add(path)
        if saved is None and not parts:
            return None
        if parts:
            log(f"{name}: merged the progress of {len(parts)} other process(es)")
        ranges = normalize_ranges(ranges)
        pos = ranges[0][1] if ranges and ranges[0][0] <= start else start
        return {"pos": pos, "done": False, "ranges": ranges}


def _valid_stage(v: Any) -> bool:
    pos = v.get("pos") if isinstance(v, dict) else None
    return isinstance(pos, int) and not isinstance(pos, bool) and pos >= 0 and isinstance(v.get("done"), bool)


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> str:
    """First differing key between two identities, as ``key: saved -> now``."""
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = _diff(va, vb, f"{prefix}{k}.")
            if d:
                return d
        elif va != vb:
            return f"{prefix}{k}: {va!r} -> {vb!r}"
    return ""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a resumable run; its progress is saved in ``progress``."""

    def __init__(self, progress: Path):
        super().__init__(str(progress))
        self.progress = progress


@contextlib.contextmanager
def resumable(
    out: str | Path | None,
    identity: dict[str, Any],
    *,
    resume: bool = False,
    force: bool = False,
    every: float = 60.0,
) -> Iterator[Job]:
    """The :class:`Job` of a long run that writes ``out`` (None: in memory, nothing saved).

    Its progress folder ``<out>.progress`` is opened (continued with ``resume``; see
    :meth:`Job.open`). The caller writes ``out`` inside the block; on success the folder is
    removed. On an interruption with saved progress, :class:`Interrupted` names the folder. On
    any other failure the folder is removed if this run created it (never one an earlier run left
    for resuming)."""
    if out is None:
        yield Job(None, identity, every)
        return
    check_writable(out, force)
    folder = progress_dir(out)
    existed = folder.exists() and (folder / STATE).exists()
    parents = missing_dirs(folder.parent)  # created for the run: removed with its progress
    job = Job.open(folder, identity, resume=resume, force=force, every=every)
    main = world().is_main  # only rank 0 ever removes the folder: other processes' parts live in it
    try:
        yield job
    except KeyboardInterrupt:
        if (folder / STATE).exists() or not main:
            raise Interrupted(folder) from None
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
            remove_created(parents)
        raise
    except DirfindError as e:
        if e.exit_code != EXIT_DISTRIBUTED:
            if not existed and main:
                shutil.rmtree(folder, ignore_errors=True)
                remove_created(parents)
            raise
        if isinstance(e, DistributedError):  # a lost process: the others' progress is saved, keep it
            raise DistributedError(f"{e}; progress saved in {folder}: rerun with resume=True", param="resume") from None
        raise  # another process's report of one (its message already says so)
    except BaseException:
        if not existed and main:
            shutil.rmtree(folder, ignore_errors=True)
            remove_created(parents)
        raise
    barrier("finishing the run")
    job.finish()
