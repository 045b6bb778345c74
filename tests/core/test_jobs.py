"""Resumable jobs at their edges: killed before the first checkpoint, malformed saved state
(exit 4 naming the file, the progress kept), state that does not fit the run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dirfind import errors
from dirfind.core.jobs import Job
from dirfind.core.reducers import MeanCov
from dirfind.core.sampling import SampleStream, reduce_stream
from dirfind.errors import BadInputError
from helpers import kill_midway, one_line_error

SAMPLE = ["-q", "sample", "--ckpt", "dcgan-digiface", "-n", "60", "--batch-size", "10", "--seed", "3"]


def _same_samples(a, b) -> None:
    with np.load(a) as x, np.load(b) as y:
        for key in ("indices", "z", "latents"):
            np.testing.assert_array_equal(x[key], y[key])


def test_killed_before_the_first_checkpoint_resumes_from_zero(cli, tmp_path):
    args = [*SAMPLE, "--checkpoint-every", "3600"]
    folder = tmp_path / "latents.npz.progress"
    # SIGKILL once the run has opened its memory-mapped rows, long before a checkpoint
    kill_midway(args, tmp_path, folder / "z.npy", min_pos=None, delay=0.3)
    assert folder.is_dir() and not (folder / "state.npz").exists()
    r = cli(*args)
    assert r.code == errors.EXIT_OUTPUT and "--resume" in r.err  # never discarded without being asked
    r = cli(*args, "--resume")
    assert r.code == 0, r
    assert not folder.exists()
    assert cli(*SAMPLE, "--out", "ref.npz").code == 0
    _same_samples(tmp_path / "latents.npz", tmp_path / "ref.npz")
    # an empty progress folder (killed before anything was written) resumes from zero too
    (tmp_path / "again.npz.progress").mkdir()
    assert cli(*SAMPLE, "--out", "again.npz", "--resume").code == 0
    _same_samples(tmp_path / "again.npz", tmp_path / "ref.npz")


@pytest.fixture
def interrupted(cli, tmp_path, monkeypatch):
    """A `dirfind sample` run stopped (Ctrl-C) after 3 of 6 batches, its progress saved."""
    from dirfind.core import samplefile

    calls = {"n": 0}
    update = samplefile.SampleWriter.update

    def stop_at_4(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        update(self, batch)

    monkeypatch.setattr(samplefile.SampleWriter, "update", stop_at_4)
    r = cli(*SAMPLE, "--checkpoint-every", "0")
    monkeypatch.setattr(samplefile.SampleWriter, "update", update)
    assert r.code == errors.EXIT_INTERRUPTED and "--resume" in r.err, r
    return tmp_path / "latents.npz.progress" / "state.npz"


def _rewrite(state, edit) -> None:
    with np.load(state) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")[()]))
    meta = edit(meta)
    np.savez(state, meta=np.array(json.dumps(meta)), **arrays)


@pytest.mark.parametrize(
    "corrupt",
    [
        "garbage",
        "list",
        "no_identity",
        "stages_list",
        "pos_text",
        "pos_beyond_n",
    ],
)
def test_malformed_progress_is_one_line_naming_the_file(cli, interrupted, corrupt):
    if corrupt == "garbage":
        interrupted.write_bytes(b"PK\x03\x04 not really a zip")
    elif corrupt == "list":
        _rewrite(interrupted, lambda m: [m])
    elif corrupt == "no_identity":
        _rewrite(interrupted, lambda m: {k: v for k, v in m.items() if k != "identity"})
    elif corrupt == "stages_list":
        _rewrite(interrupted, lambda m: {**m, "stages": [m["stages"]]})
    elif corrupt == "pos_text":
        _rewrite(interrupted, lambda m: {**m, "stages": {"samples": {"pos": "30", "done": False}}})
    else:
        _rewrite(interrupted, lambda m: {**m, "stages": {"samples": {"pos": 10**6, "done": False}}})
    line = one_line_error(cli(*SAMPLE, "--resume"), errors.EXIT_BAD_INPUT, logs=True)
    assert "state.npz" in line and "--force" in line, line
    assert interrupted.exists(), "progress an earlier run left is never removed"
    assert not (interrupted.parent.parent / "latents.npz").exists()
    # starting over is still possible
    assert cli(*SAMPLE, "--force").code == 0


def test_saved_statistics_of_the_wrong_shape_are_refused(dcgan, tmp_path):
    stream = SampleStream(dcgan, 300, "z", seed=1, batch_size=100)
    job = Job.open(tmp_path / "p", {"t": 1}, every=0)
    job.set_stage("cov", 100, {"n": np.array(100), "mean": np.zeros(100), "m2": np.zeros((3, 3))})
    job.save()
    saved = Job.open(tmp_path / "p", {"t": 1}, resume=True)
    with pytest.raises(BadInputError, match=r"state\.npz: malformed saved state of stage cov .*m2"):
        reduce_stream(stream, MeanCov(stream.dim), job=saved, stage="cov")
    job.set_stage("cov", 100, {"n": np.array(100), "mean": np.array(["a"] * 100), "m2": np.zeros((100, 100))})
    with pytest.raises(BadInputError, match="mean is str"):
        reduce_stream(stream, MeanCov(stream.dim), job=job, stage="cov")


def test_learning_run_with_saved_arrays_of_the_wrong_shape(cli, tmp_path, monkeypatch):
    import importlib

    learn = importlib.import_module("dirfind.methods.learn")  # the module (dirfind.methods exports learn())
    step, calls = learn._step, []

    def stop_at_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return step(*args, **kwargs)

    args = ["-q", "hessian", "--ckpt", "dcgan-digiface", "-k", "2", "--steps", "4", "--checkpoint-steps", "1"]
    args += ["--batch-size", "2", "-o", "h.npz"]
    monkeypatch.setattr(learn, "_step", stop_at_3)
    assert cli(*args).code == errors.EXIT_INTERRUPTED
    monkeypatch.setattr(learn, "_step", step)
    state = tmp_path / "h.npz.progress" / "state.npz"
    with np.load(state) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(state, **{**arrays, "stage/train/A": arrays["stage/train/A"][:1]})
    line = one_line_error(cli(*args, "--resume"), errors.EXIT_BAD_INPUT, logs=True)
    assert "state.npz: malformed saved state" in line and "--force" in line, line
    assert state.exists()


def test_units_continue_from_the_furthest_saved_part_and_refuse_foreign_ones(tmp_path):
    """Independent units (projection batches): rank 0 takes a unit's furthest state, its own or a
    part another process saved (written here as rank 1 writes it); a part of another run is refused."""
    from dirfind.core.jobs import PART_FORMAT, PARTS
    from dirfind.core.parallel import run_units
    from dirfind.util.fileio import write_meta_npz

    ident = {"run": "units"}
    job = Job.open(tmp_path / "p", ident, every=0)
    job.save_unit("u0", 2, {"x": np.array([2.0])})
    job.save_unit("u1", 1, {"x": np.array([1.0])})
    meta = {"format": PART_FORMAT, "identity": ident, "stage": "u1", "run": "other", "rank": 1, "ranges": [[0, 3]]}
    write_meta_npz(tmp_path / "p" / PARTS / "other.r1.u1.npz", meta, {"x": np.array([3.0]), "unit_done": False})
    job = Job.open(tmp_path / "p", ident, resume=True, every=0)
    assert (job.unit_state("u0").pos, job.unit_state("u1").pos) == (2, 3)
    np.testing.assert_array_equal(job.unit_state("u1").arrays["x"], [3.0])

    def count(name, saved, checkpoint, tick):  # a unit counts up to 4 from where it was saved
        pos = 0 if saved is None else saved.pos
        for step in range(pos, 4):
            checkpoint(step + 1, {"x": np.array([step + 1.0])})
        return {"start": np.array(pos), "x": np.array([4.0])}

    res = run_units(job, ["u0", "u1", "u2"], count)
    assert [int(res[n]["start"]) for n in ("u0", "u1", "u2")] == [2, 3, 0]
    assert not list((tmp_path / "p" / PARTS).glob("*.npz")), "a done unit's parts are removed"
    assert run_units(job, ["u0"], count)["u0"]["start"] == 2  # done: not run again
    write_meta_npz(tmp_path / "p" / PARTS / "x.r1.u2.npz", {**meta, "identity": {"run": "else"}, "stage": "u2"}, {})
    with pytest.raises(BadInputError, match="a progress part of a different run"):
        job.unit_state("u2")
