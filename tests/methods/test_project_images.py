"""Target images for projection: any size and mode fitted to the generator, masks, and bad files
refused before any work (or skipped with skip_bad)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dirfind.errors import BadInputError, NotFoundError
from dirfind.methods.project.images import read_image, read_targets


def test_modes_and_fits(tmp_path):
    rgb = np.zeros((40, 80, 3), np.uint8)
    rgb[:, :40] = 255  # left half white
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    img, w = read_image(tmp_path / "wide.png", 16, fit="crop")  # centre crop: columns 20..59
    assert img.shape == (3, 16, 16) and w.min() == 1
    assert img[:, :, 2].mean() > 0.9 and img[:, :, 13].mean() < -0.9
    img, w = read_image(tmp_path / "wide.png", 16, fit="pad")  # padded rows are left out of the loss
    assert w[0].max() == 0 and w[8].min() == 1
    grey16 = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    img, _ = read_image(tmp_path / "g16.png", 32)
    assert img.min() == pytest.approx(-1, abs=1e-3) and img.max() == pytest.approx(1, abs=2e-3)
    assert np.allclose(img[0], img[1])  # grey -> RGB
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: white, with no weight
    rgba[:4, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img, w = read_image(tmp_path / "a.png", 8)
    assert w[:4].min() == 1 and w[4:].max() == 0 and img[:, 6].min() == 1
    grey, _ = read_image(tmp_path / "wide.png", 16, channels=1)
    assert grey.shape == (1, 16, 16)


def test_folders_globs_masks_and_bad_files(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((10, 10, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(BadInputError, match=r"broken.png: not a readable image.*nothing was computed"):
        read_targets([tmp_path], 8)
    t = read_targets([tmp_path], 8, skip_bad=True)
    assert len(t.paths) == 3 and t.skipped[0]["path"].endswith("broken.png") and t.masks is None
    assert len(read_targets([str(tmp_path / "*.jpg")], 8).paths) == 3
    mask = np.zeros((10, 10), np.uint8)
    mask[:5] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    t = read_targets([tmp_path / "0.jpg"], 8, mask=tmp_path / "m.png")
    assert t.masks.shape == (1, 1, 8, 8) and t.masks[0, 0, 0].min() == 1 and t.masks[0, 0, -1].max() == 0
    with pytest.raises(NotFoundError, match="image not found"):
        read_targets([tmp_path / "nope.png"], 8)
