"""``dirfind sample``: latents (and images) drawn deterministically by ``--seed``, shardable and resumable."""

from __future__ import annotations

from typing import Any

from ..core.samplefile import SampleOptions
from ._options import (
    ckpt_option,
    command,
    open_generator,
    option_from,
    out_option,
    render_options,
    resume_options,
    settings,
)
from ._options import seed as global_seed
from ._output import emit


@command("sample")
@ckpt_option()
@option_from(SampleOptions, "n", "-n", type=int, required=True)
@option_from(SampleOptions, "space", "--space")
@option_from(SampleOptions, "images", "--images", metavar="DIR")
@option_from(SampleOptions, "batch_size", "--batch-size", type=int)
@render_options
@resume_options()
@out_option("latents.npz", "Where to write the latents (.npz: indices, z, latents, meta).")
def sample_cmd(ckpt: str, render: dict[str, Any], resume: bool, every: float, out: str, **opts: Any) -> None:
    """Sample latents (and images) deterministically by --seed, e.g. for external labelling."""
    from ..core.samplefile import write_samples
    from ..util.fileio import check_writable

    options = SampleOptions(seed=global_seed(), **opts)
    check_writable(out, settings().force)
    gen = open_generator(ckpt, render)
    res = write_samples(gen, options, out, resume=resume, force=settings().force, every=every)
    lo, hi = res["range"]
    where = f"{res['space']} {tuple(res['shape'])}"
    text = f"wrote {out}: samples {lo}..{hi - 1} of {options.n} in {where}, seed {res['seed']}"
    if options.images:
        text += f"; images in {options.images}/"
    emit(text, res)
