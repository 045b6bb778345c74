"""Projection (GAN inversion): NVIDIA's schedule on the StyleGAN2/3 fixtures (w and w+), the z
prior for families without w, determinism, independence of problems, and resuming bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dirfind import load_generator
from dirfind.errors import BadInputError
from dirfind.methods.project import ProjectOptions, Targets, project, read_targets
from dirfind.methods.project.inversion import noise_regularizer, schedule
from helpers import FIX

L2 = (("l2", 1.0),)


def smoothed(curve: np.ndarray, windows: int = 5) -> np.ndarray:
    """Mean of the loss curve over ``windows`` equal spans of steps (per image)."""
    return np.stack([c.mean(-1) for c in np.array_split(curve, windows, axis=-1)], -1)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    import skimage.data

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


@pytest.mark.parametrize(
    "ckpt",
    [
        "stylegan2/stylegan2_ada_tiny32.pkl",
        "stylegan2/stylegan2_rosinality_tiny32.pt",
        pytest.param("stylegan3/stylegan3_t_tiny32.pkl", marks=pytest.mark.slow),  # ~1-3 s per step on a CPU
    ],
)
def test_style_projection_lowers_the_loss_and_w_plus_fits_better(ckpt, photo):
    gen = load_generator(str(FIX / ckpt))
    targets = read_targets([photo], gen.resolution, gen.channels)
    res = {sp: project(gen, targets, ProjectOptions(space=sp, steps=40, loss=L2)) for sp in ("w", "w+")}
    for sp, r in res.items():
        curve = smoothed(r["loss_curve"])[0]
        # "monotonically": the mean loss over each fifth of the schedule is below the one before
        assert np.all(np.diff(curve) < 0), (sp, curve)
        assert r["loss"][0] < 0.85 * curve[0], (sp, r["loss"], curve)
        assert r["latents"].shape == (1, *gen.latent_shape(sp))
    assert res["w+"]["loss"][0] < res["w"]["loss"][0]
    if gen.has_noise:  # StyleGAN2: the noise maps were optimised and stay normalised
        for n in res["w+"]["noise"]:
            assert abs(n.mean()) < 1e-4 and abs(n.std() - 1) < 1e-3


def test_schedule_is_nvidias():
    o = ProjectOptions(steps=1000)
    assert schedule(0, o) == (0.0, 0.05)
    lr, noise = schedule(25, o)  # half-way up the 5% ramp
    assert lr == pytest.approx(0.05) and noise == pytest.approx(0.05 * (1 - 0.025 / 0.75) ** 2)
    assert schedule(500, o)[0] == pytest.approx(0.1) and schedule(750, o)[1] == 0.0
    assert schedule(875, o)[0] == pytest.approx(0.05)  # cosine half-way down the last 25%


def test_noise_regularizer_penalises_correlated_maps_per_problem():
    white = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    smooth = torch.nn.functional.interpolate(white[:, :, :8, :8], size=(32, 32), mode="bilinear")
    smooth = (smooth - smooth.mean()) / smooth.std()
    reg = noise_regularizer([torch.cat([white, smooth])])
    assert reg.shape == (2,) and reg[1] > 100 * reg[0]


def test_dcgan_prior_keeps_z_typical_and_problems_are_independent(dcgan):
    z = dcgan.z_from_seeds([3, 4])
    with torch.no_grad():
        imgs = dcgan.synthesis(z, "z").numpy()
    t = Targets(imgs, None, ["a", "b"], ["a", "b"])
    o = ProjectOptions(steps=12, loss=L2, restarts=2, batch_size=4, candidates=4)
    both = project(dcgan, t, o)
    again = project(dcgan, t, o, batch_size=1)  # each problem alone: the same result
    np.testing.assert_allclose(both["latents"], again["latents"], atol=1e-4)
    np.testing.assert_allclose(both["loss_curve"], again["loss_curve"], rtol=1e-3, atol=1e-6)
    assert both["restart_loss"].shape == (2, 2)
    typical = (both["latents"] ** 2).mean(1)
    assert np.all(np.abs(typical - 1) < 0.5), typical
    assert np.allclose(both["loss"], both["restart_loss"].min(1))


def test_bad_options_are_one_line_errors():
    with pytest.raises(BadInputError, match="unknown term 'ssim'"):
        ProjectOptions(loss=(("ssim", 1.0),))
    with pytest.raises(BadInputError, match="restarts must be at least 1"):
        ProjectOptions(restarts=0)
    with pytest.raises(BadInputError, match="positive weight"):
        ProjectOptions(loss=(("l2", 0.0),))


def test_biggan_per_layer_z_with_its_class(photo):
    gen = load_generator(str(FIX / "biggan" / "biggan_deep_tiny64")).with_settings(class_index=3)
    r = project(gen, [photo], ProjectOptions(space="w+", steps=3, loss=L2, candidates=2))
    assert r["latents"].shape == (1, gen.num_ws, gen.z_dim) and np.isfinite(r["loss"]).all()
    assert r["meta"]["generator_identity"]["class_index"] == 3


@pytest.mark.slow
def test_dcgan_round_trip_recovers_generated_images(dcgan, tmp_path):
    """Images the DCGAN made from seeds 100-115 (saved as 8-bit PNGs) are projected back with 2
    restarts (docs/projection.md: mean 40.0 dB, 14 of 16 above 30 dB when measured)."""
    from dirfind.util.images import to_uint8, write_png

    with torch.no_grad():
        imgs = to_uint8(dcgan.synthesis(dcgan.z_from_seeds(range(100, 116)), "z"))
    for i, img in enumerate(imgs):
        write_png(tmp_path / f"seed{100 + i}.png", img)
    r = project(dcgan, [tmp_path], ProjectOptions(**ROUND_TRIP), out=tmp_path / "p.npz")
    print("round trip PSNR", np.round(r["psnr"], 2).tolist(), "SSIM", np.round(r["ssim"], 3).tolist())
    assert r["psnr"].mean() >= 30, r["psnr"]
    assert (r["psnr"] >= 30).sum() >= 12, r["psnr"]
    assert r["ssim"].mean() >= 0.9, r["ssim"]
    rec = r["reconstructions"].astype(int)
    assert np.abs(rec - imgs.astype(int)).mean() < 8  # the rendered recovery matches the targets


#: the round-trip recipe (docs/projection.md): pixel loss, 2 restarts
ROUND_TRIP = dict(steps=400, loss=L2, restarts=2, lr=0.3, noise_factor=0.0, prior=0.0, candidates=32, batch_size=32)
