"""Direction banks: the one versioned ``.npz`` format every method writes (spec: docs/bank-format.md).

A bank holds K unit directions in one edit space of one generator, how big a step is
(``scales``), how good each direction is (``scores``), and everything needed to reproduce and
apply it. It loads with ``numpy.load(path, allow_pickle=False)``: plain arrays plus one JSON string.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import BadInputError, MismatchError, NotFoundError
from .util.fileio import atomic_path, read_npz
from .util.progress import warn

FORMAT = "dirfind.bank"
FORMAT_VERSION = 1
SPACES = ("z", "w", "w+")
STEP_UNITS = ("unit", "sigma", "distance")
_OPTIONAL = ("mean", "intercepts", "origin")
_UNIT_TOL = 1e-3
#: JSON types of the metadata fields a bank file may carry (checked on load; absent = default)
_META_TYPES: dict[str, type] = {
    "method": str,
    "space": str,
    "step_unit": str,
    "created": str,
    "dirfind_version": str,
    "generator": dict,
    "params": dict,
    "info": dict,
    "layers": list,
    "names": list,
    "default_range": list,
}
_JSON_KIND = {str: "a string", dict: "an object", list: "a list", int: "a number", float: "a number", bool: "a boolean"}


def _jsonable(x: Any) -> Any:
    """Make params/info JSON-safe (numpy scalars, arrays, tuples, paths)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


