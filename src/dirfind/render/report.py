"""``dirfind report``: the direction atlas, a static HTML page with its PNGs (no server, no framework).

Per direction: an annotated traversal strip, the change heat-map, the name (the label, for banks
``dirfind label`` wrote) and the evaluation's metrics, in a table sortable by any column (a few
lines of vanilla JavaScript); the entanglement matrices as pictures; the bank's method, params and
generator at the top. Everything is written into a fresh folder that replaces ``out`` atomically.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..bank import DirectionBank
from ..core.evaluation import Evaluation
from ..generators.base import Generator
from ..util.fileio import atomic_dir
from ..util.options import check_positive, option
from .annotate import Annotation, annotated_grid, step_labels
from .traverse import traverse

#: viridis at five stops (perceptually uniform; dark = no change)
_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)


@dataclass(frozen=True)
class ReportOptions:
    """Options of :func:`report` (the defaults of ``dirfind report``)."""

    seeds: tuple[int, ...] = option((0, 1, 2), "Samples shown in each direction's strip.", metavar="SPEC")
    steps: int = option(7, "Steps in each strip.")
    batch_size: int = option(32, "Images per generator call.")

    def __post_init__(self) -> None:
        check_positive(self.steps, "steps")
        check_positive(self.batch_size, "batch_size")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))


def colormap(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """A 2-D array as uint8 RGB through viridis, scaled from ``lo`` (default min) to ``hi`` (max)."""
    v = np.nan_to_num(np.asarray(values, np.float64))
    lo = float(v.min()) if lo is None else lo
    hi = float(v.max()) if hi is None else hi
    t = np.clip((v - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(v)
    pos = t * (len(_STOPS) - 1)
    i = np.minimum(pos.astype(int), len(_STOPS) - 2)
    f = (pos - i)[..., None]
    return np.round(_STOPS[i] * (1 - f) + _STOPS[i + 1] * f).astype(np.uint8)


def heatmap_png(change_map: np.ndarray, path: Path, size: int = 128) -> None:
    """A change map as a viridis PNG, upscaled (nearest) to at least ``size`` pixels a side."""
    rgb = colormap(change_map, 0.0)
    scale = max(1, -(-size // rgb.shape[0]))
    Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST).save(path)


def write_heatmaps(evaluation: Evaluation, folder: str | Path, force: bool = False) -> list[Path]:
    """``d<index>.png`` heat-maps of every evaluated direction's change map, in a new folder."""
    folder = Path(str(folder).rstrip("/\\"))
    files = []
    with atomic_dir(folder, force=force) as tmp:
        for row, k in enumerate(evaluation.dirs):
            heatmap_png(evaluation["change_map"][row], tmp / f"d{k:03d}.png")
            files.append(folder / f"d{k:03d}.png")
    return files


