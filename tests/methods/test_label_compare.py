"""dirfind label and dirfind compare on the real DCGAN: the official InterFaceGAN luminance boundary is
named +luminance and a random direction mixed; GANSpace on main.0 matches unnormalised SeFa; principal
angles agree with scipy."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.linalg

from dirfind.bank import DirectionBank, generator_identity
from dirfind.errors import BadInputError, MismatchError
from dirfind.methods import sefa
from dirfind.methods.interpret import compare, evaluate, label, principal_angles
from dirfind.methods.interpret.compare import CompareOptions
from dirfind.methods.interpret.label import layer_hint
from helpers import FIX, LUMINANCE


@pytest.fixture(scope="module")
def boundary():
    """The official InterFaceGAN luminance boundary on this DCGAN (tests/fixtures/interfacegan)."""
    with np.load(FIX / "interfacegan" / "dcgan_interfacegan_lean.npz") as f:
        b = f["boundary_luminance_split0.7"][0].astype(np.float64)
    return b / np.linalg.norm(b)


def test_boundary_is_named_luminance_and_random_directions_mixed(dcgan, boundary):
    rand = np.random.default_rng(0).standard_normal((3, 100))  # |cos| with any fixed direction ~ 0.1 in 100-d
    rand /= np.linalg.norm(rand, axis=1, keepdims=True)
    dirs = np.concatenate([[boundary, -boundary], rand]).astype(np.float32)
    names = ["official", "flipped", "random_a", "random_b", "random_c"]
    bank = DirectionBank(dirs, "z", "test", generator_identity(dcgan), names=names)
    ev = evaluate(dcgan, bank, n=8, steps=3, predictors=(LUMINANCE,))
    named = label(bank, ev)
    assert named.names == ["+luminance", "-luminance", "mixed.2", "mixed.3", "mixed.4"], (
        rand @ boundary,
        ev["response"],
    )
    recs = named.info["labels"]
    assert [r["original_name"] for r in recs] == names
    assert recs[0]["response"] > 2.0 and recs[2]["why"] == "too weak" and recs[0]["confidence"] is None
    assert recs[0]["corr"] > 0.9 and recs[0]["layers"] is None
    assert named.resolve(["luminance", "-luminance", "mixed.2", 0]) == [0, 1, 2, 0]
    np.testing.assert_array_equal(named.directions, bank.directions)


def test_sefa_direction_named_luminance_is_the_one_closest_to_the_boundary(dcgan, boundary):
    bank = sefa(dcgan, k=8)
    ev = evaluate(dcgan, bank, n=8, steps=3, predictors=(LUMINANCE,))
    named = label(bank, ev)
    cos = bank.directions.astype(np.float64) @ boundary
    best = int(np.argmax(np.abs(cos)))
    assert abs(cos[best]) > 0.3  # the evidence: SeFa has a luminance direction
    assert named.names[best] == ("+luminance" if cos[best] > 0 else "-luminance"), (named.names, cos)
    assert all(n.startswith(("+luminance", "-luminance", "mixed.")) for n in named.names)


def test_label_needs_attributes_and_checks_thresholds(dcgan):
    bank = sefa(dcgan, k=2)
    ev = evaluate(dcgan, bank, n=2, steps=2)
    with pytest.raises(BadInputError, match="predictors"):
        label(bank, ev)
    with pytest.raises(BadInputError, match="min_ratio"):
        label(bank, ev, min_ratio=0.5)


def test_layer_hints_of_style_banks():
    gen = {"family": "stylegan2", "fingerprint": "x", "w_dim": 4, "num_ws": 12}
    d = np.zeros((2, 12 * 4), np.float32)
    d[0, :16] = 0.25  # layers 0-3
    d[1, 40:] = 1 / np.sqrt(8)  # layers 10-11
    bank = DirectionBank(d, "w+", "test", gen)
    assert layer_hint(bank, 0)["region"] == "coarse" and layer_hint(bank, 1)["region"] == "fine"
    w = DirectionBank(np.eye(1, 4, dtype=np.float32), "w", "test", gen, layers=[4, 5, 6])
    assert layer_hint(w, 0) == {"region": "middle", "shares": {"coarse": 0.0, "middle": 1.0, "fine": 0.0}}
    assert layer_hint(DirectionBank(np.eye(1, 4, dtype=np.float32), "z", "t", gen), 0) is None


def test_ganspace_main0_matches_unnormalised_sefa(dcgan):
    """main.0 is linear in z: PCA of its activations regressed to z = the right singular vectors of its
    weight (unnormalised SeFa). A = the official GANSpace's directions (10⁵ samples, tests/fixtures)."""
    with np.load(FIX / "ganspace" / "dcgan_ganspace_reference.npz") as f:
        official = f["main0_lat_comp"].astype(np.float64)
    official /= np.linalg.norm(official, axis=1, keepdims=True)
    gs = DirectionBank(official.astype(np.float32), "z", "ganspace", generator_identity(dcgan))
    sf = sefa(dcgan, k=20, variant="rosinality")
    res = compare(gs, sf)
    top = {m["a"]: m for m in res["matches"]}
    for i in range(7):
        assert top[i]["b"] == i and top[i]["abs_cos"] > 0.98, res["matches"][:8]
    assert not set(res["unmatched_a"]) & set(range(7))
    ref = scipy.linalg.subspace_angles(official.T, sf.directions.T.astype(np.float64))
    np.testing.assert_allclose(np.radians(res["principal_angles_deg"]), np.sort(ref), atol=1e-6)
    assert res["principal_angles_deg"][0] < 2
    np.testing.assert_allclose(res["in_span_a"], np.linalg.norm(res["abs_cos"], axis=1), atol=1e-6)  # B orthonormal


