"""Final outputs get the modes a plain open()/mkdir() would under the user's umask (temporaries
from mkstemp/mkdtemp are 0600/0700 until renamed): banks, grids, GIFs, frame folders and their
frames, sample files and images, partial files; a file replaced with --force keeps its mode."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from dirfind.util.fileio import atomic_dir, atomic_path, output_mode, umask
from dirfind.util.images import write_png


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def mask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_folders_and_pngs(tmp_path, mask):
    assert umask() == mask
    with atomic_path(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"x")
        assert _mode(tmp) == 0o600  # mkstemp's private temporary...
    assert _mode(tmp_path / "a.bin") == 0o666 & ~mask  # ...gets the umask's mode when renamed
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("1")
    assert _mode(tmp_path / "d") == 0o777 & ~mask and _mode(tmp_path / "d" / "f") == 0o666 & ~mask
    write_png(tmp_path / "i.png", np.zeros((2, 2, 3), np.uint8))
    assert _mode(tmp_path / "i.png") == 0o666 & ~mask
    os.chmod(tmp_path / "a.bin", 0o640)
    with atomic_path(tmp_path / "a.bin", force=True) as tmp:
        tmp.write_bytes(b"y")
    assert _mode(tmp_path / "a.bin") == 0o640, "a replaced file keeps its mode, as open(path, 'w') does"
    assert output_mode(tmp_path / "new") == 0o666 & ~mask


def test_command_outputs(cli, tmp_path, mask):
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    assert cli("-q", "sefa", "--ckpt", "dcgan-digiface", "-k", "2", "-o", "b.npz").code == 0
    for out in ("t.png", "t.gif", "frames/"):
        r = cli("-q", "traverse", "--bank", "b.npz", "--dir", "0", "--steps", "2", "--seeds", "0", "-o", out)
        assert r.code == 0, r
    r = cli("-q", "sample", "--ckpt", "dcgan-digiface", "-n", "3", "--images", "imgs", "--shard", "0/1", "-o", "s.npz")
    assert r.code == 0, r
    assert cli("-q", "merge", "s.npz", "-o", "m.npz").code == 0
    r = cli("-q", "ganspace", "--ckpt", "dcgan-digiface", "--space", "z", "-n", "64", "-k", "2", "--shard", "0/1",
            "-o", "g.npz")  # fmt: skip
    assert r.code == 0, r
    files = ["b.npz", "t.png", "t.gif", "frames/0000.png", "s.npz", "m.npz", "g.npz", "imgs/000000.png"]
    assert {f: oct(_mode(tmp_path / f)) for f in files} == {f: oct(file_mode) for f in files}
    assert oct(_mode(tmp_path / "frames")) == oct(dir_mode) and oct(_mode(tmp_path / "imgs")) == oct(dir_mode)


def test_interpretation_and_edit_outputs(cli, tmp_path, mask):
    """The writers of evaluate (file, heat-maps), report (atlas folder), edit (folder, grid, recipe)
    and traverse's .mp4 (when the video extra is installed)."""
    import importlib.util

    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    assert cli("-q", "sefa", "--ckpt", "dcgan-digiface", "-k", "2", "-o", "b.npz").code == 0
    r = cli("-q", "evaluate", "b.npz", "-n", "2", "--steps", "2", "--map-size", "16", "-o", "ev.npz", "--heatmaps", "h")
    assert r.code == 0, r
    r = cli("-q", "report", "b.npz", "--evaluation", "ev.npz", "--seeds", "0", "--steps", "2", "-o", "atlas")
    assert r.code == 0, r
    assert cli("-q", "sample", "--ckpt", "dcgan-digiface", "-n", "2", "-o", "s.npz").code == 0
    r = cli("-q", "edit", "--latents", "s.npz", "--bank", "b.npz", "--dir", "0:1", "--grid", "g.png",
            "--save-recipe", "r.json", "-o", "edited")  # fmt: skip
    assert r.code == 0, r
    files = ["ev.npz", "h/d000.png", "atlas/index.html", "atlas/strips/d000.png", "atlas/heat/d000.png"]
    files += ["edited/0000.png", "edited/latents.npy", "g.png", "r.json"]
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        r = cli("-q", "traverse", "--bank", "b.npz", "--dir", "0", "--steps", "2", "--seeds", "0", "-o", "t.mp4")
        assert r.code == 0, r
        files.append("t.mp4")
    assert {f: oct(_mode(tmp_path / f)) for f in files} == {f: oct(file_mode) for f in files}
    folders = ["h", "atlas", "atlas/strips", "edited"]
    assert {f: oct(_mode(tmp_path / f)) for f in folders} == {f: oct(dir_mode) for f in folders}
