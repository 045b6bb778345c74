"""The restricted NVIDIA pickle reader: reconstructs module trees as data, never runs code from the file."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
import torch

from dirfind import errors
from dirfind.generators.loading.checkpoint import read_checkpoint
from dirfind.generators.loading.nvidia_pickle import LazyTensor, NetNode, generator_from_pickle, read_nvidia_pickle
from helpers import FIX, one_line_error, persistent_pickle

HERE = FIX / "stylegan2"


@pytest.mark.parametrize("name", ["stylegan2_ada_tiny32", "stylegan2_ada_cond4_tiny32"])
def test_tree_matches_reference_state_dict(name):
    """Keys and shapes equal the reference module's state_dict (the manifest's per-key table)."""
    obj = read_nvidia_pickle(HERE / f"{name}.pkl")
    g = generator_from_pickle(obj)
    assert obj["G"] is g  # the fixture stores G as a back-reference to G_ema
    assert isinstance(obj["D"], NetNode) and obj["D"].class_name == "Discriminator"
    assert obj["augment_pipe"] is None and isinstance(obj["training_set_kwargs"], dict)
    assert g.class_name == "Generator" and g.init_kwargs["img_resolution"] == 32
    assert type(g.init_kwargs["mapping_kwargs"]) is dict  # EasyDict became a plain dict
    assert g.attrs["num_ws"] == 8 and "training" in g.attrs
    table = json.loads((HERE / "ada_state_keys.json").read_text())[name]
    sd = g.state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == table  # the manifest lists keys sorted
    assert all(v.dtype == torch.float32 and not v.requires_grad for v in sd.values())
    layer = g.get("synthesis.b8.conv0")
    assert layer.class_name == "SynthesisLayer" and set(layer.children) == {"affine"}
    assert layer.init_kwargs["up"] == 2 and layer.init_kwargs["resolution"] == 8


def _evil_reduce_pickle(tmp_path: Path, target: Path, module: str, name: str, arg: str) -> Path:
    """Protocol-0 GLOBAL + REDUCE: calling module.name(arg) would create ``target``."""
    body = f"c{module}\n{name}\n(V{arg}\ntR.".encode()
    path = tmp_path / f"evil_{name}.pkl"
    path.write_bytes(b"\x80\x04" + body)
    return path


@pytest.mark.parametrize(
    ("module", "name", "arg"),
    [
        ("posix", "system", "touch {t}"),
        ("os", "system", "touch {t}"),
        ("builtins", "exec", "open({t!r}, 'w').write('pwned')"),
        ("builtins", "eval", "open({t!r}, 'w').write('pwned')"),
        ("subprocess", "getoutput", "touch {t}"),
    ],
)
def test_code_executing_globals_are_refused(tmp_path, cli, module, name, arg):
    target = tmp_path / "pwned.txt"
    path = _evil_reduce_pickle(tmp_path, target, module, name, arg.format(t=str(target)))
    with pytest.raises(errors.BadInputError, match="outside the allowlist"):
        read_checkpoint(path)
    assert not target.exists()
    line = one_line_error(cli("sefa", "--ckpt", str(path)), errors.EXIT_BAD_INPUT)
    assert f"{module}.{name}" in line and "refusing" in line
    assert not target.exists()


class _Payload:
    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


def test_real_pickle_dumps_payload_is_refused(tmp_path, cli):
    """What pickle.dumps writes for an object whose __reduce__ calls os.system."""
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Payload(target)}, protocol=4))
    line = one_line_error(cli("sefa", "--ckpt", str(path)), errors.EXIT_BAD_INPUT)
    assert "system" in line
    assert not target.exists()


def test_persistent_module_source_is_never_executed(tmp_path, cli):
    """NVIDIA's loader exec()s meta['module_src']; ours must only read class_name and state."""
    target = tmp_path / "pwned.txt"
    src = f"import os\nos.system('touch {target}')\nopen({str(target)!r}, 'w').write('x')\nclass Generator:\n pass\n"
    meta = {"type": "class", "version": 6, "module_src": src, "class_name": "Generator", "state": {"training": False}}
    path = tmp_path / "evil_src.pkl"
    data = persistent_pickle(meta)
    assert b"torch_utils.persistence" in data and b"_reconstruct_persistent_obj" in data
    path.write_bytes(data)
    obj = read_checkpoint(path).obj
    assert not target.exists()
    g = obj["G_ema"]
    assert isinstance(g, NetNode) and g.class_name == "Generator" and g.state_dict() == {}
    assert not any(src in repr(v) for v in vars(g).values())  # the source is not even kept
    line = one_line_error(cli("sefa", "--ckpt", str(path)), errors.EXIT_BAD_INPUT)
    assert "evil_src.pkl" in line
    assert not target.exists()


def test_malformed_persistent_meta_is_one_line(tmp_path, cli):
    path = tmp_path / "bad_meta.pkl"
    path.write_bytes(persistent_pickle({"type": "function", "class_name": "x", "state": {}}))
    line = one_line_error(cli("sefa", "--ckpt", str(path)), errors.EXIT_BAD_INPUT)
    assert "malformed persistent object" in line


