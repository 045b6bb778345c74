"""Distributed runs (torch.distributed under torchrun, gloo on the CPU): reducer parts merge to the
one-pass state, messages round-trip, and 2 and 3 real processes give the one-process results:
sample byte-identical, ganspace within the stated tolerance, traversal frames identical, jacobian
--average identical, learners within float tolerance, interfacegan identical; a failure on one
rank ends every rank with the same line and code; a killed rank leaves a run that resumes with
another process count to the same result."""

from __future__ import annotations

import contextlib
import filecmp
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dirfind.bank import DirectionBank
from dirfind.core.dist import pack, unpack
from dirfind.core.jobs import PARTS, Job
from dirfind.core.pca import BlockProduct
from dirfind.core.predictors import PredictorScores
from dirfind.core.reducers import Collector, MeanCov
from dirfind.core.samplefile import SampleWriter
from dirfind.core.sampling import SampleStream, reduce_stream
from dirfind.core.shards import add_range, normalize_ranges, overlapping, subtract_ranges
from dirfind.errors import BadInputError
from dirfind.util.fileio import write_meta_npz
from helpers import FIX, PREDICTORS, ROOT

SG2 = FIX / "stylegan2" / "stylegan2_ada_tiny32.pkl"

#: GANSpace under N processes: the float64 statistics differ from one process's only in summation
#: order (~1e-16 relative); the float32 bank must agree within this, relative to each array's largest entry
GANSPACE_RTOL = 1e-6
#: learners: each process renders a slice of the batch, so the generator sees other batch shapes and
#: the penalty's finite differences magnify last-bit differences; directions agree within this (max abs)
LEARN_ATOL = 1e-4


# ---------------------------------------------------------------------- in one process


def _parts(stream: SampleStream, make, ranks: int = 3):
    """Each of ``ranks`` reducers folds the batches a process of that rank would get (round-robin)."""
    grid = stream.grid()
    reducers = [make() for _ in range(ranks)]
    for r, red in enumerate(reducers):
        for lo, hi in grid[r::ranks]:
            red.update(stream.batch(lo, hi))
    return reducers


def test_reducer_parts_merge_to_the_one_pass_state(dcgan):
    stream = SampleStream(dcgan, 210, "z", seed=5, batch_size=30)
    dim = stream.dim
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, 6)))[0]
    makers = {
        "cov": lambda: MeanCov(dim),
        "block": lambda: BlockProduct(q, total=True),
        "rows": lambda: Collector(0, 210, {"z": (100,)}),
        "scores": lambda: PredictorScores(stream, lambda im: im.mean(dim=(1, 2, 3))),
    }
    for name, make in makers.items():
        whole = reduce_stream(stream, make())
        first, *rest = _parts(stream, make)
        merged = make()
        merged.load_state_dict(first.state_dict())
        for part in rest:
            merged.merge_state(part.state_dict())
        a, b = whole.state_dict(), merged.state_dict()
        for key in a:
            if a[key].dtype.kind == "f" and name in ("cov", "block"):
                scale = np.abs(a[key]).max()
                np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-12 * scale, err_msg=f"{name}.{key}")
            else:
                np.testing.assert_array_equal(b[key], a[key], err_msg=f"{name}.{key}")


def test_messages_between_processes_round_trip_without_pickles():
    arrays = {
        "f": np.arange(6, dtype=np.float64).reshape(2, 3) / 7,
        "i": np.array([-(2**40), 3], np.int64),
        "b": np.array([True, False]),
        "u": np.array(["pose", "smile"]),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
    }
    meta, back = unpack(pack({"n": 3, "names": ["a"]}, arrays))
    assert meta == {"n": 3, "names": ["a"]}
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        np.testing.assert_array_equal(back[k], v)
    with pytest.raises(BadInputError):
        pack({}, {"o": np.array([object()], dtype=object)})


def test_sample_range_sets():
    assert normalize_ranges([(5, 9), (0, 2), (2, 4), (8, 12), (3, 3)]) == [(0, 4), (5, 12)]
    assert subtract_ranges(0, 20, [(0, 4), (6, 8), (15, 30)]) == [(4, 6), (8, 15)]
    assert subtract_ranges(10, 20, []) == [(10, 20)]
    assert overlapping([(0, 4), (4, 8)]) is None and overlapping([(0, 5), (4, 8)]) == (4, 5)
    r = []
    for lo in range(0, 60, 20):
        r = add_range(r, lo, lo + 10)
    assert add_range(r, 10, 20) == [(0, 30), (40, 50)]


