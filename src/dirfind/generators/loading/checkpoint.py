"""Read checkpoint files without executing code from them.

``read_checkpoint`` returns a :class:`Checkpoint`: the deserialised object plus what kind of file
it came from. torch files go through ``torch.load(weights_only=True)`` (memory-mapped when the
file is in the zip format); other pickles go to readers registered by the families that use them
(NVIDIA network pickles), which must use a restricted unpickler.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...errors import BadInputError, NotFoundError, UnsupportedError

# torch.save's legacy (non-zip) format begins with pickle protocol 2 and this magic number.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

#: Extra classes allowed inside torch checkpoints (rosinality training files carry their args).
SAFE_TORCH_GLOBALS: list[Any] = [argparse.Namespace]

#: Multi-file checkpoint layouts (pytorch-pretrained-BigGAN): naming any member file means the
#: folder that holds them all, so a folder and its files load and fingerprint the same.
FOLDER_LAYOUTS: list[tuple[str, ...]] = [("config.json", "pytorch_model.bin")]

#: Readers for plain pickles, ``(name, reader)``; a reader returns an object or raises.
PICKLE_READERS: list[tuple[str, Callable[[Path], Any]]] = []


@dataclass
class Checkpoint:
    """A deserialised checkpoint: ``kind`` is "torch", "pickle:<reader>" or "folder"."""

    path: Path
    kind: str
    obj: Any
    files: dict[str, Path] = field(default_factory=dict)


def register_pickle_reader(name: str, reader: Callable[[Path], Any]) -> None:
    """Register a restricted reader for non-torch pickles (e.g. NVIDIA network pickles)."""
    PICKLE_READERS.append((name, reader))


def load_torch(path: str | Path, mmap: bool | None = None) -> Any:
    """``torch.load`` with ``weights_only=True``; memory-mapped when the file allows it."""
    path = Path(path)
    if mmap is None:
        mmap = zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals(SAFE_TORCH_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "global" in str(e).lower():
            raise BadInputError(
                f"refusing to load {path.name}: it needs objects outside the safe allowlist "
                f"(would execute code): {_short(first)}"
            ) from None
        raise BadInputError(f"cannot read {path.name}: corrupt checkpoint ({_short(first)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        raise BadInputError(f"cannot read {path.name}: truncated or corrupt checkpoint ({_short(str(e))})") from None
    check_tensors(obj, path.name)
    return obj


#: Tensors may view their storage with overlaps (a broadcast, stride 0) only up to this many
#: elements: a file that declares a huge tensor over a few stored bytes would otherwise make the
#: first copy of it allocate gigabytes.
MAX_VIEW_ELEMENTS = 1 << 16


def check_tensor(t: torch.Tensor, where: str) -> None:
    """A one-line :class:`BadInputError` if ``t`` declares more elements than its storage holds
    (beyond :data:`MAX_VIEW_ELEMENTS`), i.e. sizes the file does not back with data."""
    stored = t.untyped_storage().nbytes() // max(t.element_size(), 1)
    if t.numel() > max(stored, MAX_VIEW_ELEMENTS):
        raise BadInputError(
            f"{where}: a tensor of shape {tuple(t.shape)} ({t.numel()} elements) over {stored} stored ones; "
            "refusing its declared size"
        )


def check_tensors(obj: Any, where: str, depth: int = 0) -> None:
    """:func:`check_tensor` on every tensor in a loaded checkpoint (dicts, lists, tuples)."""
    if isinstance(obj, torch.Tensor):
        check_tensor(obj, where)
    elif depth < 8 and isinstance(obj, dict):
        for v in obj.values():
            check_tensors(v, where, depth + 1)
    elif depth < 8 and isinstance(obj, (list, tuple)):
        for v in obj:
            check_tensors(v, where, depth + 1)


def check_shapes(
    make: Callable[[], torch.nn.Module],
    sd: dict[str, Any],
    what: str,
    optional: Callable[[str], bool] | None = None,
) -> None:
    """Build ``make()`` on the meta device (nothing allocated) and check that ``sd`` has exactly its
    keys with its shapes (``optional(key)``: a key that may be missing), so that the real network
    built next is no larger than the checkpoint's own tensors."""
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in make().state_dict().items()}
    missing = [k for k in want if k not in sd and not (optional and optional(k))]
    extra = [k for k in sd if k not in want]
    wrong = [k for k in want if k in sd and tuple(getattr(sd[k], "shape", ())) != want[k]]
    if wrong:
        k = wrong[0]
        raise BadInputError(f"{what}: {k} has shape {tuple(sd[k].shape)}, the declared network needs {want[k]}")
    if missing or extra:
        first = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise BadInputError(f"{what}: {len(missing)} missing and {len(extra)} unexpected tensors ({first})")


def checkpoint_root(path: str | Path) -> Path:
    """The folder of a multi-file checkpoint when ``path`` names one of its members, else ``path``."""
    path = Path(path)
    if path.is_file():
        for layout in FOLDER_LAYOUTS:
            if path.name in layout and all((path.parent / f).is_file() for f in layout):
                return path.parent
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Deserialise ``path`` safely, dispatching on its content (never on its name)."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        files = {p.name: p for p in sorted(path.iterdir()) if p.is_file()}
        if not files:
            raise BadInputError(f"checkpoint folder {path} is empty")
        return Checkpoint(path, "folder", None, files)
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise BadInputError(f"cannot read {path.name}: the file is empty")
    if head.startswith(b"PK\x03\x04") or zipfile.is_zipfile(path) or head.startswith(_LEGACY_TORCH_MAGIC):
        return Checkpoint(path, "torch", load_torch(path))
    if head[:1] == b"\x80":  # a pickle of protocol >= 2 that torch.save did not write
        errors = []
        for name, reader in PICKLE_READERS:
            try:
                return Checkpoint(path, f"pickle:{name}", reader(path))
            except UnsupportedError as e:  # "not mine": try the next reader
                errors.append(str(e))
        if errors:
            raise BadInputError(f"cannot read {path.name}: {errors[-1]}")
        raise UnsupportedError(f"{path.name} is a plain pickle and no safe reader for it is available")
    if head.lstrip()[:1] == b"{":
        raise BadInputError(
            f"cannot read {path.name}: a JSON file, not weights (a config.json must sit next to its "
            f"{' / '.join(f for layout in FOLDER_LAYOUTS for f in layout if f != path.name) or 'weights'})"
        )
    raise BadInputError(f"cannot read {path.name}: unknown checkpoint format (not a torch file or pickle)")


def _short(msg: str, limit: int = 160) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def unwrap_state_dict(obj: Any, keys: tuple[str, ...] = ("netG_state_dict", "state_dict", "g_ema", "model")) -> Any:
    """Descend into common wrapper keys and strip a DataParallel ``module.`` prefix."""
    for _ in range(3):
        if isinstance(obj, dict):
            for k in keys:
                if k in obj and isinstance(obj[k], dict):
                    obj = obj[k]
                    break
            else:
                break
    if isinstance(obj, dict) and obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = type(obj)((k[len("module.") :], v) for k, v in obj.items())
    return obj


# NVIDIA network pickles (stylegan2-ada-pytorch, stylegan3): restricted, never runs embedded source.
from .nvidia_pickle import read_nvidia_pickle  # noqa: E402

register_pickle_reader("nvidia", read_nvidia_pickle)
