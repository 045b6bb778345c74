"""Checkpoints that declare zero or absurd sizes (in their shapes, a config.json or pickled
attributes) are refused with one line (exit 4) before anything of that size is allocated: every
family, written by the tests from the small real fixtures."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from dirfind import errors, load_generator
from dirfind.errors import BadInputError
from dirfind.generators.loading.nvidia_pickle import generator_from_pickle, read_nvidia_pickle
from helpers import FIX, node_meta, one_line_error, persistent_pickle

#: a tensor that declares 10^10 elements over one stored float (a stride-0 broadcast view): a copy
#: of it would need 40 GB
HUGE = torch.zeros(1, 1).expand(100_000, 100_000)


def _refused(cli, path, *words: str) -> str:
    line = one_line_error(cli("sefa", "--ckpt", str(path), "-o", "b.npz"), errors.EXIT_BAD_INPUT)
    assert path.name in line and all(w in line for w in words), line
    return line


@pytest.fixture(scope="module")
def dcgan_sd(dcgan_path):
    return torch.load(dcgan_path, map_location="cpu", weights_only=True)["netG_state_dict"]


def test_dcgan(cli, tmp_path, dcgan_sd):
    cases = {
        "nz0": {"main.0.weight": torch.zeros(0, 512, 4, 4)},
        "rgb0": {"main.12.weight": torch.zeros(64, 0, 4, 4)},
        "bcast": {"main.0.weight": torch.zeros(1, 1, 1, 1).expand(100, 10**7, 4, 4)},
    }
    for name, change in cases.items():
        torch.save({**dcgan_sd, **change}, tmp_path / f"{name}.pt")
    _refused(cli, tmp_path / "nz0.pt", "z_dim = 0")
    _refused(cli, tmp_path / "rgb0.pt", "channels = 0")
    _refused(cli, tmp_path / "bcast.pt", "stored", "(100, 10000000, 4, 4)")
    assert not (tmp_path / "b.npz").exists()


def test_rosinality_stylegan2(cli, tmp_path):
    ck = torch.load(FIX / "stylegan2/stylegan2_rosinality_tiny32.pt", map_location="cpu", weights_only=True)
    g = ck["g_ema"]
    zero = {**g, "style.1.weight": torch.zeros(g["style.1.weight"].shape[0], 0)}
    torch.save({**ck, "g_ema": zero}, tmp_path / "z0.pt")
    torch.save({**ck, "g_ema": {**g, "style.1.weight": HUGE}}, tmp_path / "huge.pt")
    # forty to-RGB layers of one channel each: a 4 * 2^40 px generator (its noise maps would be drawn)
    deep = {k: v for k, v in g.items() if not k.startswith("noises.")}
    n = sum(k.startswith("to_rgbs.") and k.endswith(".conv.weight") for k in g)
    deep.update({f"to_rgbs.{i}.conv.weight": torch.zeros(1, 3, 1, 1, 1) for i in range(n, 40)})
    deep.update({f"convs.{2 * i}.conv.weight": torch.zeros(1, 1, 1, 3, 3) for i in range(n, 40)})
    torch.save({**ck, "g_ema": deep}, tmp_path / "deep.pt")
    _refused(cli, tmp_path / "z0.pt", "z_dim = 0")
    _refused(cli, tmp_path / "huge.pt", "stored")
    _refused(cli, tmp_path / "deep.pt", "resolution")


def test_nvidia_stylegan2_and_stylegan3_pickles(cli, tmp_path):
    node = generator_from_pickle(read_nvidia_pickle(FIX / "stylegan2/stylegan2_ada_tiny32.pkl"))
    fc0 = node.get("mapping.fc0")
    keep = fc0.params["weight"]
    fc0.params["weight"] = torch.zeros(keep.shape[0], 0)
    (tmp_path / "z0.pkl").write_bytes(persistent_pickle(node_meta(node)))
    fc0.params["weight"] = HUGE
    (tmp_path / "huge.pkl").write_bytes(persistent_pickle(node_meta(node)))
    _refused(cli, tmp_path / "z0.pkl", "z_dim = 0")
    _refused(cli, tmp_path / "huge.pkl", "stored")

    node = generator_from_pickle(read_nvidia_pickle(FIX / "stylegan3/stylegan3_t_tiny32.pkl"))
    inp = node.get("synthesis.input")
    inp.attrs["size"] = [10**6, 10**6]  # the pickled geometry: a 10^6 x 10^6 input feature map
    (tmp_path / "big.pkl").write_bytes(persistent_pickle(node_meta(node)))
    with pytest.raises(BadInputError, match="implausible generator size|input size"):
        load_generator(str(tmp_path / "big.pkl"))


def test_pggan(cli, tmp_path):
    ck = torch.load(FIX / "pggan/pggan_genforce_tiny32.pth", map_location="cpu", weights_only=True)
    g = ck["generator_smooth"]
    cases = {
        "z0": {"layer0.weight": torch.zeros(g["layer0.weight"].shape[0], 0, 4, 4)},
        "huge": {"layer0.weight": torch.zeros(1, 1, 1, 1).expand(10**5, 10**5, 4, 4)},
        # a first block 65536 channels wide (1-channel to-RGB kept): the second block's conv would be 65536^2 x 9
        "wide": {"layer1.weight": torch.zeros(65536, 1, 1, 1)},
    }
    for name, change in cases.items():
        torch.save({**ck, "generator_smooth": {**g, **change}}, tmp_path / f"{name}.pth")
    _refused(cli, tmp_path / "z0.pth", "z_dim = 0")
    _refused(cli, tmp_path / "huge.pth", "stored")
    _refused(cli, tmp_path / "wide.pth", "has shape", "the declared network needs")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"z_dim": 0}, "z_dim = 0"),
        ({"channel_width": 10**6}, "widths"),
        ({"num_classes": 10**9}, "num_classes"),
        ({"n_stats": 10**9}, "n_stats"),
        ({"layers": [[True, 16, 16]] * 200}, "resolution"),
        ({"z_dim": 64}, "embeddings.weight has shape"),  # plausible, but not what the weights say
    ],
)
def test_biggan_config(cli, tmp_path, change, words):
    folder = tmp_path / "bg"
    shutil.copytree(FIX / "biggan/biggan_deep_tiny64", folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, **change}))
    line = one_line_error(cli("sefa", "--ckpt", str(folder), "-o", "b.npz"), errors.EXIT_BAD_INPUT)
    assert words in line and "bg" in line, line
