"""GANSpace: principal components of sampled latents or activations (Härkönen et al., NeurIPS 2020).

Style-based generators: PCA of w = mapping(z) over many samples; a component is a w direction,
applied to a range of w+ layers (``layers``), as GANSpace's named edits do.

Other generators (DCGAN, PGGAN, BigGAN): PCA of the flattened activations of one layer
(``act:NAME``), then, as GANSpace's ``linreg_lstsq``, a least-squares regression back to the
latent: over fresh samples (at least 10,000; GANSpace uses max(10_000, n)) find M minimising
``||A M - Z||`` where A holds each sample's PCA coordinates divided by their standard deviations
and Z its latents (no intercept, like GANSpace); row k of M, normalised to unit length, is the
latent direction of component k. Where w+ is per-layer z (BigGAN), ``layers`` applies these z
directions to a range of layers, as GANSpace's layer-wise BigGAN edits do.

Step unit ("sigma"): ``scales[k]`` is the std of the latent samples projected on direction k (the
component's own std for W-space PCA, GANSpace's ``lat_stdev``). For regressed directions GANSpace
sets 1 for z; we measure it on fresh prior samples (stream 2), which also holds for truncated
priors and for w (the regression samples would inflate it). Scores are explained-variance ratios
(in activation space for regressed banks). See docs/ganspace.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch

from ..bank import DirectionBank, checkpoint_of, generator_identity
from ..core.dist import all_reduce, is_main
from ..core.jobs import Job, json_normal, resumable
from ..core.pca import SOLVERS, PCAResult, check_k, choose_solver, pca_from_cov, streaming_pca
from ..core.reducers import MeanCov, saved_arrays
from ..core.sampling import STREAMS, Batch, SampleStream, feature_space, reduce_stream
from ..core.shards import check_coverage, check_shard, register_merger
from ..errors import BadInputError, MismatchError
from ..generators.base import Generator
from ..generators.settings import RenderSettings
from ..util.fileio import read_meta_npz, write_meta_npz
from ..util.memory import memory_budget
from ..util.options import option
from ..util.progress import warn

#: GANSpace's minimum number of fresh samples for the regression to the latent.
MIN_REGRESSION_SAMPLES = 10_000
#: Activations reach the PCA's float32 products in blocks of up to this many rows and bytes
#: (nearer the BLAS peak: 20% faster per pass at D = 8192 on 2 cores).
ACT_BLOCK_ROWS, ACT_BLOCK_BYTES = 4096, 2**28


@dataclass(frozen=True)
class GanspaceOptions:
    """Options of :func:`ganspace` (the defaults of ``dirfind ganspace``)."""

    space: str | None = option(
        None,
        "PCA space: w (style-based default), z, or a layer's activations, e.g. act:main.2 (DCGAN default).",
        metavar="w|z|act:LAYER",
    )
    n: int = option(1_000_000, "Samples for the PCA.")
    k: int = option(80, "Number of components.")
    layers: tuple[int, ...] | None = option(
        None, "w+ layers the directions edit (w space), e.g. 0-1, 2-5 (default all).", metavar="SPEC"
    )
    solver: str = option(
        "auto",
        "exact: float64 covariance + eigh (D^2 memory); randomized: block Rayleigh-Ritz passes (O(D k) memory); "
        "gram: n x n Gram matrix in sample space (n <= D; n D memory); auto: the cheapest for n, D and k.",
        choices=SOLVERS,
    )
    tol: float = option(1e-4, "Randomized solver: residual tolerance.")
    max_passes: int = option(25, "Randomized solver: pass limit.")
    n_regression: int | None = option(
        None, "Fresh samples for regressing activation components to the latent (default max(10000, n))."
    )
    batch_size: int = option(500, "Samples per generator call.")
    memory_budget: int | None = option(
        None,
        "Bytes (e.g. 8G) of samples the randomized solver keeps in memory between passes instead of generating them "
        "again (default: half the available memory; 0: regenerate every pass). Results do not depend on it.",
    )
    shard: tuple[int, int] | None = option(None, "Only shard K of N: partial statistics to merge.")
    width: int | None = None  # randomized solver block width (default max(k, 32))
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        object.__setattr__(self, "shard", check_shard(self.shard))
        if not (self.tol > 0 and self.max_passes >= 1):
            raise BadInputError("tol must be > 0 and max_passes >= 1", param=("tol", "max_passes"))
        if self.memory_budget is not None and self.memory_budget < 0:
            raise BadInputError(f"memory_budget must be >= 0 bytes, got {self.memory_budget}", param="memory_budget")


def default_space(gen: Generator) -> str:
    """``w`` for style-based families, else the family's preferred activation."""
    if "w" in gen.spaces:
        return "w"
    name = getattr(gen, "pca_activation", None)
    if not name:
        raise BadInputError(
            f"choose space act:LAYER for {gen.family} (layers: {', '.join(gen.activation_names())})", param="space"
        )
    return f"act:{name}"


