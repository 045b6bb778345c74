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


def _full_forward_outputs(gen, z) -> dict[str, torch.Tensor]:
    """Every module's output during one full synthesis (forward hooks on the network itself)."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, out.clone()))
        for name, m in zip(gen.activation_names(), gen.net.main, strict=True)
    ]
    try:
        with torch.no_grad():
            gen(z)
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize("biased", [False, True])
def test_truncated_forward_equals_the_full_forwards_activation(dcgan, tmp_path, biased):
    """activation() (the first ConvT as a matmul with the BatchNorm folded in, then the layers up to
    the requested one) equals that layer's output in the full network's forward, and runs nothing after it."""
    gen = dcgan
    if biased:
        torch.manual_seed(1)
        ref = nn.Sequential(
            nn.ConvTranspose2d(8, 16, 4, 1, 0, bias=True), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 4, 2, 1, bias=True), nn.Tanh(),
        )  # fmt: skip
        with torch.no_grad():
            ref[1].running_mean.normal_()
            ref[1].running_var.uniform_(0.5, 2)
            ref[1].weight.uniform_(0.5, 2)
            ref[1].bias.normal_()
        torch.save(ref.state_dict(), tmp_path / "b.pt")
        gen = load_generator(str(tmp_path / "b.pt"))
    z = gen.z_from_seeds(list(range(6)))
    full = _full_forward_outputs(gen, z)
    for i, name in enumerate(gen.activation_names()):
        later = gen.net.main[i + 1 :]
        hooks = [m.register_forward_pre_hook(lambda *a: pytest.fail("a later layer ran")) for m in later]
        try:
            with torch.no_grad():
                act = gen.activation(z, "z", name)
        finally:
            for h in hooks:
                h.remove()
        scale = float(full[name].abs().max())
        torch.testing.assert_close(act, full[name], rtol=0, atol=2e-6 * max(scale, 1.0))


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


# ---------------------------------------------------------------------- other module names and nestings


class _Renamed(nn.Module):
    """The tutorial generator written with its own attribute names (``convTr1``, ``bn1``, ...)."""

    def __init__(self, ref: nn.Sequential):
        super().__init__()
        convs = [m for m in ref if isinstance(m, nn.ConvTranspose2d)]
        bns = [m for m in ref if isinstance(m, nn.BatchNorm2d)]
        for i, c in enumerate(convs, 1):
            setattr(self, f"convTr{i}", c)
            if i <= len(bns):
                setattr(self, f"bn{i}", bns[i - 1])


class _Nested(nn.Module):
    """``model.layers.N``: the tutorial's Sequential one level down."""

    def __init__(self, ref: nn.Sequential):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = ref


@pytest.fixture(scope="module")
def tutorial(state):
    ref = _tutorial_generator()
    ref.load_state_dict({k[len("main.") :]: v for k, v in state.items()})
    return ref.eval()


@pytest.mark.parametrize("naming", ["renamed", "nested", "data_parallel", "no_batch_counter", "wrapped_model"])
def test_any_module_names_load_the_tutorial_network(tmp_path, tutorial, naming):
    if naming == "renamed":
        obj = _Renamed(tutorial).state_dict()
    elif naming == "nested":
        obj = _Nested(tutorial).state_dict()
    elif naming == "data_parallel":
        obj = {"netG": {f"module.{k}": v for k, v in _Renamed(tutorial).state_dict().items()}}
    elif naming == "no_batch_counter":
        obj = {k: v for k, v in _Nested(tutorial).state_dict().items() if not k.endswith("num_batches_tracked")}
    else:
        obj = {"model": _Nested(tutorial).state_dict(), "epoch": 3}
    assert not any(k.startswith("main.") for k in (obj.get("netG") or obj.get("model") or obj))
    torch.save(obj, tmp_path / "g.pth")
    gen = load_generator(str(tmp_path / "g.pth"))
    z = gen.z_from_seeds(range(3))
    with torch.no_grad():
        torch.testing.assert_close(gen(z), tutorial(z.view(-1, 100, 1, 1)), rtol=0, atol=0)
    assert gen.family == "dcgan" and gen.pca_activation == "main.2"


