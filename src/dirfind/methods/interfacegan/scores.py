"""Attribute score files for InterFaceGAN: ``.npy`` (N,) / (N, K) or ``.csv`` (an optional index
column, one column per attribute, header names become direction names)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from ...errors import BadInputError, MismatchError, NotFoundError

#: CSV columns that identify the sample rather than score it
INDEX_COLUMNS = ("index", "idx", "sample", "id", "seed")
FILE_COLUMNS = ("file", "filename", "image", "path", "name")
_DIGITS = re.compile(r"(\d+)(?:\.[A-Za-z0-9]+)?$")


# ---------------------------------------------------------------------- score files


def read_scores(path: str | Path, indices: np.ndarray | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(scores (M, K) float64, column names, row positions into the latents) from a score file.

    ``indices``: the global sample indices of the latents (``dirfind sample``'s ``indices``);
    a CSV index column (or image file names like ``000123.png``) is matched against them, so the
    CSV may list a subset of the samples in any order. Without an index column, row i scores latent i.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"scores file not found: {path}")
    if path.suffix.lower() == ".csv":
        values, names, pos = _read_csv(path, indices)
    else:
        values, names, pos = _read_npy(path)
    if pos is None:
        if indices is not None and len(values) != len(indices):
            raise MismatchError(f"{path}: {len(values)} score rows but {len(indices)} latents")
        pos = np.arange(len(values))
    return values, names, pos


def _read_npy(path: Path) -> tuple[np.ndarray, list[str], None]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        msg = " ".join(str(e).split())[:100]
        raise BadInputError(f"{path}: not a readable .npy or .csv score file ({msg})") from None
    if not isinstance(arr, np.ndarray):
        raise BadInputError(f"{path}: expected one .npy array of scores, got an .npz archive")
    if arr.dtype.kind not in "fiub":
        raise BadInputError(f"{path}: scores must be numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise BadInputError(f"{path}: scores must have shape (N,) or (N, K), got {arr.shape}")
    stem = path.stem
    names = [stem] if arr.shape[1] == 1 else [f"{stem}_{k}" for k in range(arr.shape[1])]
    return arr.astype(np.float64), names, None


def _read_csv(path: Path, indices: np.ndarray | None) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BadInputError(f"{path}: not a readable CSV file ({e})") from None
    if not rows:
        raise BadInputError(f"{path}: the CSV file is empty")
    has_header = not all(_is_number(c) for c in rows[0])
    header = [c.strip() for c in rows[0]] if has_header else [f"score_{k}" for k in range(len(rows[0]))]
    body = rows[1:] if has_header else rows
    if not body:
        raise BadInputError(f"{path}: the CSV file has a header but no rows")
    width = len(header)
    for i, r in enumerate(body):
        if len(r) != width:
            raise BadInputError(f"{path}: row {i + 1 + has_header} has {len(r)} columns, the header has {width}")
    lower = [h.lower() for h in header]
    key = next((j for j, h in enumerate(lower) if h in INDEX_COLUMNS + FILE_COLUMNS), None) if has_header else None
    cols = [j for j in range(width) if j != key]
    if not cols:
        raise BadInputError(f"{path}: no score columns (only {header[key]!r})")
    values = np.empty((len(body), len(cols)), np.float64)
    for i, r in enumerate(body):
        for k, j in enumerate(cols):
            cell = r[j].strip()
            try:
                values[i, k] = float(cell) if cell else np.nan
            except ValueError:
                raise BadInputError(
                    f"{path}: row {i + 1 + has_header}, column {header[j]!r}: {cell!r} is not a number"
                ) from None
    names = [header[j] for j in cols]
    if key is None:
        return values, names, None
    ids = np.array([_sample_id(r[key], path, i + 2) for i, r in enumerate(body)], np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise BadInputError(f"{path}: sample {uniq[counts > 1][0]} is scored more than once")
    if indices is None:
        indices = np.arange(int(ids.max()) + 1 if len(ids) else 0)
    pos = {int(g): p for p, g in enumerate(np.asarray(indices))}
    missing = [int(g) for g in ids if int(g) not in pos]
    if missing:
        raise MismatchError(f"{path}: sample {missing[0]} is not among the latents ({len(missing)} such rows)")
    return values, names, np.array([pos[int(g)] for g in ids], np.int64)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _sample_id(cell: str, path: Path, line: int) -> int:
    cell = cell.strip()
    if re.fullmatch(r"\d+", cell):
        return int(cell)
    m = _DIGITS.search(Path(cell).name)
    if not m:
        raise BadInputError(f"{path}: line {line}: cannot read a sample index from {cell!r}")
    return int(m[1])
