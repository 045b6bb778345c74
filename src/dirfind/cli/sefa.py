"""``dirfind sefa``: closed-form directions from the weights that read the latent."""

from __future__ import annotations

import click

from ..methods.sefa import SefaOptions
from ._options import IndexSpec, ckpt_option, command, expand, open_generator, option_from, out_option, settings
from ._output import bank_text, emit


@command("sefa")
@ckpt_option()
@option_from(
    SefaOptions,
    "layers",
    "--layers",
    type=IndexSpec("layer"),
    help=("Latent-reading layers to factorise: all, 0-1, 2-5, 6-13, 0,2,4 (default: the variant's choice)."),
)
@option_from(SefaOptions, "k", "-k")
@option_from(SefaOptions, "variant", "--variant")
@click.option(
    "--class",
    "class_index",
    type=int,
    default=None,
    help="Class-conditional generators: the class the bank records for rendering (default 0).",
)
@out_option("directions.npz", "Where to write the direction bank.")
def sefa_cmd(ckpt: str, layers, k: int | None, variant: str, class_index: int | None, out: str) -> None:
    """SeFa: closed-form directions from the weights that read the latent."""
    from ..methods.sefa import sefa
    from ..util.fileio import check_writable

    force = settings().force
    check_writable(out, force)
    gen = open_generator(ckpt, {"class_index": class_index} if class_index is not None else None)
    opts = SefaOptions(layers=expand(layers, gen.num_ws), k=k, variant=variant)
    bank = sefa(gen, opts)
    bank.save(out, force=force)
    emit(bank_text(bank, out), {"out": str(out), **bank.summary()})
