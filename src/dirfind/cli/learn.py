"""``dirfind hessian`` and ``dirfind orojar``: learn K orthonormal directions minimising a penalty."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..methods.learn import HessianOptions, LearnOptions, OrojarOptions
from ._options import ckpt_option, command, open_generator, option_from, out_option, render_options, settings
from ._options import seed as global_seed
from ._output import bank_text, emit


def _learn_options(cls: type[LearnOptions]) -> Callable:
    """The options of one learner, with its dataclass's defaults (official values)."""

    def deco(f: Callable) -> Callable:
        opts = [
            option_from(cls, "ndirs", "-k", "--ndirs", type=int),
            option_from(cls, "steps", "--steps", type=int),
            option_from(cls, "batch_size", "--batch-size", type=int),
            option_from(cls, "lr", "--lr", type=float),
            option_from(cls, "estimator", "--estimator"),
            option_from(cls, "probes", "--probes", type=int),
            option_from(cls, "epsilon", "--epsilon", type=float),
            option_from(cls, "search_space", "--search-space"),
            option_from(cls, "space", "--space"),
            option_from(cls, "init", "--init"),
            option_from(cls, "checkpoint_steps", "--checkpoint-steps", type=int),
            click.option(
                "--resume", is_flag=True, help="Continue an interrupted run from <out>.progress/ (same options)."
            ),
        ]
        if cls is HessianOptions:
            opts.append(option_from(cls, "path_size", "--path-size", type=float))
        for opt in reversed(opts):
            f = opt(f)
        return f

    return deco


def _learn(cls: type[LearnOptions], ckpt: str, render: dict[str, Any], resume: bool, out: str, opts: Any) -> None:
    from ..methods.learn import learn
    from ..util.fileio import check_writable

    force = settings().force
    options = cls(seed=global_seed(), **opts)  # every option is checked before anything is created
    check_writable(out, force)
    gen = open_generator(ckpt, render)
    bank = learn(gen, options, out=out, resume=resume, force=force)
    loss = bank.info["loss"]
    text = bank_text(bank, out, top=0).splitlines()[0] + (
        f"\n  loss {loss['first']:.5g} -> {loss['last']:.5g} over {loss['steps']} steps "
        f"(mean of last 10%: {loss['mean_last_10pct']:.5g})"
    )
    emit(text, {"out": str(out), **bank.summary()})


@command("hessian")
@ckpt_option()
@_learn_options(HessianOptions)
@render_options
@out_option("directions.npz", "Where to write the direction bank.")
def hessian_cmd(ckpt: str, render: dict[str, Any], resume: bool, out: str, **opts: Any) -> None:
    """Hessian Penalty: learn K orthonormal directions with a diagonal generator Hessian (Peebles et al.)."""
    _learn(HessianOptions, ckpt, render, resume, out, opts)


@command("orojar")
@ckpt_option()
@_learn_options(OrojarOptions)
@render_options
@out_option("directions.npz", "Where to write the direction bank.")
def orojar_cmd(ckpt: str, render: dict[str, Any], resume: bool, out: str, **opts: Any) -> None:
    """OroJaR: learn K directions whose image changes are orthogonal (Wei et al.)."""
    _learn(OrojarOptions, ckpt, render, resume, out, opts)
