"""The inputs of evaluate, label, report, project and edit, malformed by the tests: latents files
(projection and sample files, raw arrays), edit recipes, evaluation files and output paths get exit 4
(or 7) with one line naming the file, and nothing is written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from dirfind import errors
from helpers import FAILING_PREDICTORS, one_line_error


def _listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def made(tmp_path_factory, dcgan):
    """A SeFa bank, its evaluation (2 samples, 2 steps) and a projection file of one image (written
    by the projection writer from a drawn latent and its image: its fields are what is tested)."""
    import torch

    from dirfind.core.latentfile import write_projection
    from dirfind.core.sampling import draw_z
    from dirfind.methods import sefa
    from dirfind.methods.interpret import evaluate
    from dirfind.methods.interpret.evaluate import EvaluateOptions
    from dirfind.util.images import to_uint8

    d = tmp_path_factory.mktemp("made")
    bank = sefa(dcgan, k=2)
    bank.save(d / "b.npz")
    evaluate(dcgan, bank, EvaluateOptions(n=2, steps=2, batch_size=4, map_size=16), out=d / "ev.npz")
    z = draw_z(dcgan, 0, 1, 7)
    with torch.no_grad():
        img = to_uint8(dcgan.synthesis(torch.from_numpy(z), "z"))
    Image.fromarray(img[0]).save(d / "face.png")
    meta = {"space": "z", "images": {"paths": ["face.png"], "sha256": ["-"], "skipped": []}}
    write_projection(d / "p.npz", meta, {"latents": z.astype(np.float32), "targets": img, "loss": np.zeros(1)})
    return d


@pytest.fixture
def here(made, tmp_path):
    for name in ("b.npz", "ev.npz", "p.npz"):
        shutil.copy(made / name, tmp_path / name)
    return tmp_path


def _rewrite(src, dst, meta=None, **arrays) -> None:
    """``src`` with its JSON metadata passed through ``meta`` and arrays replaced (None: removed)."""
    with np.load(src) as f:
        data = {k: f[k] for k in f.files}
    if meta is not None:
        data["meta"] = np.array(json.dumps(meta(json.loads(str(data["meta"][()])))))
    for k, v in arrays.items():
        data.pop(k) if v is None else data.__setitem__(k, v)
    np.savez(dst, **data)


# ---------------------------------------------------------------------- latents files


@pytest.mark.parametrize(
    ("meta", "arrays", "words"),
    [
        (lambda m: {**m, "space": 5}, {}, "its space is 5"),
        (lambda m: {**m, "images": "x"}, {}, "images.paths must be a list"),
        (None, {"latents": None}, "no latents array"),
        (None, {"latents": np.array([["a"] * 100])}, "real numbers, not str"),
        (None, {"latents": np.zeros((0, 100), np.float32)}, "is empty"),
        (None, {"noiseX": np.zeros((1, 1, 4, 4), np.float32)}, "'noiseX' is not noise<k>"),
        (None, {"noise0": np.array(["a"])}, "noise0 must hold real numbers"),
        (None, {"targets": np.zeros((3, 64, 64, 3), np.uint8)}, "targets must be (N=1, H, W, C) uint8"),
    ],
)
def test_malformed_projection_files(cli, here, meta, arrays, words):
    _rewrite(here / "p.npz", here / "bad.npz", meta, **arrays)
    for args in (["edit", "--latents", "bad.npz", "--bank", "b.npz", "--dir", "0:1", "-o", "e/"],
                 ["traverse", "--bank", "b.npz", "--dir", "0", "--latents", "bad.npz", "-o", "t.png"]):  # fmt: skip
        line = one_line_error(cli(*args), errors.EXIT_BAD_INPUT)
        assert "bad.npz" in line and words in line, line
    assert _listing(here) == ["b.npz", "bad.npz", "ev.npz", "p.npz"]


def test_raw_latents_without_rows_and_folders(cli, here):
    import torch

    torch.save(torch.zeros(0, 100), here / "none.pt")
    (here / "folder.npy").mkdir()
    for name, words in (("none.pt", "is empty"), ("folder.npy", "is a folder")):
        line = one_line_error(cli("edit", "--latents", name, "--bank", "b.npz", "--dir", "0:1"), errors.EXIT_BAD_INPUT)
        assert name in line and words in line, line
    assert not (here / "edited").exists()


# ---------------------------------------------------------------------- recipes and amounts

_GOOD = {"format": "dirfind.edit-recipe", "format_version": 1, "banks": ["b.npz"]}
_GOOD["edits"] = [{"direction": 0, "amount": 1}]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (json.dumps([_GOOD]), "format 'list'"),
        (json.dumps({**_GOOD, "edits": [{"direction": 0, "amount": float("nan")}]}), "must be a finite number"),
        (json.dumps({**_GOOD, "edits": [{"direction": 0, "amount": 1e400}]}), "must be a finite number"),
        (json.dumps({**_GOOD, "edits": [{"direction": [0], "amount": 1}]}), "an index or a name"),
        (json.dumps({**_GOOD, "edits": [{"direction": 0, "amount": 1, "bank": True}]}), "a position"),
        (json.dumps({**_GOOD, "edits": [{"direction": 0, "amount": 1, "layers": "0-3"}]}), "list of integers"),
        (json.dumps({**_GOOD, "banks": "b.npz"}), "banks must be a list"),
        (json.dumps({**_GOOD, "edits": {"a": 1}}), "edits must be a list"),
        ("[" * 100000 + "]" * 100000, "recursion"),
        (None, "is a folder"),
    ],
)
def test_malformed_recipes(cli, here, text, words):
    if text is None:
        (here / "r.json").mkdir()
    else:
        (here / "r.json").write_text(text)
    line = one_line_error(cli("edit", "--latents", "p.npz", "--recipe", "r.json", "-o", "e/"), errors.EXIT_BAD_INPUT)
    assert "r.json" in line and words in line, line
    assert not (here / "e").exists()


@pytest.mark.parametrize(
    "args",
    [["--dir", "0:nan"], ["--dir", "0:inf"], ["--dir", "0", "--amount", "nan"], ["--dir", "0", "--to-distance", "nan"]],
)
def test_non_finite_amounts_are_refused(cli, here, args):
    r = cli("edit", "--latents", "p.npz", "--bank", "b.npz", *args, "-o", "e/")
    line = one_line_error(r, errors.EXIT_BAD_INPUT)
    assert "must be a finite number" in line, line
    assert not (here / "e").exists()


# ---------------------------------------------------------------------- evaluation files


@pytest.mark.parametrize(
    ("meta", "arrays", "words"),
    [
        (lambda m: {**m, "run": "x"}, {}, "run must be an object"),
        (lambda m: {**m, "bank": [1]}, {}, "bank must be an object"),
        (None, {"dirs": np.zeros((2, 2), np.int64)}, "dirs must be direction indices"),
        (None, {"dirs": np.array([-5, 0])}, "dirs must be direction indices"),
        (None, {"dirs": np.array(["a", "b"])}, "dirs must be direction indices"),
        (None, {"effect": np.zeros(1)}, "effect must be 2 numbers"),
        (None, {"profile": np.zeros((2, 5))}, "profile must be 2 x 2 numbers"),
        (None, {"change_map": None}, "missing change_map"),
        (None, {"names": np.zeros(2)}, "names must be 2 text"),
    ],
)
def test_malformed_evaluation_files(cli, here, meta, arrays, words):
    _rewrite(here / "ev.npz", here / "bad.npz", meta, **arrays)
    for args in (["label", "b.npz", "--evaluation", "bad.npz", "-o", "l.npz"],
                 ["report", "b.npz", "--evaluation", "bad.npz", "--seeds", "0", "-o", "atlas"]):  # fmt: skip
        line = one_line_error(cli(*args), errors.EXIT_BAD_INPUT)
        assert "bad.npz" in line and words in line, line
    assert _listing(here) == ["b.npz", "bad.npz", "ev.npz", "p.npz"]


# ---------------------------------------------------------------------- outputs checked first


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["edit", "--latents", "p.npz", "--bank", "b.npz", "--dir", "0:1", "--save-recipe", "/sys/r.json"], 7, "/sys"),
        (["edit", "--latents", "p.npz", "--bank", "b.npz", "--dir", "0:1", "--save-recipe", "b.npz"], 7, "exists"),
        (["edit", "--latents", "p.npz", "--bank", "b.npz", "--dir", "0:1", "--grid", "g.bogus"], 4, "--grid g.bogus"),
        (
            ["project", "face.png", "--ckpt", "dcgan-digiface", "--loss", "l2", "--steps", "1", "--preview", "p.bogus"],
            4,
            "--preview p.bogus",
        ),  # fmt: skip
        (["evaluate", "b.npz", "-n", "1", "--steps", "200000"], 4, "--steps must be at most"),
        (["evaluate", "b.npz", "-n", "1", "--heatmaps", "/sys/maps/"], 7, "/sys"),
        (["sample", "--ckpt", "dcgan-digiface", "-n", "100000000000000"], 7, "GiB free"),  # 80 PB of memory maps
    ],
)
def test_outputs_are_checked_before_anything_is_written(cli, made, tmp_path, args, code, words):
    for name in ("b.npz", "p.npz", "face.png"):
        shutil.copy(made / name, tmp_path / name)
    line = one_line_error(cli(*args, "-o", "out/"), code)
    assert words in line, line
    assert _listing(tmp_path) == ["b.npz", "face.png", "p.npz"]


# ---------------------------------------------------------------------- predictors of evaluate


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        ("raises", "failed on sample 0: RuntimeError: model weights missing"),
        ("text", "not numeric"),
        ("later", "failed on samples 0..0: ValueError: third batch"),
    ],
)
def test_failing_predictors_of_evaluate_are_named_and_leave_no_files(cli, made, tmp_path, fn, words):
    shutil.copy(made / "b.npz", tmp_path / "b.npz")
    (tmp_path / "p.py").write_text(FAILING_PREDICTORS)
    args = ["-n", "3", "--steps", "2", "--batch-size", "2", "--predictor", f"p.py:{fn}"]
    for cmd in (["evaluate", "b.npz", *args, "--checkpoint-every", "0", "-o", "ev.npz"],
                ["label", "b.npz", *args, "-o", "l.npz"]):  # fmt: skip
        line = one_line_error(cli(*cmd), errors.EXIT_BAD_INPUT)
        assert f"--predictor: p.py:{fn}" in line and words in line, line
    assert _listing(tmp_path) == ["b.npz", "p.py"]
