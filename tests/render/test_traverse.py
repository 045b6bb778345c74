"""Traversal rendering on the real DCGAN: layout, step 0 = plain sample, change along a direction, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dirfind.errors import BadInputError
from dirfind.methods import sefa
from dirfind.render import to_uint8, traverse


@pytest.fixture(scope="module")
def bank(dcgan):
    return sefa(dcgan, k=8)


def test_grid_layout_and_identity_step(dcgan, bank, tmp_path):
    res = traverse(dcgan, bank, [0], seeds=range(4), steps=9, out=tmp_path / "t.png")
    tiles = res["images"]
    assert tiles.shape == (4, 9, 64, 64, 3) and tiles.dtype == np.uint8
    assert res["alphas"][4] == 0.0
    with torch.no_grad():
        plain = to_uint8(dcgan(dcgan.z_from_seeds(range(4))))
    np.testing.assert_array_equal(tiles[:, 4], plain)
    img = Image.open(tmp_path / "t.png")
    assert img.size == (9 * 64 + 8 * 2, 4 * 64 + 3 * 2)
    grid = np.asarray(img)
    np.testing.assert_array_equal(grid[66:130, 0:64], tiles[1, 0])


def test_images_change_along_direction(dcgan, bank):
    tiles = traverse(dcgan, bank, [0], seeds=range(3), steps=5, span=(-3, 3))["images"].astype(np.float64)
    step = np.abs(np.diff(tiles, axis=1)).mean(axis=(2, 3, 4))  # (samples, steps-1)
    assert step.min() > 2.0, "every step must visibly change the image"
    assert np.abs(tiles[:, -1] - tiles[:, 0]).mean() > 10.0


def test_edit_matches_manual_latent_offset(dcgan, bank):
    res = traverse(dcgan, bank, [2], seeds=[11], steps=3, span=(-2, 2))
    z = dcgan.z_from_seeds([11]) + 2.0 * torch.from_numpy(bank.directions[2])
    with torch.no_grad():
        expected = to_uint8(dcgan(z))[0]
    assert np.abs(res["images"][0, 2].astype(int) - expected.astype(int)).max() <= 1


def test_rows_are_direction_major_and_batching_is_invisible(dcgan, bank):
    a = traverse(dcgan, bank, [0, 1], seeds=[1, 2, 3], steps=4, batch_size=5)["images"]
    b = traverse(dcgan, bank, [0, 1], seeds=[1, 2, 3], steps=4, batch_size=64)["images"]
    assert a.shape[:2] == (6, 4)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    single = traverse(dcgan, bank, [1], seeds=[2], steps=4)["images"]
    assert np.abs(a[4].astype(int) - single[0].astype(int)).max() <= 1


def test_gif_and_frames(dcgan, bank, tmp_path):
    traverse(dcgan, bank, [0], seeds=[0, 1], steps=5, out=tmp_path / "a.gif")
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 8 and gif.info.get("loop") == 0  # 5 forward + 3 back
    files = traverse(dcgan, bank, [0], seeds=[0, 1], steps=5, out=str(tmp_path / "frames") + "/")["files"]
    assert [p.split("/")[-1] for p in files] == [f"{i:04d}.png" for i in range(5)]
    assert Image.open(files[0]).size == (64, 2 * 64 + 2)


def test_bad_arguments(dcgan, bank, tmp_path):
    with pytest.raises(BadInputError, match="out of range"):
        traverse(dcgan, bank, [8], seeds=[0])
    with pytest.raises(BadInputError, match="steps"):
        traverse(dcgan, bank, [0], seeds=[0], steps=0)
    with pytest.raises(BadInputError, match="out "):
        traverse(dcgan, bank, [0], seeds=[0], out=tmp_path / "x.avi")
    with pytest.raises(BadInputError, match="layers"):
        traverse(dcgan, bank, [0], seeds=[0], layers=[0])
