"""``dirfind jacobian``: LowRankGAN / ReSeFa directions from exact image Jacobians (forward mode)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from ..methods.jacobian import JacobianOptions
from ._options import (
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
from ._output import bank_text, emit


def _region(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int, int, int] | None:
    """``--region X0,Y0,X1,Y1`` in output pixels."""
    if value is None:
        return None
    try:
        x0, y0, x1, y1 = (int(v) for v in value.split(","))
    except ValueError:
        from ..errors import BadInputError

        raise BadInputError(f"--region must be x0,y0,x1,y1 (integers), got {value!r}") from None
    return x0, y0, x1, y1


@command("jacobian")
@ckpt_option()
@click.option(
    "--seeds",
    default="0",
    show_default=True,
    type=IndexSpec("seed", allow_all=False),
    metavar="SPEC",
    help="Sample seed(s); several need --average.",
)
@click.option(
    "--latents", default=None, metavar="FILE", help="Directions at these latents instead (e.g. a dirfind project file)."
)
@click.option(
    "--latent-space", type=click.Choice(["z", "w", "w+"]), default=None, help="Space of a raw .npy/.pt --latents array."
)
@option_from(JacobianOptions, "average", "--average")
@option_from(JacobianOptions, "space", "--space")
@option_from(JacobianOptions, "layers", "--layers", type=IndexSpec("layer"))
@option_from(JacobianOptions, "k", "-k", type=int)
@option_from(JacobianOptions, "size", "--size", type=int)
@option_from(JacobianOptions, "channels", "--channels")
@click.option(
    "--region", default=None, metavar="X0,Y0,X1,Y1", callback=_region, help="Local editing: a box in output pixels."
)
@click.option("--mask", default=None, metavar="FILE.png", help="Local editing: a mask image (non-zero = region).")
@option_from(JacobianOptions, "local_method", "--local-method")
@option_from(JacobianOptions, "rank_method", "--rank-method")
@option_from(JacobianOptions, "energy", "--energy", type=float)
@option_from(JacobianOptions, "relax", "--relax", type=int)
@option_from(JacobianOptions, "tau", "--tau", type=float)
@option_from(JacobianOptions, "chunk", "--chunk", type=int)
@render_options
@out_option("directions.npz", "Where to write the direction bank.")
def jacobian_cmd(
    ckpt: str,
    seeds: list[int],
    latents: str | None,
    latent_space: str | None,
    layers: Any,
    region: Any,
    mask: str | None,
    render: dict[str, Any],
    out: str,
    **opts: Any,
) -> None:
    """LowRankGAN / ReSeFa: eigenvectors of the image Jacobian's JᵀJ (exact, forward mode)."""
    from ..core.dist import is_main
    from ..errors import BadInputError
    from ..methods.jacobian import jacobian_directions, read_mask, region_mask
    from ..util.fileio import check_writable

    force = settings().force
    check_writable(out, force)
    if region is not None and mask is not None:
        raise BadInputError("give --region or --mask, not both")
    options = JacobianOptions(**opts)
    gen = open_generator(ckpt, render)
    area = region_mask(region, gen.resolution) if region is not None else read_mask(mask) if mask else None
    options = replace(options, layers=expand(layers, gen.num_ws), mask=area)
    if latents is not None:
        from ..core.latentfile import read_latent_file

        ls = read_latent_file(latents, gen, latent_space)
        bank = jacobian_directions(gen, ls.tensor(), options, latent_space=ls.space, noise=ls.noise_tensors())
        bank.params["latents"] = str(latents)
    else:
        bank = jacobian_directions(gen, gen.z_from_seeds(seeds), options, seeds=seeds)
    if is_main():
        bank.save(out, force=force)
    emit(bank_text(bank, out), {"out": str(out), **bank.summary()})