class LatentRegression:
    """Streams the normal equations of GANSpace's regression: PCA coordinates of the activations
    (centred, projected, divided by their std) against the latents."""

    def __init__(self, pca: PCAResult, latent_dim: int, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.comps = torch.from_numpy(pca.components.astype(np.float32)).to(self.device)
        self.act_mean = torch.from_numpy(pca.mean).to(self.device)
        self.act_std = torch.from_numpy(pca.std).to(self.device)
        k = len(pca.components)
        self.ata = torch.zeros(k, k, dtype=torch.float64, device=self.device)
        self.atz = torch.zeros(k, latent_dim, dtype=torch.float64, device=self.device)

    def coords(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised PCA coordinates (B, k) of flattened activations."""
        xc = x.to(self.device, torch.float32) - self.act_mean.float()
        return (xc @ self.comps.T).double() / self.act_std

    def update(self, batch: Batch) -> None:
        a = self.coords(batch.flat)
        z = batch.latent.reshape(len(batch), -1).to(self.device, torch.float64)
        self.ata += a.T @ a
        self.atz += a.T @ z

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """(M (k, latent_dim) least-squares solution, its row norms)."""
        m = scipy.linalg.solve(self.ata.cpu().numpy(), self.atz.cpu().numpy(), assume_a="pos")
        return m, np.linalg.norm(m, axis=1)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"ata": self.ata.cpu().numpy(), "atz": self.atz.cpu().numpy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        st = saved_arrays(state, {"ata": tuple(self.ata.shape), "atz": tuple(self.atz.shape)})
        self.ata = torch.from_numpy(np.array(st["ata"], np.float64)).to(self.device)
        self.atz = torch.from_numpy(np.array(st["atz"], np.float64)).to(self.device)

    def merge_state(self, state: dict[str, np.ndarray]) -> None:
        """The normal equations are sums: add another part's."""
        state = saved_arrays(state, {"ata": tuple(self.ata.shape), "atz": tuple(self.atz.shape)})
        self.ata += torch.from_numpy(np.array(state["ata"])).to(self.device)
        self.atz += torch.from_numpy(np.array(state["atz"])).to(self.device)

    def all_reduce(self) -> None:
        both = all_reduce(torch.cat([self.ata.reshape(-1), self.atz.reshape(-1)]), "regression normal equations")
        k = len(self.ata)
        self.ata, self.atz = both[: k * k].reshape(k, k), both[k * k :].reshape(self.atz.shape)


def regression_samples(n: int, n_regression: int | None) -> int:
    """GANSpace's count: max(10_000, n) unless given (then at least 10_000 is still advised)."""
    if n_regression is None:
        return max(MIN_REGRESSION_SAMPLES, n)
    if n_regression < 2:
        raise BadInputError(f"n_regression must be at least 2, got {n_regression}", param="n_regression")
    return int(n_regression)


@dataclass
class Plan:
    """A GANSpace run with its options resolved; ``identity`` is what resume and merge compare
    (the tolerance and pass limit may change between a run and its resumption)."""

    stream: SampleStream
    opts: GanspaceOptions
    k: int
    solver: str
    n_regression: int
    layers: list[int] | None
    identity: dict[str, Any]

    @property
    def job_identity(self) -> dict[str, Any]:
        return {**self.identity, "shard": list(self.stream.shard) if self.stream.shard else None}


def plan(gen: Generator, opts: GanspaceOptions | None = None, /, **changes: Any) -> Plan:
    """Validate the options of a run (before any sampling) and resolve the defaults."""
    o = replace(opts or GanspaceOptions(), **changes)
    space = o.space or default_space(gen)
    fs = feature_space(gen, space)
    if fs.kind == "latent" and fs.spec == "w+":
        raise BadInputError(
            f"GANSpace runs PCA in w (or z, or an activation); use space {gen.layer_space()} and layers",
            param=("space", "layers"),
        )
    stream = SampleStream(
        gen, o.n, space, seed=o.seed, stream=STREAMS["samples"], batch_size=o.batch_size, shard=o.shard
    )
    if fs.is_activation:  # the PCA's products on blocks of rows; generator calls stay at forward_batch
        stream.batch_size = max(o.batch_size, min(ACT_BLOCK_ROWS, ACT_BLOCK_BYTES // (4 * stream.dim)))
    k = check_k(o.k, o.n, stream.dim)
    # all n samples: every shard chooses alike; a sharded run needs the single-pass exact PCA,
    # which auto takes while its covariance is modest (D <= 2048: 32 MB)
    sharded_exact = o.solver == "auto" and stream.shard is not None and stream.dim <= 2048
    wanted = "exact" if sharded_exact else o.solver
    solver = choose_solver(wanted, o.n, stream.dim, k)
    n_reg = regression_samples(o.n, o.n_regression) if fs.is_activation else 0
    lay = _check_layers(gen, fs.latent_space, o.layers)
    samples = stream.identity()
    for key in ("start", "stop", "shard"):
        samples.pop(key)
    ident = {
        "method": "ganspace",
        "samples": samples,
        "k": k,
        "solver": solver,
        "width": o.width,
        "n_regression": n_reg,
        "layers": lay,
    }
    return Plan(stream, o, k, solver, n_reg, lay, ident)


def _check_layers(gen: Generator, space: str, layers: Sequence[int] | None) -> list[int] | None:
    if layers is None:
        return None
    if space == "z" and gen.layer_space() != "z":
        raise BadInputError(
            "layers apply to style-based generators (w space) and per-layer z (BigGAN); this bank edits z",
            param="layers",
        )
    return gen.check_layers(layers)


def ganspace(
    gen: Generator,
    opts: GanspaceOptions | None = None,
    /,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    every: float = 60.0,
    job: Job | None = None,
    **changes: Any,
) -> DirectionBank:
    """GANSpace directions of ``gen`` as a bank (see the module docstring).

    Parameters
    ----------
    gen : Generator
        The generator to sample.
    opts : GanspaceOptions, optional
        ``space`` (``w``, ``z`` or ``act:NAME``; default w for style families, else the family's
        preferred activation), ``n`` samples (stream 0 of ``seed``), ``k`` components, ``solver``
        (``auto|exact|randomized|gram``), ``memory_budget`` bytes of samples kept between
        randomized passes, ``n_regression`` fresh samples (stream 1) for the regression of
        activation components to the latent, ``layers`` the bank edits; keyword ``changes``
        override its fields.
    out : str or Path, optional
        Save the bank there; the run is then resumable from ``<out>.progress/`` (``resume``,
        ``force``, ``every``: seconds between checkpoints).
    job : Job, optional
        An explicit job to checkpoint into instead (``out`` unused).

    Returns
    -------
    DirectionBank
        Unit components (latent directions) with sigma scales and explained-variance scores.
    """
    p = plan(gen, opts, **changes)
    if p.stream.shard is not None:
        raise BadInputError("a sharded run produces partial statistics: use ganspace_shard", param="shard")
    if job is not None:
        return _run(gen, p, job)
    with resumable(out, p.job_identity, resume=resume, force=force, every=every) as job:
        bank = _run(gen, p, job)
        if out is not None and is_main():
            bank.save(out, force=force or job.resumed)
    return bank


def _run(gen: Generator, p: Plan, job: Job) -> DirectionBank:
    o = p.opts
    budget = memory_budget(o.memory_budget, gen.device)
    pca = streaming_pca(
        p.stream, p.k, solver=p.solver, job=job, tol=o.tol, max_passes=o.max_passes, width=o.width, memory_budget=budget
    )
    return finish(gen, p, pca, job=job)


def _drop_degenerate(pca: PCAResult) -> PCAResult:
    """Keep only components with non-zero variance (the data may have rank < k, e.g. a layer
    that is linear in a 100-d z); they have no direction to regress and no sigma. "Zero" is below
    1e-6 of the top variance: the randomized solver's float32 products leave ~1e-9 there."""
    keep = pca.variances > 1e-6 * max(float(pca.variances.max(initial=0.0)), 1e-300)
    if keep.all():
        return pca
    r = int(keep.sum())
    warn(f"warning: the samples have rank {r} < k = {len(keep)}; keeping {r} components")
    return PCAResult(pca.components[:r], pca.variances[:r], pca.total_variance, pca.mean, pca.n, pca.info)


def finish(gen: Generator, p: Plan, pca: PCAResult, *, job: Job) -> DirectionBank:
    """Turn a PCA result into a bank: directly for latent spaces, by regression for activations."""
    stream = p.stream
    fs = stream.space
    pca = _drop_degenerate(pca)
    k = len(pca.components)
    info: dict[str, Any] = {
        "explained": pca.ratio.tolist(),
        "explained_total": float(pca.ratio.sum()),
        "total_variance": pca.total_variance,
        "n": pca.n,
        "pca": pca.info,
        "feature_shape": list(stream.feature_shape),
        "score": "explained variance ratio" + (" (activation space)" if fs.is_activation else ""),
        "step": "1 sigma = std of the latent samples projected on the direction",
    }
    extras: dict[str, np.ndarray] = {}
    if fs.is_activation:  # generator batches as they come: joining them into PCA-sized blocks costs a copy each
        reg_stream = SampleStream(
            gen, p.n_regression, fs.spec, seed=stream.seed, stream=STREAMS["regression"],
            batch_size=stream.forward_batch,
        )  # fmt: skip
        dim = int(np.prod(gen.latent_shape(fs.latent_space)))
        reg = LatentRegression(pca, dim, gen.device)
        reduce_stream(reg_stream, reg, job=job, stage="regression", desc="regression")
        m, norms = reg.solve()
        directions = m / norms[:, None]
        # sigma from fresh latents (stream 2): the regression samples would bias it upwards, since
        # the fitted directions follow those samples' own fluctuations
        moments = SampleStream(
            gen, p.n_regression, fs.latent_space, seed=stream.seed, stream=STREAMS["scale"], batch_size=4096
        )
        lat = reduce_stream(moments, MeanCov(dim, gen.device), job=job, stage="latent_moments", desc="latent sigma")
        scales = np.sqrt(np.einsum("kd,de,ke->k", directions, lat.cov().cpu().numpy(), directions))
        mean = lat.mean.cpu().numpy()
        extras = {
            "act_components": pca.components.astype(np.float32),
            "act_mean": pca.mean.astype(np.float32),
            "act_std": pca.std.astype(np.float32),
            "regression_norm": norms.astype(np.float32),
        }
        info.update(
            activation=fs.name, n_regression=p.n_regression, n_scale=p.n_regression, latent_space=fs.latent_space
        )
    else:
        directions, scales, mean = pca.components, pca.std, pca.mean
    space = fs.latent_space
    return DirectionBank(
        directions=directions.astype(np.float32),
        space=space,
        method="ganspace",
        generator=generator_identity(gen),
        layers=p.layers,
        scales=scales.astype(np.float32),
        scores=pca.ratio.astype(np.float32),
        names=[f"ganspace_{i}" for i in range(k)],
        params={key: v for key, v in p.identity.items() if key != "method"},
        info=info,
        step_unit="sigma",
        default_range=(-2.0, 2.0),
        mean=mean.astype(np.float32),
        extras=extras,
    )


# ---------------------------------------------------------------------- shards


PARTIAL_FORMAT = "dirfind.ganspace-partial"


def ganspace_shard(
    gen: Generator,
    opts: GanspaceOptions | None = None,
    /,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    every: float = 60.0,
    **changes: Any,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Statistics of one shard (``opts.shard``; exact solver only): the (meta, arrays) of a
    partial file, written to ``out`` when given (resumable like :func:`ganspace`), that
    :func:`merge_partials` combines with the other shards into the bank."""
    p = plan(gen, opts, **changes)
    stream = p.stream
    if stream.shard is None:
        raise BadInputError("ganspace_shard needs options with a shard", param="shard")
    if p.solver != "exact":
        raise BadInputError(
            f"shard needs the single-pass exact PCA (D = {stream.dim} would use the multi-pass randomized "
            "one); pass solver exact (memory: D^2 float64) or run unsharded",
            param=("shard", "solver"),
        )
    k, parts = stream.shard
    with resumable(out, p.job_identity, resume=resume, force=force, every=every) as job:
        stats = reduce_stream(
            stream, MeanCov(stream.dim, gen.device), job=job, stage="cov", desc=f"pca shard {k}/{parts}"
        )
        meta = {
            "format": PARTIAL_FORMAT,
            "identity": p.identity,
            "range": [stream.start, stream.stop],
            "shard": [k, parts],
            "batch_size": stream.forward_batch,  # the generator batch (the option)
            "generator": generator_identity(gen),
        }
        arrays = stats.state_dict()
        if out is not None and is_main():
            write_meta_npz(out, meta, arrays, force=True)
    return meta, arrays


def read_partial(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of a partial file written by :func:`ganspace_shard` (a one-line error naming
    the file when its metadata or statistics are malformed)."""
    meta, arrays = read_meta_npz(path, "GANSpace partial file", PARTIAL_FORMAT)
    ident, rng = meta.get("identity"), meta.get("range")
    samples = ident.get("samples") if isinstance(ident, dict) else None
    ok = isinstance(samples, dict) and all(k in ident for k in ("k", "layers", "solver", "n_regression"))
    ok = ok and all(k in samples for k in ("n", "seed", "space")) and isinstance(samples.get("generator"), dict)
    ok = ok and isinstance(rng, list) and len(rng) == 2 and all(type(v) is int for v in rng)
    ok = ok and type(samples["n"]) is int and 0 <= rng[0] <= rng[1] <= samples["n"]
    if not ok:
        raise BadInputError(f"{path}: malformed GANSpace partial file (identity or sample range)")
    mean = arrays.get("mean")
    dim = mean.shape[0] if mean is not None and mean.ndim == 1 else -1
    try:
        saved_arrays(arrays, {"n": (), "mean": (dim,), "m2": (dim, dim)})
    except BadInputError as e:
        raise BadInputError(f"{path}: malformed GANSpace partial file ({e})") from None
    if int(arrays["n"]) != rng[1] - rng[0]:
        raise BadInputError(f"{path}: malformed GANSpace partial file ({int(arrays['n'])} samples in {rng})")
    return meta, arrays


def merge_partials(
    gen: Generator, parts: list[tuple[dict[str, Any], dict[str, np.ndarray]]], job: Job | None = None
) -> DirectionBank:
    """Combine shard statistics (which must cover all n samples exactly once) into the bank."""
    ident = parts[0][0]["identity"]
    for meta, _ in parts[1:]:
        if meta["identity"] != ident:
            raise BadInputError("the partial files come from different runs (options or generator differ)")
    s = ident["samples"]
    check_coverage([tuple(m["range"]) for m, _ in parts], s["n"])
    fp = s["generator"]["fingerprint"]
    if gen.fingerprint and fp and gen.fingerprint != fp:
        raise MismatchError("the partial files were made with a different checkpoint")
    gen = gen.with_settings(**RenderSettings.from_record(s["generator"]))
    p = plan(
        gen,
        space=s["space"],
        n=s["n"],
        k=ident["k"],
        batch_size=parts[0][0].get("batch_size", 500),
        seed=s["seed"],
        layers=ident["layers"],
        solver=ident["solver"],
        n_regression=ident["n_regression"] or None,
        width=ident.get("width"),
    )
    if json_normal(p.identity) != ident:
        raise MismatchError("the generator's settings differ from those the partial files were made with")
    stats = MeanCov(p.stream.dim, gen.device)
    for _, arrays in sorted(parts, key=lambda part: part[0]["range"][0]):
        part = MeanCov(p.stream.dim, gen.device)
        part.load_state_dict(arrays)
        stats.merge(part)
    return finish(gen, p, pca_from_cov(stats, p.k), job=job or Job(None, ident))


def merge_files(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    ckpt: str | None = None,
    device: str = "cpu",
    force: bool = False,
) -> dict[str, Any]:
    """Merge partial files into a bank saved at ``out``; the generator is ``ckpt`` or the one the
    partials record."""
    from ..generators import load_generator
    from ..util.fileio import check_writable

    check_writable(out, force)
    parts = [read_partial(p) for p in paths]
    gen = load_generator(ckpt or checkpoint_of(parts[0][0].get("generator") or {}), device=device)
    bank = merge_partials(gen, parts)
    bank.save(out, force=force)
    return {"out": str(out), "parts": len(paths), "bank": bank}


register_merger(PARTIAL_FORMAT, merge_files, "directions.npz")
