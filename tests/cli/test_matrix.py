"""Every method on every family: each method runs from the CLI on each family's checkpoint, writes a
valid bank for that generator, and traversing its direction 0 changes the images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dirfind import DirectionBank, load_generator
from dirfind.render import traverse
from helpers import FAMILIES, METHODS


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=pytest.mark.slow) if f.startswith("stylegan3") else f for f in FAMILIES]
)
def test_method_runs_and_direction_0_changes_images(family: str, method: str, ckpts, cli, tmp_path: Path) -> None:
    ckpt, render, adapter = ckpts[family], FAMILIES[family][1], FAMILIES[family][2]
    r = cli(*METHODS[method], "--ckpt", ckpt, *render, "--seed", "1", "--out", "bank.npz")
    assert r.code == 0, r
    bank = DirectionBank.load(tmp_path / "bank.npz")
    assert bank.generator["family"] == adapter
    assert len(bank.directions) >= 1 and np.isfinite(bank.directions).all()
    np.testing.assert_allclose(np.linalg.norm(bank.directions, axis=1), 1.0, atol=1e-5)

    gen = load_generator(ckpt, device="cpu")
    bank.check_generator(gen)
    if render:
        gen = gen.with_settings(class_index=int(render[1]))
    dim = gen.z_dim if bank.space == "z" else gen.w_dim * (len(bank.layers) if bank.space == "w+" else 1)
    assert bank.directions.shape[1] == dim

    # the CLI renders it, and the images along direction 0 change from the first step to the last
    r = cli("traverse", "--bank", "bank.npz", "--dir", "0", "--steps", "3", "--seeds", "0-1", "--out", "t.png")
    assert r.code == 0, r
    assert (tmp_path / "t.png").stat().st_size > 0
    torch.manual_seed(0)
    tiles = traverse(gen, bank, [0], seeds=[0, 1], steps=3)["images"].astype(np.float64)
    change = np.abs(tiles[:, -1] - tiles[:, 0]).mean(axis=(1, 2, 3))
    assert (change > 1.0).all(), f"direction 0 barely changes the images: mean |diff| {change}"
