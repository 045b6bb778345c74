"""``dirfind convert``: official InterFaceGAN ``boundary.npy`` files to banks, and back."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import IndexSpec, ckpt_option, command, open_generator, out_option, settings
from ._output import emit


@command("convert")
@click.argument("source")
@ckpt_option(required=False)
@click.option(
    "--space",
    type=click.Choice(["z", "w", "w+"]),
    default=None,
    help="Import: the boundary's space (default: from an official file name, ..._w_boundary.npy -> w, else z).",
)
@click.option(
    "--layers",
    default=None,
    type=IndexSpec("layer", allow_all=False),
    metavar="SPEC",
    help="Import: w+ layers the direction edits (w/w+).",
)
@click.option("--name", default=None, help="Import: direction name (default: the file name).")
@click.option(
    "--intercept",
    type=float,
    default=0.0,
    show_default=True,
    help="Import: hyperplane offset (official files have none).",
)
@click.option("--dir", "direction", type=int, default=0, show_default=True, help="Export: which direction of the bank.")
@out_option(None, "Import: bank .npz (default: <source>.npz); export: boundary .npy (default: <name>_boundary.npy).")
def convert_cmd(
    source: str,
    ckpt: str | None,
    space: str | None,
    layers: list[int] | None,
    name: str | None,
    intercept: float,
    direction: int,
    out: str | None,
) -> None:
    """Import an official InterFaceGAN boundary.npy into a bank, or export a bank direction as boundary.npy."""
    from ..bank import DirectionBank
    from ..errors import BadInputError
    from ..methods.interfacegan.boundary_files import export_boundary, import_boundary
    from ..util.fileio import check_writable

    force = settings().force
    src = Path(source)
    if src.suffix.lower() == ".npy":
        out = out or str(src.with_suffix(".npz").name)
        check_writable(out, force)
        gen = open_generator(ckpt) if ckpt else None
        bank = import_boundary(src, gen=gen, space=space, layers=layers, name=name, intercept=intercept)
        bank.save(out, force=force)
        emit(
            f"wrote {out}: {bank.names[0]} in {bank.space} ({bank.dim}-d) from {source}",
            {"out": str(out), **bank.summary()},
        )
        return
    if src.suffix.lower() != ".npz":
        raise BadInputError(f"{source}: give an official boundary .npy to import or a dirfind bank .npz to export")
    bank = DirectionBank.load(src)
    (k,) = bank.check_indices([direction])
    out = out or f"{bank.names[k]}_boundary.npy"
    res = export_boundary(bank, k, out, force=force)
    emit(f"wrote {out}: direction {k} ({bank.names[k]}, {bank.space}) as a (1, {bank.dim}) boundary", res)
