"""The sampling engine on the real DCGAN: the z recipe, batch-size and shard independence,
streaming statistics against numpy, checkpoint/resume (injected failure and SIGKILL), `dirfind sample`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dirfind.core.jobs import Job
from dirfind.core.reducers import Collector, MeanCov
from dirfind.core.sampling import BLOCK, SampleStream, draw_z, reduce_stream
from dirfind.core.shards import shard_range
from dirfind.errors import BadInputError, MismatchError, OutputError
from dirfind.render import to_uint8
from helpers import kill_midway


def _recipe_z(seed: int, stream: int, start: int, stop: int) -> np.ndarray:
    """The documented recipe written out independently: block b = default_rng([seed, stream, b])."""
    rows = []
    for i in range(start, stop):
        b, r = divmod(i, 1024)
        rows.append(np.random.default_rng([seed, stream, b]).standard_normal((1024, 100))[r])
    return np.asarray(rows, np.float32)


def _collect(stream: SampleStream) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx, zs, xs = [], [], []
    for b in stream:
        idx.append(b.indices)
        zs.append(b.z.numpy().copy())
        xs.append(b.flat.numpy().copy())
    return np.concatenate(idx), np.concatenate(zs), np.concatenate(xs)


def test_z_follows_the_documented_block_recipe(dcgan):
    assert BLOCK == 1024
    z = draw_z(dcgan, 1000, 1100, seed=7, stream=0)  # crosses the block boundary at 1024
    np.testing.assert_array_equal(z, _recipe_z(7, 0, 1000, 1100))
    # prefix property: the first samples do not depend on n or on the range asked for
    np.testing.assert_array_equal(draw_z(dcgan, 0, 3000, seed=7)[1000:1100], z)
    assert not np.array_equal(draw_z(dcgan, 0, 50, seed=7, stream=1), draw_z(dcgan, 0, 50, seed=7, stream=0))
    assert not np.array_equal(draw_z(dcgan, 0, 50, seed=8), draw_z(dcgan, 0, 50, seed=7))


@pytest.mark.parametrize("space", ["z", "act:main.2"])
def test_stream_is_independent_of_batch_size(dcgan, space):
    i1, z1, x1 = _collect(SampleStream(dcgan, 700, space, seed=3, batch_size=256))
    i2, z2, x2 = _collect(SampleStream(dcgan, 700, space, seed=3, batch_size=33))
    np.testing.assert_array_equal(i1, np.arange(700))
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_allclose(x1, x2, rtol=1e-6, atol=1e-6)
    if space == "act:main.2":
        assert x1.shape == (700, 512 * 4 * 4)
        with torch.no_grad():
            ref = dcgan.net.main[:3](torch.from_numpy(z1[:5]).view(5, 100, 1, 1)).flatten(1)
        np.testing.assert_allclose(x1[:5], ref.numpy(), rtol=1e-5, atol=1e-6)


def test_shards_are_disjoint_and_merge_to_the_whole(dcgan):
    n = 1001
    ranges = [shard_range(n, (k, 4)) for k in range(4)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    _, z_all, x_all = _collect(SampleStream(dcgan, n, "act:main.0", seed=1, batch_size=128))
    parts = [_collect(SampleStream(dcgan, n, "act:main.0", seed=1, batch_size=50, shard=(k, 4))) for k in range(4)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), np.arange(n))
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), z_all)
    np.testing.assert_allclose(np.concatenate([p[2] for p in parts]), x_all, rtol=1e-6, atol=1e-6)


def test_parse_shard():
    from dirfind.cli._options import ShardType
    from dirfind.core.shards import check_shard

    assert ShardType().convert("2/5", None, None) == (2, 5)
    assert check_shard(None) is None and check_shard((2, 5)) == (2, 5)
    for bad in ("5/5", "a/b", "1", "-1/3", "0/0"):
        with pytest.raises(BadInputError):
            ShardType().convert(bad, None, None)
    for bad in ((5, 5), (-1, 3), (0, 0)):
        with pytest.raises(BadInputError):
            check_shard(bad)


def test_meancov_matches_numpy_and_merges():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5000, 40)) @ rng.standard_normal((40, 40)) + 50.0).astype(np.float32)  # large mean
    whole = MeanCov(40)
    for i in range(0, 5000, 700):
        whole.add(torch.from_numpy(x[i : i + 700]))
    ref = np.cov(x.astype(np.float64), rowvar=False)
    np.testing.assert_allclose(whole.mean.numpy(), x.astype(np.float64).mean(0), rtol=1e-13)
    np.testing.assert_allclose(whole.cov().numpy(), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    a, b = MeanCov(40), MeanCov(40)
    a.add(torch.from_numpy(x[:1234]))
    b.add(torch.from_numpy(x[1234:]))
    np.testing.assert_allclose(a.merge(b).cov().numpy(), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    c = MeanCov(40)
    c.load_state_dict(whole.state_dict())
    np.testing.assert_array_equal(c.cov().numpy(), whole.cov().numpy())


def test_meancov_device_path_matches_the_cpu_path():
    """The torch (GPU) code path, forced on the CPU, agrees with the BLAS path and with numpy."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3000, 30)) * np.linspace(5, 0.1, 30) + 7.0).astype(np.float32)
    blas, dev = MeanCov(30), MeanCov(30)
    dev._lower_only = False
    for c in np.array_split(x, 5):
        blas.add(torch.from_numpy(c))
        dev.add(torch.from_numpy(c))
    np.testing.assert_allclose(dev.cov().numpy(), blas.cov().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dev.cov().numpy(), np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-12)


