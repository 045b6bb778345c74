"""InterFaceGAN inputs and outputs: boundaries from sample files + score files, from a predictor run,
and conversion between official ``boundary.npy`` files and banks.

The fitting itself lives in :mod:`dirfind.methods.interfacegan`; this module gathers the training
rows (latents in the requested space, aligned with the scores) and records where they came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bank import RENDER_DEFAULTS, DirectionBank, generator_identity
from ..errors import BadInputError, MismatchError, NotFoundError
from ..fileio import atomic_path
from ..generators.base import Generator
from ..progress import log, warn
from ..scores import StreamLatents, load_predictor, predict_stream, read_scores
from ..specs import parse_indices
from .interfacegan import Boundary, check_options, features, fit_bank, load_conditions

#: options of :func:`~dirfind.methods.interfacegan.fit_bank` the commands pass through
FIT_KEYS = ("ratio", "val_split", "C", "solver", "seed", "invalid_value", "max_iter")


def boundary_log(name: str, b: Boundary) -> None:
    """One log line per boundary, with the official function's accuracy figures."""
    parts = [f"{name}: {b.train_per_side}+{b.train_per_side} training"]
    if b.val_total:
        parts.append(f"validation {b.val_correct}/{b.val_total} = {b.val_accuracy:.6f}")
    if b.remaining_total:
        parts.append(f"remaining {b.remaining_correct}/{b.remaining_total} = {b.remaining_accuracy:.6f}")
    log(", ".join(parts))


def parse_layers(spec: str | None, space: str, num_ws: int | None) -> list[int] | None:
    """``--layers`` for w (edit layers) and w+ (training layers); refused for z."""
    if spec is None:
        return None
    if space == "z":
        raise BadInputError("--layers applies to the w and w+ spaces; z boundaries edit the whole latent")
    return parse_indices(spec, num_ws, "layer")


# ---------------------------------------------------------------------- latents + score files


