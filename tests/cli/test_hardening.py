"""Bad input of every kind, written by the tests, gets its documented exit code and one line, and
leaves nothing behind: click's own usage errors, Ctrl-C during start-up, malformed banks and
latents, traversals too large to render, unwritable outputs, failing predictors, refused options."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dirfind import errors
from helpers import FAILING_PREDICTORS, ROOT, one_line_error


def _listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def bank_file(tmp_path_factory, dcgan):
    from dirfind.methods import sefa

    path = tmp_path_factory.mktemp("bank") / "b.npz"
    sefa(dcgan, k=3).save(path)
    return path


@pytest.fixture
def bank(bank_file, tmp_path):
    """A SeFa bank of the real DCGAN as ``b.npz`` in the test's folder."""
    shutil.copy(bank_file, tmp_path / "b.npz")
    return tmp_path / "b.npz"


# ---------------------------------------------------------------------- click's own errors, Ctrl-C


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["nosuchcmd"], "No such command 'nosuchcmd'"),
        (["hessian", "--ckpt", "x", "--estimator", "bogus"], "Invalid value for '--estimator'"),
        (["sefa", "--bogus"], "No such option '--bogus'"),
        (["traverse"], "Missing option '--dir'"),
        (["traverse", "--dir", "0", "--steps", "many"], "'many' is not a valid integer"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(cli, args, words):
    line = one_line_error(cli(*args), errors.EXIT_USAGE)
    assert words in line and "--help" in line, line


_STARTUP = """
import builtins, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (background jobs inherit SIG_IGN)
real, fired = builtins.__import__, []
def interrupting_import(name, *args, **kwargs):
    if name == {module!r} and not fired:
        fired.append(name)
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *args, **kwargs)
builtins.__import__ = interrupting_import
sys.argv = ["dirfind", "info", "dcgan-digiface"]
from dirfind.__main__ import main
sys.exit(main())
"""


@pytest.mark.parametrize("module", ["click", "torch"])  # the CLI's own imports; a command's (inside main)
def test_ctrl_c_during_start_up(tmp_path, module):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    code = _STARTUP.format(module=module)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == errors.EXIT_INTERRUPTED, proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()] == ["dirfind: interrupted"], proc.stderr


# ---------------------------------------------------------------------- banks, latents, traversal sizes


def _with_meta(src, dst, edit) -> None:
    with np.load(src) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["meta"] = np.array(json.dumps(edit(json.loads(str(arrays["meta"][()])))))
    np.savez(dst, **arrays)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda m: [m], "not a JSON object"),
        (lambda m: {**m, "default_range": [1.0]}, "default range must be two numbers"),
        (lambda m: {**m, "default_range": ["a", "b"]}, "malformed bank"),
        (lambda m: {**m, "default_range": "ab"}, "default_range must be a list"),
        (lambda m: {**m, "generator": [1]}, "generator must be an object"),
        (lambda m: {**m, "layers": {"a": 1}}, "layers must be a list"),
        (lambda m: {**m, "format_version": True}, "format version"),
        (lambda m: {**m, "params": 5}, "params must be an object"),
    ],
)
def test_malformed_bank_metadata(cli, bank, tmp_path, edit, words):
    _with_meta(bank, tmp_path / "bad.npz", edit)
    for args in (["info", "bad.npz"], ["traverse", "--bank", "bad.npz", "--dir", "0", "-o", "t.png"]):
        line = one_line_error(cli(*args), errors.EXIT_BAD_INPUT)
        assert "bad.npz" in line and words in line, line
    assert not (tmp_path / "t.png").exists()


