"""One reader for every latents file, and the projection file format.

Accepted (each a one-line error when it does not fit the generator):

* plain ``.npy`` arrays: (N, z_dim) z, (N, w_dim) w, (N, num_ws, w_dim) w+ (e4e / ReStyle /
  stylegan3-editing / PTI inversions), or one latent without the batch axis;
* pickled ``.npy`` dicts {image name: latent(s)} as ReStyle and stylegan3-editing save them, read with
  an allowlisting unpickler (numpy arrays, dicts, lists only; nothing else is ever constructed);
* ``.pt`` files (``torch.load(weights_only=True)``): a tensor, or a dict / list of tensors (e4e,
  PTI's per-image ``.pt``); for a series of iterations (ReStyle) the last one is used;
* ``dirfind sample`` files and ``dirfind project`` files (``.npz``, with their space and, for
  projections, the optimised noise maps and per-image losses).

Projection file (``.npz``, loads with ``numpy.load(allow_pickle=False)``): ``latents`` (N, *shape),
``noise<k>`` (N, 1, H, W) per noise input when optimised, ``loss``/``loss_<term>``/``psnr``/``ssim``
(N,), ``loss_curve`` (N, steps), ``restart_loss`` (N, R), ``targets`` (N, H, W, C) uint8 (the fitted
images), ``masks`` when used, and ``meta`` (JSON: format, space, layers, generator identity, options,
files and their sha256, per-image results).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BadInputError, NotFoundError
from ..generators.base import Generator
from ..util.fileio import check_numeric, read_meta_npz, write_meta_npz
from .edits import base_latents, working_space

FORMAT = "dirfind.projection"
FORMAT_VERSION = 1
SAMPLES = "dirfind.samples"


@dataclass
class LatentSet:
    """Latents of one space read from a file, with their names and (projections) noise maps."""

    latents: np.ndarray  # (N, *latent_shape(space)) float32
    space: str
    source: str  # "npy", "pt", "samples", "projection"
    names: list[str] = field(default_factory=list)
    noise: list[np.ndarray] | None = None  # per noise input: (N, 1, H, W)
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # a projection's other arrays (targets, psnr, ...)

    def __len__(self) -> int:
        return len(self.latents)

    def tensor(self) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.latents, dtype=np.float32))

    def noise_tensors(self, device: torch.device | str = "cpu") -> list[torch.Tensor] | None:
        return None if self.noise is None else [torch.from_numpy(n).to(device) for n in self.noise]

    def working(self, gen: Generator, edit_space: str, layers: list[int] | None) -> torch.Tensor:
        """The latents in the working space of an edit of ``edit_space`` on ``layers``."""
        return to_working(gen, self.tensor(), self.space, edit_space, layers)


def to_working(
    gen: Generator, lat: torch.Tensor, space: str, edit_space: str, layers: list[int] | None
) -> torch.Tensor:
    """Latents of ``space`` in the working space of an edit (z embedded, w repeated per layer)."""
    target = working_space(edit_space, layers)
    if space == target:
        return lat
    if space == "z":
        return base_latents(gen, lat, edit_space, layers).cpu()
    if space == "w" and target == "w+":
        return lat[:, None].expand(-1, gen.num_ws, -1).clone()
    raise BadInputError(f"{space} latents cannot be used for an edit of {edit_space}", param="latent_space")


# ---------------------------------------------------------------------- safe reading of raw files


class _NumpyOnly(pickle.Unpickler):
    """Unpickler that constructs numpy arrays, dtypes, dicts and lists only."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_npy(path: Path) -> Any:
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, _, dtype = read(f)
        except (ValueError, OSError, EOFError) as e:
            raise BadInputError(f"{path}: not a readable .npy file ({' '.join(str(e).split())[:100]})") from None
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        try:
            obj = _NumpyOnly(io.BytesIO(f.read()), encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
            raise BadInputError(f"{path}: pickled .npy that is not plain latents ({e})") from None
    return obj.item() if isinstance(obj, np.ndarray) and obj.shape == () else obj


def _read_pt(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - weights_only refuses anything but tensors and containers
        raise BadInputError(
            f"{path}: not a safely loadable .pt latents file ({' '.join(str(e).split())[:120]})"
        ) from None


def _array(x: Any) -> np.ndarray | None:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    if isinstance(x, np.ndarray) and x.dtype.kind in "fiu":
        return x.astype(np.float32)
    if isinstance(x, (list, tuple)) and x and all(_array(v) is not None for v in x):
        return _array(x[-1])  # a series of iterations (ReStyle): the last one
    return None


def _from_container(obj: Any, path: Path) -> tuple[np.ndarray, list[str]]:
    """Stack the latents of a tensor, array, dict or list into (N, ...) with names."""
    arr = _array(obj) if not isinstance(obj, (list, tuple, dict)) else None
    if arr is not None:
        return arr, []
    if isinstance(obj, np.ndarray):  # an array, but not of numbers
        check_numeric(obj, f"{path}: latents")
    if isinstance(obj, dict):
        for key in ("latents", "latent", "w", "ws", "projected_w"):  # one array under a known key
            if key in obj and _array(obj[key]) is not None and len(obj) == 1:
                return _array(obj[key]), []
        items = [(str(k), _array(v)) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(str(i), _array(v)) for i, v in enumerate(obj)]
    else:
        items = []
    if not items or any(a is None for _, a in items):
        raise BadInputError(f"{path}: holds no latent tensors (expected a tensor, or a dict/list of tensors)")
    shapes = {a.shape[-2:] if a.ndim >= 2 else a.shape for _, a in items}
    if len(shapes) != 1:
        raise BadInputError(f"{path}: latents of different shapes {sorted(shapes)}")
    parts = [a.reshape(-1, *a.shape[-2:]) if a.ndim >= 3 else a[None] for _, a in items]
    if any(len(p) != 1 for p in parts):  # (n_iters, L, C) per image: keep the last
        parts = [p[-1:] for p in parts]
    return np.concatenate(parts), [n for n, _ in items]


def _infer_space(arr: np.ndarray, gen: Generator | None) -> str:
    if arr.ndim == 3:
        return "w+"
    if (
        arr.ndim == 2
        and gen is not None
        and arr.shape[1] != gen.z_dim
        and arr.shape[1] == gen.w_dim
        and "w" in gen.spaces
    ):
        return "w"
    return "z"


def _fit(arr: np.ndarray, space: str, gen: Generator | None, path: Path) -> np.ndarray:
    check_numeric(arr, f"{path}: latents")
    if arr.ndim >= 2 and len(arr) == 0:
        raise BadInputError(f"{path}: holds no latents (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise BadInputError(f"{path}: latents contain NaN or inf")
    if gen is None:
        return arr
    if space not in gen.spaces:
        raise BadInputError(f"{path}: {space!r} latents, but {gen.family} has the spaces {', '.join(gen.spaces)}")
    shape = gen.latent_shape(space)
    if arr.ndim == len(shape):
        arr = arr[None]
    if tuple(arr.shape[1:]) != tuple(shape):
        hint = f" ({gen.num_ws} layers x {gen.w_dim})" if space == "w+" else ""
        raise BadInputError(
            f"{path}: latents of shape {tuple(arr.shape)} do not fit this {gen.family} generator's space {space} "
            f"{tuple(shape)}{hint}"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def read_latent_file(path: str | Path, gen: Generator | None = None, space: str | None = None) -> LatentSet:
    """Latents from any supported file (see the module docstring), checked against ``gen``.

    Parameters
    ----------
    path : str or Path
        The file.
    gen : Generator, optional
        Check the latents fit it (and tell z from w for 2-D arrays by their width).
    space : str, optional
        The space of a raw array (default: w+ for 3-D arrays; for 2-D, z unless only w fits).
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"latents file not found: {path}", param="latents")
    if path.is_dir():
        raise BadInputError(f"{path} is a folder, not a latents file", param="latents")
    if path.suffix == ".npz":
        return _read_dirfind_file(path, gen, space)
    obj = _read_pt(path) if path.suffix in (".pt", ".pth") else _read_npy(path)
    arr, names = _from_container(obj, path)
    space = space or _infer_space(arr, gen)
    return LatentSet(_fit(arr, space, gen, path), space, "pt" if path.suffix in (".pt", ".pth") else "npy", names)


def _read_dirfind_file(path: Path, gen: Generator | None, space: str | None) -> LatentSet:
    """A ``dirfind sample`` or ``dirfind project`` file, its metadata and arrays checked."""
    meta, data = read_meta_npz(path, "latents file (a dirfind sample or projection file)")
    fmt = meta.get("format")
    if fmt not in (FORMAT, SAMPLES):
        raise BadInputError(f"{path}: not a dirfind sample or projection file (format {fmt!r})")
    file_space = meta.get("latent_space") or meta.get("space")
    if file_space not in ("z", "w", "w+"):
        raise BadInputError(f"{path}: malformed latents file (its space is {file_space!r}, not z, w or w+)")
    if space is not None and space != file_space:
        raise BadInputError(f"{path} holds {file_space} latents, not {space}", param="latent_space")
    if "latents" not in data:
        raise BadInputError(f"{path}: malformed latents file (no latents array)")
    lat = _fit(data["latents"], file_space, gen, path)
    if fmt == SAMPLES:
        return LatentSet(lat, file_space, "samples", [], None, meta, {})
    images = meta.get("images", {})
    paths = images.get("paths", []) if isinstance(images, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise BadInputError(f"{path}: malformed projection file (images.paths must be a list of file names)")
    noise, rest = {}, {}
    for key, arr in data.items():
        if key.startswith("noise") and key != "noise":
            if not key[5:].isdigit():
                raise BadInputError(f"{path}: malformed projection file (array {key!r} is not noise<k>)")
            check_numeric(arr, f"{path}: {key}")
            if arr.ndim != 4 or len(arr) != len(lat) or not np.isfinite(arr).all():
                raise BadInputError(f"{path}: {key} must be finite noise maps (N={len(lat)}, 1, H, W), got {arr.shape}")
            noise[int(key[5:])] = arr.astype(np.float32)
        elif key != "latents":
            rest[key] = arr
    if sorted(noise) != list(range(len(noise))):
        raise BadInputError(f"{path}: malformed projection file (noise maps {sorted(noise)} are not noise0..)")
    targets = rest.get("targets")
    if targets is not None and (targets.dtype != np.uint8 or targets.ndim != 4 or len(targets) != len(lat)):
        raise BadInputError(
            f"{path}: targets must be (N={len(lat)}, H, W, C) uint8 images, got {targets.dtype} {targets.shape}"
        )
    maps = [noise[k] for k in sorted(noise)]
    if maps and gen is not None:
        got, want = [tuple(m.shape[-2:]) for m in maps], [tuple(m.shape) for m in gen.noise_maps()]
        if got != want:
            raise BadInputError(
                f"{path}: its noise maps {got} do not fit this {gen.family} "
                f"generator's noise inputs {want} (a projection into another generator?)"
            )
    names = paths if len(paths) == len(lat) else []
    return LatentSet(lat, file_space, "projection", names, maps or None, meta, rest)


def write_projection(
    path: str | Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], force: bool = False
) -> Path:
    """Write a projection file atomically (``meta`` gains the format and its version)."""
    return write_meta_npz(path, {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}, arrays, force)
