"""Resumable jobs: a progress folder next to the output holding the state of an unfinished run.

A long command (``dirfind sample``, ``dirfind ganspace``) keeps ``<out>.progress/`` while it runs:
``state.npz`` (JSON metadata + named arrays, always replaced atomically, so a kill at any moment
leaves the previous complete state) plus any files the command streams into (memory-mapped
arrays). Resuming continues from it after checking that the run's *identity* (generator
fingerprint, seed, sample count, method options) is unchanged; on success the output is written
atomically and the folder removed.

State is organised in *stages* (one pass over a sample stream each): a stage records its
position (samples ``start .. pos-1`` are folded into its arrays) and whether it is done; free-form
arrays and values carry what a method computes between stages.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError, MismatchError, OutputError
from ..util.fileio import check_writable, missing_dirs, read_meta_npz, remove_created, write_meta_npz
from ..util.progress import log

FORMAT = "dirfind.job"
STATE = "state.npz"


def progress_dir(out: str | Path) -> Path:
    """The progress folder of an output path: ``<out>.progress``."""
    out = Path(str(out).rstrip("/\\"))
    return out.with_name(out.name + ".progress")


def json_normal(x: Any) -> Any:
    """JSON round trip, so identities compare the way they are stored (tuples -> lists, ...)."""
    return json.loads(json.dumps(x, sort_keys=True, default=str))


@dataclass
class StageState:
    pos: int
    done: bool
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


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
        an accidental re-run never throws away hours of sampling.
        """
        if folder is None:
            return cls(None, identity, every)
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

    def restore(self, name: str, reducer: Any, start: int, stop: int) -> StageState | None:
        """Load saved stage ``name`` of a pass over samples ``start .. stop-1`` into ``reducer``
        (None if it never checkpointed); a one-line error naming the state file if it does not fit."""
        saved = self.stage(name)
        if saved is None:
            return None
        where = self.folder / STATE if self.folder is not None else "saved state"
        if not start <= saved.pos <= stop:
            raise BadInputError(
                f"{where}: stage {name} is at sample {saved.pos}, outside this run's {start}..{stop}; "
                "start over with force=True",
                param="force",
            )
        try:
            reducer.load_state_dict(saved.arrays)
        except (KeyError, ValueError, TypeError, IndexError) as e:
            msg = " ".join(str(e).split())[:120]
            raise BadInputError(
                f"{where}: malformed saved state of stage {name} ({msg}); start over with force=True", param="force"
            ) from None
        return saved

    # ------------------------------------------------------------------ stages
    def stage(self, name: str) -> StageState | None:
        """Saved state of stage ``name`` (None if it never checkpointed)."""
        info = self.stages.get(name)
        if info is None:
            return None
        prefix = f"stage/{name}/"
        arrays = {k[len(prefix) :]: v for k, v in self.arrays.items() if k.startswith(prefix)}
        return StageState(int(info["pos"]), bool(info["done"]), arrays)

    def set_stage(self, name: str, pos: int, arrays: dict[str, np.ndarray], done: bool = False) -> None:
        self.drop_stage(name)
        self.stages[name] = {"pos": int(pos), "done": bool(done)}
        for k, v in arrays.items():
            self.arrays[f"stage/{name}/{k}"] = np.asarray(v)

    def drop_stage(self, name: str) -> None:
        """Forget a stage (e.g. a finished pass whose result now lives in free-form arrays)."""
        self.stages.pop(name, None)
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
        """Write the state atomically (a kill during the write keeps the previous state)."""
        if self.folder is None:
            return
        meta = {
            "format": FORMAT,
            "identity": self.identity,
            "stages": self.stages,
            "values": json_normal(self.values),
        }
        write_meta_npz(self.folder / STATE, meta, self.arrays, force=True)

    def finish(self) -> None:
        """The run's output is written: delete the progress folder."""
        if self.folder is not None and self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)


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
    try:
        yield job
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) and (folder / STATE).exists():
            raise Interrupted(folder) from None
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
            remove_created(parents)
        raise
    job.finish()