def matrix_png(m: np.ndarray, path: Path, cell: int | None = None) -> None:
    """A K x K matrix in [0, 1] as a viridis picture with square cells."""
    k = len(m)
    cell = cell or max(4, 320 // max(k, 1))
    rgb = colormap(np.abs(m), 0.0, 1.0)
    Image.fromarray(rgb).resize((k * cell, k * cell), Image.NEAREST).save(path)


# ---------------------------------------------------------------------- the page


def _num(v: Any, digits: int = 3) -> tuple[str, str]:
    """(sort key, display text) of a metric value."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "", "–"
    if isinstance(v, bool):
        return str(int(v)), "yes" if v else "no"
    return repr(float(v)), f"{float(v):.{digits}g}"


def _columns(evaluation: Evaluation | None) -> list[tuple[str, str]]:
    """(metric key, header) of the table's metric columns."""
    if evaluation is None:
        return []
    cols = [
        ("effect", "effect"),
        ("monotone", "monotone"),
        ("saturation", "saturation"),
        ("box50", "box50"),
        ("entropy", "entropy"),
        ("outside_share", "outside share"),
        ("ssim", "SSIM ends"),
    ]
    if evaluation.get("inside_outside") is not None:
        cols += [("inside_outside", "inside/outside"), ("inside_share", "inside share")]
    if evaluation.attributes:
        cols += [("top_attr", "top attribute"), ("top_response", "response"), ("ad_mean", "AD mean")]
    return cols


def _row_values(evaluation: Evaluation, row: int) -> dict[str, Any]:
    vals: dict[str, Any] = {}
    for key in ("effect", "saturation", "box50", "entropy", "outside_share", "ssim", "inside_outside", "inside_share"):
        arr = evaluation.get(key)
        if arr is not None:
            vals[key] = float(arr[row])
    vals["monotone"] = bool(evaluation["monotone"][row])
    if evaluation.attributes:
        r = np.nan_to_num(evaluation["response"][row])
        a = int(np.argmax(np.abs(r)))
        vals["top_attr"] = evaluation.attributes[a]
        vals["top_response"] = float(r[a])
        ad = float(evaluation["ad_mean"][row, a])
        vals["ad_mean"] = ad if np.isfinite(ad) else None
    return vals


_SCRIPT = """
document.querySelectorAll('th[data-col]').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
    var asc = th.getAttribute('data-dir') !== 'asc';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
      var nx = parseFloat(x), ny = parseFloat(y), cmp;
      if (x === '' || y === '') { cmp = (x === '') - (y === ''); return cmp; }
      cmp = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? cmp : -cmp;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; vertical-align: middle; }
th[data-col] { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }
th[data-dir=asc]::after { content: ' \\25B2'; } th[data-dir=desc]::after { content: ' \\25BC'; }
td.name, th.name { text-align: left; font-weight: bold; }
img { image-rendering: pixelated; display: block; }
.meta { font-size: 0.9em; } .meta td { text-align: left; } code { font-size: 0.85em; }
.matrices { display: flex; gap: 2em; flex-wrap: wrap; }
"""


def _page(bank: DirectionBank, bank_path: str | None, evaluation: Evaluation | None, rows: list[dict[str, Any]]) -> str:
    e = html.escape
    g = bank.generator
    meta = [
        (
            "bank",
            f"{e(str(bank_path or ''))} — {len(bank)} {e(bank.method)} directions in {e(bank.space)}"
            + (f" layers {e(str(bank.layers))}" if bank.layers is not None else ""),
        ),
        (
            "generator",
            f"{e(str(g.get('family')))} {e(str(g.get('checkpoint')))} "
            f"({g.get('resolution')} px, sha256 {e(str(g.get('fingerprint'))[:16])}...)",
        ),
        ("params", f"<code>{e(json.dumps(bank.params, sort_keys=True))}</code>"),
        ("steps", f"{e(bank.step_unit)}, range {bank.default_range[0]:g} .. {bank.default_range[1]:g}"),
    ]
    if evaluation is not None:
        run = evaluation.run
        given = run.get("latents")
        what = (
            f"{run.get('n')} latents of {given.get('file') or 'given latents'}"
            if isinstance(given, dict)
            else f"{run.get('n')} samples (seed {run.get('seed')})"
        )
        meta.append(
            (
                "evaluation",
                f"{e(what)}, {run.get('steps')} steps over "
                f"{run.get('span')}, predictors: {e(', '.join(run.get('predictors') or []) or 'none')}",
            )
        )
    cols = _columns(evaluation)
    head = "".join(f'<th data-col="{k}">{e(h)}</th>' for k, h in cols)
    body = []
    for r in rows:
        cells = [
            f'<td data-v="{r["index"]}">{r["index"]}</td>',
            f'<td class="name" data-v="{e(r["name"])}">{e(r["name"])}</td>',
        ]
        for k, _ in cols:
            v = r["values"].get(k)
            if isinstance(v, str):
                cells.append(f'<td data-v="{e(v)}">{e(v)}</td>')
            else:
                key, text = _num(v)
                cells.append(f'<td data-v="{key}">{text}</td>')
        if evaluation is not None:
            heat = (
                f'<img src="{r["heat"]}" alt="change map of direction {r["index"]}" width="96">'
                if r.get("heat")
                else ""
            )
            cells.append(f"<td>{heat}</td>")
        cells.append(f'<td><img src="{r["strip"]}" alt="traversal of direction {r["index"]}"></td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    heat_head = "<th>change map</th>" if evaluation is not None else ""
    matrices = '<div><h3>latent |cos|</h3><img src="latent_cos.png" alt="latent cosines"></div>'
    if evaluation is not None:
        matrices = (
            '<div><h3>change-map correlation</h3><img src="entanglement.png" alt="entanglement"></div>' + matrices
        )
    meta_html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in meta)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dirfind atlas: {e(str(bank_path or bank.method))}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Direction atlas</h1>
<table class="meta">{meta_html}</table>
<h2>Directions</h2>
<p>Click a column header to sort. Strips: rows are samples, columns are steps; heat-maps show the mean
|change| between the ends of the range (bright = more).</p>
<table id="directions"><thead><tr><th data-col="index">#</th><th class="name" data-col="name">name</th>{head}
{heat_head}<th>traversal</th></tr></thead>
<tbody>{"".join(body)}</tbody></table>
<h2>Entanglement</h2>
<p>Directions in table order of the evaluation (row/column i = the i-th evaluated direction); bright = similar.</p>
<div class="matrices">{matrices}</div>
<script>{_SCRIPT}</script>
</body></html>
"""


def report(
    gen: Generator,
    bank: DirectionBank,
    out: str | Path,
    evaluation: Evaluation | None = None,
    opts: ReportOptions | None = None,
    *,
    dirs: Sequence[int] | None = None,
    bank_path: str | Path | None = None,
    force: bool = False,
    **changes: Any,
) -> dict[str, Any]:
    """Write the atlas of ``bank`` into the folder ``out`` (replaced atomically; ``force`` if it exists).

    Parameters
    ----------
    gen : Generator
        Renders the strips (the bank's generator; another one only with ``force``).
    bank : DirectionBank
        The directions (their names head the rows).
    out : str or Path
        The atlas folder: ``index.html``, ``strips/``, ``heat/`` and the matrix pictures.
    evaluation : Evaluation, optional
        ``dirfind evaluate`` results for metrics, heat-maps and entanglement.
    opts : ReportOptions, optional
        Strip ``seeds``, ``steps`` and the render ``batch_size``; keyword ``changes`` override its fields.
    dirs : sequence of int, optional
        Directions to show (default: the evaluated ones, else all).

    Returns
    -------
    dict
        ``index`` (the page), ``files`` and ``dirs``.
    """
    o = replace(opts or ReportOptions(), **changes)
    if evaluation is not None:
        evaluation.check_bank(bank, force=force)
    shown = (
        bank.check_indices(list(dirs))
        if dirs is not None
        else (evaluation.dirs if evaluation else list(range(len(bank))))
    )
    out = Path(str(out).rstrip("/\\"))
    rows, files = [], []
    with atomic_dir(out, force=force) as tmp:
        (tmp / "strips").mkdir()
        if evaluation is not None:
            (tmp / "heat").mkdir()
        where = {k: i for i, k in enumerate(evaluation.dirs)} if evaluation is not None else {}
        for k in shown:
            res = traverse(gen, bank, [k], seeds=o.seeds, steps=o.steps, batch_size=o.batch_size, force=force)
            note = Annotation(step_labels(res["alphas"]), tuple(f"seed {s}" for s in o.seeds), bank.step_unit)
            strip = annotated_grid(res["images"], note)
            Image.fromarray(strip).save(tmp / "strips" / f"d{k:03d}.png")
            row = {"index": k, "name": bank.names[k], "strip": f"strips/d{k:03d}.png", "values": {}}
            if k in where:
                heatmap_png(evaluation["change_map"][where[k]], tmp / "heat" / f"d{k:03d}.png")
                row["heat"] = f"heat/d{k:03d}.png"
                row["values"] = _row_values(evaluation, where[k])
            rows.append(row)
        d = bank.directions.astype(np.float64)
        sel = evaluation.dirs if evaluation is not None else shown
        unit = d[sel] / np.linalg.norm(d[sel], axis=1, keepdims=True)
        matrix_png(unit @ unit.T, tmp / "latent_cos.png")
        if evaluation is not None:
            matrix_png(evaluation["map_corr"], tmp / "entanglement.png")
        (tmp / "index.html").write_text(
            _page(bank, None if bank_path is None else str(bank_path), evaluation, rows), "utf-8"
        )
        files = sorted(str(out / p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    return {"index": str(out / "index.html"), "files": files, "dirs": shown}
