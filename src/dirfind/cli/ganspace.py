"""``dirfind ganspace``: principal components of sampled latents or layer activations (GANSpace)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from ..methods.ganspace import GanspaceOptions
from ._options import (
    IndexSpec,
    ckpt_option,
    command,
    expand,
    open_generator,
    option_from,
    out_option,
    render_options,
    resume_options,
    settings,
)
from ._options import seed as global_seed
from ._output import bank_text, emit

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class ByteSize(click.ParamType):
    """A byte count: 0, 4000000000, 512M, 8G, 1.5GB, 8GiB (binary units)."""

    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
        unit = text[-1:] if text[-1:] in _UNITS else ""
        try:
            number = float(text[: len(text) - len(unit)])
        except ValueError:
            number = -1.0
        if not number >= 0:
            self.fail(f"{value!r} is not a size (e.g. 0, 512M, 8G)", param, ctx)
        return int(number * _UNITS[unit])


@command("ganspace")
@ckpt_option()
@option_from(GanspaceOptions, "space", "--space")
@option_from(GanspaceOptions, "n", "-n", type=int)
@option_from(GanspaceOptions, "k", "-k", type=int)
@option_from(GanspaceOptions, "layers", "--layers", type=IndexSpec("layer"))
@option_from(GanspaceOptions, "solver", "--solver")
@option_from(GanspaceOptions, "tol", "--tol", type=float)
@option_from(GanspaceOptions, "max_passes", "--max-passes", type=int)
@option_from(GanspaceOptions, "n_regression", "--regression-n", type=int)
@option_from(GanspaceOptions, "batch_size", "--batch-size", type=int)
@option_from(GanspaceOptions, "memory_budget", "--memory-budget", type=ByteSize())
@render_options
@resume_options()
@out_option("directions.npz", "Where to write the bank (or the shard's partial statistics with --shard).")
def ganspace_cmd(
    ckpt: str, layers: Any, render: dict[str, Any], resume: bool, every: float, out: str, **opts: Any
) -> None:
    """GANSpace: principal components of sampled w latents or layer activations (sigma-scaled steps)."""
    from ..methods.ganspace import ganspace, ganspace_shard
    from ..util.fileio import check_writable

    force = settings().force
    options = GanspaceOptions(seed=global_seed(), **opts)
    check_writable(out, force)
    gen = open_generator(ckpt, render)
    options = replace(options, layers=expand(layers, gen.num_ws))
    if options.shard is not None:
        meta, _ = ganspace_shard(gen, options, out=out, resume=resume, force=force, every=every)
        lo, hi = meta["range"]
        k, parts = options.shard
        emit(
            f"wrote {out}: statistics of samples {lo}..{hi - 1} of {options.n} (shard {k}/{parts}); "
            "combine all shards with `dirfind merge`",
            {"out": str(out), **meta},
        )
        return
    bank = ganspace(gen, options, out=out, resume=resume, force=force, every=every)
    emit(bank_text(bank, out), {"out": str(out), **bank.summary()})