def test_bank_arrays_of_text_and_a_bare_npy(cli, bank, tmp_path):
    with np.load(bank) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(tmp_path / "text.npz", **{**arrays, "scales": np.array(["x"] * 3)})
    line = one_line_error(cli("traverse", "--bank", "text.npz", "--dir", "0"), errors.EXIT_BAD_INPUT)
    assert "text.npz" in line and "scales" in line
    np.save(tmp_path / "dirs.npy", arrays["directions"])
    line = one_line_error(cli("traverse", "--bank", "dirs.npy", "--dir", "0"), errors.EXIT_BAD_INPUT)
    assert "dirs.npy" in line and "bare .npy" in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--range", "nan", "nan"], "--range must be two finite numbers"),
        (["--range", "0", "inf"], "--range must be two finite numbers"),
        (["--fps", "0", "-o", "a.gif"], "--fps must be greater than 0"),
        (["--fps", "nan", "-o", "a.gif"], "--fps must be greater than 0"),
        (["--fps", "0.0001", "-o", "a.gif"], "--fps must be in 0.01..100"),
        (["--steps", "1000000000"], "--steps must be at most"),
        (["--seeds", "0-100000000"], "more than 1000000 entries"),
        (["--seeds", "0-99999"], "too large to render"),  # a 6.6 Mpx tall grid: 12 GB
        (["--seeds", "0-1099", "-o", "t.jpg"], "side limit 65500"),  # JPEG's own limit
        (["--seeds", "0-199999", "-o", "frames/"], "one frame would be"),
    ],
)
def test_traversals_that_cannot_be_rendered_are_refused_first(cli, bank, tmp_path, args, words):
    line = one_line_error(cli("traverse", "--bank", "b.npz", "--dir", "0", *args), errors.EXIT_BAD_INPUT)
    assert words in line, line
    assert _listing(tmp_path) == ["b.npz"]


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.array([["a"] * 100]), "real numbers, not str"),
        (np.zeros((0, 100), np.float32), "is empty"),
        (np.ones((2, 100), bool), "real numbers, not bool"),
        (np.full((2, 100), np.nan, np.float32), "NaN"),
    ],
)
def test_latent_files_of_text_or_no_rows(cli, bank, tmp_path, array, words):
    np.save(tmp_path / "z.npy", array)
    line = one_line_error(cli("traverse", "--bank", "b.npz", "--dir", "0", "--latents", "z.npy"), errors.EXIT_BAD_INPUT)
    assert "z.npy" in line and words in line, line


# ---------------------------------------------------------------------- outputs that cannot be written


def test_unwritable_outputs_are_exit_7_and_leave_nothing(cli, bank, tmp_path):
    (tmp_path / "afile").write_text("x")
    sample = ["sample", "--ckpt", "dcgan-digiface", "-n", "3"]
    cases = [
        [*sample, "--images", "afile", "-o", "s.npz"],
        [*sample, "--images", "/sys/dirfind-test", "-o", "s.npz"],
        [*sample, "-o", "/sys/dirfind-test.npz"],
        [*sample, "-o", "afile/s.npz"],
        ["sefa", "--ckpt", "dcgan-digiface", "-o", "/sys/b.npz"],
        ["traverse", "--bank", "b.npz", "--dir", "0", "-o", "/sys/t.png"],
        ["traverse", "--bank", "b.npz", "--dir", "0", "-o", "/sys/frames/"],
        ["hessian", "--ckpt", "dcgan-digiface", "--steps", "2", "-o", "/sys/h.npz"],
    ]
    for args in cases:
        line = one_line_error(cli(*args), errors.EXIT_OUTPUT)
        assert "cannot write" in line, (args, line)
    assert _listing(tmp_path) == ["afile", "b.npz"]
    (tmp_path / "adir").mkdir()
    line = one_line_error(cli("sefa", "--ckpt", "dcgan-digiface", "-o", "adir", "--force"), errors.EXIT_OUTPUT)
    assert "it is a folder" in line