def test_collector_keeps_per_sample_arrays_of_a_shard(dcgan):
    stream = SampleStream(dcgan, 300, "z", seed=2, batch_size=64, shard=(1, 3))
    col = reduce_stream(stream, Collector(stream.start, stream.stop, {"z": (100,)}))
    np.testing.assert_array_equal(col.data["z"], draw_z(dcgan, 100, 200, seed=2))
    other = Collector(100, 200, {"z": (100,)})
    other.load_state_dict(col.state_dict())
    np.testing.assert_array_equal(other.data["z"], col.data["z"])


class _Boom(Exception):
    pass


def test_interrupted_reduction_resumes_to_the_identical_state(dcgan, tmp_path):
    stream = SampleStream(dcgan, 900, "z", seed=2, batch_size=100)
    full = reduce_stream(stream, MeanCov(stream.dim))

    class Failing(MeanCov):
        calls = 0

        def update(self, batch):
            Failing.calls += 1
            if Failing.calls == 4:
                raise _Boom
            super().update(batch)

    ident = {"test": "resume"}
    job = Job.open(tmp_path / "p", ident, every=0)
    with pytest.raises(_Boom):
        reduce_stream(stream, Failing(stream.dim), job=job, stage="cov")
    saved = Job.open(tmp_path / "p", ident, resume=True, every=0)
    assert saved.stage("cov").pos == 300 and not saved.stage("cov").done
    seen = []

    class Counting(MeanCov):
        def update(self, batch):
            seen.append(batch.start)
            super().update(batch)

    resumed = reduce_stream(stream, Counting(stream.dim), job=saved, stage="cov")
    assert seen == list(range(300, 900, 100)), "finished batches are not redone, none is skipped"
    assert resumed.n == 900
    np.testing.assert_array_equal(resumed.state_dict()["m2"], full.state_dict()["m2"])
    np.testing.assert_array_equal(resumed.state_dict()["mean"], full.state_dict()["mean"])
    # a finished stage is loaded, not recomputed
    again = Job.open(tmp_path / "p", ident, resume=True)
    seen.clear()
    reduce_stream(stream, Counting(stream.dim), job=again, stage="cov")
    assert seen == []


def test_ctrl_c_is_deferred_to_the_batch_end_and_checkpointed(dcgan, tmp_path):
    """SIGINT in the middle of a batch: the batch completes, its state is saved, then KeyboardInterrupt."""
    import os
    import signal

    stream = SampleStream(dcgan, 500, "z", seed=9, batch_size=100)
    full = reduce_stream(stream, MeanCov(stream.dim))

    class Interrupting(MeanCov):
        def update(self, batch):
            if batch.start == 200:
                os.kill(os.getpid(), signal.SIGINT)  # arrives before this batch is folded in
            super().update(batch)

    job = Job.open(tmp_path / "p", {"t": 1}, every=3600)
    before = signal.getsignal(signal.SIGINT)  # Python's handler, or SIG_IGN in a background job
    with pytest.raises(KeyboardInterrupt):
        reduce_stream(stream, Interrupting(stream.dim), job=job, stage="cov")
    saved = Job.open(tmp_path / "p", {"t": 1}, resume=True)
    assert saved.stage("cov").pos == 300, "the interrupted batch is completed and saved"
    resumed = reduce_stream(stream, MeanCov(stream.dim), job=saved, stage="cov")
    np.testing.assert_array_equal(resumed.state_dict()["m2"], full.state_dict()["m2"])
    assert signal.getsignal(signal.SIGINT) is before, "the handler is restored"