def test_sample_rows_move_to_rank_0_in_messages_of_at_most_chunk_rows(monkeypatch):
    """A process's dealt batches are many short ranges: they are packed into few messages."""
    monkeypatch.setattr(SampleWriter, "CHUNK", 100)
    writer = object.__new__(SampleWriter)
    groups = writer._chunks([(0, 64), (128, 150), (200, 450)])
    assert groups == [[(0, 64), (128, 150)], [(200, 300)], [(300, 400)], [(400, 450)]]
    assert writer._chunks([]) == []


def test_resume_refuses_foreign_or_overlapping_parts(dcgan, tmp_path):
    """A progress folder whose parts overlap, or come from another run, is malformed (exit 4)."""
    stream = SampleStream(dcgan, 300, "z", seed=1, batch_size=100)
    ident = {"run": "parts"}
    job = Job.open(tmp_path / "p", ident, every=0)
    job.save_stage(
        "cov", 0, [(0, 100)], reduce_stream(SampleStream(dcgan, 100, "z", seed=1), MeanCov(100)).state_dict()
    )
    parts = tmp_path / "p" / PARTS
    parts.mkdir()
    meta = {"format": "dirfind.job-part", "identity": ident, "stage": "cov", "run": "x", "rank": 1}
    state = MeanCov(100).state_dict()
    write_meta_npz(parts / "x.r1.cov.npz", {**meta, "ranges": [[50, 150]]}, state)
    resumed = Job.open(tmp_path / "p", ident, resume=True)
    with pytest.raises(BadInputError, match="overlap at samples 50..99"):
        resumed.resume_stage("cov", MeanCov(100), 0)
    write_meta_npz(parts / "x.r1.cov.npz", {**meta, "identity": {"run": "other"}, "ranges": [[100, 200]]}, state, True)
    with pytest.raises(BadInputError, match="different run"):
        Job.open(tmp_path / "p", ident, resume=True).resume_stage("cov", MeanCov(100), 0)
    # a well-formed part of the rest: merged, and the stage continues after both
    write_meta_npz(parts / "x.r1.cov.npz", {**meta, "ranges": [[200, 300]]}, state, True)
    saved = Job.open(tmp_path / "p", ident, resume=True).resume_stage("cov", MeanCov(100), stream.start)
    assert saved.ranges == [(0, 100), (200, 300)] and saved.pos == 100 and not saved.done


def test_a_part_of_the_wrong_shape_is_bad_input_naming_the_state(tmp_path):
    """Merging a saved part that does not fit this run's reducer is a one-line exit 4, not a crash."""
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((20, 4)))[0]
    job = Job.open(tmp_path / "p", {"run": "bp"}, every=0)
    job.save_stage("rr", 0, [(0, 10)], BlockProduct(q).state_dict())
    (tmp_path / "p" / PARTS).mkdir()
    meta = {"format": "dirfind.job-part", "identity": {"run": "bp"}, "stage": "rr", "run": "x", "rank": 1}
    narrow = {"n": np.array(5), "mean": np.zeros(20), "y": np.zeros((20, 2)), "ss": np.array(1.0)}
    write_meta_npz(tmp_path / "p" / PARTS / "x.r1.rr.npz", {**meta, "ranges": [[10, 15]]}, narrow)
    with pytest.raises(BadInputError, match=r"state.npz: malformed saved state of stage rr \(saved y is float64"):
        Job.open(tmp_path / "p", {"run": "bp"}, resume=True).resume_stage("rr", BlockProduct(q), 0)


def test_the_first_failure_is_every_process_ending(monkeypatch):
    """The agreement protocol on one store: the first published (line, code) wins, the others read
    it at their next check (an interruption as one), and a collective that never completes times out."""
    from dirfind.core import dist
    from dirfind.errors import DistributedError, RemoteFailure

    st = torch.distributed.HashStore()
    monkeypatch.setattr(dist, "store", lambda: st)
    monkeypatch.setattr(dist, "ACK_WAIT", 0.05)
    monkeypatch.setattr(dist, "world", lambda: dist.World(1, 3))
    assert dist.agree_failure("dirfind: error: rank 1 failed", 4) == ("dirfind: error: rank 1 failed", 4)
    monkeypatch.setattr(dist, "world", lambda: dist.World(2, 3))
    with pytest.raises(RemoteFailure) as e:
        dist.check_failure(force=True)
    assert (e.value.line, e.value.exit_code, e.value.rank) == ("dirfind: error: rank 1 failed", 4, 1)
    assert dist.agree_failure("dirfind: error: a later one", 1) == ("dirfind: error: rank 1 failed", 4)

    st2 = torch.distributed.HashStore()
    monkeypatch.setattr(dist, "store", lambda: st2)
    dist.agree_failure("dirfind: interrupted", 130)
    with pytest.raises(dist.RemoteInterrupt):
        dist.check_failure(force=True)

    class Never:
        def is_completed(self):
            return False

    monkeypatch.setattr(dist, "store", lambda: None)
    monkeypatch.setenv(dist.TIMEOUT_ENV, "0.2")
    with pytest.raises(DistributedError, match="timed out after 0.2 s"):
        dist._wait(Never(), "a test")


