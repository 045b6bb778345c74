"""``dirfind info``: describe a direction bank or a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import command, open_generator
from ._output import bank_info_text, emit


@command("info")
@click.argument("path")
def info_cmd(path: str) -> None:
    """Summarise a direction bank or a checkpoint (family, dims, fingerprint, directions)."""
    from ..bank import DirectionBank, is_bank_file

    p = Path(path)
    if p.suffix == ".npz" or (p.is_file() and is_bank_file(p)):
        bank = DirectionBank.load(p)
        emit(bank_info_text(bank, path), {"kind": "bank", "path": path, **bank.summary()})
        return
    gen = open_generator(path)
    d = {"kind": "checkpoint", **gen.describe(), "layers": gen.layer_names(), "activations": gen.activation_names()}
    lines = [f"{path}: {gen.family} generator, {gen.resolution}x{gen.resolution}x{gen.channels}"]
    lines.append(
        f"  z_dim {gen.z_dim}, w_dim {gen.w_dim}, {gen.num_ws} latent-reading layer(s), "
        f"{gen.num_classes} classes, spaces {', '.join(gen.spaces)}"
    )
    lines.append(f"  sha256 {gen.fingerprint}")
    lines.append(f"  parameters {d['parameters']:,}")
    lines.append("  layers: " + "; ".join(f"{i}: {n}" for i, n in enumerate(gen.layer_names())))
    lines.append("  activations: " + ", ".join(gen.activation_names()))
    emit("\n".join(lines), d)
