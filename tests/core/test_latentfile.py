"""One reader for every latents file: plain arrays, e4e / ReStyle / PTI / stylegan3-editing files made
here in their formats, dirfind sample files, and safe loading (nothing but arrays is ever built)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from dirfind import load_generator
from dirfind.core.latentfile import read_latent_file
from dirfind.errors import BadInputError
from helpers import FIX

SG2 = FIX / "stylegan2" / "stylegan2_ada_tiny32.pkl"


@pytest.fixture(scope="module")
def sg2():
    return load_generator(str(SG2))


def _ws(gen, n, seed=0):
    z = torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return gen.embed(z, "w+")


def test_e4e_pt_tensor_and_npy_array_import(sg2, tmp_path):
    ws = _ws(sg2, 3)
    torch.save(ws, tmp_path / "latents.pt")  # e4e inference: one (N, num_ws, w_dim) tensor
    np.save(tmp_path / "latents.npy", ws.numpy())  # stylegan3-editing / ReStyle arrays
    for name in ("latents.pt", "latents.npy"):
        ls = read_latent_file(tmp_path / name, sg2)
        assert ls.space == "w+" and ls.latents.shape == (3, sg2.num_ws, sg2.w_dim)
        np.testing.assert_array_equal(ls.latents, ws.numpy())


def test_pti_and_restyle_dicts_keep_names_and_last_iteration(sg2, tmp_path):
    ws = _ws(sg2, 2, seed=1)
    torch.save({"a.png": ws[0:1], "b.png": ws[1:2]}, tmp_path / "pti.pt")  # PTI: {name: (1, L, C)}
    ls = read_latent_file(tmp_path / "pti.pt", sg2)
    assert ls.names == ["a.png", "b.png"]
    np.testing.assert_array_equal(ls.latents, ws.numpy())
    # ReStyle / stylegan3-editing: np.save of a dict {name: [iteration 1, ..., iteration K]} (a pickle)
    series = {"x.jpg": [ws[1].numpy() * 0, ws[0].numpy()], "y.jpg": [ws[0].numpy() * 0, ws[1].numpy()]}
    np.save(tmp_path / "restyle.npy", np.array(series, dtype=object), allow_pickle=True)
    ls = read_latent_file(tmp_path / "restyle.npy", sg2)
    assert ls.names == ["x.jpg", "y.jpg"]
    np.testing.assert_array_equal(ls.latents, ws.numpy())  # the last iteration


def test_wrong_shapes_are_one_line_errors(sg2, tmp_path):
    torch.save(torch.zeros(2, 18, 512), tmp_path / "ffhq.pt")  # latents of a 1024 px FFHQ generator
    with pytest.raises(BadInputError, match=r"\(2, 18, 512\) do not fit this stylegan2 generator's space w\+"):
        read_latent_file(tmp_path / "ffhq.pt", sg2)
    np.save(tmp_path / "nan.npy", np.full((1, sg2.num_ws, sg2.w_dim), np.nan, np.float32))
    with pytest.raises(BadInputError, match="NaN"):
        read_latent_file(tmp_path / "nan.npy", sg2)


def test_pickles_that_build_anything_else_are_refused(sg2, tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(Boom(), f)
    with pytest.raises(BadInputError, match="refusing to load builtins.print"):
        read_latent_file(tmp_path / "evil.npy", sg2)
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(BadInputError, match="not a safely loadable"):
        read_latent_file(tmp_path / "evil.pt", sg2)


def test_2d_arrays_are_z_unless_only_w_fits(dcgan, tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((4, dcgan.z_dim), np.float32))
    assert read_latent_file(tmp_path / "z.npy", dcgan).space == "z"
    np.save(tmp_path / "bad.npy", np.zeros((4, 7), np.float32))
    with pytest.raises(BadInputError, match=r"space z \(100,\)"):
        read_latent_file(tmp_path / "bad.npy", dcgan)


def test_sample_files_carry_their_space(sg2, tmp_path):
    from dirfind.core.samplefile import write_samples

    write_samples(sg2, n=3, space="w", out=tmp_path / "s.npz")
    ls = read_latent_file(tmp_path / "s.npz", sg2)
    assert ls.space == "w" and ls.source == "samples" and ls.latents.shape == (3, sg2.w_dim)
    with pytest.raises(BadInputError, match="holds w latents, not z"):
        read_latent_file(tmp_path / "s.npz", sg2, "z")


def test_projection_noise_maps_of_another_generator_name_the_file(sg2, tmp_path):
    from dirfind.core.latentfile import write_projection

    wp = _ws(sg2, 2).numpy()
    maps = {f"noise{k}": np.zeros((2, 1, 3, 3), np.float32) for k in range(len(sg2.noise_maps()))}
    path = write_projection(tmp_path / "p.npz", {"space": "w+", "images": {"paths": []}}, {"latents": wp, **maps})
    with pytest.raises(BadInputError, match=r"p\.npz: its noise maps .* do not fit"):
        read_latent_file(path, sg2)
    assert read_latent_file(path).noise is not None  # without a generator nothing is checked
