"""Checkpoint fingerprints (sha256 of the content) remembered in the cache by path and stat
signature, so a batch script of many commands on one checkpoint hashes it once."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .registry import cache_dir
from .util.fileio import content_files, sha256_path

FINGERPRINTS = "fingerprints.json"


def _stat_key(path: Path) -> list[Any]:
    """What identifies a file's (or folder's) content without reading it: size, mtime and ctime
    (nanoseconds), inode and device of every file (a content change moves ctime)."""
    out: list[Any] = []
    for f in content_files(path):
        st = f.stat()
        name = "" if f == path else str(f.relative_to(path))
        out.append([name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev])
    return out


def fingerprint(path: str | os.PathLike, cache: bool = True) -> str:
    """sha256 of a checkpoint (file, or folder as :func:`~dirfind.util.fileio.sha256_path`),
    remembered in the cache by path and stat signature so repeated runs on the same file (a batch
    script of SeFa calls) read it once. Any change of size, mtime, ctime or inode re-hashes."""
    path = Path(path).resolve()
    key = _stat_key(path)
    store = cache_dir() / FINGERPRINTS
    known: dict[str, Any] = {}
    if cache:
        try:
            known = json.loads(store.read_text())
            if not isinstance(known, dict):
                known = {}
        except (OSError, ValueError):
            known = {}
        hit = known.get(str(path))
        if isinstance(hit, dict) and hit.get("stat") == key and isinstance(hit.get("sha256"), str):
            return hit["sha256"]
    digest = sha256_path(path, remember=True)  # a fetch that just verified it read it already
    if cache and _stat_key(path) == key:  # unchanged while hashing
        known[str(path)] = {"stat": key, "sha256": digest}
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{FINGERPRINTS}.", dir=store.parent)
            with os.fdopen(fd, "w") as f:
                json.dump(dict(list(known.items())[-1000:]), f)
            os.replace(tmp, store)
        except OSError:
            pass  # a read-only cache only costs the next run a re-hash
    return digest
