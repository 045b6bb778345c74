"""``dirfind label``: name directions after the attribute each changes most (a new bank)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..methods.interpret.evaluate import EvaluateOptions
from ..methods.interpret.label import LabelOptions
from ._options import DirSpec, ckpt_option, command, open_generator, option_from, out_option, settings
from ._options import seed as global_seed
from ._output import emit
from .evaluate import evaluation_option


def label_text(bank: Any, out: str) -> str:
    lines = [f"wrote {out}: {len(bank)} directions"]
    for rec in bank.info["labels"]:
        conf = "-" if rec["confidence"] is None else f"x{rec['confidence']:.1f}"
        hint = f"  [{rec['layers']['region']}]" if rec.get("layers") else ""
        why = f"  ({rec['why']}: {rec['attribute']} {rec['response']:+.2f})" if rec["why"] else ""
        lines.append(
            f"  {rec['index']:3d}  {rec['name']:<20} from {rec['original_name']:<16} "
            f"{rec['attribute']} {rec['response']:+.2f}, next {rec['runner_up'] or '-'}, confidence {conf}{hint}{why}"
        )
    return "\n".join(lines)


@command("label")
@click.argument("bank_path", metavar="BANK")
@ckpt_option(required=False)
@evaluation_option
@option_from(EvaluateOptions, "predictors", "--predictor", multiple=True, default=())
@option_from(EvaluateOptions, "n", "-n")
@option_from(EvaluateOptions, "steps", "--steps")
@option_from(EvaluateOptions, "span", "--range", type=float, nargs=2)
@option_from(EvaluateOptions, "dirs", "--dir", type=DirSpec())
@option_from(EvaluateOptions, "batch_size", "--batch-size")
@option_from(LabelOptions, "min_effect", "--min-effect")
@option_from(LabelOptions, "min_ratio", "--min-ratio")
@out_option("labelled.npz", "The new bank, named by the labels (the input is never changed without --force).")
def label_cmd(
    bank_path: str,
    ckpt: str | None,
    evaluation: str | None,
    min_effect: float,
    min_ratio: float,
    out: str,
    **opts: Any,
) -> None:
    """Name each direction after the attribute it changes most (+smile, -age, mixed); writes a new bank."""
    from ..bank import DirectionBank, checkpoint_of
    from ..core.evaluation import Evaluation
    from ..errors import BadInputError, OutputError
    from ..methods.interpret import evaluate, label
    from ..util.fileio import check_writable

    force = settings().force
    if Path(out).exists() and Path(out).resolve() == Path(bank_path).resolve() and not force:
        raise OutputError(f"{out} is the input bank; label writes a new bank (pass --force to replace the input)")
    check_writable(out, force)
    options = LabelOptions(min_effect=min_effect, min_ratio=min_ratio)
    bank = DirectionBank.load(bank_path)
    if evaluation is not None:
        ev = Evaluation.load(evaluation)
    else:
        if not opts["predictors"]:
            raise BadInputError("give --predictor (faces, image, module:function) or --evaluation FILE")
        if opts["dirs"]:
            opts["dirs"] = bank.resolve(opts["dirs"])
        gen = open_generator(ckpt or checkpoint_of(bank.generator))
        ev = evaluate(gen, bank, EvaluateOptions(seed=global_seed(), **opts), bank_path=bank_path, force=force)
    labelled = label(bank, ev, options, force=force)
    labelled.save(out, force=force)
    emit(label_text(labelled, out), {"out": str(out), "labels": labelled.info["labels"], **labelled.summary()})
