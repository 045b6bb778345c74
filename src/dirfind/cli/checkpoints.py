"""``dirfind checkpoints list|fetch|verify``: the registry (checkpoints.toml) and the download cache."""

from __future__ import annotations

import click

from ._options import command, settings
from ._output import emit


@click.group("checkpoints")
def group() -> None:
    """List, download and verify checkpoints from the registry (checkpoints.toml)."""


@command("list")
def list_cmd() -> None:
    """List registry entries, whether each is cached, and the licences of the weights and of the training data."""
    from ..registry import list_entries

    rows = list_entries()
    width = max((len(r["name"]) for r in rows), default=4)
    lines = [f"{'name':<{width}}  {'family':<10} {'cached':<6} {'sha256':<11} description"]
    for r in rows:
        sha = r["sha256"][:11] if r["sha256"] else "unpublished"
        fam = r["family"] + ("" if r["supported"] else "*")
        lines.append(
            f"{r['name']:<{width}}  {fam:<10} {'yes' if r['cached'] else 'no':<6} {sha:<11} {r['description']}"
        )
        data = r.get("data_license") or "not stated in the registry"
        lines.append(f"{'':<{width}}  licence {r['license']}; training data: {data}")
    if any(not r["supported"] for r in rows):
        lines.append("* family not supported yet by this dirfind version")
    emit("\n".join(lines), {"checkpoints": rows})


@command("fetch")
@click.argument("names", nargs=-1, required=True)
def fetch_cmd(names: tuple[str, ...]) -> None:
    """Download registry entries into the cache and verify their sha256."""
    from ..registry import fetch_entries

    results = fetch_entries(names, force=settings().force)
    emit(
        "\n".join(
            f"{r['name']}: {r['path']} (sha256 {r['sha256']}{'' if r['verified'] else ', no published hash'})"
            for r in results
        ),
        {"fetched": results},
    )


@command("verify")
@click.argument("names", nargs=-1)
def verify_cmd(names: tuple[str, ...]) -> None:
    """Re-hash cached checkpoints (all cached ones by default); exit 5 on any mismatch."""
    from ..errors import IntegrityError, NotFoundError
    from ..registry import verify_entries

    results = verify_entries(names)
    emit(
        "\n".join(f"{r['name']}: {r['status']}  {r['path']}" for r in results) or "nothing cached", {"results": results}
    )
    bad = [r["name"] for r in results if r["status"] == "mismatch"]
    if bad:
        raise IntegrityError(
            f"sha256 mismatch for {', '.join(bad)}; re-fetch with `dirfind checkpoints fetch {bad[0]} --force`"
        )
    missing = [r["name"] for r in results if r["status"] == "missing" and names]
    if missing:
        raise NotFoundError(f"not cached: {', '.join(missing)}")


for _cmd in (list_cmd, fetch_cmd, verify_cmd):
    group.add_command(_cmd)
