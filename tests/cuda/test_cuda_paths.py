"""CUDA paths, for a GPU machine (skipped without one; CI has none): every family renders on the
GPU as on the CPU (fp32, whose convolutions may use TF32; fp16/bf16 for the style families), the
forward-mode Jacobian agrees, every method runs from the CLI with ``--device cuda`` and finds the
CPU's directions, and the projection -> local directions -> traverse/edit/evaluate flow runs there.

    python -m pytest tests/cuda -q              # on the GPU machine (with tests/.cache: no network)
    DIRFIND_TEST_DEVICE=cpu python -m pytest tests/cuda -q   # the same checks CPU against CPU
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from dirfind import DirectionBank, load_generator
from dirfind.core.jvp import OutputTransform, jacobian
from dirfind.util.images import to_pil, to_uint8
from helpers import FAMILIES, METHODS

DEVICE = os.environ.get("DIRFIND_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs a CUDA device"
)
SG2 = FAMILIES["stylegan2-nvidia"][0]
STYLE = [f for f in FAMILIES if f.startswith("stylegan")]
HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _synthesis(family: str, ckpts: dict[str, str], dtype: torch.dtype | None = None):
    """(CPU images, device images on the CPU, the CPU images' largest |value|) of seeds 0-3."""
    render = FAMILIES[family][1]
    settings = {"class_index": int(render[1])} if render else None
    cpu = load_generator(ckpts[family], device="cpu", settings=settings)
    dev = load_generator(ckpts[family], device=DEVICE, settings=settings, dtype=dtype)
    z = cpu.z_from_seeds([0, 1, 2, 3])
    with torch.inference_mode():
        ref = cpu.synthesis(z, "z")
        out = dev.synthesis(z.to(dev.device), "z").float().cpu()
    assert torch.isfinite(out).all()
    return ref, out, float(ref.abs().max())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_synthesis_on_the_device_is_the_cpus(family, ckpts):
    ref, out, scale = _synthesis(family, ckpts)
    assert float((out - ref).abs().max()) <= 1e-2 * scale  # TF32 convolutions: ~1e-3 relative per layer


@pytest.mark.parametrize("dtype", list(HALF))
@pytest.mark.parametrize("family", STYLE)
def test_half_precision_synthesis_is_close_to_fp32(family, dtype, ckpts):
    ref, out, scale = _synthesis(family, ckpts, HALF[dtype] if DEVICE.startswith("cuda") else None)
    assert float((out - ref).abs().mean()) <= 2e-2 * scale and float((out - ref).abs().max()) <= 0.25 * scale


@pytest.mark.parametrize("family", ["dcgan", "stylegan2-nvidia", "stylegan3-t"])
def test_forward_mode_jacobian_on_the_device_is_the_cpus(family, ckpts):
    cpu, dev = (load_generator(ckpts[family], device=d) for d in ("cpu", DEVICE))
    space = "z" if family == "dcgan" else "w"
    with torch.inference_mode():
        lat = cpu.embed(cpu.z_from_seeds([5]), space)[0]
    t = OutputTransform(size=16, channels="mean")
    ref = jacobian(cpu, lat, space, None, t, chunk=16)
    out = jacobian(dev, lat.to(dev.device), space, None, t, chunk=16).float().cpu()
    assert torch.isfinite(out).all()
    assert float(torch.linalg.norm(out - ref) / torch.linalg.norm(ref)) <= 1e-2


#: |cos| the device's direction 0 must have with the CPU's: sefa reads weights alone; the others
#: see the device's images (TF32), so labels near a threshold or a tiny spectral gap may move them
AGREE = {"sefa": 0.9999, "ganspace": 0.98, "interfacegan": 0.9, "jacobian": 0.98, "hessian": 0.98, "orojar": 0.98}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("family", ["dcgan", "stylegan2-nvidia", "stylegan3-t", "biggan", "pggan"])
def test_each_method_runs_on_the_device_and_finds_the_cpus_direction(family, method, ckpts, cli, tmp_path):
    args = [*METHODS[method], "--ckpt", ckpts[family], *FAMILIES[family][1], "--seed", "1", "-q"]
    assert (r := cli(*args, "--device", DEVICE, "--out", "dev.npz")).code == 0, r
    assert (r := cli(*args, "--device", "cpu", "--out", "cpu.npz")).code == 0, r
    dev, cpu = (DirectionBank.load(tmp_path / f) for f in ("dev.npz", "cpu.npz"))
    assert np.isfinite(dev.directions).all() and dev.directions.shape == cpu.directions.shape
    cos = abs(float(dev.directions[0] @ cpu.directions[0]))
    assert cos >= AGREE[method], f"{method} on {family}: |cos| {cos:.6f} to the CPU's direction 0"
    r = cli("traverse", "--bank", "dev.npz", "--dir", "0", "--steps", "3", "--seeds", "0-1", "--device", DEVICE,
            "--out", "t.png", "-q")  # fmt: skip
    assert r.code == 0 and (tmp_path / "t.png").stat().st_size > 0, r


@pytest.mark.parametrize("dtype", ["fp32", *HALF])
def test_traverse_on_the_device_renders_the_cpus_images(dtype, cli, tmp_path):
    assert cli("sefa", "--ckpt", SG2, "-k", "2", "--out", "b.npz", "-q").code == 0
    grid = ["traverse", "--bank", "b.npz", "--dir", "0,1", "--steps", "3", "--seeds", "0-2", "-q"]
    half = ["--dtype", dtype] if DEVICE.startswith("cuda") else []
    assert (r := cli(*grid, "--device", DEVICE, *half, "--out", "dev.png")).code == 0, r
    assert (r := cli(*grid, "--device", "cpu", "--out", "cpu.png")).code == 0, r
    from PIL import Image

    a, b = (np.asarray(Image.open(tmp_path / f), dtype=np.float64) for f in ("dev.png", "cpu.png"))
    assert a.shape == b.shape
    assert np.abs(a - b).mean() <= (1.0 if dtype == "fp32" else 4.0)  # uint8 levels


def test_projection_flow_on_the_device(cli, tmp_path):
    """project (optimised noise maps) -> local Jacobian directions at the projection -> traverse
    from the bank's own sample and the projection (noise maps on the device) -> edit -> evaluate."""
    gen = load_generator(SG2)
    with torch.inference_mode():
        img = to_uint8(gen.synthesis(gen.z_from_seeds([3]), "z"))[0]
    to_pil(img).save(tmp_path / "target.png")
    d = ["--device", DEVICE, "-q"]
    steps = [
        ["project", "target.png", "--ckpt", SG2, "--steps", "4", "--loss", "l2", "--candidates", "2", "-o", "p.npz"],
        ["jacobian", "--ckpt", SG2, "--latents", "p.npz", "-k", "2", "--size", "16", "--out", "j.npz"],
        ["traverse", "--bank", "j.npz", "--dir", "0", "--steps", "3", "--latents", "p.npz", "--origin", "-o", "t.png"],
        ["edit", "--latents", "p.npz", "--bank", "j.npz", "--dir", "0:1.5", "--out", "e.png"],
        ["evaluate", "j.npz", "--latents", "p.npz", "--out", "ev.json"],
        ["sample", "--ckpt", SG2, "-n", "3", "--images", "imgs/", "--out", "s.npz"],
    ]
    for args in steps:
        assert (r := cli(*args, *d)).code == 0, (args[0], r)
