"""Result formatting: JSON with ``--json``, else short human-readable text, always on stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ._options import settings


def emit(text: str, data: dict[str, Any]) -> None:
    """Print the result: JSON with ``--json``, else the human-readable text (rank 0 alone in a
    distributed run)."""
    dist = sys.modules.get("dirfind.core.dist")  # never imported (nor torch) outside distributed runs
    if dist is not None and not dist.is_main():
        return
    if settings().json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif text:
        click.echo(text)


def spec(indices: list[int]) -> str:
    """Compact spec text for a list of ints: [0,1,2,5] -> '0-2,5'."""
    parts, start = [], None
    for i, v in enumerate(indices):
        if start is None:
            start = v
        if i + 1 == len(indices) or indices[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ",".join(parts)


def _where(bank: Any) -> str:
    return bank.space + (f" layers {spec(bank.layers)}" if bank.layers is not None else "")


def bank_text(bank: Any, out: str | Path, top: int = 10) -> str:
    """``wrote OUT: K method directions in SPACE of FAMILY CKPT`` and the top directions."""
    g = bank.generator
    of = f"{g.get('family')} {g.get('checkpoint')}"
    lines = [f"wrote {out}: {len(bank)} {bank.method} directions in {_where(bank)} of {of}"]
    explained = bank.info.get("explained") or []
    for i in range(min(top, len(bank))):
        extra = f"  ({100 * explained[i]:.1f}%)" if i < len(explained) else ""
        lines.append(f"  {i:3d}  {bank.names[i]:<16} score {bank.scores[i]:.6g}{extra}")
    if len(bank) > top:
        lines.append(f"  ... {len(bank) - top} more (dirfind info {out})")
    return "\n".join(lines)


def boundary_text(bank: Any, out: str | Path) -> str:
    """An InterFaceGAN bank: each boundary's validation and remaining-set accuracy and intercept."""
    g = bank.generator
    kind = "boundary" if len(bank) == 1 else "boundaries"
    lines = [
        f"wrote {out}: {len(bank)} interfacegan {kind} in {_where(bank)} of {g.get('family')} {g.get('checkpoint')}"
    ]
    for i, b in enumerate(bank.info.get("boundaries", [])):
        val = "n/a" if b.get("val_accuracy") is None else f"{b['val_accuracy']:.4f}"
        rem = "n/a" if b.get("remaining_accuracy") is None else f"{b['remaining_accuracy']:.4f}"
        lines.append(
            f"  {i:3d}  {bank.names[i]:<16} val acc {val}  remaining acc {rem}  intercept {bank.intercepts[i]:+.4f}"
        )
    return "\n".join(lines)


def bank_info_text(bank: Any, path: str) -> str:
    """``dirfind info BANK``: format, method, space, generator, step unit, params and directions."""
    g = bank.generator
    lines = [f"{path}: dirfind bank v{bank.format_version}, {len(bank)} {bank.method} directions in {_where(bank)}"]
    lines.append(f"  generator {g.get('family')} {g.get('checkpoint')} (sha256 {str(g.get('fingerprint'))[:16]}...)")
    lines.append(f"  step unit {bank.step_unit}, default range {bank.default_range[0]:g} .. {bank.default_range[1]:g}")
    lines.append(f"  params {json.dumps(bank.params)}")
    lines.append(f"  created {bank.created} with dirfind {bank.dirfind_version}")
    for i in range(min(10, len(bank))):
        lines.append(f"  {i:3d}  {bank.names[i]:<16} score {bank.scores[i]:.6g}  scale {bank.scales[i]:.4g}")
    if len(bank) > 10:
        lines.append(f"  ... {len(bank) - 10} more")
    return "\n".join(lines)