def test_stack_without_some_batch_norms_and_with_biases(tmp_path):
    """A DCGAN variant (biased ConvTs, no BatchNorm2d after the second one), written in the test."""
    torch.manual_seed(0)
    ref = nn.Sequential(
        nn.ConvTranspose2d(8, 16, 4, 1, 0, bias=True), nn.BatchNorm2d(16), nn.ReLU(),
        nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=True), nn.ReLU(),
        nn.ConvTranspose2d(8, 1, 4, 2, 1, bias=True), nn.Tanh(),
    )  # fmt: skip
    with torch.no_grad():
        ref[1].running_mean.normal_()
        ref[1].running_var.uniform_(0.5, 2)
    ref.eval()
    torch.save({"generator": ref.state_dict()}, tmp_path / "v.pt")  # keys 0.*, 1.*, 3.*, 5.*
    gen = load_generator(str(tmp_path / "v.pt"))
    assert (gen.z_dim, gen.resolution, gen.channels) == (8, 16, 1)
    z = gen.z_from_seeds([0, 1])
    with torch.no_grad():
        torch.testing.assert_close(gen(z), ref(z.view(-1, 8, 1, 1)), rtol=0, atol=0)
    assert gen.pca_activation == "main.2" and gen.latent_readers()[0].weight.shape == (16 * 16, 8)


def _stack(**change) -> dict:
    sd = {
        "c1.weight": torch.zeros(8, 16, 4, 4), "b1.weight": torch.ones(16), "b1.bias": torch.zeros(16),
        "b1.running_mean": torch.zeros(16), "b1.running_var": torch.ones(16),
        "c2.weight": torch.zeros(16, 3, 4, 4),
    }  # fmt: skip
    sd.update(change)
    return {k: v for k, v in sd.items() if v is not None}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"c2.weight": torch.zeros(16, 3, 3, 3)}, "kernel (3, 3)"),
        ({"c2.weight": torch.zeros(12, 3, 4, 4)}, "12 input channels after a layer with 16 outputs"),
        ({"b1.running_var": torch.ones(15)}, "BatchNorm2d of size"),
        ({"c2.bias": torch.zeros(4)}, "bias of shape (4,)"),
        ({"c2.weight": None}, "1 ConvTranspose2d layer"),
        (
            {
                "b2.weight": torch.ones(3),
                "b2.bias": torch.zeros(3),
                "b2.running_mean": torch.zeros(3),
                "b2.running_var": torch.ones(3),
            },
            "after the last ConvTranspose2d",
        ),  # fmt: skip
        ({"fc.weight": torch.zeros(3, 3)}, "neither a ConvTranspose2d"),
    ],
)
def test_what_is_not_a_dcgan_stack_is_refused(tmp_path, change, why):
    torch.save(_stack(**change), tmp_path / "x.pt")
    with pytest.raises(BadInputError, match="not a generator checkpoint") as e:
        load_generator(str(tmp_path / "x.pt"))
    assert why in str(e.value) and "dcgan" in str(e.value)
    with pytest.raises(BadInputError, match="not a DCGAN generator checkpoint") as e:
        load_generator(str(tmp_path / "x.pt"), family="dcgan")
    assert why in str(e.value)
    torch.save(_stack(), tmp_path / "ok.pt")
    assert load_generator(str(tmp_path / "ok.pt")).resolution == 8


def test_other_families_are_not_dcgan_stacks():
    from dirfind.generators import FAMILIES
    from dirfind.generators.dcgan import read_stack
    from dirfind.generators.loading.checkpoint import read_checkpoint
    from helpers import FIX

    for path in ("stylegan2/stylegan2_rosinality_tiny32.pt", "pggan/pggan_genforce_tiny32.pth"):
        ck = read_checkpoint(FIX / path)
        stack, why = read_stack(ck.obj)
        assert stack is None and why and not FAMILIES["dcgan"].accepts(ck)