def test_read_only_folder():
    """A folder without write permission (run as an unprivileged user: as root, in a forked child
    that drops to uid 65534, since the superuser may write anywhere)."""
    import tempfile

    from dirfind.errors import OutputError
    from dirfind.util.fileio import atomic_path, check_dir_writable, check_writable

    top = Path(tempfile.mkdtemp(prefix="dirfind-ro-"))
    top.chmod(0o755)
    (top / "ro").mkdir(mode=0o555)

    def refused() -> bool:
        checks = [
            lambda: check_writable(top / "ro" / "b.npz"),
            lambda: check_dir_writable(top / "ro" / "imgs"),
            lambda: atomic_path(top / "ro" / "sub" / "b.npz").__enter__(),
        ]
        for check in checks:
            try:
                check()
                return False
            except OutputError as e:
                if "not writable" not in str(e):
                    return False
        return not (top / "ro" / "sub").exists()

    try:
        if os.geteuid() != 0:
            assert refused()
        else:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child reports through its exit status
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    os._exit(0 if refused() else 1)
                except BaseException:
                    os._exit(2)
            assert os.waitpid(pid, 0)[1] == 0
    finally:
        (top / "ro").chmod(0o755)
        shutil.rmtree(top)


def _two_shards(cli) -> None:
    for k in range(2):
        r = cli("-q", "sample", "--ckpt", "dcgan-digiface", "-n", "6", "--shard", f"{k}/2", "-o", f"p{k}.npz")
        assert r.code == 0, r


def test_merge_into_a_missing_folder(cli, tmp_path):
    for k in range(2):
        assert (
            cli("-q", "sample", "--ckpt", "dcgan-digiface", "-n", "6", "--shard", f"{k}/2", "-o", f"p{k}.npz").code == 0
        )
    line = one_line_error(cli("merge", "p0.npz", "-o", "new/sub/m.npz"), errors.EXIT_BAD_INPUT)
    assert "missing" in line
    assert not (tmp_path / "new").exists(), "a failed merge removes the folders it created"
    assert cli("merge", "p0.npz", "p1.npz", "-o", "new/sub/m.npz").code == 0
    assert (tmp_path / "new/sub/m.npz").is_file()
    line = one_line_error(cli("merge", "p0.npz", "p1.npz", "-o", "/sys/new/m.npz"), errors.EXIT_OUTPUT)


def test_malformed_shard_metadata(cli, tmp_path):
    for k in range(2):
        assert (
            cli("-q", "sample", "--ckpt", "dcgan-digiface", "-n", "6", "--shard", f"{k}/2", "-o", f"p{k}.npz").code == 0
        )
    _with_meta(tmp_path / "p1.npz", tmp_path / "nostart.npz", lambda m: {k: v for k, v in m.items() if k != "start"})
    _with_meta(tmp_path / "p1.npz", tmp_path / "wide.npz", lambda m: {**m, "start": 0})  # 3 rows claim 0..5
    _with_meta(tmp_path / "p1.npz", tmp_path / "list.npz", lambda m: [m])
    for name in ("nostart.npz", "wide.npz", "list.npz"):
        line = one_line_error(cli("merge", "p0.npz", name, "-o", "m.npz"), errors.EXIT_BAD_INPUT)
        assert name in line, line
    assert cli("-q", "ganspace", "--ckpt", "dcgan-digiface", "--space", "z", "-n", "64", "-k", "2", "--shard", "0/2",
               "-o", "g0.npz").code == 0  # fmt: skip
    _with_meta(tmp_path / "g0.npz", tmp_path / "g_bad.npz", lambda m: {**m, "range": "0-32"})
    line = one_line_error(cli("merge", "g0.npz", "g_bad.npz", "-o", "gm.npz"), errors.EXIT_BAD_INPUT)
    assert "g_bad.npz" in line and "malformed GANSpace partial file" in line
    with np.load(tmp_path / "g0.npz") as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(tmp_path / "g_m2.npz", **{**arrays, "m2": arrays["m2"][:3]})
    line = one_line_error(cli("merge", "g0.npz", "g_m2.npz", "-o", "gm.npz"), errors.EXIT_BAD_INPUT)
    assert "g_m2.npz" in line and "m2" in line
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "gm.npz").exists()


