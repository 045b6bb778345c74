"""``dirfind edit``: apply directions of one or more banks to given latents (e.g. projected photos)."""

from __future__ import annotations

from typing import Any

import click

from ._options import ckpt_option, command, open_generator, out_option, render_options, settings
from ._output import emit


def parse_dir(spec: str, amount: float | None, to_distance: bool) -> Any:
    """``[BANK/]DIR[:AMOUNT][@LAYERS]`` (``smile:+2``, ``1/yaw:-1@0-5``, ``3``) as an ``Edit``."""
    from ..errors import BadInputError
    from ..render.recipe import Edit
    from ..util.specs import parse_indices

    text, bank, layers, amt = spec.strip(), 0, None, amount
    if "/" in text:
        b, text = text.split("/", 1)
        if not b.isdigit():
            raise BadInputError(f"--dir {spec!r}: BANK/ must be the position of a --bank (0, 1, ...)")
        bank = int(b)
    if "@" in text:
        text, lay = text.rsplit("@", 1)
        layers = tuple(parse_indices(lay, what="layer"))
    if ":" in text:
        text, a = text.rsplit(":", 1)
        try:
            amt = float(a)
        except ValueError:
            raise BadInputError(f"--dir {spec!r}: amount {a!r} is not a number") from None
    if not text:
        raise BadInputError(f"--dir {spec!r}: no direction name or index")
    if amt is None:
        raise BadInputError(f"--dir {spec!r} has no amount: write NAME:AMOUNT, or give --amount or --to-distance")
    return Edit(int(text) if text.lstrip("-").isdigit() else text, amt, bank, layers, to_distance)


@command("edit")
@click.option("--latents", required=True, metavar="FILE", help="Latents: a projection, sample, .npy or .pt file.")
@click.option(
    "--latent-space", type=click.Choice(["z", "w", "w+"]), default=None, help="Space of a raw .npy/.pt array."
)
@click.option("--bank", "banks", multiple=True, metavar="BANK.npz", help="Direction bank (repeatable: BANK/ in --dir).")
@click.option(
    "--dir",
    "dirs",
    multiple=True,
    metavar="[BANK/]DIR[:AMOUNT][@LAYERS]",
    help="A direction by name or index, its amount and layers, e.g. smile:+2 or 1/3:-1@0-5 (repeatable).",
)
@click.option("--amount", type=float, default=None, help="Amount of every --dir that gives none (bank's step unit).")
@click.option("--to-distance", type=float, default=None, help="Hyperplane banks: move to this signed distance instead.")
@click.option("--recipe", default=None, metavar="FILE.json", help="Apply a saved recipe (instead of --bank/--dir).")
@click.option("--save-recipe", default=None, metavar="FILE.json", help="Save the edit as a recipe to reapply.")
@click.option(
    "--grid", default=None, metavar="GRID.png", help="Also write a before/after grid (target first if known)."
)
@ckpt_option(required=False)
@render_options
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per generator call.")
@out_option("edited/", "Folder for the edited images (one PNG per latent) and latents.npy.")
def edit_cmd(
    latents: str,
    latent_space: str | None,
    banks: tuple[str, ...],
    dirs: tuple[str, ...],
    amount: float | None,
    to_distance: float | None,
    recipe: str | None,
    save_recipe: str | None,
    grid: str | None,
    ckpt: str | None,
    render: dict[str, Any],
    batch_size: int,
    out: str,
) -> None:
    """Apply bank directions to given latents (e.g. projected photos) and render them before and after."""
    from ..bank import DirectionBank, checkpoint_of
    from ..errors import BadInputError
    from ..render.recipe import Recipe, edit_latents
    from ..util.fileio import check_writable

    force = settings().force
    if save_recipe:
        check_writable(save_recipe, force)  # before anything is written
    if recipe is not None:
        if banks or dirs:
            raise BadInputError("give --recipe or --bank/--dir, not both")
        rec = Recipe.load(recipe)
    else:
        if amount is not None and to_distance is not None:
            raise BadInputError("give --amount or --to-distance, not both")
        default = to_distance if to_distance is not None else amount
        rec = Recipe(tuple(banks), tuple(parse_dir(d, default, to_distance is not None) for d in dirs))
    loaded = [DirectionBank.load(b) for b in rec.banks]
    gen = open_generator(ckpt or checkpoint_of(loaded[0].generator), render)
    res = edit_latents(
        gen, loaded, rec, latents, latent_space=latent_space, out=out, grid=grid, batch_size=batch_size, force=force
    )
    if save_recipe:
        rec.save(save_recipe, force=force)
    text = f"wrote {out.rstrip('/')}/: {res['count']} edited image(s), {len(rec.edits)} edit(s)"
    if grid:
        text += f"\nwrote {grid}: {' | '.join(res['columns'])}"
    if save_recipe:
        text += f"\nwrote {save_recipe}: the recipe (dirfind edit --recipe {save_recipe} --latents ...)"
    emit(
        text,
        {
            **{k: v for k, v in res.items() if k not in ("images", "before")},
            "recipe": rec.to_json(),
            "saved_recipe": save_recipe,
        },
    )