def test_compare_finds_no_counterparts_and_refuses_other_spaces(dcgan):
    sf = sefa(dcgan, k=5)
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((100, 3)))
    rand = DirectionBank(q.T.astype(np.float32), "z", "random", generator_identity(dcgan))
    res = compare(rand, sf)
    assert res["unmatched_a"] == [0, 1, 2] and max(m["abs_cos"] for m in res["matches"]) < 0.5
    a, b = rng.standard_normal((4, 30)), rng.standard_normal((6, 30))
    np.testing.assert_allclose(principal_angles(a, b), np.sort(scipy.linalg.subspace_angles(a.T, b.T)), atol=1e-10)
    other = DirectionBank(np.eye(2, 100, dtype=np.float32), "z", "x", {**generator_identity(dcgan), "fingerprint": "f"})
    with pytest.raises(MismatchError):
        compare(sf, other)
    compare(sf, other, force=True)


def test_an_attribute_that_follows_the_top_one_is_no_rival():
    """A head turn moves yaw and the face's horizontal position together, as they co-vary over samples."""
    from dirfind.core.evaluation import Evaluation

    gen = {"family": "dcgan", "fingerprint": "x", "z_dim": 3}
    bank = DirectionBank(np.eye(3, dtype=np.float32), "z", "test", gen)
    resp = np.array([[-3.0, 3.3, 0.2], [-3.0, 3.3, 0.2], [0.1, 0.2, -2.5]])

    def named(rho: float) -> list[str]:
        corr = np.array([[1.0, rho, 0.0], [rho, 1.0, 0.0], [0.0, 0.0, 1.0]])
        arrays = {
            "dirs": np.arange(3),
            "attr_names": np.array(["yaw", "face_x", "warmth"]),
            "response": resp,
            "attr_corr": corr,
            "corr": np.ones((3, 3)),
            "ad_mean": np.zeros((3, 3)),
            "ad_max": np.zeros((3, 3)),
        }
        ev = Evaluation(arrays=arrays, bank={"fingerprint": bank.fingerprint()}, generator=gen, run={})
        return label(bank, ev).names

    assert named(0.0) == ["mixed.0", "mixed.1", "-warmth"]
    together = named(-0.98)
    assert together[2] == "-warmth" and together[0] in ("+face_x", "-yaw") and together[1] == together[0] + ".2"


class _Records(logging.Handler):
    """Collects the ``dirfind`` logger's records, whether or not an earlier CLI call stopped it
    propagating to the root logger (where pytest's caplog listens)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_compare_says_when_k_exceeds_the_banks(dcgan):
    sf = sefa(dcgan, k=5)
    log, rec = logging.getLogger("dirfind"), _Records()
    log.addHandler(rec)
    try:
        res = compare(sf, sf, CompareOptions(k=100))
        assert any("k = 100 but the banks hold 5 and 5 directions" in m for m in rec.messages)
        assert len(res["matches"]) == 5
        rec.messages.clear()
        compare(sf, sf, CompareOptions(k=5))
        assert rec.messages == []
    finally:
        log.removeHandler(rec)