def test_job_refuses_foreign_or_unrequested_progress(tmp_path):
    job = Job.open(tmp_path / "p", {"n": 10, "seed": 0})
    job.set_stage("s", 5, {"a": np.zeros(2)})
    job.save()
    with pytest.raises(OutputError, match="resume=True"):
        Job.open(tmp_path / "p", {"n": 10, "seed": 0})
    with pytest.raises(MismatchError, match="seed"):
        Job.open(tmp_path / "p", {"n": 10, "seed": 1}, resume=True)
    fresh = Job.open(tmp_path / "p", {"n": 10, "seed": 1}, force=True)
    assert fresh.stage("s") is None


# ---------------------------------------------------------------------- dirfind sample


def test_sample_cli_writes_latents_and_images(cli, dcgan, tmp_path):
    r = cli("sample", "--ckpt", "dcgan-digiface", "-n", "20", "--images", "imgs", "--batch-size", "8", "--seed", "5")
    assert r.code == 0, r
    with np.load(tmp_path / "latents.npz") as f:
        assert set(f.files) == {"indices", "z", "latents", "meta"}
        z, lat, idx = f["z"], f["latents"], f["indices"]
    np.testing.assert_array_equal(idx, np.arange(20))
    np.testing.assert_array_equal(z, _recipe_z(5, 0, 0, 20))
    np.testing.assert_array_equal(lat, z)
    names = sorted(p.name for p in (tmp_path / "imgs").iterdir())
    assert names == [f"{i:06d}.png" for i in range(20)]
    with torch.no_grad():
        ref = to_uint8(dcgan(torch.from_numpy(z[[0, 13]])))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "imgs" / "000013.png")), ref[1])
    assert not (tmp_path / "latents.npz.progress").exists()
    r = cli("sample", "--ckpt", "dcgan-digiface", "-n", "20")
    assert r.code == 7 and "exists" in r.err  # never overwrite without --force


def test_sample_shards_merge_to_the_unsharded_output(cli, tmp_path):
    assert cli("sample", "--ckpt", "dcgan-digiface", "-n", "50", "--out", "all.npz").code == 0
    for k in range(3):
        r = cli("sample", "--ckpt", "dcgan-digiface", "-n", "50", "--shard", f"{k}/3", "--out", f"p{k}.npz")
        assert r.code == 0, r
    r = cli("merge", "p0.npz", "p2.npz", "--out", "m.npz")
    assert r.code == 4 and "missing" in r.err
    assert cli("merge", "p2.npz", "p0.npz", "p1.npz", "--out", "m.npz").code == 0
    with np.load(tmp_path / "all.npz") as a, np.load(tmp_path / "m.npz") as m:
        for key in ("indices", "z", "latents"):
            np.testing.assert_array_equal(a[key], m[key])


def test_sample_killed_midway_resumes_to_the_identical_output(cli, tmp_path):
    args = ["-q", "sample", "--ckpt", "dcgan-digiface", "-n", "400", "--batch-size", "10", "--images", "imgs"]
    args += ["--checkpoint-every", "0", "--seed", "4"]
    kill_midway(args, tmp_path, tmp_path / "latents.npz.progress" / "state.npz", min_pos=100)
    assert not (tmp_path / "latents.npz").exists()
    r = cli(*args)
    assert r.code == 7 and "--resume" in r.err  # progress is never discarded silently
    r = cli(*args, "--resume")
    assert r.code == 0, r
    assert cli("-q", "sample", "--ckpt", "dcgan-digiface", "-n", "400", "--seed", "4", "--out", "ref.npz").code == 0
    with np.load(tmp_path / "latents.npz") as a, np.load(tmp_path / "ref.npz") as b:
        for key in ("indices", "z", "latents"):
            np.testing.assert_array_equal(a[key], b[key])
    assert len(list((tmp_path / "imgs").glob("*.png"))) == 400
    assert not list((tmp_path / "imgs").glob(".*")), "no temporary image files left behind"


def test_a_huge_stream_is_dealt_lazily(dcgan):
    """10^12 samples in batches of 1: the batch grid is never listed (it would take terabytes), so a
    reduction starts folding batches at once."""
    import itertools

    from dirfind.core import parallel

    stream = SampleStream(dcgan, 10**12, "z", seed=0, batch_size=1)
    first = list(itertools.islice(parallel.deal(stream.cells()), 3))
    assert first == [(0, 1), (1, 2), (2, 3)]
    assert stream.grid([(5, 8)]) == [(5, 6), (6, 7), (7, 8)]

    class Stop(MeanCov):
        def update(self, batch):
            super().update(batch)
            if self.n >= 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reduce_stream(stream, Stop(stream.dim), desc=None)