# ---------------------------------------------------------------------- predictors, refused options


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        ("raises", "failed on samples 0..19: RuntimeError: model weights missing"),
        ("text", "not numeric"),
        ("nans", "NaN or inf"),
        ("late", "failed on samples 20..39: ValueError: second batch"),
        ("missing", "has no callable 'missing'"),
    ],
)
def test_failing_predictors_are_named_and_leave_no_files(cli, tmp_path, fn, words):
    (tmp_path / "p.py").write_text(FAILING_PREDICTORS)
    args = ["interfacegan", "--ckpt", "dcgan-digiface", "-n", "60", "--ratio", "0.2", "--batch-size", "20"]
    args += ["--predictor", f"p.py:{fn}"]
    r = cli(*args, "--scores-out", "s.npy", "--checkpoint-every", "0", "-o", "b.npz")
    line = one_line_error(r, errors.EXIT_NOT_FOUND if fn == "missing" else errors.EXIT_BAD_INPUT)
    assert words in line and (fn == "missing" or f"--predictor p.py:{fn}" in line), line
    assert _listing(tmp_path) == ["p.py"]


def test_predictor_that_does_not_import(cli, tmp_path):
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\n")
    r = cli("interfacegan", "--ckpt", "dcgan-digiface", "-n", "60", "--ratio", "0.2", "--predictor", "broken.py:f")
    line = one_line_error(r, errors.EXIT_BAD_INPUT)
    assert "cannot import" in line and "ModuleNotFoundError" in line
    assert _listing(tmp_path) == ["broken.py"]


@pytest.mark.parametrize(
    "args",
    [
        ["hessian", "-k", "0"],
        ["orojar", "-k", "0"],
        ["hessian", "-k", "1000"],
        ["hessian", "--steps", "0"],
        ["orojar", "--lr", "nan"],
        ["hessian", "--estimator", "exact", "--probes", "0"],
        ["ganspace", "--space", "z", "-n", "0"],
        ["ganspace", "--space", "act:main.99", "-n", "10"],
        ["sample", "-n", "0"],
        ["jacobian", "--seeds", "0", "-k", "0"],
    ],
)
def test_refused_options_leave_nothing_behind(cli, tmp_path, args):
    r = cli(args[0], "--ckpt", "dcgan-digiface", *args[1:], "-o", "out.npz")
    assert r.code in (errors.EXIT_BAD_INPUT, errors.EXIT_USAGE), r
    one_line_error(r, r.code)
    assert _listing(tmp_path) == []


def test_a_run_failing_midway_leaves_nothing(cli, bank, tmp_path, monkeypatch):
    import importlib

    from dirfind.core import samplefile
    from dirfind.errors import BadInputError

    traverse_module = importlib.import_module("dirfind.render.traverse")  # the module, not the function

    def failing(real):
        calls = []

        def run(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise BadInputError("disk on fire")
            return real(*args, **kwargs)

        return run

    monkeypatch.setattr(traverse_module, "render", failing(traverse_module.render))
    r = cli("traverse", "--bank", "b.npz", "--dir", "0", "--steps", "4", "--batch-size", "1", "-o", "new/frames/")
    assert "disk on fire" in one_line_error(r, errors.EXIT_BAD_INPUT)
    monkeypatch.setattr(samplefile.SampleWriter, "update", failing(samplefile.SampleWriter.update))
    args = ["sample", "--ckpt", "dcgan-digiface", "-n", "30", "--batch-size", "10", "--checkpoint-every", "0"]
    r = cli(*args, "--images", "imgs/a", "-o", "out/s.npz")
    assert "disk on fire" in one_line_error(r, errors.EXIT_BAD_INPUT)
    assert _listing(tmp_path) == ["b.npz"], "no frames, images, progress or folders this run created"