def _load_latents(path: Path, gen: Generator | None) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """(sample-file meta or None, arrays with ``indices``, ``latents`` and maybe ``z``)."""
    from ..samples import read_samples

    if not path.exists():
        raise NotFoundError(f"latents file not found: {path}")
    if path.suffix.lower() == ".npz":
        return read_samples(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise BadInputError(f"{path}: not a readable .npy array ({' '.join(str(e).split())[:100]})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f" or arr.ndim not in (2, 3) or len(arr) == 0:
        raise BadInputError(f"{path}: expected a float (N, D) or (N, layers, D) array of latents")
    if gen is None:
        raise BadInputError(f"{path} is a plain .npy: pass --ckpt so the bank records its generator")
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
    layers: str | None = None,
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
            msg = f"{path} was sampled from another checkpoint (sha256 {mine[:12]}...) than --ckpt"
            if not force:
                raise MismatchError(msg + "; pass --force to use it anyway")
            warn("warning: " + msg)
        g = meta.get("generator") or {}
        gen.configure(**{k: g[k] for k in RENDER_DEFAULTS if g.get(k) is not None})
    identity = generator_identity(gen) if gen is not None else dict(meta.get("generator_identity") or {})
    if not identity.get("family"):
        raise BadInputError(f"{path} does not record its generator; pass --ckpt")
    if space not in ("z", "w", "w+"):
        raise BadInputError(f"--space must be z, w or w+, got {space!r}")
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
        raise BadInputError(f"{path} holds {fspace} latents; converting them to {space} needs --ckpt")
    lay = parse_layers(layers, space, identity.get("num_ws"))
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
            raise BadInputError(f"--name gives {len(override)} name(s) for {k} score column(s)")
        return list(override)
    if found and len(found) == k:
        return found
    return [default] if k == 1 else [f"{default}_{i}" for i in range(k)]


def from_files(
    latents_path: str | Path,
    scores_path: str | Path,
    *,
    space: str | None = None,
    layers: str | None = None,
    gen: Generator | None = None,
    names: Sequence[str] | None = None,
    conditions: Sequence[str] = (),
    force: bool = False,
    **fit: Any,
) -> DirectionBank:
    """Boundaries from ``dirfind sample`` latents (or a plain .npy with ``gen``) and a score file."""
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
    return fit_bank(
        x,
        scores,
        _names(found, names, scores.shape[1], Path(scores_path).stem),
        space=space,
        generator=identity,
        layers=lay,
        conditions=cond,
        condition_info=cond_info,
        source=f"scores file {scores_path} for latents {latents_path}",
        progress=boundary_log,
        extra_info={"inputs": source},
        **fit,
    )


# ---------------------------------------------------------------------- predictor runs


def from_predictor(
    gen: Generator,
    n: int,
    predictor: str | Callable[[torch.Tensor], Any],
    *,
    space: str | None = None,
    layers: str | None = None,
    names: Sequence[str] | None = None,
    conditions: Sequence[str] = (),
    batch_size: int = 64,
    job: Any = None,
    scores_out: str | Path | None = None,
    force: bool = False,
    label: str | None = None,
    **fit: Any,
) -> DirectionBank:
    """Sample ``n`` latents (seed ``fit['seed']``, the samples of ``dirfind sample``), render and
    score them batch by batch with ``predictor``, then fit one boundary per score column."""
    space = space or gen.spaces[0]
    gen.check_space(space)
    fn = load_predictor(predictor) if isinstance(predictor, str) else predictor
    label = label or (predictor if isinstance(predictor, str) else getattr(fn, "__qualname__", "predictor"))
    seed = int(fit.get("seed") or 0)
    lay = parse_layers(layers, space, gen.num_ws)
    check_options(n, fit.get("ratio", 0.02), fit.get("val_split", 0.3), fit.get("C", 1.0), fit.get("solver", "svc"))
    scores, found = predict_stream(gen, n, fn, space=space, seed=seed, batch_size=batch_size, job=job)
    default = getattr(fn, "__name__", "score")
    col_names = _names(found, names, scores.shape[1], default)
    if scores_out is not None:
        with atomic_path(scores_out, force=force, suffix=".npy") as tmp:
            np.save(tmp, scores if scores.shape[1] > 1 else scores[:, 0])
    rows = StreamLatents(gen, n, space, seed=seed, layers=lay, batch_size=max(batch_size, 256))
    cond, cond_info = load_conditions(conditions, space, rows.shape[1], lay)
    return fit_bank(
        rows,
        scores,
        col_names,
        space=space,
        generator=generator_identity(gen),
        layers=lay,
        conditions=cond,
        condition_info=cond_info,
        source=f"predictor {label} on {n} samples (seed {seed})",
        progress=boundary_log,
        extra_info={"inputs": {"predictor": str(label), "n": n, "sample_seed": seed, "scores_out": scores_out}},
        **fit,
    )


# ---------------------------------------------------------------------- official boundary.npy files

_SPACE_IN_NAME = re.compile(r"_(w|wp|z)_boundary", re.IGNORECASE)


def import_boundary(
    path: str | Path,
    *,
    gen: Generator | None = None,
    space: str | None = None,
    layers: str | None = None,
    name: str | None = None,
    intercept: float = 0.0,
) -> DirectionBank:
    """An official InterFaceGAN ``boundary.npy`` ((1, D) or (D,)) as a one-direction bank.

    The space comes from ``space``, else the official file name (``..._w_boundary.npy`` -> w,
    otherwise z). Without ``gen`` the bank records only the space and dimension (pass ``--ckpt``
    to traverse). ``intercept`` defaults to 0, the official ``linear_interpolate``'s distance n·x.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"boundary file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise BadInputError(f"{path}: not a readable .npy array ({' '.join(str(e).split())[:100]})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
        raise BadInputError(f"{path}: expected a float array of shape (1, D)")
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.size == 0:
        raise BadInputError(f"{path}: expected a boundary of shape (1, D) or (D,), got {arr.shape}")
    v = arr.astype(np.float64)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(v).all() or norm == 0:
        raise BadInputError(f"{path}: the boundary is zero or contains NaN/inf")
    if abs(norm - 1) > 1e-3:
        warn(f"warning: {path} has norm {norm:.4g}; normalising to a unit direction")
    if space is None:
        m = _SPACE_IN_NAME.search(path.name)
        space = {"w": "w", "wp": "w+", "z": "z"}[m[1].lower()] if m else "z"
    if space not in ("z", "w", "w+"):
        raise BadInputError(f"--space must be z, w or w+, got {space!r}")
    if gen is not None:
        identity = generator_identity(gen)
        gen.check_space(space)
    else:
        identity = {"family": "unknown", "checkpoint": None, "fingerprint": None}
        identity["z_dim" if space == "z" else "w_dim"] = int(v.size)
    lay = parse_layers(layers, space, identity.get("num_ws"))
    return DirectionBank(
        directions=(v / norm)[None].astype(np.float32),
        space=space,
        method="interfacegan",
        generator=identity,
        layers=lay if space != "z" else None,
        names=[name or re.sub(r"_boundary$", "", path.stem)],
        scores=np.zeros(1, np.float32),
        params={"imported": str(path), "space": space, "layers": lay},
        info={
            "source": f"official boundary file {path}",
            "norm_in_file": norm,
            "intercept": "signed distance = direction · latent + intercept; imported files carry none (0 = the "
            "official linear_interpolate's n·x)",
        },
        step_unit="distance",
        default_range=(-3.0, 3.0),
        intercepts=np.array([intercept], np.float32),
    )


def export_boundary(bank: DirectionBank, index: int, out: str | Path, force: bool = False) -> dict[str, Any]:
    """Write direction ``index`` as an official-style ``boundary.npy``: (1, D) float32, unit norm."""
    (k,) = bank.check_indices([index])
    d = bank.directions[k].astype(np.float32)[None]
    with atomic_path(out, force=force, suffix=".npy") as tmp:
        np.save(tmp, d)
    return {
        "out": str(out),
        "index": k,
        "name": bank.names[k],
        "space": bank.space,
        "shape": list(d.shape),
        "intercept": None if bank.intercepts is None else float(bank.intercepts[k]),
    }
