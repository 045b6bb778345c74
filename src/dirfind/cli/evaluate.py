"""``dirfind evaluate``: measure what every direction of a bank does (effect, locality, content
preservation, attribute responses, entanglement)."""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from ..methods.interpret.evaluate import EvaluateOptions
from ._options import (
    DirSpec,
    ckpt_option,
    command,
    open_generator,
    option_from,
    out_option,
    resume_options,
    settings,
)
from ._options import seed as global_seed
from ._output import emit
from .jacobian import _region


def evaluation_option(f: Any) -> Any:
    """``--evaluation FILE.npz`` of the commands that can reuse a saved evaluation."""
    return click.option(
        "--evaluation", default=None, metavar="FILE.npz", help="A saved `dirfind evaluate` result (else evaluate now)."
    )(f)


def table(ev: Any, top: int = 30) -> str:
    """A compact text table: one line per direction with the main metrics and the top attribute."""
    attrs = ev.attributes
    region = ev.get("inside_outside") is not None
    head = f"{'dir':>4} {'name':<16} {'effect':>7} {'mono':>4} {'satur':>6} {'box50':>6} {'entropy':>7} {'outside':>7}"
    head += (
        f" {'ssim':>5}" + (f" {'in/out':>7}" if region else "") + ("  top attribute (response, AD)" if attrs else "")
    )
    lines = [head]
    names = [str(n) for n in ev["names"]]
    for row, k in enumerate(ev.dirs[:top]):
        line = (
            f"{k:>4} {names[row][:16]:<16} {ev['effect'][row]:7.4f} {'yes' if ev['monotone'][row] else 'no':>4} "
            f"{ev['saturation'][row]:6.2f} {ev['box50'][row]:6.3f} {ev['entropy'][row]:7.3f} "
            f"{ev['outside_share'][row]:7.3f} {ev['ssim'][row]:5.3f}"
        )
        if region:
            line += f" {ev['inside_outside'][row]:7.2f}"
        if attrs:
            r = np.nan_to_num(ev["response"][row])
            a = int(np.argmax(np.abs(r)))
            ad = ev["ad_mean"][row, a]
            line += f"  {attrs[a]} ({r[a]:+.2f}, AD {ad:.2f})" if np.isfinite(ad) else f"  {attrs[a]} ({r[a]:+.2f})"
        lines.append(line)
    if len(ev.dirs) > top:
        lines.append(f"  ... {len(ev.dirs) - top} more (--json for all)")
    return "\n".join(lines)


def as_json(ev: Any) -> dict[str, Any]:
    """Every metric of every direction plus the run (the matrices as nested lists)."""

    def clean(x: Any) -> Any:  # NaN and inf as null: strict JSON
        a = np.asarray(x)
        if a.dtype.kind != "f":
            return a.tolist()
        return np.where(np.isfinite(a), a, None).tolist()

    skip = ("change_map", "change_sq_map", "region")
    return {**ev.meta(), "arrays": {k: clean(v) for k, v in ev.arrays.items() if k not in skip}}


@command("evaluate")
@click.argument("bank_path", metavar="BANK")
@ckpt_option(required=False)
@option_from(EvaluateOptions, "n", "-n")
@option_from(EvaluateOptions, "steps", "--steps")
@option_from(EvaluateOptions, "span", "--range", type=float, nargs=2)
@option_from(EvaluateOptions, "dirs", "--dir", type=DirSpec())
@option_from(EvaluateOptions, "predictors", "--predictor", multiple=True, default=())
@click.option(
    "--region", default=None, metavar="X0,Y0,X1,Y1", callback=_region, help="Region for inside/outside ratios."
)
@click.option("--mask", default=None, metavar="FILE.png", help="Region as a mask image (non-zero = region).")
@click.option(
    "--latents",
    default=None,
    metavar="FILE",
    help="Evaluate at these latents instead of -n seeded samples: a dirfind project or sample file, "
    "or a .npy/.pt array (e4e/ReStyle/PTI files; see --latent-space).",
)
@click.option(
    "--latent-space", type=click.Choice(["z", "w", "w+"]), default=None, help="Space of a raw .npy/.pt --latents array."
)
@option_from(EvaluateOptions, "map_size", "--map-size")
@option_from(EvaluateOptions, "batch_size", "--batch-size")
@click.option("--heatmaps", default=None, metavar="DIR/", help="Also write each direction's change heat-map PNG there.")
@resume_options(shard=False)
@out_option(None, "Save the evaluation (.npz; resumable with --resume).")
def evaluate_cmd(
    bank_path: str,
    ckpt: str | None,
    region: Any,
    mask: str | None,
    latents: str | None,
    latent_space: str | None,
    heatmaps: str | None,
    resume: bool,
    every: float,
    out: str | None,
    **opts: Any,
) -> None:
    """Measure every direction: effect size, locality, content preservation, attribute response, entanglement."""
    from dataclasses import replace

    from ..bank import DirectionBank, checkpoint_of
    from ..errors import BadInputError
    from ..methods.interpret import evaluate
    from ..methods.jacobian import read_mask, region_mask
    from ..util.fileio import check_writable

    force = settings().force
    if region is not None and mask is not None:
        raise BadInputError("give --region or --mask, not both")
    if latents is not None and click.get_current_context().get_parameter_source("n").name != "DEFAULT":
        raise BadInputError("give -n (seeded samples) or --latents, not both")
    if latent_space is not None and latents is None:
        raise BadInputError("--latent-space applies to a --latents file")
    for path in (out, heatmaps):
        if path is not None:
            check_writable(str(path).rstrip("/"), force)
    bank = DirectionBank.load(bank_path)
    if opts["dirs"]:
        opts["dirs"] = bank.resolve(opts["dirs"])
    options = EvaluateOptions(seed=global_seed(), **opts)
    gen = open_generator(ckpt or checkpoint_of(bank.generator))
    area = region_mask(region, gen.resolution) if region is not None else read_mask(mask) if mask else None
    ev = evaluate(
        gen,
        bank,
        replace(options, mask=area),
        bank_path=bank_path,
        out=out,
        resume=resume,
        force=force,
        every=every,
        latents=latents,
        latent_space=latent_space,
    )
    text = table(ev)
    if heatmaps is not None:
        from ..core.dist import is_main
        from ..render.report import write_heatmaps

        if is_main():  # in a distributed run rank 0 alone writes
            write_heatmaps(ev, heatmaps, force=force)
        text += f"\nheat-maps in {heatmaps}"
    if out is not None:
        what = "latents" if "latents" in ev.run else "samples"
        text = f"wrote {out}: {len(ev.dirs)} direction(s) x {ev.run['n']} {what} x {ev.run['steps']} steps\n" + text
    emit(text, as_json(ev))