def test_truncated_and_foreign_pickles(tmp_path, cli):
    data = (HERE / "stylegan2_ada_tiny32.pkl").read_bytes()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(data[: len(data) // 2])
    line = one_line_error(cli("sefa", "--ckpt", str(cut)), errors.EXIT_BAD_INPUT)
    assert "truncated or corrupt" in line
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": [1, 2, 3]}, protocol=4))
    line = one_line_error(cli("sefa", "--ckpt", str(plain)), errors.EXIT_BAD_INPUT)
    assert "not an NVIDIA network snapshot" in line


class _EagerUnpickler(pickle.Unpickler):
    """Test-only eager reader of the trusted fixture (torch's own rebuild functions, every storage
    parsed at once, each persistent module as its state dict): the reference for lazy reading."""

    def find_class(self, module, name):
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return lambda meta: meta["state"]
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return lambda b: torch.load(io.BytesIO(b), weights_only=True)
        if module.startswith("dnnlib"):
            return dict
        return super().find_class(module, name)


def _flat(state: dict, prefix: str = "") -> dict:
    skip = set(state.get("_non_persistent_buffers_set") or ())
    out = {prefix + k: v for k, v in (state.get("_parameters") or {}).items() if v is not None}
    out.update({prefix + k: v for k, v in (state.get("_buffers") or {}).items() if v is not None and k not in skip})
    for k, v in (state.get("_modules") or {}).items():
        if v is not None:
            out.update(_flat(v, f"{prefix}{k}."))
    return out


@pytest.mark.parametrize("name", ["stylegan2/stylegan2_ada_tiny32.pkl", "stylegan3/stylegan3_t_tiny32.pkl"])
def test_lazy_storages_read_what_an_eager_load_reads(name):
    """Storages are parsed when a network's tensors are first used: the generator's tensors equal
    an eager load's, bit for bit, and the snapshot's other networks are never parsed."""
    with open(FIX / name, "rb") as f:
        eager = _EagerUnpickler(f).load()
    obj = read_nvidia_pickle(FIX / name)
    others = [k for k, v in obj.items() if isinstance(v, NetNode) and v is not obj["G_ema"]]  # (G may be G_ema)
    lazy = [v for k in ["G_ema", *others] for _, n in obj[k].named_nodes() for v in n.params.values()]
    assert others and lazy and all(isinstance(v, LazyTensor) for v in lazy)
    want, got = _flat(eager["G_ema"]), obj["G_ema"].state_dict()
    assert list(got) == list(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape and torch.equal(got[k], v), k
    for k in others:  # never read
        assert all(isinstance(v, LazyTensor) for _, n in obj[k].named_nodes() for v in n.params.values()), k


def test_large_storages_are_skipped_while_unpickling_and_read_from_the_file_alike(tmp_path, monkeypatch):
    """Blobs of SKIP_BYTES or more are not read by the unpickler but from their file range on first
    use: the same tensors bit for bit; a file changed in between is refused, not misread."""
    import os

    from dirfind.generators.loading import nvidia_pickle

    monkeypatch.setattr(nvidia_pickle, "SKIP_BYTES", 1)  # every blob the unpickler fills itself
    path = tmp_path / "snap.pkl"
    path.write_bytes((HERE / "stylegan2_ada_tiny32.pkl").read_bytes())
    with open(path, "rb") as f:
        want = _flat(_EagerUnpickler(f).load()["G_ema"])
    obj = read_nvidia_pickle(path)
    g = obj["G_ema"]
    skipped = [v for _, n in g.named_nodes() for v in n.params.values() if v.blob.source is not None]
    assert len(skipped) >= 3  # the blobs larger than a pickle frame (64 kB)
    got = g.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], v) for k, v in want.items())
    fresh = read_nvidia_pickle(path)["G_ema"]
    lazy = [v for _, n in fresh.named_nodes() for v in n.params.values() if v.blob.source is not None]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten after loading
    with pytest.raises(errors.BadInputError, match="changed on disk"):
        lazy[0].read()


@pytest.mark.parametrize("first", ["storage", "array"])
def test_skipped_strings_that_are_not_storages_make_the_load_read_everything(first, tmp_path, monkeypatch):
    """A large byte string that is not a storage blob (here a numpy array's data) is not left
    unread: the load starts over without skipping and every value is right."""
    import numpy as np

    from dirfind.generators.loading import nvidia_pickle

    monkeypatch.setattr(nvidia_pickle, "SKIP_BYTES", 1000)
    w, table = torch.randn(200, 200), np.arange(20000, dtype=np.float64)
    items = [("_parameters", {"weight": w}), ("table", table)]
    state = dict(items if first == "storage" else items[::-1])
    meta = {"type": "class", "class_name": "Generator", "state": {**state, "_buffers": {}, "_modules": {}}}
    path = tmp_path / "mixed.pkl"
    path.write_bytes(persistent_pickle(meta, keys=("G_ema",)))
    with open(path, "rb") as f:  # skipping alone would leave the array's data unread
        reader = nvidia_pickle._SkippingReader(f, path)
        try:
            nvidia_pickle._RestrictedUnpickler(reader, reader).load()
            assert reader.pending
        except nvidia_pickle._Resync:
            assert first == "array"
    g = read_nvidia_pickle(path)["G_ema"]
    assert np.array_equal(g.attrs["table"], table)
    assert torch.equal(g.state_dict()["weight"], w)
