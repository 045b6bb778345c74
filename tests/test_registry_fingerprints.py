"""The fingerprint cache: equal to hashing, invalidated by any change of the file, harmless when unwritable."""

from __future__ import annotations

import os
import time

from dirfind import registry
from dirfind.util import fileio
from dirfind.util.fileio import sha256_path


def test_cached_fingerprint_equals_the_hash_and_follows_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRFIND_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "ckpt.pt"
    f.write_bytes(os.urandom(10_000))
    first = registry.fingerprint(f)
    assert first == sha256_path(f)
    assert (tmp_path / "cache" / registry.FINGERPRINTS).exists()
    calls = []
    monkeypatch.setattr(fileio, "sha256_path", lambda p, **kw: calls.append(p) or sha256_path(p, **kw))
    assert registry.fingerprint(f) == first and calls == []  # a cache hit reads nothing
    # same size, same mtime, new content: ctime moves, so it is hashed again
    st = f.stat()
    time.sleep(0.01)
    data = bytearray(f.read_bytes())
    data[0] ^= 0xFF
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert registry.fingerprint(f) == sha256_path(f) != first and len(calls) == 1
    # a folder checkpoint: a member change re-hashes
    d = tmp_path / "folder"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "pytorch_model.bin").write_bytes(b"x" * 100)
    a = registry.fingerprint(d)
    assert a == sha256_path(d)
    (d / "config.json").write_text('{"a": 1}')
    assert registry.fingerprint(d) == sha256_path(d) != a


def test_unreadable_or_unwritable_cache_still_fingerprints(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / registry.FINGERPRINTS).write_text("not json")
    monkeypatch.setenv("DIRFIND_CACHE", str(cache))
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert registry.fingerprint(f) == sha256_path(f)
    monkeypatch.setenv("DIRFIND_CACHE", str(tmp_path / "file-not-dir"))
    (tmp_path / "file-not-dir").write_text("")
    assert registry.fingerprint(f) == sha256_path(f)
