"""InterFaceGAN inputs: boundaries from sample files + score files, or from a predictor run.

The fitting itself lives in :mod:`.fit` and :mod:`.banks`; this module gathers the training rows
(latents in the requested space, aligned with the scores) and records where they came from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...bank import DirectionBank, generator_identity
from ...core.dist import is_main
from ...core.jobs import resumable
from ...core.parallel import bank_on_main
from ...core.predictors import load_predictor, predict_stream
from ...core.samplefile import read_samples
from ...core.sampling import SampleStream, StreamLatents
from ...errors import BadInputError, MismatchError, NotFoundError
from ...generators.base import Generator
from ...generators.settings import RenderSettings
from ...util.fileio import atomic_path, check_writable, read_npy
from ...util.progress import log, warn
from .banks import features, fit_bank
from .conditions import Condition, load_conditions
from .fit import Boundary, FitOptions
from .scores import read_scores


def boundary_log(name: str, b: Boundary) -> None:
    """One log line per boundary, with the official function's accuracy figures."""
    parts = [f"{name}: {b.train_per_side}+{b.train_per_side} training"]
    if b.val_total:
        parts.append(f"validation {b.val_correct}/{b.val_total} = {b.val_accuracy:.6f}")
    if b.remaining_total:
        parts.append(f"remaining {b.remaining_correct}/{b.remaining_total} = {b.remaining_accuracy:.6f}")
    log(", ".join(parts))


def check_layers(layers: Sequence[int] | None, space: str, num_ws: int | None) -> list[int] | None:
    """``layers`` for w (edit layers) and w+ (training layers); refused for z."""
    if layers is None:
        return None
    if space == "z":
        raise BadInputError("layers apply to the w and w+ spaces; z boundaries edit the whole latent", param="layers")
    sel = [int(i) for i in layers]
    bad = [i for i in sel if i < 0 or (num_ws and i >= num_ws)]
    if bad or not sel or len(set(sel)) != len(sel):
        top = f"0..{num_ws - 1}" if num_ws else ">= 0"
        raise BadInputError(f"layers must be distinct indices in {top}, got {sel}", param="layers")
    return sel


# ---------------------------------------------------------------------- latents + score files


def _load_latents(path: Path, gen: Generator | None) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """(sample-file meta or None, arrays with ``indices``, ``latents`` and maybe ``z``)."""
    if not path.exists():
        raise NotFoundError(f"latents file not found: {path}")
    if path.suffix.lower() == ".npz":
        return read_samples(path)
    arr = read_npy(path, "latents")
    if arr.dtype.kind != "f" or arr.ndim not in (2, 3) or len(arr) == 0:
        raise BadInputError(f"{path}: expected a float (N, D) or (N, layers, D) array of latents")
    if gen is None:
        raise BadInputError(f"{path} is a plain .npy: pass ckpt so the bank records its generator", param="ckpt")
    return None, {"indices": np.arange(len(arr), dtype=np.int64), "latents": arr}


def _file_space(meta: dict[str, Any] | None, arr: np.ndarray, gen: Generator | None) -> str:
    if meta is not None:
        return str(meta.get("space", "z"))
    if arr.ndim == 3:
        return "w+"
    if gen is not None and "w" in gen.spaces and arr.shape[1] == gen.w_dim and gen.w_dim != gen.z_dim:
        return "w"
    return "z"


