"""Atomic output: write to a temporary sibling, then rename; refuse to clobber without ``force``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import BadInputError, NotFoundError, OutputError


def check_writable(path: str | os.PathLike, force: bool = False) -> Path:
    """Fail early (one line) if ``path`` exists without ``force`` or its folder cannot be written."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputError(f"{path} exists; pass force=True to overwrite it", param="force")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a directory")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: {parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary keeps ``suffix`` (or the target's suffix) so writers that look at the
    extension (numpy, PIL) behave. On error the temporary is removed and ``path`` is untouched.
    """
    path = check_writable(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path``."""
    path = check_writable(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks (files may be several GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def content_files(path: str | os.PathLike) -> list[Path]:
    """The files whose content a checkpoint's fingerprint covers: the file itself, or a folder's
    files sorted by name (hidden files and download bookkeeping, ``*.lock``/``*.part``, excluded)."""
    path = Path(path)
    if path.is_file():
        return [path]
    skip = (".lock", ".part")  # download bookkeeping (registry locks, partial downloads), not content
    return sorted(
        p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".") and not p.name.endswith(skip)
    )


def sha256_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's :func:`content_files` (relative name + content) for
    folder checkpoints."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in content_files(path):
        h.update(str(f.relative_to(path)).encode() + b"\0" + bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


# ---------------------------------------------------------------------- plain-array files


def write_meta_npz(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, Any], force: bool = False) -> Path:
    """Plain arrays plus one JSON ``meta`` string as ``.npz``, written atomically (it loads with
    ``numpy.load(path, allow_pickle=False)``)."""
    import numpy as np

    with atomic_path(path, force=force, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    return Path(path)


def read_meta_npz(path: str | os.PathLike, what: str, fmt: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, arrays) of a file written by :func:`write_meta_npz`; a one-line error naming the file
    when it is unreadable, its ``meta`` is not a JSON object, or its ``format`` is not ``fmt``."""
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{what} not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        meta = json.loads(str(data.pop("meta")[()]))
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as e:
        raise BadInputError(f"{path}: not a readable {what} ({' '.join(str(e).split())[:100]})") from None
    if not isinstance(meta, dict):
        raise BadInputError(f"{path}: not a {what} (its metadata is not a JSON object)")
    if fmt is not None and meta.get("format") != fmt:
        raise BadInputError(f"{path}: not a {what} (format {meta.get('format')!r})")
    return meta, data


def read_npy(path: str | os.PathLike, what: str = "array") -> Any:
    """One ``.npy`` array (never a pickle), with one-line errors for a missing or unreadable file."""
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{what} file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise BadInputError(f"{path}: not a readable .npy array ({' '.join(str(e).split())[:100]})") from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise BadInputError(f"{path}: expected one .npy array, got an .npz archive")
    return arr
