"""DCGAN adapter: checkpoint layouts, numerics against an independently built tutorial network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dirfind import load_generator
from dirfind.errors import BadInputError


def _tutorial_generator(nz=100, ngf=64, nc=3) -> nn.Sequential:
    """The PyTorch DCGAN tutorial generator, written out as in the tutorial."""
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def state(dcgan_path):
    return torch.load(dcgan_path, map_location="cpu", weights_only=True)["netG_state_dict"]


def test_real_dcgan_matches_tutorial_network(dcgan, state):
    ref = _tutorial_generator()
    ref.load_state_dict({k[len("main.") :]: v for k, v in state.items()})
    ref.eval()
    z = dcgan.z_from_seeds(range(6))
    with torch.no_grad():
        expected = ref(z.view(-1, 100, 1, 1))
        got = dcgan(z)
    assert got.shape == (6, 3, 64, 64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert (dcgan.z_dim, dcgan.resolution, dcgan.channels, dcgan.ngf) == (100, 64, 3, 64)
    assert dcgan.spaces == ("z",) and dcgan.num_ws == 1 and dcgan.num_classes == 0


def test_seeds_follow_nvidia_convention(dcgan):
    z = dcgan.z_from_seeds([0, 7])
    np.testing.assert_array_equal(z[1].numpy(), np.random.RandomState(7).randn(100).astype(np.float32))


@pytest.mark.parametrize("layout", ["bare", "netG_state_dict", "state_dict", "module_prefix", "netG_and_netD"])
def test_checkpoint_layouts(tmp_path, dcgan, state, layout):
    if layout == "bare":
        obj = dict(state)
    elif layout == "module_prefix":
        obj = {f"module.{k}": v for k, v in state.items()}
    elif layout == "netG_and_netD":
        obj = {"netG_state_dict": state, "netD_state_dict": {"main.0.weight": torch.zeros(64, 3, 4, 4)}}
    else:
        obj = {layout: state}
    path = tmp_path / f"{layout}.pth"
    torch.save(obj, path)
    gen = load_generator(str(path))
    z = dcgan.z_from_seeds([3])
    torch.testing.assert_close(gen(z), dcgan(z), rtol=0, atol=0)


def test_discriminator_only_file_is_rejected(tmp_path):
    disc = {"main.0.weight": torch.zeros(64, 3, 4, 4), "main.2.weight": torch.zeros(128, 64, 4, 4),
            "main.3.weight": torch.ones(128), "main.3.bias": torch.zeros(128)}  # fmt: skip
    path = tmp_path / "netD.pth"
    torch.save({"netD_state_dict": disc}, path)
    with pytest.raises(BadInputError, match="not a generator checkpoint"):
        load_generator(str(path))
    with pytest.raises(BadInputError, match="discriminator"):
        load_generator(str(path), family="dcgan")


def test_activations_stop_at_layer(dcgan):
    z = dcgan.z_from_seeds([1, 2])
    with torch.no_grad():
        a0 = dcgan.activation(z, "z", "main.0")
        a2 = dcgan.activation(z, "z", "main.2")
        last = dcgan.activation(z, "z", dcgan.activation_names()[-1])
    assert a0.shape == a2.shape == (2, 512, 4, 4)
    torch.testing.assert_close(a2, torch.relu(dcgan.net.main[1](a0)))
    torch.testing.assert_close(last, dcgan(z))
    with pytest.raises(BadInputError, match="unknown activation"):
        dcgan.activation(z, "z", "main.99")


def test_latent_weights_reproduce_first_layer(dcgan):
    ((name, a),) = dcgan.latent_weights().items()
    z = dcgan.z_from_seeds([5, 6])
    with torch.no_grad():
        feats = dcgan.activation(z, "z", "main.0").flatten(1)
    assert name == "main.0" and a.shape == (8192, 100)
    torch.testing.assert_close(z @ a.t(), feats, rtol=1e-5, atol=1e-5)


def test_bad_space_and_settings(dcgan):
    with pytest.raises(BadInputError, match="space 'w'"):
        dcgan.embed(torch.zeros(1, 100), "w")
    with pytest.raises(BadInputError, match="unconditional"):
        dcgan = dcgan.with_settings(class_index=1)