@dataclass
class DirectionBank:
    """K unit directions in one edit space of one generator: the format every method writes.

    A step ``a`` along direction k moves the latent by ``a * scales[k] * directions[k]``.
    ``save``/``load`` write and read it atomically as plain arrays plus one JSON string.

    Parameters
    ----------
    directions : ndarray (K, D)
        Unit rows. For ``space="w+"`` each is ``len(layers) * w_dim`` long (one block per layer).
    space : str
        ``z``, ``w`` or ``w+``.
    method : str
        The method that made the bank (``sefa``, ``ganspace``, ...).
    generator : dict
        The generator record (:func:`generator_identity`): family, fingerprint, dimensions and the
        non-default render settings the directions were found under.
    layers : list of int, optional
        The latent-reading layers an edit applies to (None = all). A ``z`` bank with layers
        applies its direction to those layers' copies of z (per-layer z families, BigGAN).
    scales, scores : ndarray (K,), optional
        Step size of one unit (default 1) and how good each direction is (method-defined).
    names : list of str, optional
        Direction names (default ``<method>_<i>``).
    params, info : dict
        The options that made the bank, and what the method reports about it.
    step_unit : str
        What a unit step means: ``unit``, ``sigma`` (PCA banks) or ``distance`` (hyperplanes).
    default_range : (float, float)
        The step range traversals use by default.
    mean, intercepts, origin : ndarray, optional
        The latent mean (PCA), hyperplane offsets (InterFaceGAN) and the sample a local bank was
        found at (Jacobian).
    extras : dict of ndarray
        Further method-specific arrays (``extra_<name>`` in the file).
    """

    directions: np.ndarray
    space: str
    method: str
    generator: dict[str, Any]
    layers: list[int] | None = None
    scales: np.ndarray | None = None
    scores: np.ndarray | None = None
    names: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    step_unit: str = "unit"
    default_range: tuple[float, float] = (-3.0, 3.0)
    mean: np.ndarray | None = None
    intercepts: np.ndarray | None = None
    origin: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    created: str = ""
    dirfind_version: str = __version__
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.directions = np.ascontiguousarray(np.asarray(self.directions, dtype=np.float32))
        k = self.directions.shape[0] if self.directions.ndim == 2 else 0
        self.scales = np.ones(k, np.float32) if self.scales is None else np.asarray(self.scales, np.float32)
        self.scores = np.zeros(k, np.float32) if self.scores is None else np.asarray(self.scores, np.float32)
        self.names = [f"{self.method}_{i}" for i in range(k)] if self.names is None else [str(n) for n in self.names]
        self.layers = None if self.layers is None else [int(i) for i in self.layers]
        if len(self.default_range) != 2:
            raise BadInputError(f"bank default range must be two numbers (A, B), got {list(self.default_range)}")
        self.default_range = (float(self.default_range[0]), float(self.default_range[1]))
        for name in _OPTIONAL:
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, np.asarray(v, np.float32))
        self.created = self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> DirectionBank:
        """Check shapes, finiteness, unit rows and metadata; raise a one-line BadInputError."""
        d = self.directions
        if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0:
            raise BadInputError(f"bank directions must be a non-empty K x D matrix, got shape {d.shape}")
        k, dim = d.shape
        if not np.isfinite(d).all():
            raise BadInputError("bank directions contain NaN or inf")
        norms = np.linalg.norm(d.astype(np.float64), axis=1)
        if np.abs(norms - 1).max() > _UNIT_TOL:
            raise BadInputError(f"bank directions must have unit rows (norms {norms.min():.4g}..{norms.max():.4g})")
        for name, arr in (("scales", self.scales), ("scores", self.scores)):
            if arr.shape != (k,):
                raise BadInputError(f"bank {name} must have shape ({k},), got {arr.shape}")
            if not np.isfinite(arr).all():
                raise BadInputError(f"bank {name} contain NaN or inf")
        if (self.scales <= 0).any():
            raise BadInputError("bank scales must be positive")
        if len(self.names) != k:
            raise BadInputError(f"bank has {k} directions but {len(self.names)} names")
        if self.space not in SPACES:
            raise BadInputError(f"bank space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.step_unit not in STEP_UNITS:
            raise BadInputError(f"bank step unit must be one of {', '.join(STEP_UNITS)}, got {self.step_unit!r}")
        if not self.method:
            raise BadInputError("bank has no method name")
        g = self.generator
        if not isinstance(g, dict) or not g.get("family"):
            raise BadInputError("bank lacks the identity of its generator (family, fingerprint)")
        if self.layers is not None:
            if len(self.layers) == 0 or min(self.layers) < 0 or len(set(self.layers)) != len(self.layers):
                raise BadInputError(f"bank layers must be distinct indices >= 0, got {self.layers}")
            if g.get("num_ws") and max(self.layers) >= int(g["num_ws"]):
                raise BadInputError(f"bank layers {self.layers} exceed the generator's {g['num_ws']} layers")
        expected = self.expected_dim()
        if expected is not None and dim != expected:
            raise BadInputError(f"bank directions have dimension {dim}, but space {self.space} needs {expected}")
        if self.mean is not None and self.mean.shape != (dim,):
            raise BadInputError(f"bank mean must have shape ({dim},), got {self.mean.shape}")
        if self.intercepts is not None and self.intercepts.shape != (k,):
            raise BadInputError(f"bank intercepts must have shape ({k},), got {self.intercepts.shape}")
        lo, hi = self.default_range
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise BadInputError("bank default range must be finite")
        return self

    def expected_dim(self) -> int | None:
        """Direction length implied by the space and the generator dims (None if unknown)."""
        g = self.generator
        if self.space == "z":
            return int(g["z_dim"]) if g.get("z_dim") else None
        if not g.get("w_dim"):
            return None
        if self.space == "w":
            return int(g["w_dim"])
        n_layers = len(self.layers) if self.layers is not None else int(g.get("num_ws") or 0)
        return n_layers * int(g["w_dim"]) if n_layers else None

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.directions.shape[0])

    @property
    def dim(self) -> int:
        return int(self.directions.shape[1])

    def check_indices(self, indices: Sequence[int]) -> list[int]:
        """Validate direction indices against this bank (negative ones count from the end)."""
        out = []
        for i in indices:
            if not -len(self) <= int(i) < len(self):
                raise BadInputError(
                    f"direction {i} out of range: the bank has {len(self)} directions (0..{len(self) - 1})",
                    param="dirs",
                )
            out.append(int(i) % len(self))
        return out

    def resolve(self, items: Sequence[int | str]) -> list[int]:
        """Direction indices of ``items``: indices (negative ones count from the end) or names.

        A name matches exactly, else ignoring a leading sign, so ``smile`` finds ``+smile`` (or
        ``-smile``) as ``dirfind label`` names them, else ignoring case; a string that names no
        direction but is an integer (``"3"``) is an index. An unknown or ambiguous name is an error.
        """
        out = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, np.integer, str)):
                raise BadInputError(f"a direction is an index or a name, got {item!r}", param="dirs")
            if isinstance(item, (int, np.integer)):
                out.extend(self.check_indices([int(item)]))
                continue
            name = str(item).strip()
            hits = [i for i, n in enumerate(self.names) if n == name]
            if not hits:
                bare = name.lstrip("+-")
                signed = [i for i, n in enumerate(self.names) if n.lstrip("+-") == bare]
                hits = [i for i in signed if self.names[i] == "+" + bare] or signed
            if not hits:
                hits = [i for i, n in enumerate(self.names) if n.lower() == name.lower()]
            if not hits and re.fullmatch(r"[+-]?\d+", name):
                out.extend(self.check_indices([int(name)]))
                continue
            if len(hits) != 1:
                known = ", ".join(self.names[:12]) + (", ..." if len(self) > 12 else "")
                what = "no direction is named" if not hits else f"{len(hits)} directions are named"
                raise BadInputError(f"{what} {name!r} (names: {known})", param="dirs")
            out.append(hits[0])
        return out

    def fingerprint(self) -> str:
        """sha256 of what an edit with this bank does (directions, scales, space, layers, step
        unit): results computed from a bank (``dirfind evaluate``) record it."""
        import hashlib

        h = hashlib.sha256()
        h.update(json.dumps([self.space, self.layers, self.step_unit], sort_keys=True).encode())
        for arr in (self.directions, self.scales, self.intercepts):
            if arr is not None:
                h.update(np.ascontiguousarray(arr, np.float32).tobytes())
        return h.hexdigest()

    def check_generator(self, gen: Any, force: bool = False) -> None:
        """Refuse to use this bank with another generator (different fingerprint) unless ``force``."""
        mine, theirs = self.generator.get("fingerprint"), getattr(gen, "fingerprint", None)
        if mine and theirs and mine != theirs:
            msg = (
                f"bank was made for {self.generator.get('family')} checkpoint "
                f"{self.generator.get('checkpoint') or '?'} (sha256 {mine[:12]}...), not this one "
                f"(sha256 {theirs[:12]}...)"
            )
            if not force:
                raise MismatchError(msg + "; pass force=True to use it anyway", param="force")
            warn("warning: " + msg)
        if self.space not in gen.spaces:
            raise MismatchError(f"bank edits space {self.space}, which {gen.family} generators do not have")
        expected = {"z": gen.z_dim}.get(self.space, gen.w_dim)
        if self.space == "w+":
            expected *= len(self.layers) if self.layers is not None else gen.num_ws
        if self.dim != expected:
            raise MismatchError(f"bank directions have dimension {self.dim}, this generator needs {expected}")
        if self.layers is not None:
            if self.space == "z" and gen.layer_space() != "z":
                raise MismatchError(
                    f"bank applies a z direction to layers {self.layers}, "
                    f"but {gen.family} generators have no per-layer z"
                )
            if max(self.layers) >= gen.num_ws:
                raise MismatchError(f"bank layers {self.layers} exceed this generator's {gen.num_ws} layers")

    def meta(self) -> dict[str, Any]:
        return _jsonable(
            {
                "format": FORMAT,
                "format_version": self.format_version,
                "dirfind_version": self.dirfind_version,
                "created": self.created,
                "method": self.method,
                "space": self.space,
                "layers": self.layers,
                "step_unit": self.step_unit,
                "default_range": list(self.default_range),
                "names": self.names,
                "params": self.params,
                "generator": self.generator,
                "info": self.info,
            }
        )

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description for ``dirfind info`` and ``--json`` output."""
        m = self.meta()
        m.pop("names")
        m["num_directions"] = len(self)
        m["dim"] = self.dim
        m["directions"] = [
            {"index": i, "name": n, "score": float(s), "scale": float(c)}
            for i, (n, s, c) in enumerate(zip(self.names, self.scores, self.scales, strict=True))
        ]
        return m

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write atomically (temp file + rename); an existing file needs ``force``."""
        self.validate()
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "directions": self.directions,
            "scales": self.scales,
            "scores": self.scores,
            "names": np.array(self.names, dtype=str),
            "meta": np.array(json.dumps(self.meta(), sort_keys=True)),
        }
        for name in _OPTIONAL:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        for name, arr in self.extras.items():
            arrays[f"extra_{name}"] = np.asarray(arr)
        with atomic_path(path, force=force, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> DirectionBank:
        """Read and validate a bank; every problem is a one-line error naming the file."""
        path = Path(path)
        data = read_npz(path, "bank")
        missing = [k for k in ("directions", "scales", "scores", "meta") if k not in data]
        if missing:
            raise BadInputError(f"{path}: not a dirfind bank (missing {', '.join(missing)})")
        try:
            meta = json.loads(str(data["meta"][()]))
        except (ValueError, TypeError, IndexError):
            raise BadInputError(f"{path}: bank metadata is not valid JSON") from None
        if not isinstance(meta, dict):
            raise BadInputError(f"{path}: bank metadata is not a JSON object")
        if meta.get("format") != FORMAT:
            raise BadInputError(f"{path}: not a dirfind bank (format {meta.get('format')!r})")
        version = meta.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BadInputError(f"{path}: invalid bank format version {version!r}")
        if version > FORMAT_VERSION:
            raise BadInputError(
                f"{path}: bank format version {version} is newer than this dirfind "
                f"supports ({FORMAT_VERSION}); upgrade dirfind"
            )
        for key, types in _META_TYPES.items():
            if meta.get(key) is not None and not isinstance(meta[key], types):
                want, got = _JSON_KIND[types], _JSON_KIND.get(type(meta[key]), type(meta[key]).__name__)
                raise BadInputError(f"{path}: malformed bank metadata ({key} must be {want}, not {got})")
        for key in ("directions", "scales", "scores", *_OPTIONAL):
            if key in data and data[key].dtype.kind not in "iuf":
                raise BadInputError(f"{path}: malformed bank ({key} holds {data[key].dtype.name}, not numbers)")
        names = [str(n) for n in data["names"]] if "names" in data else meta.get("names")
        try:
            bank = cls(
                directions=data["directions"],
                space=meta.get("space", ""),
                method=meta.get("method", ""),
                generator=meta.get("generator") or {},
                layers=meta.get("layers"),
                scales=data["scales"],
                scores=data["scores"],
                names=names,
                params=meta.get("params") or {},
                info=meta.get("info") or {},
                step_unit=meta.get("step_unit", "unit"),
                default_range=tuple(meta.get("default_range") or (-3.0, 3.0)),
                extras={k[len("extra_") :]: v for k, v in data.items() if k.startswith("extra_")},
                created=meta.get("created", ""),
                dirfind_version=meta.get("dirfind_version", ""),
                format_version=version,
                **{k: data[k] for k in _OPTIONAL if k in data},
            )
        except BadInputError as e:
            raise BadInputError(f"{path}: {e}") from None
        except (TypeError, ValueError, IndexError) as e:
            raise BadInputError(f"{path}: malformed bank ({' '.join(str(e).split())[:120]})") from None
        return bank


def generator_identity(gen: Any) -> dict[str, Any]:
    """What a bank records about the generator it was made for: identity, dimensions and the render
    settings the directions were found under, where they differ from the defaults (traverse uses
    them unless told otherwise)."""
    keys = (
        "family",
        "checkpoint",
        "checkpoint_path",
        "fingerprint",
        "z_dim",
        "w_dim",
        "num_ws",
        "resolution",
        "channels",
        "num_classes",
    )
    return {**{k: getattr(gen, k) for k in keys}, **gen.settings.record()}


def checkpoint_of(record: dict[str, Any]) -> str:
    """The checkpoint a generator record (of a bank, a sample or partial file) names: the reference
    as given while it still resolves (a registry name, a URL, a path from here), else the absolute
    path recorded at creation."""
    from .registry import resolve

    ref, path = record.get("checkpoint"), record.get("checkpoint_path")
    if not ref:
        raise BadInputError("the file does not record its checkpoint; pass ckpt", param="ckpt")
    try:
        resolve(ref, fetch_missing=False)
    except NotFoundError:
        if path and Path(path).exists():
            return str(path)
    return str(ref)


def is_bank_file(path: str | Path) -> bool:
    """Whether ``path`` is a zip archive with a bank's members (without reading the arrays)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return {"meta.npy", "directions.npy"} <= names