def test_device_auto_is_the_local_rank_gpu(monkeypatch):
    from dirfind.util import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert device.resolve_device("auto") == torch.device("cuda", 1)
    assert device.resolve_device("cuda") == torch.device("cuda", 1)
    monkeypatch.delenv("LOCAL_RANK")
    assert device.resolve_device("auto") == torch.device("cuda")


def test_a_callers_nccl_only_process_group_is_refused_on_one_line(monkeypatch):
    """dirfind's messages and barriers are CPU tensors, which an NCCL-only group cannot carry."""
    from dirfind.core import dist
    from dirfind.errors import DistributedError

    monkeypatch.setattr(dist.tdist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist.tdist, "get_backend", lambda group=None: "nccl")
    with pytest.raises(DistributedError, match="NCCL alone.*'cpu:gloo,cuda:nccl'"):
        dist.init()


def test_memory_budgets_share_the_host_but_not_each_processs_gpu(monkeypatch):
    """Under torchrun the processes of a machine share its RAM but each has a GPU of its own; an
    index-less "cuda" asks the current device (mem_get_info wants an index)."""
    from dirfind.util import memory

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr(memory, "_host_bytes", lambda *names: 8 * 2**30)
    asked = []
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: asked.append(d) or (16 * 2**30, 80 * 2**30))
    assert memory.memory_budget(None, "cpu") == int(memory.MEMORY_FRACTION * 8 * 2**30 / 4)
    assert memory.memory_budget(None, "cuda") == int(memory.MEMORY_FRACTION * 16 * 2**30)
    assert memory.memory_budget(None, "cuda:0") == int(memory.MEMORY_FRACTION * 16 * 2**30)
    assert asked == [1, torch.device("cuda", 0)]


