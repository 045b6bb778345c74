"""Direction banks: round trip, plain-array loading, validation with one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dirfind.bank import FORMAT_VERSION, DirectionBank
from dirfind.errors import BadInputError, MismatchError, NotFoundError, OutputError

GEN = {"family": "dcgan", "fingerprint": "ab" * 32, "checkpoint": "x.pt", "z_dim": 4, "w_dim": 4, "num_ws": 1}


def _bank(**kw) -> DirectionBank:
    d = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))[0][:3]
    args = dict(directions=d, space="z", method="test", generator=dict(GEN), scores=[3, 2, 1])
    args.update(kw)
    return DirectionBank(**args)


def test_round_trip(tmp_path):
    bank = _bank(names=["a", "b", "c"], scales=[1, 2, 3], params={"k": 3, "x": np.float32(0.5)},
                 info={"acc": 0.9}, mean=np.arange(4), intercepts=[0.1, 0.2, 0.3],
                 extras={"history": np.arange(5.0)}, step_unit="sigma", default_range=(-2, 2))  # fmt: skip
    path = bank.save(tmp_path / "b.npz")
    back = DirectionBank.load(path)
    np.testing.assert_array_equal(back.directions, bank.directions)
    np.testing.assert_array_equal(back.scales, [1, 2, 3])
    np.testing.assert_array_equal(back.mean, np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(back.extras["history"], np.arange(5.0))
    assert back.names == ["a", "b", "c"] and back.params == {"k": 3, "x": 0.5} and back.info == {"acc": 0.9}
    assert back.step_unit == "sigma" and back.default_range == (-2, 2) and back.created == bank.created
    assert back.format_version == FORMAT_VERSION and back.dirfind_version


def test_loads_with_plain_numpy(tmp_path):
    path = _bank().save(tmp_path / "b.npz")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert z["directions"].dtype == np.float32 and z["directions"].shape == (3, 4)
        assert list(z["names"]) == ["test_0", "test_1", "test_2"]
    assert meta["format"] == "dirfind.bank" and meta["space"] == "z" and meta["generator"]["family"] == "dcgan"
    for key in ("format_version", "dirfind_version", "created", "method", "params", "layers", "step_unit"):
        assert key in meta


def test_existing_file_needs_force(tmp_path):
    bank = _bank()
    bank.save(tmp_path / "b.npz")
    with pytest.raises(OutputError, match="force=True"):
        bank.save(tmp_path / "b.npz")
    bank.save(tmp_path / "b.npz", force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["b.npz"], "no temporary files may be left behind"


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(directions=np.ones((2, 4))), "unit rows"),
        (dict(directions=np.full((1, 4), np.nan)), "NaN"),
        (dict(directions=np.zeros((0, 4))), "non-empty"),
        (dict(scores=[1, 2]), "scores must have shape"),
        (dict(scales=[1, 0, 1]), "positive"),
        (dict(space="q"), "space"),
        (dict(step_unit="parsec"), "step unit"),
        (dict(generator={}), "identity"),
        (dict(names=["a"]), "names"),
        (dict(directions=np.eye(5)[:3]), "dimension 5"),
        (dict(space="w+", layers=[0, 0]), "distinct"),
        (dict(mean=np.zeros(3)), "mean"),
    ],
)
def test_validation(kw, match):
    with pytest.raises(BadInputError, match=match):
        _bank(**kw)


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data.update(changes)
    np.savez(path, **data)


def test_load_errors(tmp_path):
    with pytest.raises(NotFoundError):
        DirectionBank.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BadInputError, match="not a readable"):
        DirectionBank.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(BadInputError, match="not a dirfind bank"):
        DirectionBank.load(tmp_path / "other.npz")

    path = _bank().save(tmp_path / "b.npz")
    meta = json.loads(str(np.load(path)["meta"]))
    _rewrite(path, meta=np.array(json.dumps({**meta, "format_version": FORMAT_VERSION + 1})))
    with pytest.raises(BadInputError, match="newer"):
        DirectionBank.load(path)
    _rewrite(path, meta=np.array("{not json"))
    with pytest.raises(BadInputError, match="JSON"):
        DirectionBank.load(path)
    path = _bank().save(tmp_path / "c.npz")
    _rewrite(path, directions=np.ones((3, 4), np.float32))
    with pytest.raises(BadInputError, match="c.npz: bank directions must have unit rows"):
        DirectionBank.load(path)


def test_pickled_object_arrays_are_refused(tmp_path):
    path = _bank().save(tmp_path / "b.npz")
    _rewrite(path, names=np.array([object(), object(), object()], dtype=object))
    with pytest.raises(BadInputError):
        DirectionBank.load(path)


def test_indices_and_generator_checks(dcgan):
    from dirfind.methods import sefa

    bank = sefa(dcgan, k=5)
    assert bank.check_indices([0, 4, -1]) == [0, 4, 4]
    with pytest.raises(BadInputError, match="out of range"):
        bank.check_indices([5])
    bank.check_generator(dcgan)
    other = DirectionBank(bank.directions, "z", "sefa", {**bank.generator, "fingerprint": "0" * 64})
    with pytest.raises(MismatchError, match="force=True"):
        other.check_generator(dcgan)
    other.check_generator(dcgan, force=True)
