"""``dirfind compare``: principal angles, best one-to-one matching and unmatched directions of banks."""

from __future__ import annotations

from typing import Any

import click

from ..methods.interpret.compare import CompareOptions
from ._options import command, option_from, settings
from ._output import emit


def compare_text(a: str, b: str, res: dict[str, Any], top: int = 10) -> str:
    angles = ", ".join(f"{x:.1f}" for x in res["principal_angles_deg"][:top])
    more = " ..." if len(res["principal_angles_deg"]) > top else ""
    lines = [f"{a} ({res['num_a']}) vs {b} ({res['num_b']})", f"  principal angles (deg): {angles}{more}"]
    for m in sorted(res["matches"], key=lambda m: m["a"])[:top]:
        flag = "" if m["abs_cos"] >= res["min_cos"] else "  (no counterpart)"
        lines.append(
            f"  A {m['a']:3d} {m['a_name']:<16} <-> B {m['b']:3d} {m['b_name']:<16} |cos| {m['abs_cos']:.3f}{flag}"
        )
    lines.append(f"  A without a counterpart (|cos| < {res['min_cos']:g}): {res['unmatched_a'] or 'none'}")
    return "\n".join(lines)


@command("compare")
@click.argument("banks", nargs=-1, required=True, metavar="A.npz B.npz [...]")
@option_from(CompareOptions, "k", "-k")
@option_from(CompareOptions, "min_cos", "--min-cos")
def compare_cmd(banks: tuple[str, ...], k: int | None, min_cos: float) -> None:
    """Compare banks of one generator and space: principal angles, |cos| matching, unmatched directions."""
    from ..bank import DirectionBank
    from ..errors import BadInputError
    from ..methods.interpret import compare

    if len(banks) < 2:
        raise BadInputError("give at least two banks: A.npz B.npz [...]")
    first = DirectionBank.load(banks[0])
    opts = CompareOptions(k=k, min_cos=min_cos)
    results = []
    for other in banks[1:]:
        res = compare(first, DirectionBank.load(other), opts, force=settings().force)
        results.append({"a": banks[0], "b": other, **res, "abs_cos": res["abs_cos"].tolist()})
    emit("\n".join(compare_text(r["a"], r["b"], r) for r in results), {"comparisons": results})
