"""Edit recipes: several directions (from one or more banks), each with its own amount and layers,
applied to given latents in turn and rendered before and after.

A recipe is a small JSON file (``format: dirfind.edit-recipe``) that ``dirfind edit`` writes with
``save_recipe`` and re-applies with ``recipe``; bank paths in it are kept as given and, when relative,
also looked up next to the recipe file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..bank import DirectionBank
from ..core.edits import edit_layers, offsets, working_space
from ..core.latentfile import LatentSet, read_latent_file, to_working
from ..errors import BadInputError, NotFoundError
from ..generators.base import Generator
from ..util.fileio import atomic_path
from .edit import bank_edit, signed_distance

FORMAT = "dirfind.edit-recipe"


@dataclass(frozen=True)
class Edit:
    """One direction of a recipe: ``bank`` (position in the recipe's banks), ``direction`` (index or
    name), ``amount`` (steps in the bank's unit, or a target signed distance with ``to_distance``) and
    optional w+ ``layers`` (w banks and per-layer z)."""

    direction: int | str
    amount: float
    bank: int = 0
    layers: tuple[int, ...] | None = None
    to_distance: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.direction, bool) or not isinstance(self.direction, (int, str)):
            raise BadInputError(f"a direction is an index or a name, got {self.direction!r}", param="dirs")
        if isinstance(self.amount, bool) or not isinstance(self.amount, (int, float)) or not math.isfinite(self.amount):
            what = "target distance" if self.to_distance else "amount"
            raise BadInputError(
                f"the {what} of direction {self.direction!r} must be a finite number, got {self.amount}"
            )
        if isinstance(self.bank, bool) or not isinstance(self.bank, int):
            raise BadInputError(f"the bank of an edit is a position (0, 1, ...), got {self.bank!r}", param="dirs")


@dataclass(frozen=True)
class Recipe:
    """Banks (paths) and the edits applied in order."""

    banks: tuple[str, ...]
    edits: tuple[Edit, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.banks:
            raise BadInputError("an edit needs a bank", param="bank")
        if not self.edits:
            raise BadInputError("an edit needs at least one direction", param="dirs")
        for e in self.edits:
            if not 0 <= e.bank < len(self.banks):
                raise BadInputError(f"edit of bank {e.bank}, but there are {len(self.banks)} bank(s)", param="dirs")

    def to_json(self) -> dict[str, Any]:
        edits = [{**asdict(e), "layers": None if e.layers is None else list(e.layers)} for e in self.edits]
        return {"format": FORMAT, "format_version": 1, "banks": list(self.banks), "edits": edits}

    def save(self, path: str | Path, force: bool = False) -> Path:
        with atomic_path(path, force=force, suffix=".json") as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        path = Path(path)
        if not path.exists():
            raise NotFoundError(f"recipe not found: {path}", param="recipe")
        if path.is_dir():
            raise BadInputError(f"{path} is a folder, not an edit recipe", param="recipe")

        def bad(why: str) -> BadInputError:
            return BadInputError(f"{path}: not a dirfind edit recipe ({why})", param="recipe")

        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise bad(" ".join(str(e).split())[:100] or type(e).__name__) from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise bad(f"format {d.get('format') if isinstance(d, dict) else type(d).__name__!r}")
        raw_banks, raw_edits = d.get("banks"), d.get("edits")
        if not isinstance(raw_banks, list) or not all(isinstance(b, str) for b in raw_banks):
            raise bad("banks must be a list of file names")
        if not isinstance(raw_edits, list) or not all(isinstance(e, dict) for e in raw_edits):
            raise bad("edits must be a list of objects")
        banks = []
        for b in raw_banks:
            p = Path(b)
            banks.append(str(p if p.is_absolute() or p.exists() else path.parent / p))
        edits = []
        for e in raw_edits:
            layers = e.get("layers")
            if layers is not None and (
                not isinstance(layers, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers)
            ):
                raise bad(f"layers must be a list of integers, got {layers!r}")
            if "direction" not in e or "amount" not in e:
                raise bad("every edit needs a direction and an amount")
            lay = None if layers is None else tuple(layers)
            try:
                edits.append(Edit(e["direction"], e["amount"], e.get("bank", 0), lay, bool(e.get("to_distance"))))
            except BadInputError as err:
                raise bad(str(err)) from None
        return cls(tuple(banks), tuple(edits))


def _space(gen: Generator, banks: Sequence[DirectionBank], recipe: Recipe) -> str:
    """The working space all the recipe's edits share: z only if every edit moves the whole z."""
    spaces = set()
    for e in recipe.edits:
        space, lay = bank_edit(gen, banks[e.bank], e.layers)
        spaces.add(working_space(space, lay))
    return "z" if spaces == {"z"} else "w+"


def apply_recipe(
    gen: Generator, banks: Sequence[DirectionBank], recipe: Recipe, latents: LatentSet
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(unedited, edited, working space): the latents before and after every edit of ``recipe``, in
    turn (a distance target is measured after the edits before it)."""
    work = _space(gen, banks, recipe)
    if work == "z" and latents.space != "z":
        raise BadInputError(f"z edits need z latents; the file holds {latents.space} latents", param="latents")
    base = to_working(gen, latents.tensor(), latents.space, "z" if work == "z" else "w", None)
    x = base.double().clone()
    for e in recipe.edits:
        bank = banks[e.bank]
        (k,) = bank.resolve([e.direction])
        space, lay = bank_edit(gen, bank, e.layers)
        sel = edit_layers(gen, space, lay)
        d = torch.from_numpy(bank.directions[k] * bank.scales[k])
        if work == "w+" and space == "z" and not sel:
            raise BadInputError(
                f"{bank.method} bank edits all of z; it cannot be combined with w/w+ edits", param="dirs"
            )
        if e.to_distance:
            cur = signed_distance(gen, bank, k, x.float(), e.layers)
            a = (e.amount - cur) / float(bank.scales[k])
            unit = offsets(d, [1.0], space, sel, gen.num_ws)[0]
            x = x + a.reshape(-1, *([1] * unit.ndim)) * unit
        else:
            x = x + offsets(d, [e.amount], space, sel, gen.num_ws)[0]
    return base, x.float(), work


def edit_latents(
    gen: Generator,
    banks: Sequence[DirectionBank],
    recipe: Recipe,
    latents: LatentSet | str | Path,
    *,
    latent_space: str | None = None,
    out: str | Path | None = None,
    grid: str | Path | None = None,
    batch_size: int = 32,
    force: bool = False,
) -> dict[str, Any]:
    """Apply ``recipe`` to ``latents`` and render the results (with a projection's noise maps).

    Parameters
    ----------
    gen : Generator
        The generator the banks were made for (another one only with ``force``).
    banks : sequence of DirectionBank
        The recipe's banks, in its order.
    recipe : Recipe
        The edits, applied in turn.
    latents : LatentSet or path
        The latents (any file :func:`dirfind.core.latentfile.read_latent_file` reads).
    out : str or Path, optional
        A folder: one PNG per latent (``0000.png`` ... or the projected image's name) and the edited
        working-space latents as ``latents.npy``.
    grid : str or Path, optional
        A before/after grid: rows = latents; columns = target (projections), unedited, edited.

    Returns
    -------
    dict
        ``images`` (N, H, W, C) uint8 edited, ``before``, ``space``, ``count``, ``files``, ``grid``,
        ``columns``. With ``out`` the images are rendered and written a part at a time, and
        ``images``/``before`` are None when both would exceed :data:`~dirfind.render.images.MAX_IMAGE_BYTES`
        (and on the processes other than rank 0 of a distributed run).
    """
    from contextlib import nullcontext

    import numpy as np

    from ..core.dist import world
    from ..util.fileio import atomic_dir, check_writable
    from ..util.images import write_png
    from ..util.progress import bar
    from .batched import render
    from .images import MAX_IMAGE_BYTES, check_traversal_out, check_traversal_size, write_traversal
    from .traverse import bank_settings

    if grid is not None:
        check_traversal_out(grid, force, "grid")
    if out is not None:
        check_writable(str(out).rstrip("/\\"), force, directory=True)
    for b in banks:
        b.check_generator(gen, force=force)
    gen = gen.with_settings(**bank_settings(gen, banks[0]))
    ls = latents if isinstance(latents, LatentSet) else read_latent_file(latents, gen, latent_space)
    tile = (gen.resolution, gen.resolution, gen.channels)
    n, per = len(ls), gen.resolution**2 * gen.channels
    targets = ls.arrays.get("targets")  # a projection's fitted target images
    if targets is not None and tuple(targets.shape[1:]) != tile:
        targets = None
    columns = ["target"] * (targets is not None) + ["unedited", "edited"]
    if grid is not None:  # the grid is one image: it must fit (then so do the images it shows)
        check_traversal_size(grid, n, len(columns), tile)
    keep = 2 * n * per <= MAX_IMAGE_BYTES
    if not keep and out is None:
        raise BadInputError(
            f"{n} edited {tile[0]}px images and their unedited ones are too many to hold in memory "
            f"({2 * n * per / 2**30:.1f} GiB, limit {MAX_IMAGE_BYTES / 2**30:g} GiB); write them to a folder",
            param="out",
        )
    before, after, work = apply_recipe(gen, banks, recipe, ls)
    noise = ls.noise_tensors()
    chunk = n if keep else max(1, MAX_IMAGE_BYTES // (4 * per))  # images rendered and written at a time
    stems = [Path(x).stem for x in ls.names]
    names = stems if stems and len(set(stems)) == n else []
    main = world().is_main
    folder = None if out is None else Path(str(out).rstrip("/\\"))
    files, imgs = [], None
    with (
        atomic_dir(folder, force=force) if folder is not None and main else nullcontext() as tmp,
        bar(total=2 * n, desc="render", unit="img") as pbar,
    ):
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            part = None if noise is None else [m[None, lo:hi] for m in noise]
            pair = render(gen, torch.stack([before[lo:hi], after[lo:hi]]), work, batch_size, pbar=pbar, noise=part)
            if pair is None:  # a distributed run's process other than rank 0
                continue
            if tmp is not None:
                for i, img in enumerate(pair[1], lo):
                    name = f"{names[i] if names else f'{i:04d}'}.png"
                    write_png(tmp / name, img)
                    files.append(str(folder / name))
            if keep:  # then the whole edit is this one part
                imgs = pair
        if tmp is not None:
            np.save(tmp / "latents.npy", after.cpu().numpy().astype(np.float32))
        if grid is not None and imgs is not None:  # inside: a grid that cannot be written leaves no folder either
            tiles = np.stack([imgs[0], imgs[1]], 1)
            if targets is not None:
                tiles = np.concatenate([targets[:, None], tiles], 1)
            write_traversal(tiles, grid, force=force)
    return {
        "images": None if imgs is None else imgs[1],
        "before": None if imgs is None else imgs[0],
        "space": work,
        "count": n,
        "files": files,
        "grid": None if grid is None else str(grid),
        "columns": columns,
        "latents_file": None if folder is None else str(folder / "latents.npy"),
    }
