"""``dirfind traverse``: render what directions do, as a grid, a GIF or numbered frames."""

from __future__ import annotations

from typing import Any

import click

from ..render.traverse import TraverseOptions
from ._options import (
    DirSpec,
    IndexSpec,
    ckpt_option,
    command,
    expand,
    open_generator,
    option_from,
    out_option,
    render_options,
    settings,
)
from ._output import emit, spec


@command("traverse")
@click.option("--bank", "bank_path", default="directions.npz", show_default=True, help="Direction bank (.npz).")
@ckpt_option(required=False)
@click.option(
    "--dir",
    "dirs",
    required=True,
    type=DirSpec(),
    metavar="I[,J,...]|NAME",
    help="Direction indices or names (e.g. 3, 0-4, 0,2, smile as `dirfind label` names them).",
)
@option_from(TraverseOptions, "steps", "--steps", type=int)
@option_from(TraverseOptions, "span", "--range", type=float, nargs=2)
@option_from(TraverseOptions, "to_distance", "--to-distance", type=float, nargs=2)
@click.option(
    "--seeds",
    default=None,
    type=IndexSpec("seed", allow_all=False),
    metavar="SPEC",
    help="Sample seeds, e.g. 0-3 or 1,5,9 (default 0-3).",
)
@option_from(TraverseOptions, "origin", "--origin/--no-origin")
@click.option(
    "--latents",
    default=None,
    metavar="FILE",
    help="Start latents instead of seeds: a dirfind project or sample file, or a .npy/.pt array "
    "(z, or w/w+ for style banks; e4e/ReStyle/PTI files; see --latent-space).",
)
@click.option(
    "--latent-space",
    type=click.Choice(["z", "w", "w+"]),
    default=None,
    help="Space of a raw --latents array (default: w+ for 3-D arrays, z for 2-D unless only w fits).",
)
@option_from(TraverseOptions, "layers", "--layers", type=IndexSpec("layer"))
@render_options
@option_from(TraverseOptions, "batch_size", "--batch-size", type=int)
@click.option(
    "--dtype",
    type=click.Choice(["fp32", "fp16", "bf16"]),
    default=None,
    help="Synthesis precision on CUDA (style-based generators; CPU renders in fp32).",
)
@option_from(TraverseOptions, "fps", "--fps", type=float)
@option_from(TraverseOptions, "annotate", "--annotate")
@out_option(None, "grid.png | anim.gif | video.mp4 | frames/ (default: traverse_d<DIRS>.png).")
def traverse_cmd(
    bank_path: str,
    ckpt: str | None,
    dirs: list[int | str],
    seeds: list[int] | None,
    latents: str | None,
    latent_space: str | None,
    layers: Any,
    render: dict[str, Any],
    dtype: str | None,
    out: str | None,
    **opts: Any,
) -> None:
    """Render what directions do: a grid (rows = samples x directions, columns = steps), a GIF, a video or frames."""
    from ..bank import DirectionBank, checkpoint_of
    from ..render.traverse import traverse

    force = settings().force
    bank = DirectionBank.load(bank_path)
    dirs = bank.resolve(dirs)
    out = out or f"traverse_d{spec(dirs)}.png"
    options = TraverseOptions(**opts)  # checks steps, ranges and fps before anything is loaded
    gen = open_generator(ckpt or checkpoint_of(bank.generator), dtype=dtype)
    layer_list = expand(layers, gen.num_ws)
    res = traverse(
        gen,
        bank,
        dirs,
        options,
        seeds=seeds,
        latents=latents,
        latent_space=latent_space,
        settings=render,
        out=out,
        force=force,
        layers=layer_list,
    )
    unit = "signed distance" if options.to_distance is not None else bank.step_unit
    where = res["files"][0] if len(res["files"]) == 1 else str(out).rstrip("/") + "/"
    text = (
        f"wrote {where}: {len(res['dirs'])} direction(s) x {res['samples']} sample(s) x {options.steps} steps "
        f"({res['alphas'][0]:+g} .. {res['alphas'][-1]:+g} {unit})"
    )
    emit(
        text,
        {
            "files": res["files"],
            "dirs": res["dirs"],
            "seeds": res["seeds"],
            "origin": res["origin"],
            "alphas": res["alphas"],
            "to_distance": options.to_distance is not None,
            "bank": str(bank_path),
            "checkpoint": res["checkpoint"],
            "rows": res["rows"],
            "columns": options.steps,
        },
    )