def training_rows(
    latents_path: str | Path,
    *,
    space: str | None = None,
    layers: Sequence[int] | None = None,
    gen: Generator | None = None,
    force: bool = False,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray, str, list[int] | None, dict[str, Any], dict[str, Any]]:
    """(features (N, D), global indices, space, layers, generator identity, source info) of a latents file.

    A ``dirfind sample`` file gives its own space and generator; ``space`` may differ (``z`` is
    always stored; w / w+ are embedded from z with ``gen``, configured as the samples were made).
    """
    path = Path(latents_path)
    meta, arrays = _load_latents(path, gen)
    lat = arrays["latents"]
    fspace = _file_space(meta, lat, gen)
    space = space or fspace
    if meta is not None and gen is not None:
        mine = (meta.get("generator") or {}).get("fingerprint")
        if mine and gen.fingerprint and mine != gen.fingerprint:
            msg = f"{path} was sampled from another checkpoint (sha256 {mine[:12]}...) than ckpt"
            if not force:
                raise MismatchError(msg + "; pass force=True to use it anyway", param=("ckpt", "force"))
            warn("warning: " + msg)
        gen = gen.with_settings(**RenderSettings.from_record(meta.get("generator")))
    identity = generator_identity(gen) if gen is not None else dict(meta.get("generator_identity") or {})
    if not identity.get("family"):
        raise BadInputError(f"{path} does not record its generator; pass ckpt", param="ckpt")
    if space not in ("z", "w", "w+"):
        raise BadInputError(f"space must be z, w or w+, got {space!r}", param="space")
    if gen is not None:
        gen.check_space(space)
        shape = gen.latent_shape(fspace)
        if tuple(lat.shape[1:]) != tuple(shape):
            raise MismatchError(f"{path}: latents of shape {lat.shape[1:]} do not fit {fspace} {tuple(shape)}")
    if space == fspace:
        x = lat
    elif space == "z" and "z" in arrays:
        x = arrays["z"]
    elif "z" in arrays and gen is not None:
        x = _embed(gen, arrays["z"], space, batch_size)
    else:
        raise BadInputError(f"{path} holds {fspace} latents; converting them to {space} needs ckpt", param="ckpt")
    lay = check_layers(layers, space, identity.get("num_ws"))
    x = features(x, space, lay)
    if not np.isfinite(x).all():
        raise BadInputError(f"{path}: latents contain NaN or inf")
    source = {"latents": str(path), "latents_space": fspace, "sample_seed": (meta or {}).get("seed")}
    return x, arrays["indices"], space, lay, identity, source


