"""Every method on every family: each method runs from the CLI on each family's checkpoint, writes a
valid bank for that generator, and traversing its direction 0 changes the images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dirfind import DirectionBank, load_generator
from dirfind.render import traverse
from helpers import FIX, ROOT

PREDICTOR = f"{ROOT / 'examples' / 'predictors.py'}:luminance"

# family id -> (checkpoint, extra render options, expected adapter family)
FAMILIES: dict[str, tuple[str | None, list[str], str]] = {
    "dcgan": (None, [], "dcgan"),  # the real dcgan-digiface, from the session fixture
    "stylegan2-rosinality": (str(FIX / "stylegan2" / "stylegan2_rosinality_tiny32.pt"), [], "stylegan2"),
    "stylegan2-nvidia": (str(FIX / "stylegan2" / "stylegan2_ada_tiny32.pkl"), [], "stylegan2"),
    "stylegan2-nvidia-cond": (str(FIX / "stylegan2" / "stylegan2_ada_cond4_tiny32.pkl"), ["--class", "2"], "stylegan2"),
    "biggan": (str(FIX / "biggan" / "biggan_deep_tiny64"), ["--class", "3"], "biggan"),
    "pggan": (str(FIX / "pggan" / "pggan_genforce_tiny32.pth"), [], "pggan"),
    "stylegan3-t": (str(FIX / "stylegan3" / "stylegan3_t_tiny32.pkl"), [], "stylegan3"),
    "stylegan3-r": (str(FIX / "stylegan3" / "stylegan3_r_tiny32.pkl"), [], "stylegan3"),
}

# method -> CLI arguments (before --ckpt/--out), kept small: the point is that each runs on each family
METHODS: dict[str, list[str]] = {
    "sefa": ["sefa", "-k", "5"],
    "ganspace": ["ganspace", "-n", "400", "-k", "5", "--batch-size", "100", "--regression-n", "400"],
    "interfacegan": ["interfacegan", "-n", "200", "--predictor", PREDICTOR, "--ratio", "0.25", "--batch-size", "50"],
    "jacobian": ["jacobian", "-k", "3", "--seeds", "0", "--size", "16"],
    "hessian": ["hessian", "-k", "3", "--steps", "2", "--batch-size", "2"],
    "orojar": ["orojar", "-k", "3", "--steps", "2", "--batch-size", "2", "--estimator", "exact"],
}


@pytest.fixture(scope="module")
def ckpts(dcgan_path: Path) -> dict[str, str]:
    return {fam: ckpt or str(dcgan_path) for fam, (ckpt, _, _) in FAMILIES.items()}


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
