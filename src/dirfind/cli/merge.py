"""``dirfind merge``: combine the outputs of ``--shard K/N`` runs into one result."""

from __future__ import annotations

import click

from ._options import ckpt_option, command, out_option, settings
from ._output import bank_text, emit


@command("merge")
@click.argument("parts", nargs=-1, required=True)
@ckpt_option(required=False)
@out_option(None, "Merged output (default: latents.npz for samples, directions.npz for GANSpace).")
def merge_cmd(parts: tuple[str, ...], ckpt: str | None, out: str | None) -> None:
    """Combine the outputs of `--shard K/N` runs (dirfind sample or dirfind ganspace) into one result."""
    from ..core import samplefile  # noqa: F401  (registers the sample-file merger)
    from ..core.shards import merge
    from ..methods import ganspace  # noqa: F401  (registers the GANSpace merger)

    s = settings()
    res = merge(list(parts), out, ckpt=ckpt, device=s.device, force=s.force)
    bank = res.pop("bank", None)
    if bank is None:
        emit(f"wrote {res['out']}: {res['count']} samples from {res['parts']} shards", res)
    else:
        emit(bank_text(bank, res["out"]), {**res, **bank.summary()})