def _embed(gen: Generator, z: np.ndarray, space: str, batch_size: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for lo in range(0, len(z), batch_size):
            zt = torch.from_numpy(np.asarray(z[lo : lo + batch_size], np.float32)).to(gen.device, gen.dtype)
            out.append(gen.embed(zt, space).float().cpu().numpy())
    return np.concatenate(out)


def _names(found: list[str] | None, override: Sequence[str] | None, k: int, default: str) -> list[str]:
    if override:
        if len(override) != k:
            raise BadInputError(f"names gives {len(override)} name(s) for {k} score column(s)", param="names")
        return list(override)
    if found and len(found) == k:
        return found
    return [default] if k == 1 else [f"{default}_{i}" for i in range(k)]


def from_files(
    latents_path: str | Path,
    scores_path: str | Path,
    *,
    space: str | None = None,
    layers: Sequence[int] | None = None,
    gen: Generator | None = None,
    names: Sequence[str] | None = None,
    conditions: Sequence[Condition] = (),
    fit: FitOptions | None = None,
    out: str | Path | None = None,
    force: bool = False,
) -> DirectionBank:
    """Boundaries from a sample file's latents (or a plain .npy with ``gen``) and a score file.

    Parameters
    ----------
    latents_path, scores_path : str or Path
        A ``dirfind sample`` file (or a plain (N, D) / (N, layers, D) ``.npy``) and its scores
        (``.npy`` (N,) / (N, K) or ``.csv``).
    space, layers : optional
        The boundary's space (default: the file's) and its w+ layers (w: edited; w+: fitted on).
    gen : Generator, optional
        Needed for plain ``.npy`` latents and to embed z samples into w / w+.
    names, conditions, fit
        Direction names, directions to be orthogonal to, and the SVM fitting options.
    out : str or Path, optional
        Save the bank there (``force`` overwrites; also lets samples of another checkpoint be used).

    Returns
    -------
    DirectionBank
        One unit normal and intercept per score column.
    """
    fit = fit or FitOptions()
    if out is not None:
        check_writable(out, force)
    x, indices, space, lay, identity, source = training_rows(
        latents_path, space=space, layers=layers, gen=gen, force=force
    )
    scores, found, pos = read_scores(scores_path, indices)
    if len(pos) < len(x):
        log(f"{len(pos)} of {len(x)} samples have scores; fitting on those")
        x = x[pos]
    elif not np.array_equal(pos, np.arange(len(x))):
        x = x[pos]
    cond, cond_info = load_conditions(conditions, space, x.shape[1], lay)
    source.update(scores=str(scores_path), scored_samples=int(len(pos)))
    bank = fit_bank(
        x,
        scores,
        _names(found, names, scores.shape[1], Path(scores_path).stem),
        space=space,
        generator=identity,
        layers=lay,
        fit=fit,
        conditions=cond,
        condition_info=cond_info,
        source=f"scores file {scores_path} for latents {latents_path}",
        progress=boundary_log,
        extra_info={"inputs": source},
    )
    if out is not None and is_main():
        bank.save(out, force=force)
    return bank


# ---------------------------------------------------------------------- predictor runs


def from_predictor(
    gen: Generator,
    n: int,
    predictor: str | Callable[[torch.Tensor], Any],
    *,
    space: str | None = None,
    layers: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    conditions: Sequence[Condition] = (),
    fit: FitOptions | None = None,
    batch_size: int = 64,
    scores_out: str | Path | None = None,
    label: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    every: float = 60.0,
    job: Any = None,
) -> DirectionBank:
    """Sample ``n`` latents (stream 0 of ``fit.seed``: the samples of ``dirfind sample``), render
    and score them batch by batch with ``predictor``, then fit one boundary per score column.

    Parameters
    ----------
    gen : Generator
        The generator to sample and render.
    n : int
        Number of samples.
    predictor : str or callable
        ``module:function`` / ``file.py:function``, or the callable itself: images in [-1, 1]
        (NCHW tensor) -> (B,) / (B, K) scores or a dict of named columns.
    space, layers, names, conditions, fit
        As :func:`from_files`.
    batch_size : int
        Images per generator call.
    scores_out : str or Path, optional
        Also save the scores as ``.npy``.
    out : str or Path, optional
        Save the bank there; the scoring pass is then resumable from ``<out>.progress/``
        (``resume``, ``force``, ``every``).

    Returns
    -------
    DirectionBank
        One unit normal and intercept per score column.
    """
    fit = fit or FitOptions()
    fit.check_samples(n)
    space = space or gen.spaces[0]
    gen.check_space(space)
    lay = check_layers(layers, space, gen.num_ws)
    if scores_out is not None:
        check_writable(scores_out, force)
    fn = load_predictor(predictor) if isinstance(predictor, str) else predictor
    label = label or (predictor if isinstance(predictor, str) else getattr(fn, "__qualname__", "predictor"))
    seed = fit.seed
    ident = {
        "what": "interfacegan scores",
        "predictor": str(label),
        **SampleStream(gen, n, space, seed=seed).identity(),
    }
    if job is not None:
        return _predict_fit(gen, n, fn, label, space, lay, names, conditions, fit, batch_size, scores_out, force, job)
    with resumable(out, ident, resume=resume, force=force, every=every) as job:
        bank = _predict_fit(gen, n, fn, label, space, lay, names, conditions, fit, batch_size, scores_out, force, job)
        if out is not None and is_main():
            bank.save(out, force=force)
    return bank


def _predict_fit(
    gen: Generator,
    n: int,
    fn: Callable[[torch.Tensor], Any],
    label: str,
    space: str,
    lay: list[int] | None,
    names: Sequence[str] | None,
    conditions: Sequence[Condition],
    fit: FitOptions,
    batch_size: int,
    scores_out: str | Path | None,
    force: bool,
    job: Any,
) -> DirectionBank:
    seed = fit.seed
    scores, found = predict_stream(gen, n, fn, space=space, seed=seed, batch_size=batch_size, job=job, name=label)
    default = getattr(fn, "__name__", "score")
    col_names = _names(found, names, scores.shape[1], default)
    rows = StreamLatents(gen, n, space, seed=seed, layers=lay, batch_size=max(batch_size, 256))
    cond, cond_info = load_conditions(conditions, space, rows.shape[1], lay)

    def fitted() -> DirectionBank:  # on rank 0 alone in a distributed run (the scoring was shared)
        bank = fit_bank(
            rows,
            scores,
            col_names,
            space=space,
            generator=generator_identity(gen),
            layers=lay,
            fit=fit,
            conditions=cond,
            condition_info=cond_info,
            source=f"predictor {label} on {n} samples (seed {seed})",
            progress=boundary_log,
            extra_info={"inputs": {"predictor": str(label), "n": n, "sample_seed": seed, "scores_out": scores_out}},
        )
        if scores_out is not None:
            with atomic_path(scores_out, force=force, suffix=".npy") as tmp:
                np.save(tmp, scores if scores.shape[1] > 1 else scores[:, 0])
        return bank

    return bank_on_main(fitted)
