"""Atomic output: write to a temporary sibling, then rename; refuse to clobber without ``force``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import BadInputError, NotFoundError, OutputError


def umask() -> int:
    """The process umask (read from /proc where possible, so it is never changed, even briefly)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_mode(path: str | os.PathLike, directory: bool = False) -> int:
    """The mode a plain ``open(path, "w")`` / ``mkdir(path)`` would give: an existing file's own
    mode (kept when it is replaced), else 0666 / 0777 under the umask. Temporaries made by
    ``mkstemp``/``mkdtemp`` (0600 / 0700) get it before they are renamed into place."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode) == directory:
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return (0o777 if directory else 0o666) & ~umask()


def _existing_ancestor(path: Path) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_writable(path: str | os.PathLike, force: bool = False, directory: bool = False) -> Path:
    """Fail early (one line, nothing created) if ``path`` exists without ``force``, is a folder
    where a file goes (or a file where a folder goes), or its folder cannot be created or written.

    Writability is probed by creating (and removing) a folder in the nearest existing ancestor,
    which also holds for the superuser and for read-only or virtual file systems."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputError(f"{path} exists; pass force=True to overwrite it", param="force")
        if path.is_dir() != directory:
            kind = "a folder" if path.is_dir() else "a file"
            raise OutputError(f"cannot write {path}: it is {kind}")
    _probe(_existing_ancestor(path), f"cannot write {path}")
    return path


def _probe(folder: Path, what: str) -> None:
    """A one-line :class:`OutputError` (``what: ...``) unless a folder can be created in ``folder``."""
    if not folder.is_dir():
        raise OutputError(f"{what}: {folder} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".dirfind-probe.", dir=folder))
    except OSError as e:
        raise OutputError(f"{what}: {folder} is not writable ({e.strerror or e})") from None


def missing_dirs(path: str | os.PathLike) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    missing = []
    p = Path(path)
    while str(p) and not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing[::-1]


def make_parents(path: str | os.PathLike) -> list[Path]:
    """Create the missing folders above ``path``; return those created (outermost first), so that
    a failed write can remove them with :func:`remove_created`."""
    created: list[Path] = []
    try:
        for d in missing_dirs(Path(path).parent):
            d.mkdir()
            created.append(d)
    except OSError as e:
        remove_created(created)
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    return created


def remove_created(folders: list[Path]) -> None:
    """Remove folders :func:`make_parents` created (innermost first), if they are still empty."""
    for d in reversed(folders):
        with contextlib.suppress(OSError):
            d.rmdir()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary keeps ``suffix`` (or the target's suffix) so writers that look at the
    extension (numpy, PIL) behave. On error the temporary (and any folder created for it) is
    removed and ``path`` is untouched. The file gets :func:`output_mode`.
    """
    path = check_writable(path, force)
    created = make_parents(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    except OSError as e:
        remove_created(created)
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    done = False
    try:
        yield tmp_path
        os.chmod(tmp_path, output_mode(path))
        os.replace(tmp_path, path)
        done = True
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
        if not done:
            remove_created(created)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` (with
    :func:`output_mode`; files written into it get the umask's modes as usual)."""
    path = check_writable(path, force, directory=True)
    created = make_parents(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as e:
        remove_created(created)
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    done = False
    try:
        yield tmp
        os.chmod(tmp, output_mode(path, directory=True))
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        done = True
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            remove_created(created)


def check_dir_writable(path: str | os.PathLike) -> Path:
    """A folder that files will be written into one by one (``sample --images``): it must be a
    folder (or not exist yet) and be writable; one-line :class:`OutputError` otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot write into {path}: it is not a directory")
    _probe(path if path.is_dir() else _existing_ancestor(path / "x"), f"cannot write into {path}")
    return path


#: digests computed in this process with ``remember``, by (device, inode, size, mtime, ctime):
#: verifying a cached checkpoint and then fingerprinting it reads a multi-GB file once
_DIGESTS: dict[tuple[int, int, int, int, int], str] = {}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22, remember: bool = False) -> str:
    """Hex sha256 of a file, read in chunks (files may be several GB). ``remember``: reuse (and
    keep) the digest computed earlier in this process while the file is unchanged (same inode,
    size, modification and change times); integrity checks that must read the bytes again leave it off."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # a rewrite moves ctime
    if remember and key in _DIGESTS:
        return _DIGESTS[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    if remember:
        _DIGESTS[key] = h.hexdigest()
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


def sha256_path(path: str | os.PathLike, remember: bool = False) -> str:
    """sha256 of a file, or of a folder's :func:`content_files` (relative name + content) for
    folder checkpoints (``remember``: see :func:`sha256_file`)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path, remember=remember)
    h = hashlib.sha256()
    for f in content_files(path):
        h.update(str(f.relative_to(path)).encode() + b"\0" + bytes.fromhex(sha256_file(f, remember=remember)))
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


def read_npz(path: str | os.PathLike, what: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """The arrays of an ``.npz`` archive (``keys``: only those present of these), never a pickle,
    with one-line errors naming the file for a missing, unreadable or non-archive file (a bare
    ``.npy`` array, say)."""
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{what} not found: {path}")
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise BadInputError(f"{path}: not a {what} (a bare .npy array, not an .npz archive)")
        with f:
            return {k: f[k] for k in f.files if keys is None or k in keys}
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as e:
        if isinstance(e, BadInputError):
            raise
        raise BadInputError(f"{path}: not a readable {what} ({' '.join(str(e).split())[:100]})") from None


def read_meta_npz(
    path: str | os.PathLike, what: str, fmt: str | None = None, meta_only: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, arrays) of a file written by :func:`write_meta_npz` (``meta_only``: no arrays read); a
    one-line error naming the file when it is unreadable, its ``meta`` is not a JSON object, or its
    ``format`` is not ``fmt``."""
    path = Path(path)
    data = read_npz(path, what, keys=["meta"] if meta_only else None)
    if "meta" not in data:
        raise BadInputError(f"{path}: not a {what} (no metadata)")
    try:
        meta = json.loads(str(data.pop("meta")[()]))
    except (ValueError, TypeError, IndexError):
        raise BadInputError(f"{path}: not a {what} (its metadata is not valid JSON)") from None
    if not isinstance(meta, dict):
        raise BadInputError(f"{path}: not a {what} (its metadata is not a JSON object)")
    if fmt is not None and meta.get("format") != fmt:
        raise BadInputError(f"{path}: not a {what} (format {meta.get('format')!r})")
    return meta, data


def read_npy(path: str | os.PathLike, what: str = "array", numeric: bool = False) -> Any:
    """One ``.npy`` array (never a pickle), with one-line errors for a missing or unreadable file
    (``numeric``: also for an array of strings, booleans or complex numbers, or an empty one)."""
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
    if numeric:
        check_numeric(arr, f"{path}: {what}")
    return arr


def check_numeric(arr: Any, what: str) -> None:
    """A one-line error unless ``arr`` is a non-empty array of real numbers (ints or floats)."""
    import numpy as np

    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        kind = getattr(getattr(arr, "dtype", None), "name", type(arr).__name__)
        raise BadInputError(f"{what} must hold real numbers, not {kind}")
    if arr.size == 0:
        raise BadInputError(f"{what} is empty (shape {arr.shape})")
