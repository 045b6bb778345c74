"""``dirfind project`` and ``dirfind edit`` end to end on the real DCGAN: a real photo (scikit-image's
astronaut) is projected, edited by a SeFa direction and an official InterFaceGAN boundary, and the
projection file feeds traverse and jacobian; a killed projection resumes bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dirfind import errors
from helpers import FIX, kill_midway, one_line_error


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory, dcgan_path):
    """The astronaut projected into the DCGAN (few steps: these tests check plumbing, not quality),
    a SeFa bank and the official luminance boundary imported as a bank."""
    import skimage.data

    from dirfind.cli import main

    d = tmp_path_factory.mktemp("photo")
    Image.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    with np.load(FIX / "interfacegan" / "dcgan_interfacegan_lean.npz") as f:
        np.save(d / "luminance_boundary.npy", f["boundary_luminance_split0.7"])
    run = lambda *a: main([*map(str, a)])  # noqa: E731
    assert run("project", d / "astronaut.png", "--ckpt", "dcgan-digiface", "--steps", "12", "--loss", "l2",
               "--candidates", "2", "-o", d / "p.npz", "--preview", d / "preview.png", "-q") == 0  # fmt: skip
    assert run("sefa", "--ckpt", "dcgan-digiface", "-k", "3", "-o", d / "sefa.npz", "-q") == 0
    assert run("convert", d / "luminance_boundary.npy", "--ckpt", "dcgan-digiface", "-o", d / "ifg.npz", "-q") == 0
    return d


def _png(path):
    return np.asarray(Image.open(path)).astype(int)


def test_photo_projection_file_and_preview(photo_run):
    from dirfind.core.latentfile import read_latent_file

    ls = read_latent_file(photo_run / "p.npz")
    assert ls.source == "projection" and ls.space == "z" and ls.latents.shape == (1, 100)
    res = ls.meta["results"][0]
    assert res["path"].endswith("astronaut.png") and np.isfinite([res["psnr"], res["ssim"], res["loss_l2"]]).all()
    assert ls.arrays["loss_curve"].shape == (1, 12) and ls.meta["generator_identity"]["family"] == "dcgan"
    assert ls.meta["generator_identity"]["fingerprint"] and _png(photo_run / "preview.png").shape == (64, 130, 3)


def test_edit_by_sefa_and_interfacegan_changes_the_image_and_zero_keeps_it(cli, photo_run):
    p = photo_run
    recon = p / "recon"
    assert cli("edit", "--latents", p / "p.npz", "--bank", p / "sefa.npz", "--dir", "0:0", "-o", f"{recon}/").code == 0
    ref = cli("traverse", "--bank", p / "sefa.npz", "--dir", "0", "--latents", p / "p.npz", "--steps", "1",
              "--range", "0", "0", "-o", p / "t0.png")  # fmt: skip
    assert ref.code == 0, ref
    unchanged = _png(recon / "astronaut.png")
    assert np.array_equal(unchanged, _png(p / "t0.png"))  # amount 0 = the reconstruction, rendered alike
    res = cli("edit", "--latents", p / "p.npz", "--bank", p / "sefa.npz", "--bank", p / "ifg.npz",
              "--dir", "sefa_0:+3", "--dir", "1/0:2", "--grid", p / "ba.png", "--save-recipe", p / "r.json",
              "-o", f"{p}/both/", "--json")  # fmt: skip
    assert res.code == 0, res
    out = json.loads(res.out)
    assert out["columns"] == ["target", "unedited", "edited"] and out["space"] == "z"
    edited = _png(p / "both" / "astronaut.png")
    assert np.abs(edited - unchanged).mean() > 5
    sefa_only = cli("edit", "--latents", p / "p.npz", "--bank", p / "sefa.npz", "--dir", "sefa_0:3", "-o", f"{p}/s/")
    assert sefa_only.code == 0 and np.abs(_png(p / "s" / "astronaut.png") - edited).mean() > 1  # the boundary moved it
    again = cli("edit", "--latents", p / "p.npz", "--recipe", p / "r.json", "-o", f"{p}/again/")
    assert again.code == 0 and np.array_equal(_png(p / "again" / "astronaut.png"), edited)
    # InterFaceGAN by signed distance: to_distance D puts the latent at distance D
    dist = cli("edit", "--latents", p / "p.npz", "--bank", p / "ifg.npz", "--dir", "0", "--to-distance", "1.5",
               "-o", f"{p}/d/", "--json")  # fmt: skip
    assert dist.code == 0, dist
    from dirfind.bank import DirectionBank

    bank = DirectionBank.load(p / "ifg.npz")
    z = np.load(p / "d" / "latents.npy")[0]
    assert float(z @ bank.directions[0] + bank.intercepts[0]) == pytest.approx(1.5, abs=1e-4)


def test_edit_errors_are_one_line(cli, photo_run):
    p = photo_run
    base = ["edit", "--latents", p / "p.npz", "--bank", p / "sefa.npz"]
    assert "no direction is named 'smile'" in one_line_error(cli(*base, "--dir", "smile:1"), errors.EXIT_BAD_INPUT)
    assert "has no amount" in one_line_error(cli(*base, "--dir", "0"), errors.EXIT_BAD_INPUT)
    msg = one_line_error(cli(*base, "--dir", "0", "--to-distance", "1"), errors.EXIT_BAD_INPUT)
    assert "intercepts" in msg
    bad = p / "w.npy"
    np.save(bad, np.zeros((1, 7), np.float32))
    msg = one_line_error(cli("edit", "--latents", bad, "--bank", p / "sefa.npz", "--dir", "0:1"), errors.EXIT_BAD_INPUT)
    assert "do not fit this dcgan generator" in msg


def test_jacobian_at_a_projected_latent(cli, photo_run):
    p = photo_run
    res = cli("jacobian", "--ckpt", "dcgan-digiface", "--latents", p / "p.npz", "-k", "3", "-o", p / "j.npz", "--json")
    assert res.code == 0, res
    from dirfind.bank import DirectionBank

    bank = DirectionBank.load(p / "j.npz")
    z = np.load(p / "p.npz")["latents"][0]
    np.testing.assert_array_equal(bank.origin, z)  # a local bank at the projected latent


def test_bad_images_refused_before_any_work(cli, tmp_path, dcgan_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "bad.jpg").write_bytes(b"no jpeg")
    res = cli("project", tmp_path / "ok.png", tmp_path / "bad.jpg", "--ckpt", "dcgan-digiface", "--steps", "2")
    msg = one_line_error(res, errors.EXIT_BAD_INPUT)
    assert "bad.jpg: not a readable image" in msg and "--skip-bad" in msg and not (tmp_path / "latents.npz").exists()
    res = cli("project", tmp_path / "ok.png", tmp_path / "bad.jpg", "--ckpt", "dcgan-digiface", "--steps", "2",
              "--candidates", "1", "--skip-bad", "--json", "-q")  # fmt: skip
    assert res.code == 0, res
    assert json.loads(res.out)["skipped"][0]["path"].endswith("bad.jpg")
    msg = one_line_error(cli("project", tmp_path / "ok.png", "--ckpt", "x", "--loss", "foo:1"), 4)
    assert "unknown term 'foo' in --loss" in msg


@pytest.mark.slow
def test_killed_projection_resumes_bit_for_bit(cli, tmp_path, dcgan_path):
    import skimage.data

    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "a.png")
    args = ["project", "a.png", "--ckpt", "dcgan-digiface", "--steps", "12", "--loss", "l2", "--restarts", "2",
            "--candidates", "2", "--checkpoint-steps", "4", "--seed", "3", "-q"]  # fmt: skip
    assert cli(*args, "-o", "ref.npz").code == 0
    state = tmp_path / "run.npz.progress" / "state.npz"
    kill_midway([*args, "-o", "run.npz"], tmp_path, state, min_pos=4, delay=0.1,
                slow="dirfind.methods.project.inversion:schedule")  # fmt: skip
    assert not (tmp_path / "run.npz").exists()
    res = cli(*args, "-o", "run.npz", "--resume")
    assert res.code == 0, res
    with np.load(tmp_path / "ref.npz") as a, np.load(tmp_path / "run.npz") as b:
        for key in ("latents", "loss_curve", "restart_loss"):
            np.testing.assert_array_equal(a[key], b[key])
    assert not state.parent.exists()