def test_an_explicit_gpu_under_torchrun_must_be_the_local_ranks(monkeypatch):
    """Every process of a torchrun job given --device cuda:0 would share one GPU, which NCCL refuses
    at the first collective: refused at once instead (one process per machine may pick its GPU)."""
    from dirfind.util import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert device.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(BadInputError, match=r"cuda:0: under torchrun each process uses its own GPU \(cuda:1"):
        device.resolve_device("cuda:0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert device.resolve_device("cuda:0") == torch.device("cuda", 0)


# ---------------------------------------------------------------------- real processes

DRIVER = """
import contextlib, io, json, os, sys
from dirfind.cli import main
from dirfind.core import dist

dist.init()  # one process group for every command of the plan (each main() joins it)
rank = dist.world().rank
plan = json.load(open(sys.argv[1]))
results = []
for step in plan:
    os.chdir(step["cwd"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(step["args"])
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
    if code != 0:
        break  # a failed command may leave collectives pending
with open(f"{sys.argv[2]}.{rank}.json", "w") as f:
    json.dump(results, f)
sys.stdout.flush()
os._exit(0)
"""

#: the tiny scorer the kill and interruption tests use: mean luminance, optionally slow, and
#: interrupting or failing on one rank (chosen by environment variables)
SCORER = """
import os, time
calls = [0]
def luminance(images):
    calls[0] += 1
    rank = os.environ.get("RANK")
    if os.environ.get("SLOW"):
        open(f"pid.{rank}", "w").write(str(os.getpid()))
        time.sleep(0.25)
    if rank is not None and rank == os.environ.get("INTERRUPT_RANK") and calls[0] == 3:
        raise KeyboardInterrupt
    if rank is not None and rank == os.environ.get("FAIL_RANK") and calls[0] == 2:
        from dirfind.errors import BadInputError
        raise BadInputError("the scorer failed on purpose")
    return images.mean(dim=(1, 2, 3))
"""


def _commands(scorer: Path) -> dict[str, list[str]]:
    dc, ig = ["--ckpt", "dcgan-digiface"], ["interfacegan", "--ckpt", "dcgan-digiface", "-n", "200", "--ratio", "0.1"]
    trav = [
        "traverse",
        "--bank",
        "../sefa.npz",
        *dc,
        "--dir",
        "0-1",
        "--steps",
        "5",
        "--seeds",
        "0-2",
        "--batch-size",
        "4",
    ]
    return {
        "sample": ["sample", *dc, "-n", "130", "--batch-size", "20", "--images", "imgs", "--out", "s.npz"],
        "gs_w": ["ganspace", "--ckpt", str(SG2), "--space", "w", "-n", "1500", "-k", "8", "--batch-size", "100"],
        "gs_act": ["ganspace", *dc, "--space", "act:main.2", "-n", "500", "-k", "4", "--solver", "randomized",
                   "--regression-n", "300", "--batch-size", "100", "--max-passes", "6"],
        "grid": [*trav, "--out", "t.png"],
        "gif": [*trav, "--out", "t.gif"],
        "frames": [*trav, "--out", "frames/"],
        "jacobian": ["jacobian", "--ckpt", str(SG2), "--space", "w", "--seeds", "0-4", "--average", "-k", "5"],
        "hessian": ["hessian", *dc, "-k", "3", "--steps", "3", "--batch-size", "4", "--seed", "2"],
        "orojar": ["orojar", "--ckpt", str(SG2), "--space", "w", "-k", "3", "--steps", "3", "--batch-size", "3",
                   "--estimator", "exact"],
        "interfacegan": [*ig, "--predictor", f"{PREDICTORS}:face_attributes", "--batch-size", "20"],
        "scored": [*ig, "--predictor", f"{scorer}:luminance", "--batch-size", "20", "--checkpoint-every", "0"],
        "help": ["ganspace", "--help"],
        "files": ["interfacegan", "--latents", "../sample/s.npz", "--scores", "../../scores.npy", "--ratio", "0.2"],
        "sample_edit": ["edit", "--latents", "../sample/s.npz", "--bank", "../sefa.npz", "--dir", "0:+2",
                        "--grid", "g.png", "--batch-size", "16", "--out", "edited/"],
    }  # fmt: skip


@contextlib.contextmanager
def _cd(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "DIRFIND_DIST_TIMEOUT": "120"}
    env.pop("RANK", None)
    return {**env, **extra}


def _torchrun(nproc: int, args: list[str], cwd: Path, env: dict[str, str], **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--monitor-interval", "0.2"]
    return subprocess.Popen([*cmd, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def _run_plan(nproc: int, root: Path, names: list[str], cmds: dict[str, list[str]], **env: str) -> list[list[dict]]:
    """Run commands (``name`` -> root/name/) in one launch of ``nproc`` processes; results per rank."""
    plan = []
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        plan.append({"cwd": str(root / name), "args": ["-q", *cmds[name], *(["--out", f"{name}.npz"] * _banks(name))]})
    (root / "plan.json").write_text(json.dumps(plan))
    (root / "driver.py").write_text(DRIVER)
    proc = _torchrun(nproc, [str(root / "driver.py"), str(root / "plan.json"), str(root / "res")], root, _env(**env))
    out, _ = proc.communicate(timeout=600)
    results = []
    for r in range(nproc):
        path = root / f"res.{r}.json"
        assert path.exists(), out.decode()[-3000:]
        results.append(json.loads(path.read_text()))
    return results


def _banks(name: str) -> bool:
    return name not in ("sample", "grid", "gif", "frames", "help", "sample_edit")


@contextlib.contextmanager
def _one_thread():
    """The per-process CPU threads of the launched runs (torchrun's OMP_NUM_THREADS=1): float32
    products sum in another order with more threads, so only equal kernels give equal bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _one_process(root: Path, names: list[str], cmds: dict[str, list[str]]) -> None:
    from dirfind.cli import main

    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        with _cd(root / name), contextlib.redirect_stderr(io.StringIO()), _one_thread():
            args = ["-q", *cmds[name], *(["--out", f"{name}.npz"] * _banks(name))]
            assert main(args) == 0, name


@pytest.fixture(scope="module")
def runs(tmp_path_factory, dcgan_path):
    """The same commands in one process (in this one), in 2 and in 3 processes."""
    base = tmp_path_factory.mktemp("dist")
    scorer = base / "scorer.py"
    scorer.write_text(SCORER)
    cmds = _commands(scorer)
    from dirfind.cli import main

    with _cd(base), contextlib.redirect_stdout(io.StringIO()):
        assert main(["-q", "sefa", "--ckpt", "dcgan-digiface", "-k", "4", "--out", "sefa.npz"]) == 0
    for sub in ("one", "two", "three"):
        (base / sub).mkdir()
        (base / sub / "sefa.npz").write_bytes((base / "sefa.npz").read_bytes())
    np.save(base / "scores.npy", np.random.default_rng(0).standard_normal(130))  # for sample's 130 latents
    two = ["sample", "sample_edit", "gs_w", "gs_act", "grid", "gif", "frames", "jacobian", "hessian", "interfacegan"]
    two.append("files")
    three = ["sample", "gs_act", "frames", "orojar"]
    _one_process(base / "one", sorted({*two, *three, "scored"} - {"files"}), cmds)  # files: rank 0 alone
    res2 = _run_plan(2, base / "two", [*two, "help", "scored"], cmds, FAIL_RANK="1")  # the last one fails on rank 1
    res3 = _run_plan(3, base / "three", [*three, "scored"], cmds, INTERRUPT_RANK="2")  # ... is interrupted on 2
    return {"base": base, "cmds": cmds, "two": res2, "three": res3, "names": {"two": two, "three": three}}


def _same_files(a: Path, b: Path, pattern: str) -> int:
    fa, fb = sorted(a.glob(pattern)), sorted(b.glob(pattern))
    assert [p.name for p in fa] == [p.name for p in fb] and fa, pattern
    for x, y in zip(fa, fb, strict=True):
        assert filecmp.cmp(x, y, shallow=False), f"{y} differs from the one-process {x}"
    return len(fa)


def _banks_close(a: Path, b: Path, rtol: float = 0.0, atol: float = 0.0) -> None:
    x, y = DirectionBank.load(a), DirectionBank.load(b)
    keys = ["directions", "scales", "scores", "mean", "intercepts"]
    pairs = [(k, getattr(x, k), getattr(y, k)) for k in keys if getattr(x, k) is not None]
    pairs += [(f"extra_{k}", v, y.extras[k]) for k, v in x.extras.items() if v.dtype.kind == "f"]
    for key, u, v in pairs:
        tol = atol + rtol * float(np.abs(u).max())
        np.testing.assert_allclose(v, u, rtol=0, atol=tol, err_msg=f"{b.name} {key}")


@pytest.mark.slow
@pytest.mark.parametrize("world", ["two", "three"])
def test_every_rank_succeeds_quietly_and_rank_0_alone_prints(runs, world):
    names = runs["names"][world]
    for rank, results in enumerate(runs[world]):
        for name, res in zip(names, results, strict=False):
            assert res["code"] == 0, (world, rank, name, res["err"][-2000:])
            assert ("wrote" in res["out"]) == (rank == 0), (world, rank, name, res["out"])
            if rank:
                assert res["err"] == "", (world, rank, name, res["err"][-2000:])  # no bars, logs or warnings


@pytest.mark.slow
def test_help_is_printed_by_rank_0_alone(runs):
    rank0, rank1 = (results[len(runs["names"]["two"])] for results in runs["two"])
    assert rank0["code"] == rank1["code"] == 0
    assert rank0["out"].startswith("Usage: dirfind ganspace") and (rank1["out"], rank1["err"]) == ("", "")


@pytest.mark.slow
@pytest.mark.parametrize("world", ["two", "three"])
def test_sample_and_traversals_are_byte_identical(runs, world):
    one, other = runs["base"] / "one", runs["base"] / world
    _same_files(one / "sample", other / "sample", "s.npz")
    assert _same_files(one / "sample", other / "sample", "imgs/*.png") == 130
    assert _same_files(one / "frames", other / "frames", "frames/*.png") == 5
    if world == "two":
        _same_files(one / "grid", other / "grid", "t.png")
        _same_files(one / "gif", other / "gif", "t.gif")
        assert _same_files(one / "sample_edit", other / "sample_edit", "edited/*.png") == 130  # edit: rank 0 writes
        _same_files(one / "sample_edit", other / "sample_edit", "g.png")
        _same_files(one / "sample_edit", other / "sample_edit", "edited/latents.npy")


@pytest.mark.slow
@pytest.mark.parametrize("world", ["two", "three"])
def test_ganspace_banks_agree_within_the_stated_tolerance(runs, world):
    one, other = runs["base"] / "one", runs["base"] / world
    names = ["gs_w", "gs_act"] if world == "two" else ["gs_act"]
    for name in names:
        _banks_close(one / name / f"{name}.npz", other / name / f"{name}.npz", rtol=GANSPACE_RTOL)


@pytest.mark.slow
def test_jacobian_average_and_interfacegan_are_identical(runs):
    one, two = runs["base"] / "one", runs["base"] / "two"
    for name in ("jacobian", "interfacegan"):
        _banks_close(one / name / f"{name}.npz", two / name / f"{name}.npz")  # exactly equal


@pytest.mark.slow
@pytest.mark.parametrize(("world", "name"), [("two", "hessian"), ("three", "orojar")])
def test_learned_directions_match_one_process(runs, world, name):
    a = DirectionBank.load(runs["base"] / "one" / name / f"{name}.npz")
    b = DirectionBank.load(runs["base"] / world / name / f"{name}.npz")
    np.testing.assert_allclose(b.directions, a.directions, rtol=0, atol=LEARN_ATOL)
    np.testing.assert_allclose(b.extras["loss_history"], a.extras["loss_history"], rtol=1e-3, atol=1e-9)


@pytest.mark.slow
def test_a_failure_on_one_rank_ends_every_rank_with_its_line_and_code(runs):
    last = [results[-1] for results in runs["two"]]
    assert [r["code"] for r in last] == [4, 4]
    for r in last:
        lines = [ln for ln in r["err"].splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("dirfind: error: --predictor "), r["err"]
        assert lines[0].endswith("failed on samples 60..79: BadInputError: the scorer failed on purpose"), r["err"]
    assert not (runs["base"] / "two" / "scored" / "scored.npz.progress").exists(), "a failed new run leaves nothing"


@pytest.mark.slow
def test_an_interrupted_run_resumes_in_one_process_to_the_same_bank(runs):
    """3 processes, rank 2 interrupted: every rank stops (130) with its part saved; one process resumes."""
    assert [results[-1]["code"] for results in runs["three"]] == [130, 130, 130]
    where = runs["base"] / "three" / "scored"
    assert (where / "scored.npz.progress" / "state.npz").exists() and not (where / "scored.npz").exists()
    assert list((where / "scored.npz.progress" / PARTS).glob("*.scores.npz")), "ranks 1 and 2 saved their parts"
    from dirfind.cli import main

    with _cd(where), contextlib.redirect_stdout(io.StringIO()), _one_thread():
        assert main(["-q", *runs["cmds"]["scored"], "--out", "scored.npz", "--resume"]) == 0
    _banks_close(runs["base"] / "one" / "scored" / "scored.npz", where / "scored.npz")
    assert not (where / "scored.npz.progress").exists()


@pytest.fixture(scope="module")
def scored_ref(tmp_path_factory):
    """The one-process bank of the 400-sample scored run the kill tests resume."""
    where = tmp_path_factory.mktemp("scored_ref")
    (where / "scorer.py").write_text(SCORER)
    from dirfind.cli import main

    args = ["-q", *_commands(where / "scorer.py")["scored"], "-n", "400", "--out", "ref.npz"]
    with _cd(where), contextlib.redirect_stdout(io.StringIO()), _one_thread():
        assert main(args) == 0
    return where / "ref.npz"


def _wait_for_part(part: Path, pid: Path, procs: list[subprocess.Popen]) -> None:
    """Until rank 1 has checkpointed a part and is scoring (its pid written)."""
    deadline = time.monotonic() + 120
    while not (list(part.glob("*.r1.scores.npz")) and pid.exists()):
        alive = all(p.poll() is None for p in procs)
        assert alive and time.monotonic() < deadline, procs[0].communicate()[0].decode()[-3000:]
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_rank_ends_the_run_and_it_resumes_with_another_process_count(scored_ref, tmp_path):
    """torchrun -m dirfind with 2 processes, rank 1 SIGKILLed mid-run: the run ends (no hang) with
    its progress saved; 3 processes resume it to the one-process bank."""
    (tmp_path / "scorer.py").write_text(SCORER)
    args = ["-m", "dirfind", "-q", *_commands(tmp_path / "scorer.py")["scored"], "-n", "400", "--out", "k.npz"]
    proc = _torchrun(2, args, tmp_path, _env(SLOW="1"))
    _wait_for_part(tmp_path / "k.npz.progress" / PARTS, tmp_path / "pid.1", [proc])
    os.kill(int((tmp_path / "pid.1").read_text()), signal.SIGKILL)
    t0 = time.monotonic()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and time.monotonic() - t0 < 30, "the run ends soon after losing a process"
    text = out.decode()
    assert "dirfind: interrupted" in text and 'File "' + str(ROOT / "src") not in text, text[-3000:]
    assert (tmp_path / "k.npz.progress" / "state.npz").exists() and not (tmp_path / "k.npz").exists()
    proc = _torchrun(3, [*args, "--resume"], tmp_path, _env())
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()[-3000:]
    assert not (tmp_path / "k.npz.progress").exists()
    _banks_close(scored_ref, tmp_path / "k.npz")


@pytest.mark.slow
def test_a_rank_lost_outside_torchrun_ends_the_run_with_exit_10_and_one_process_resumes_it(scored_ref, tmp_path):
    """Two processes started by hand (the environment torchrun would set, no launcher to stop the
    others): rank 1 SIGKILLed, rank 0 notices at its next collective and exits 10 with the resume
    hint, its and rank 1's progress saved; one process resumes it to the one-process bank."""
    import socket

    (tmp_path / "scorer.py").write_text(SCORER)
    cmd = ["-q", *_commands(tmp_path / "scorer.py")["scored"], "-n", "400", "--out", "k.npz"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "SLOW": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "dirfind", *cmd], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=_env(RANK=str(r), LOCAL_RANK=str(r), **world))
        for r in range(2)
    ]  # fmt: skip
    _wait_for_part(tmp_path / "k.npz.progress" / PARTS, tmp_path / "pid.1", procs)
    procs[1].kill()
    procs[1].wait()
    t0 = time.monotonic()
    out, _ = procs[0].communicate(timeout=60)
    assert time.monotonic() - t0 < 30, "rank 0 ends soon after losing rank 1"
    lines = [ln for ln in out.decode().splitlines() if ln.strip()]
    assert procs[0].returncode == 10, lines[-5:]
    assert lines[-1].startswith("dirfind: error: a process of the distributed run was lost"), lines[-5:]
    assert lines[-1].endswith("k.npz.progress: rerun with --resume"), lines[-5:]
    assert (tmp_path / "k.npz.progress" / "state.npz").exists() and not (tmp_path / "k.npz").exists()
    from dirfind.cli import main

    with _cd(tmp_path), contextlib.redirect_stdout(io.StringIO()), _one_thread():
        assert main([*cmd, "--resume"]) == 0
    _banks_close(scored_ref, tmp_path / "k.npz")
    assert not (tmp_path / "k.npz.progress").exists()


@pytest.mark.slow
def test_the_slurm_example_runs_torchrun_and_matches_one_process(tmp_path, dcgan_path):
    """examples/slurm_ganspace.sh as SLURM would run it on one node with 2 "GPUs" (srun, scontrol
    stand-ins; the CPU and gloo do the work): the bank equals a one-process run."""
    import socket

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shims = {
        "srun": '#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n',  # drop srun's options
        "scontrol": "#!/bin/sh\necho localhost\n",
        "torchrun": f'#!/bin/sh\nexec "{sys.executable}" -m torch.distributed.run "$@"\n',
    }
    for name, text in shims.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    slurm = {"SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "localhost", "SLURM_JOB_ID": "4242"}
    slurm.update(SLURM_GPUS_ON_NODE="2", SLURM_CPUS_PER_TASK="2", DIRFIND_RDZV_PORT=str(port))  # 1 thread each
    env = _env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **slurm)
    opts = ["--space", "z", "-k", "5", "--batch-size", "250"]
    script = ROOT / "examples" / "slurm_ganspace.sh"
    proc = subprocess.run(["bash", str(script), "dcgan-digiface", "3000", "gs.npz", *opts], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "2 GPU(s)" in proc.stdout and proc.stdout.count("wrote gs.npz: 5 ganspace directions") == 1, proc.stdout
    from dirfind.cli import main

    with _cd(tmp_path), contextlib.redirect_stdout(io.StringIO()), _one_thread():
        assert main(["-q", "ganspace", "--ckpt", "dcgan-digiface", "-n", "3000", *opts, "--out", "ref.npz"]) == 0
    _banks_close(tmp_path / "ref.npz", tmp_path / "gs.npz", rtol=GANSPACE_RTOL)


#: the scorer of the evaluate test: mean luminance; on rank 1, in the folder "cut", its 8th call
#: (probe 1 + 3 per sample: unedited + 2 directions) is interrupted, after two of its samples are saved
EVAL_SCORER = """
import os
calls = {}
def luminance(images):
    where = os.getcwd()
    calls[where] = calls.get(where, 0) + 1
    if os.environ.get("RANK") == "1" and os.path.basename(where) == "cut" and calls[where] == 8:
        raise KeyboardInterrupt
    return images.mean(dim=(1, 2, 3))
"""


def _evaluations_close(a: Path, b: Path) -> None:
    """Every array of two evaluation files: integers and flags equal, floats within 1e-9 of the
    array's largest entry (the float64 sums differ only in summation order)."""
    from dirfind.core.evaluation import Evaluation

    x, y = Evaluation.load(a).arrays, Evaluation.load(b).arrays
    assert sorted(x) == sorted(y)
    for key, u in x.items():
        if u.dtype.kind == "f":
            scale = float(np.nanmax(np.abs(u))) if np.isfinite(u).any() else 0.0
            np.testing.assert_allclose(y[key], u, rtol=0, atol=1e-9 * scale, err_msg=f"{b} {key}")
        else:
            np.testing.assert_array_equal(y[key], u, err_msg=f"{b} {key}")


def test_evaluation_parts_merge_to_the_one_pass_state(dcgan):
    """dirfind evaluate's reducer: three processes' parts, merged (merge_state), hold the sums of one pass."""
    from dirfind.methods import sefa
    from dirfind.methods.interpret.stats import TraversalStats

    bank = sefa(dcgan, k=2)
    stream = SampleStream(dcgan, 7, "z", seed=2, batch_size=2)
    scorer = ("mean", lambda im: im.mean(dim=(1, 2, 3)))

    def make():
        return TraversalStats(dcgan, bank, [0, 1], [-2.0, 0.0, 2.0], predictors=[scorer], attributes=["mean"])

    whole = reduce_stream(stream, make()).state_dict()
    first, *rest = _parts(stream, make)
    merged = make()
    merged.load_state_dict(first.state_dict())
    for part in rest:
        merged.merge_state(part.state_dict())
    assert whole["n"] == 7
    for key, a in whole.items():
        np.testing.assert_allclose(merged.state_dict()[key], a, rtol=0, atol=1e-12 * np.abs(a).max(), err_msg=key)
    with pytest.raises(BadInputError, match="saved profile"):
        merged.merge_state({**whole, "profile": np.zeros((3, 3))})


@pytest.mark.slow
def test_evaluate_in_two_processes_equals_one_and_resumes_in_one(tmp_path, dcgan_path):
    """dirfind evaluate under torchrun (2 gloo processes): the evaluation of one process (seeded
    samples and a latents file), rank 0 alone prints; a run interrupted on rank 1 (both stop, 130,
    rank 1's part saved) is resumed by one process to the same evaluation."""
    from dirfind.cli import main

    scorer = tmp_path / "scorer.py"
    scorer.write_text(EVAL_SCORER)
    with _cd(tmp_path), contextlib.redirect_stdout(io.StringIO()):
        assert main(["-q", "sefa", "--ckpt", "dcgan-digiface", "-k", "2", "--out", "sefa.npz"]) == 0
    args = ["evaluate", "../../sefa.npz", "-n", "8", "--steps", "3", "--batch-size", "3"]  # one sample per batch
    args += ["--predictor", f"{scorer}:luminance", "--checkpoint-every", "0"]
    np.save(tmp_path / "z.npy", np.random.default_rng(1).standard_normal((5, 100)).astype(np.float32))
    given = ["evaluate", "../../sefa.npz", "--latents", "../../z.npy", "--steps", "3", "--batch-size", "3"]
    cmds = {"full": args, "cut": args, "given": [*given, "--predictor", f"{scorer}:luminance"]}
    _one_process(tmp_path / "one", ["full", "given"], cmds)
    res = _run_plan(2, tmp_path / "two", ["full", "given", "cut"], cmds)
    (full0, given0, cut0), (full1, given1, cut1) = res
    assert full0["code"] == full1["code"] == 0, (full0["err"][-2000:], full1["err"][-2000:])
    assert "wrote full.npz" in full0["out"] and full1["out"] == full1["err"] == ""
    _evaluations_close(tmp_path / "one" / "full" / "full.npz", tmp_path / "two" / "full" / "full.npz")
    assert given0["code"] == given1["code"] == 0, (given0["err"][-2000:], given1["err"][-2000:])
    _evaluations_close(tmp_path / "one" / "given" / "given.npz", tmp_path / "two" / "given" / "given.npz")
    assert cut0["code"] == cut1["code"] == 130, (cut0["err"][-2000:], cut1["err"][-2000:])
    where = tmp_path / "two" / "cut"
    assert list((where / "cut.npz.progress" / PARTS).glob("*.r1.evaluate.npz")) and not (where / "cut.npz").exists()
    with _cd(where), contextlib.redirect_stdout(io.StringIO()), _one_thread():
        assert main(["-q", *args, "--out", "cut.npz", "--resume"]) == 0
    _evaluations_close(tmp_path / "one" / "full" / "full.npz", where / "cut.npz")
    assert not (where / "cut.npz.progress").exists()
