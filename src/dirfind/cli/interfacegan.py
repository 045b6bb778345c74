"""``dirfind interfacegan``: linear-SVM boundaries from labelled samples (files or a predictor run)."""

from __future__ import annotations

from typing import Any

import click

from ..methods.interfacegan.fit import FitOptions
from ._options import (
    IndexSpec,
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
from ._output import boundary_text, emit


def _conditions(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[Any]:
    """``--condition BANK:INDEX[,INDEX...]`` (index specs like ``0-2,5``) as typed conditions."""
    from ..errors import BadInputError
    from ..methods.interfacegan.conditions import Condition
    from ..util.specs import parse_indices

    out = []
    for spec in values:
        path, sep, idx = str(spec).rpartition(":")
        if not sep or not path or not idx.strip():
            raise BadInputError(f"--condition must look like BANK.npz:INDEX[,INDEX...], got {spec!r}")
        out.append(Condition(path, tuple(parse_indices(idx, None, "direction"))))
    return out


@command("interfacegan")
@click.option(
    "--latents", default=None, metavar="FILE", help="Latents: a `dirfind sample` .npz, or a plain .npy with --ckpt."
)
@click.option(
    "--scores",
    default=None,
    metavar="FILE",
    help="Scores: .npy (N,) / (N,K), or .csv (index column optional; header names become direction names).",
)
@ckpt_option(required=False)
@click.option("-n", "n", type=int, default=None, help="Predictor mode: number of samples to draw, render and score.")
@click.option(
    "--predictor",
    default=None,
    metavar="MODULE:FUNC",
    help="Predictor mode: images in [-1,1] (NCHW tensor) -> scores; module:function or file.py:function.",
)
@click.option(
    "--space",
    type=click.Choice(["z", "w", "w+"]),
    default=None,
    help="Space of the boundary (default: the latents file's, or the generator's first).",
)
@click.option(
    "--layers",
    default=None,
    type=IndexSpec("layer", allow_all=False),
    metavar="SPEC",
    help="w: the w+ layers edits apply to; w+: the layers the boundary is fitted on (concatenated).",
)
@option_from(FitOptions, "ratio", "--ratio", type=float)
@option_from(FitOptions, "val_split", "--val-split", type=float)
@option_from(FitOptions, "C", "--C", type=float)
@option_from(FitOptions, "solver", "--solver")
@option_from(FitOptions, "invalid_value", "--invalid-value", type=float)
@click.option(
    "--condition",
    "conditions",
    multiple=True,
    metavar="BANK:INDEX[,INDEX...]",
    callback=_conditions,
    help="Project the boundary orthogonal to these directions (repeatable).",
)
@click.option(
    "--name",
    "names",
    default=None,
    metavar="NAME[,NAME...]",
    help="Direction names (default: CSV header / predictor dict keys / file stem).",
)
@click.option("--scores-out", default=None, metavar="FILE.npy", help="Predictor mode: also save the scores.")
@click.option(
    "--batch-size", type=int, default=64, show_default=True, help="Predictor mode: images per generator call."
)
@render_options
@resume_options(shard=False, prefix="Predictor mode: ")
@out_option("boundaries.npz", "Where to write the bank (one unit normal per score column, intercepts).")
def interfacegan_cmd(
    latents: str | None,
    scores: str | None,
    ckpt: str | None,
    n: int | None,
    predictor: str | None,
    space: str | None,
    layers: list[int] | None,
    conditions: list[Any],
    names: str | None,
    scores_out: str | None,
    batch_size: int,
    render: dict[str, Any],
    resume: bool,
    every: float,
    out: str,
    **fit: Any,
) -> None:
    """InterFaceGAN: linear-SVM boundaries separating high and low attribute scores (unit normals + intercepts)."""
    from ..core.parallel import bank_on_main
    from ..errors import BadInputError
    from ..methods.interfacegan import from_files, from_predictor
    from ..util.fileio import check_writable

    force = settings().force
    if predictor is not None and (latents or scores):
        raise BadInputError("give --latents and --scores, or --ckpt -n N --predictor, not both")
    if predictor is None and not (latents and scores):
        raise BadInputError("give --latents FILE --scores FILE, or --ckpt CKPT -n N --predictor MODULE:FUNC")
    options = FitOptions(seed=global_seed(), **fit)
    name_list = [x.strip() for x in names.split(",")] if names else None
    common = {"space": space, "layers": layers, "names": name_list, "conditions": conditions, "fit": options}
    if predictor is not None:
        check_writable(out, force)
        if ckpt is None or n is None:
            raise BadInputError("predictor mode needs --ckpt and -n")
        options.check_samples(n)
        gen = open_generator(ckpt, render)
        bank = from_predictor(
            gen,
            n,
            predictor,
            batch_size=batch_size,
            scores_out=scores_out,
            label=predictor,
            out=out,
            resume=resume,
            force=force,
            every=every,
            **common,
        )
    else:

        def fit_files() -> Any:  # not split over processes: rank 0 alone, the others wait without a time limit
            check_writable(out, force)
            gen = open_generator(ckpt, render) if ckpt else None
            return from_files(latents, scores, gen=gen, out=out, force=force, **common)

        bank = bank_on_main(fit_files)
    emit(boundary_text(bank, out), {"out": str(out), **bank.summary()})
