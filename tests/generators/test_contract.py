"""The adapter contract, run on every registered family through the checkpoints listed in
``tests/fixtures/families.toml``: loading, spaces and shapes, determinism, settings, activations,
latent readers and forward-mode derivatives through the synthesis."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import tomllib
import torch

from dirfind import load_generator
from dirfind.errors import BadInputError, UnsupportedError
from dirfind.generators import FAMILIES, KNOWN_FAMILIES, SPACES, Generator, register
from dirfind.generators.base import VARIANTS
from dirfind.generators.loading.checkpoint import read_checkpoint
from dirfind.generators.settings import RenderSettings
from helpers import FIX, assert_jvp_matches_vjp, float64_copy

MANIFEST = tomllib.loads((FIX / "families.toml").read_text())
CASES = [(family, ckpt) for family, entry in MANIFEST.items() for ckpt in entry["checkpoints"]]


def _ref(ckpt: str) -> str:
    return ckpt.split(":", 1)[1] if ckpt.startswith("registry:") else str(FIX / ckpt)


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}:{c.rsplit('/', 1)[-1]}" for f, c in CASES])
def case(request, dcgan_path):
    family, ckpt = request.param
    gen = load_generator(_ref(ckpt))
    if gen.num_classes and gen.settings.class_index is None:
        gen = gen.with_settings(class_index=gen.num_classes - 1)
    return family, _ref(ckpt), gen


def _z(gen: Generator, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(gen.draw_z(np.random.default_rng(seed), n))


def test_every_registered_family_has_contract_fixtures():
    assert set(FAMILIES) <= set(MANIFEST), f"add fixtures for {set(FAMILIES) - set(MANIFEST)} to families.toml"
    assert set(MANIFEST) <= set(FAMILIES) and set(FAMILIES) == set(KNOWN_FAMILIES)


def test_loads_as_its_family_only(case):
    family, ref, gen = case
    assert isinstance(gen, FAMILIES[family]) and gen.family == family and not inspect.isabstract(type(gen))
    assert not gen.training and not any(p.requires_grad for p in gen.parameters())
    assert len(gen.fingerprint) == 64 and gen.checkpoint == ref
    ck = read_checkpoint(gen.checkpoint_path)
    assert [name for name, cls in FAMILIES.items() if cls.accepts(ck)] == [family]


def test_spaces_shapes_and_consistent_rendering(case):
    _, _, gen = case
    assert gen.spaces[0] in SPACES and "z" in gen.spaces and set(gen.spaces) <= set(SPACES)
    z = _z(gen)
    with torch.no_grad():
        ref = gen.synthesis(z, "z")
        assert ref.shape == (2, gen.channels, gen.resolution, gen.resolution) and torch.isfinite(ref).all()
        for space in gen.spaces:
            lat = gen.embed(z, space)
            assert tuple(lat.shape) == (2, *gen.latent_shape(space))
            # rendering z equals rendering its embedding in any space
            torch.testing.assert_close(gen.synthesis(lat, space), ref, rtol=0, atol=1e-5)
    for space in set(SPACES) - set(gen.spaces):
        with pytest.raises(BadInputError):
            gen.check_space(space)
    assert gen.layer_space() in (None, "w", "z")
    assert (gen.layer_space() is None) == ("w+" not in gen.spaces)


def test_prior_and_seeds_are_deterministic(case):
    _, _, gen = case
    a, b = gen.draw_z(np.random.default_rng(3), 5), gen.draw_z(np.random.default_rng(3), 5)
    assert a.dtype == np.float32 and a.shape == (5, gen.z_dim) and np.array_equal(a, b)
    assert torch.equal(gen.z_from_seeds([4, 7]), gen.z_from_seeds([4, 7]))
    assert not torch.equal(gen.z_from_seeds([4]), gen.z_from_seeds([7]))


def test_settings_are_values(case):
    _, _, gen = case
    before = gen.settings
    assert isinstance(before, RenderSettings)
    json.dumps(before.identity()), json.dumps(before.record())
    other = gen.with_settings(noise_mode="none")
    assert gen.settings == before and other.settings.noise_mode == "none"
    assert other.fingerprint == gen.fingerprint and next(other.parameters()) is next(gen.parameters())
    assert gen.with_settings() is gen
    with pytest.raises(BadInputError):
        gen.with_settings(truncation=-1)
    with pytest.raises(BadInputError):
        gen.with_settings(noise_mode="loud")
    with pytest.raises(BadInputError):
        gen.with_settings(class_index=gen.num_classes)
    if not gen.supports_transform:
        with pytest.raises(UnsupportedError):
            gen.with_settings(transform=(0.1, 0.0, 0.0))


def test_activations_stop_at_their_layer(case):
    _, _, gen = case
    names = gen.activation_names()
    assert names and len(set(names)) == len(names)
    if gen.pca_activation is not None:
        assert gen.pca_activation in names
    lat = gen.embed(_z(gen), gen.spaces[0])
    with torch.no_grad():
        for name in (names[0], names[-1]):
            act = gen.activation(lat, gen.spaces[0], name)
            assert act.shape[0] == 2 and torch.isfinite(act).all()
    with pytest.raises(BadInputError):
        gen.activation(lat, gen.spaces[0], "no-such-layer")


def test_latent_readers(case):
    _, _, gen = case
    dim = gen.space_dim(gen.layer_space() or "z")
    readers = gen.latent_readers()
    assert readers and all(r.weight.ndim == 2 and r.weight.shape[1] == dim for r in readers)
    assert all(0 <= r.index < gen.num_ws for r in readers)
    for variant in VARIANTS:
        mats = gen.latent_weights(variant=variant)
        assert mats and all(torch.isfinite(m).all() for m in mats.values())
    assert len(gen.layer_names()) == gen.num_ws
    with pytest.raises(BadInputError):
        gen.latent_readers([gen.num_ws])
    json.dumps(gen.describe(), default=str)


def test_jvp_through_synthesis_equals_reverse_mode(case):
    """Forward-mode derivatives work through the whole synthesis in every space and agree with
    reverse mode exactly (float64; no finite-difference step that could cross a kink)."""
    _, _, gen = case
    g = float64_copy(gen)
    z = _z(gen, 1, seed=5)
    for space in gen.spaces:
        x = g.embed(z.double(), space).detach().double()
        v = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        assert_jvp_matches_vjp(lambda t, s=space: g.synthesis(t, s), x, v)


def test_register_refuses_duplicates_empty_names_and_abstract_classes():
    cls = FAMILIES["dcgan"]
    with pytest.raises(ValueError, match="already registered"):
        register(cls)
    with pytest.raises(ValueError, match="no family name"):
        register(type("Nameless", (cls,), {"family": ""}))
    with pytest.raises(TypeError, match="does not implement"):
        register(type("Half", (Generator,), {"family": "half"}))
    assert "half" not in FAMILIES and "" not in FAMILIES
