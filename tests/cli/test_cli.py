"""The dirfind command end to end on the real DCGAN: the documented flow, JSON output, errors and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dirfind import errors
from helpers import ROOT, one_line_error


def test_documented_flow(cli, tmp_path):
    res = cli("sefa", "--ckpt", "dcgan-digiface", "--out", "d.npz")
    assert res.code == 0, res
    assert "wrote d.npz" in res.out and "sefa_0" in res.out
    with np.load(tmp_path / "d.npz", allow_pickle=False) as z:
        assert z["directions"].shape == (100, 100)
    res = cli("traverse", "--bank", "d.npz", "--dir", "0", "--steps", "9", "--seeds", "0-3", "--out", "t.png")
    assert res.code == 0, res
    img = np.asarray(Image.open(tmp_path / "t.png"))
    assert img.shape == (4 * 64 + 3 * 2, 9 * 64 + 8 * 2, 3)
    row = [img[0:64, c * 66 : c * 66 + 64].astype(float) for c in range(9)]
    assert np.abs(row[0] - row[-1]).mean() > 10, "faces must visibly change along the row"


def test_defaults_after_sefa(cli, tmp_path):
    assert cli("sefa", "--ckpt", "dcgan-digiface").code == 0
    assert (tmp_path / "directions.npz").exists()
    res = cli("traverse", "--dir", "3", "--steps", "9")
    assert res.code == 0, res
    assert Image.open(tmp_path / "traverse_d3.png").size == (9 * 66 - 2, 4 * 66 - 2)
    one_line_error(cli("traverse", "--dir", "3", "--steps", "9"), errors.EXIT_OUTPUT)
    assert cli("traverse", "--dir", "3", "--steps", "9", "--force").code == 0


def test_json_output_and_global_options_anywhere(cli, tmp_path):
    res = cli("--json", "sefa", "--ckpt", "dcgan-digiface", "-k", "5", "-q")
    assert res.code == 0, res
    data = json.loads(res.out)
    assert data["num_directions"] == 5 and data["out"] == "directions.npz" and data["method"] == "sefa"
    assert data["generator"]["fingerprint"] == "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"
    res = cli("traverse", "--dir", "0,1", "--steps", "3", "--seeds", "5", "--out", "a.gif", "--json")
    data = json.loads(res.out)
    assert data["files"] == ["a.gif"] and data["dirs"] == [0, 1] and data["seeds"] == [5] and data["rows"] == 2
    info = json.loads(cli("info", "directions.npz", "--json").out)
    assert info["kind"] == "bank" and info["num_directions"] == 5
    info = json.loads(cli("info", "dcgan-digiface", "--json").out)
    assert info["kind"] == "checkpoint" and info["family"] == "dcgan" and info["z_dim"] == 100


def test_frames_and_latents_input(cli, tmp_path):
    assert cli("sefa", "--ckpt", "dcgan-digiface", "-k", "3").code == 0
    np.save(tmp_path / "z.npy", np.random.default_rng(0).standard_normal((2, 100)).astype(np.float32))
    res = cli("traverse", "--dir", "1", "--steps", "4", "--latents", "z.npy", "--out", "frames/")
    assert res.code == 0, res
    assert sorted(os.listdir(tmp_path / "frames")) == ["0000.png", "0001.png", "0002.png", "0003.png"]
    np.save(tmp_path / "bad.npy", np.zeros((2, 7), np.float32))
    one_line_error(cli("traverse", "--dir", "1", "--latents", "bad.npy"), errors.EXIT_BAD_INPUT)


def test_checkpoints_commands(cli, dcgan_path):
    res = cli("checkpoints", "list")
    assert res.code == 0 and "dcgan-digiface" in res.out and "stylegan2-ada-ffhq" in res.out
    data = json.loads(cli("checkpoints", "list", "--json").out)
    entry = next(e for e in data["checkpoints"] if e["name"] == "dcgan-digiface")
    assert entry["cached"] and entry["license"] == "MIT"
    res = cli("checkpoints", "fetch", "dcgan-digiface")
    assert res.code == 0 and "0c3b90b138cfc4e8" in res.out
    res = cli("checkpoints", "verify", "dcgan-digiface")
    assert res.code == 0 and "dcgan-digiface: ok" in res.out
    one_line_error(cli("checkpoints", "fetch", "nope"), errors.EXIT_NOT_FOUND)


@pytest.fixture
def corrupt_cache(tmp_path, monkeypatch, dcgan_path):
    """A private cache holding a tampered copy of dcgan-digiface."""
    cache = tmp_path / "cache"
    dest = cache / "checkpoints" / "dcgan-digiface" / "weights.tar"
    dest.parent.mkdir(parents=True)
    shutil.copy(dcgan_path, dest)
    with open(dest, "r+b") as f:
        f.seek(5000)
        f.write(b"\1\2\3\4")
    monkeypatch.setenv("DIRFIND_CACHE", str(cache))
    return dest


def test_errors_have_one_line_and_exit_codes(cli, tmp_path, dcgan_path, monkeypatch):
    assert cli("sefa", "--ckpt", "dcgan-digiface", "-k", "4", "--out", "d.npz").code == 0

    msg = one_line_error(cli("sefa", "--ckpt", "missing.pt"), errors.EXIT_NOT_FOUND)
    assert "missing.pt" in msg
    msg = one_line_error(cli("sefa", "--ckpt", "no-such-model"), errors.EXIT_NOT_FOUND)
    assert "checkpoints list" in msg

    data = dcgan_path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in one_line_error(cli("sefa", "--ckpt", "trunc.pt"), errors.EXIT_BAD_INPUT)
    (tmp_path / "noise.pt").write_bytes(os.urandom(4096))
    assert "unknown checkpoint format" in one_line_error(cli("sefa", "--ckpt", "noise.pt"), errors.EXIT_BAD_INPUT)
    (tmp_path / "empty.pt").write_bytes(b"")
    one_line_error(cli("sefa", "--ckpt", "empty.pt"), errors.EXIT_BAD_INPUT)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    one_line_error(cli("sefa", "--ckpt", "other.pt"), errors.EXIT_BAD_INPUT)

    msg = one_line_error(cli("traverse", "--bank", "d.npz", "--dir", "4"), errors.EXIT_BAD_INPUT)
    assert "out of range" in msg
    one_line_error(cli("traverse", "--bank", "nope.npz", "--dir", "0"), errors.EXIT_NOT_FOUND)
    (tmp_path / "afile").write_text("x")
    one_line_error(cli("traverse", "--bank", "d.npz", "--dir", "0", "--out", "afile/t.png"), errors.EXIT_OUTPUT)
    one_line_error(cli("sefa", "--ckpt", "dcgan-digiface", "--out", "d.npz"), errors.EXIT_OUTPUT)

    # a bank used with other weights: refused unless --force
    sd = torch.load(dcgan_path, weights_only=True, map_location="cpu")
    sd["netG_state_dict"]["main.0.weight"] *= 1.01
    torch.save(sd, tmp_path / "other_dcgan.pt")
    msg = one_line_error(cli("traverse", "--bank", "d.npz", "--ckpt", "other_dcgan.pt", "--dir", "0"),
                          errors.EXIT_MISMATCH)  # fmt: skip
    assert "--force" in msg
    assert cli("traverse", "--bank", "d.npz", "--ckpt", "other_dcgan.pt", "--dir", "0", "--force").code == 0

    reg = tmp_path / "reg.toml"
    reg.write_text('[ddpm]\nfamily = "diffusion"\nsource = "https://example.invalid/x.pt"\n'
                   'license = "MIT"\ndescription = "not a GAN"\n')  # fmt: skip
    monkeypatch.setenv("DIRFIND_REGISTRY", str(reg))
    assert "not supported" in one_line_error(cli("sefa", "--ckpt", "ddpm"), errors.EXIT_UNSUPPORTED)


def test_hash_mismatch_of_cached_checkpoint(cli, corrupt_cache):
    msg = one_line_error(cli("sefa", "--ckpt", "dcgan-digiface"), errors.EXIT_INTEGRITY)
    assert "--force" in msg
    res = cli("checkpoints", "verify")
    assert res.code == errors.EXIT_INTEGRITY and "mismatch" in res.out


def test_usage_errors_and_debug(cli, tmp_path):
    res = cli("sefa", "--bogus")
    assert res.code == errors.EXIT_USAGE and "Traceback" not in res.err
    res = cli("--debug", "sefa", "--ckpt", "missing.pt")
    assert res.code == errors.EXIT_NOT_FOUND and "Traceback" in res.err


def test_console_script_runs_as_module(tmp_path):
    """`python -m dirfind` in a fresh process: stdout carries results only, stderr the progress."""
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
    proc = subprocess.run([sys.executable, "-m", "dirfind", "sefa", "--ckpt", "dcgan-digiface", "-k", "2", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["num_directions"] == 2
