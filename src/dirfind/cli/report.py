"""``dirfind report``: the direction atlas, a static HTML page with traversal strips, heat-maps and metrics."""

from __future__ import annotations

from typing import Any

import click

from ..methods.interpret.evaluate import EvaluateOptions
from ..render.report import ReportOptions
from ._options import DirSpec, IndexSpec, ckpt_option, command, open_generator, option_from, out_option, settings
from ._options import seed as global_seed
from ._output import emit
from .evaluate import evaluation_option


@command("report")
@click.argument("bank_path", metavar="BANK")
@ckpt_option(required=False)
@evaluation_option
@option_from(EvaluateOptions, "n", "-n", help="Samples for the evaluation when --evaluation is not given.")
@option_from(EvaluateOptions, "predictors", "--predictor", multiple=True, default=())
@click.option("--dir", "dirs", type=DirSpec(), default=None, metavar="SPEC", help="Directions to show (default all).")
@option_from(ReportOptions, "seeds", "--seeds", type=IndexSpec("seed", allow_all=False))
@option_from(ReportOptions, "steps", "--steps")
@option_from(ReportOptions, "batch_size", "--batch-size")
@out_option("atlas", "The atlas folder (index.html + PNGs).")
def report_cmd(
    bank_path: str,
    ckpt: str | None,
    evaluation: str | None,
    n: int,
    predictors: tuple[str, ...],
    dirs: list[Any] | None,
    out: str,
    **opts: Any,
) -> None:
    """Write the direction atlas: a static HTML page with strips, heat-maps, labels and sortable metrics."""
    from ..bank import DirectionBank, checkpoint_of
    from ..core.evaluation import Evaluation
    from ..methods.interpret import evaluate
    from ..render.report import report
    from ..util.fileio import check_writable

    force = settings().force
    check_writable(str(out).rstrip("/"), force)
    options = ReportOptions(**opts)
    bank = DirectionBank.load(bank_path)
    chosen = bank.resolve(dirs) if dirs else None
    gen = open_generator(ckpt or checkpoint_of(bank.generator))
    if evaluation is not None:
        ev = Evaluation.load(evaluation)
    else:
        eo = EvaluateOptions(n=n, predictors=predictors, dirs=chosen, seed=global_seed())
        ev = evaluate(gen, bank, eo, bank_path=bank_path, force=force)
    res = report(gen, bank, out, ev, options, dirs=chosen, bank_path=bank_path, force=force)
    emit(f"wrote {res['index']}: {len(res['dirs'])} direction(s), {len(res['files'])} files", res)
