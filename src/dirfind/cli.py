"""The ``dirfind`` command: a thin click layer over the library.

Results go to stdout (``--json`` for machine-readable output), progress and logs to stderr.
Expected failures print one line ``dirfind: error: ...`` and exit with the codes in
:mod:`dirfind.errors`; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from . import __version__, errors
from .progress import configure as configure_logging

# ---------------------------------------------------------------------- global options


@dataclass
class Settings:
    device: str = "auto"
    seed: int | None = None
    json: bool = False
    force: bool = False
    debug: bool = False
    quiet: bool = False


SETTINGS = Settings()


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    # Only explicit values count, so an option given before the subcommand is not reset by the
    # subcommand's own default (click reports no parameter source inside eager callbacks).
    if value != param.default:
        setattr(SETTINGS, param.name, value)
        if param.name in ("quiet", "debug"):
            configure_logging(quiet=SETTINGS.quiet, debug=SETTINGS.debug)
    return value


_GLOBAL_OPTIONS = [
    click.option(
        "--device",
        default="auto",
        metavar="auto|cpu|cuda[:N]",
        expose_value=False,
        callback=_store,
        is_eager=True,
        help="Where to run the generator (default: auto = CUDA if available).",
    ),
    click.option(
        "--seed",
        type=int,
        default=None,
        expose_value=False,
        callback=_store,
        is_eager=True,
        help="Seed for every random choice (sampling, shuffles, noise).",
    ),
    click.option(
        "--json",
        "json",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_store,
        is_eager=True,
        help="Print machine-readable JSON results on stdout.",
    ),
    click.option(
        "--force",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_store,
        is_eager=True,
        help="Overwrite existing outputs; use a bank with a different generator.",
    ),
    click.option(
        "--debug",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_store,
        is_eager=True,
        help="Show full tracebacks on errors.",
    ),
    click.option(
        "-q",
        "--quiet",
        "quiet",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_store,
        is_eager=True,
        help="No progress bars or log lines (errors still go to stderr).",
    ),
]


def global_options(f: Callable) -> Callable:
    """Accept the global options both before and after the subcommand name."""
    for opt in reversed(_GLOBAL_OPTIONS):
        f = opt(f)
    return f


def command(group: click.Group, name: str | None = None, **kw: Any) -> Callable:
    """``@group.command`` plus the global options and seeding."""

    def deco(f: Callable) -> Callable:
        @functools.wraps(f)
        def run(*args: Any, **kwargs: Any) -> Any:
            if SETTINGS.seed is not None:
                import torch

                torch.manual_seed(SETTINGS.seed)
            return f(*args, **kwargs)

        return group.command(name, **kw)(global_options(run))

    return deco


def emit(text: str, data: dict[str, Any]) -> None:
    """Print the result: JSON with ``--json``, else the human-readable text."""
    if SETTINGS.json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif text:
        click.echo(text)


# ---------------------------------------------------------------------- shared option helpers


def ckpt_option(required: bool = True) -> Callable:
    return click.option(
        "--ckpt",
        required=required,
        metavar="PATH|URL|NAME",
        help="Checkpoint: a file, an https URL, or a name from `dirfind checkpoints list`.",
    )


def out_option(default: str | None, help: str) -> Callable:
    return click.option("--out", "-o", default=default, show_default=default is not None, help=help)


def load_gen(ckpt: str, **settings: Any) -> Any:
    from .generators import load_generator

    gen = load_generator(ckpt, device=SETTINGS.device)
    gen.configure(**{k: v for k, v in settings.items() if v is not None})
    return gen


def _parse_transform(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[float, float, float] | None:
    """``--transform TX,TY[,DEG]`` as (tx, ty, degrees); finiteness is checked by ``configure``."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) not in (2, 3):
        raise errors.BadInputError(f"--transform must be TX,TY[,DEGREES] (numbers), got {value!r}")
    return (vals[0], vals[1], vals[2] if len(vals) == 3 else 0.0)


def render_options(f: Callable) -> Callable:
    """Options shared by commands that render images."""
    f = click.option(
        "--transform",
        default=None,
        metavar="TX,TY[,DEG]",
        callback=_parse_transform,
        help="StyleGAN3: translate the image by (TX, TY) and rotate it by DEG degrees, as NVIDIA's "
        "gen_images.py --translate/--rotate.",
    )(f)
    f = click.option(
        "--class", "class_index", type=int, default=None, help="Class index for class-conditional generators."
    )(f)
    f = click.option(
        "--noise-mode",
        type=click.Choice(["const", "random", "none"]),
        default=None,
        help="Per-pixel noise for style-based generators (default const).",
    )(f)
    f = click.option(
        "--truncation-cutoff", type=int, default=None, help="Apply truncation only to the first N layers of w+."
    )(f)
    f = click.option(
        "--truncation",
        "--psi",
        "truncation",
        type=float,
        default=None,
        help="Truncation psi towards the average latent (default 1 = none).",
    )(f)
    return f


# ---------------------------------------------------------------------- the group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@click.version_option(__version__, prog_name="dirfind")
def cli() -> None:
    """Find interpretable directions in pretrained GAN latent spaces and render them.

    \b
    Typical use:
      dirfind sefa --ckpt dcgan-digiface          # writes directions.npz
      dirfind traverse --dir 3 --steps 9           # renders traverse_d3.png
    """
    configure_logging(quiet=SETTINGS.quiet, debug=SETTINGS.debug)


# ---------------------------------------------------------------------- sefa


@command(cli, "sefa")
@ckpt_option()
@click.option(
    "--layers",
    default=None,
    metavar="SPEC",
    help="Latent-reading layers to factorise: all, 0-1, 2-5, 6-13, 0,2,4 (default: the variant's choice).",
)
@click.option("-k", "k", type=int, default=None, help="Keep the top K directions (default: all).")
@click.option(
    "--variant",
    type=click.Choice(["genforce", "rosinality"]),
    default="genforce",
    show_default=True,
    help="genforce = official SeFa (unit-normalised features); rosinality = unnormalised.",
)
@click.option(
    "--class",
    "class_index",
    type=int,
    default=None,
    help="Class-conditional generators: the class the bank records for rendering (default 0).",
)
@out_option("directions.npz", "Where to write the direction bank.")
def sefa_cmd(ckpt: str, layers: str | None, k: int | None, variant: str, class_index: int | None, out: str) -> None:
    """SeFa: closed-form directions from the weights that read the latent."""
    from .fileio import check_writable
    from .methods.sefa import sefa
    from .specs import parse_indices

    check_writable(out, SETTINGS.force)
    gen = load_gen(ckpt, class_index=class_index)
    layer_list = None if layers is None else parse_indices(layers, gen.num_ws, "layer")
    bank = sefa(gen, layers=layer_list, k=k, variant=variant)
    bank.save(out, force=SETTINGS.force)
    emit(_bank_text(bank, out), {"out": str(out), **bank.summary()})


def _bank_text(bank: Any, out: str | Path, top: int = 10) -> str:
    g = bank.generator
    where = bank.space + (f" layers {_spec(bank.layers)}" if bank.layers is not None else "")
    lines = [f"wrote {out}: {len(bank)} {bank.method} directions in {where} of {g.get('family')} {g.get('checkpoint')}"]
    explained = bank.info.get("explained") or []
    for i in range(min(top, len(bank))):
        extra = f"  ({100 * explained[i]:.1f}%)" if i < len(explained) else ""
        lines.append(f"  {i:3d}  {bank.names[i]:<16} score {bank.scores[i]:.6g}{extra}")
    if len(bank) > top:
        lines.append(f"  ... {len(bank) - top} more (dirfind info {out})")
    return "\n".join(lines)


def _spec(indices: list[int]) -> str:
    """Compact spec text for a list of ints: [0,1,2,5] -> '0-2,5'."""
    parts, start = [], None
    for i, v in enumerate(indices):
        if start is None:
            start = v
        if i + 1 == len(indices) or indices[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ",".join(parts)


# ---------------------------------------------------------------------- traverse


@command(cli, "traverse")
@click.option("--bank", "bank_path", default="directions.npz", show_default=True, help="Direction bank (.npz).")
@ckpt_option(required=False)
@click.option("--dir", "dirs", required=True, metavar="I[,J,...]", help="Direction indices (e.g. 3, 0-4, 0,2).")
@click.option("--steps", type=int, default=9, show_default=True, help="Steps along each direction.")
@click.option(
    "--range",
    "span",
    type=float,
    nargs=2,
    default=None,
    metavar="A B",
    help="Step range in the bank's step unit (default: the bank's, e.g. -3 3).",
)
@click.option(
    "--to-distance",
    type=float,
    nargs=2,
    default=None,
    metavar="A B",
    help="Hyperplane banks (interfacegan): move each sample so its signed distance goes from A to B.",
)
@click.option("--seeds", default=None, metavar="SPEC", help="Sample seeds, e.g. 0-3 or 1,5,9 (default 0-3).")
@click.option(
    "--origin/--no-origin",
    default=None,
    help="Also render a local bank's own sample first (default: alone when no --seeds/--latents are given).",
)
@click.option(
    "--latents",
    "latents_path",
    default=None,
    metavar="FILE.npy",
    help="Start latents instead of seeds (z, or w/w+ for style banks; see --latent-space).",
)
@click.option(
    "--latent-space",
    type=click.Choice(["z", "w", "w+"]),
    default=None,
    help="Space of --latents (default: z for 2-D arrays, w+ for 3-D).",
)
@click.option("--layers", default=None, metavar="SPEC", help="Edit only these w+ layers (w banks; z banks of BigGAN).")
@render_options
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per generator call.")
@click.option(
    "--dtype",
    type=click.Choice(["fp32", "fp16", "bf16"]),
    default=None,
    help="Synthesis precision on CUDA (style-based generators; CPU renders in fp32).",
)
@click.option("--fps", type=float, default=8.0, show_default=True, help="GIF frames per second.")
@out_option(None, "grid.png | anim.gif | frames/ (default: traverse_d<DIRS>.png).")
def traverse_cmd(
    bank_path: str,
    ckpt: str | None,
    dirs: str,
    steps: int,
    span: tuple[float, float] | None,
    to_distance: tuple[float, float] | None,
    seeds: str | None,
    origin: bool | None,
    latents_path: str | None,
    latent_space: str | None,
    layers: str | None,
    truncation: float | None,
    truncation_cutoff: int | None,
    noise_mode: str | None,
    class_index: int | None,
    transform: tuple[float, float, float] | None,
    batch_size: int,
    dtype: str | None,
    fps: float,
    out: str | None,
) -> None:
    """Render what directions do: a grid (rows = samples x directions, columns = steps), a GIF or frames."""
    from .bank import DirectionBank
    from .errors import BadInputError
    from .fileio import check_writable
    from .render import traverse
    from .render.images import output_kind
    from .specs import parse_indices

    bank = DirectionBank.load(bank_path)
    dir_list = bank.check_indices(parse_indices(dirs, None, "direction"))
    if span is not None and to_distance is not None:
        raise BadInputError("give --range or --to-distance, not both")
    if to_distance is not None and bank.intercepts is None:
        raise BadInputError(f"{bank_path} has no hyperplane intercepts; --to-distance needs an interfacegan bank")
    out = out or f"traverse_d{_spec(dir_list)}.png"
    output_kind(out)
    check_writable(str(out).rstrip("/\\"), SETTINGS.force)
    if seeds is not None and latents_path is not None:
        raise BadInputError("give --seeds or --latents, not both")
    gen = load_gen(
        ckpt or _bank_checkpoint(bank),
        truncation=truncation,
        truncation_cutoff=truncation_cutoff,
        noise_mode=noise_mode,
        class_index=class_index,
        transform=transform,
    )
    bank.check_generator(gen, force=SETTINGS.force)  # first: another generator may not fit the recorded settings
    recorded = bank.generator
    gen.configure(
        class_index=recorded.get("class_index") if class_index is None and gen.num_classes else None,
        truncation=recorded.get("truncation") if truncation is None else None,
        truncation_cutoff=recorded.get("truncation_cutoff") if truncation_cutoff is None else None,
        noise_mode=recorded.get("noise_mode") if noise_mode is None else None,
        transform=recorded.get("transform") if transform is None and gen.supports_transform else None,
    )
    if dtype is not None:
        from .device import resolve_dtype

        gen.set_precision(resolve_dtype(dtype, gen.device), channels_last=gen.device.type == "cuda")
    layer_list = None if layers is None else parse_indices(layers, gen.num_ws, "layer")
    seed_list = None
    latents = None
    if origin is None:
        origin = bank.origin is not None and seeds is None and latents_path is None
    if latents_path is not None:
        latents = _read_latents(gen, bank, latents_path, latent_space, layer_list)
    elif seeds is not None or not origin:
        seed_list = parse_indices(seeds or "0-3", None, "seed")
    result = traverse(
        gen,
        bank,
        dir_list,
        seeds=seed_list,
        latents=latents,
        steps=steps,
        span=span,
        layers=layer_list,
        batch_size=batch_size,
        out=out,
        force=SETTINGS.force,
        fps=fps,
        to_distance=to_distance,
        origin=origin,
    )
    n = (len(seed_list) if seed_list is not None else len(latents) if latents is not None else 0) + int(origin)
    unit = "signed distance" if to_distance is not None else bank.step_unit
    text = (
        f"wrote {result['files'][0] if len(result['files']) == 1 else str(out).rstrip('/') + '/'}: "
        f"{len(dir_list)} direction(s) x {n} sample(s) x {steps} steps "
        f"({result['alphas'][0]:+g} .. {result['alphas'][-1]:+g} {unit})"
    )
    emit(
        text,
        {
            "files": result["files"],
            "dirs": dir_list,
            "seeds": seed_list,
            "origin": origin,
            "alphas": result["alphas"],
            "to_distance": to_distance is not None,
            "bank": str(bank_path),
            "checkpoint": gen.checkpoint,
            "rows": len(dir_list) * n,
            "columns": steps,
        },
    )


def _bank_checkpoint(bank: Any) -> str:
    """The checkpoint a bank was made with: the reference as given while it still resolves (a
    registry name, a URL, a path from here), else the absolute path recorded at creation."""
    from .registry import resolve

    g = bank.generator
    ref, path = g.get("checkpoint"), g.get("checkpoint_path")
    if not ref:
        raise errors.BadInputError("the bank does not record its checkpoint; pass --ckpt")
    try:
        resolve(ref, fetch_missing=False)
    except errors.NotFoundError:
        if path and Path(path).exists():
            return path
    return ref


def _read_latents(gen: Any, bank: Any, path: str, space: str | None, layers: list[int] | None = None) -> Any:
    """Load start latents from .npy and bring them into the bank's working space (with ``layers``,
    traverse's --layers)."""
    import numpy as np
    import torch

    from .errors import BadInputError, NotFoundError
    from .render import base_latents, working_space

    if not Path(path).exists():
        raise NotFoundError(f"latents file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise BadInputError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise BadInputError(f"{path}: expected a .npy array, got an archive")
    space = space or ("z" if arr.ndim == 2 else "w+")
    gen.check_space(space)
    shape = gen.latent_shape(space)
    if arr.ndim == len(shape):
        arr = arr[None]
    if tuple(arr.shape[1:]) != shape:
        raise BadInputError(f"{path}: latents of shape {arr.shape} do not fit space {space} {shape}")
    if not np.isfinite(arr).all():
        raise BadInputError(f"{path}: latents contain NaN or inf")
    lat = torch.from_numpy(arr.astype(np.float32))
    target = working_space(bank, layers)
    if space == target:
        return lat
    if space == "z":
        return base_latents(gen, bank, lat, layers)
    if space == "w" and target == "w+":
        return lat[:, None].expand(-1, gen.num_ws, -1).clone()
    raise BadInputError(f"{space} latents cannot be used with a {bank.space} bank")


# ---------------------------------------------------------------------- info


@command(cli, "info")
@click.argument("path")
def info_cmd(path: str) -> None:
    """Summarise a direction bank or a checkpoint (family, dims, fingerprint, directions)."""
    import zipfile

    from .bank import DirectionBank

    p = Path(path)
    if p.suffix == ".npz" or (p.is_file() and zipfile.is_zipfile(p) and _is_bank(p)):
        bank = DirectionBank.load(p)
        emit(_bank_info_text(bank, path), {"kind": "bank", "path": path, **bank.summary()})
        return
    gen = load_gen(path)
    d = {"kind": "checkpoint", **gen.describe(), "layers": gen.layer_names(), "activations": gen.activation_names()}
    lines = [f"{path}: {gen.family} generator, {gen.resolution}x{gen.resolution}x{gen.channels}"]
    lines.append(
        f"  z_dim {gen.z_dim}, w_dim {gen.w_dim}, {gen.num_ws} latent-reading layer(s), "
        f"{gen.num_classes} classes, spaces {', '.join(gen.spaces)}"
    )
    lines.append(f"  sha256 {gen.fingerprint}")
    lines.append(f"  parameters {d['parameters']:,}")
    lines.append("  layers: " + "; ".join(f"{i}: {n}" for i, n in enumerate(gen.layer_names())))
    lines.append("  activations: " + ", ".join(gen.activation_names()))
    emit("\n".join(lines), d)


def _is_bank(p: Path) -> bool:
    import zipfile

    with zipfile.ZipFile(p) as zf:
        return "meta.npy" in zf.namelist() and "directions.npy" in zf.namelist()


def _bank_info_text(bank: Any, path: str) -> str:
    g = bank.generator
    lines = [
        f"{path}: dirfind bank v{bank.format_version}, {len(bank)} {bank.method} directions "
        f"in {bank.space}" + (f" layers {_spec(bank.layers)}" if bank.layers is not None else "")
    ]
    lines.append(f"  generator {g.get('family')} {g.get('checkpoint')} (sha256 {str(g.get('fingerprint'))[:16]}...)")
    lines.append(f"  step unit {bank.step_unit}, default range {bank.default_range[0]:g} .. {bank.default_range[1]:g}")
    lines.append(f"  params {json.dumps(bank.params)}")
    lines.append(f"  created {bank.created} with dirfind {bank.dirfind_version}")
    for i in range(min(10, len(bank))):
        lines.append(f"  {i:3d}  {bank.names[i]:<16} score {bank.scores[i]:.6g}  scale {bank.scales[i]:.4g}")
    if len(bank) > 10:
        lines.append(f"  ... {len(bank) - 10} more")
    return "\n".join(lines)


# ---------------------------------------------------------------------- checkpoints


@cli.group("checkpoints")
def checkpoints_group() -> None:
    """List, download and verify checkpoints from the registry (checkpoints.toml)."""


@command(checkpoints_group, "list")
def checkpoints_list() -> None:
    """List registry entries and whether each is cached."""
    from .generators import FAMILIES
    from .registry import is_cached, load_registry

    rows = []
    for e in load_registry().values():
        rows.append({**e.as_dict(), "cached": is_cached(e), "supported": e.family in FAMILIES})
    width = max((len(r["name"]) for r in rows), default=4)
    lines = [f"{'name':<{width}}  {'family':<10} {'cached':<6} {'sha256':<11} description"]
    for r in rows:
        sha = r["sha256"][:11] if r["sha256"] else "unpublished"
        fam = r["family"] + ("" if r["supported"] else "*")
        lines.append(
            f"{r['name']:<{width}}  {fam:<10} {'yes' if r['cached'] else 'no':<6} {sha:<11} {r['description']}"
        )
    if any(not r["supported"] for r in rows):
        lines.append("* family not supported yet by this dirfind version")
    emit("\n".join(lines), {"checkpoints": rows})


@command(checkpoints_group, "fetch")
@click.argument("names", nargs=-1, required=True)
def checkpoints_fetch(names: tuple[str, ...]) -> None:
    """Download registry entries into the cache and verify their sha256."""
    from .errors import NotFoundError
    from .fileio import sha256_path
    from .registry import fetch, load_registry

    reg = load_registry()
    results = []
    for name in names:
        if name not in reg:
            raise NotFoundError(f"unknown registry name {name!r} (see `dirfind checkpoints list`)")
        path = fetch(reg[name], force=SETTINGS.force)
        results.append(
            {
                "name": name,
                "path": str(path),
                "sha256": sha256_path(path),
                "verified": bool(reg[name].sha256 or reg[name].file_sha256),
            }
        )
    emit(
        "\n".join(
            f"{r['name']}: {r['path']} (sha256 {r['sha256']}{'' if r['verified'] else ', no published hash'})"
            for r in results
        ),
        {"fetched": results},
    )


@command(checkpoints_group, "verify")
@click.argument("names", nargs=-1)
def checkpoints_verify(names: tuple[str, ...]) -> None:
    """Re-hash cached checkpoints (all cached ones by default); exit 5 on any mismatch."""
    from .errors import IntegrityError, NotFoundError
    from .registry import is_cached, load_registry, verify

    reg = load_registry()
    for name in names:
        if name not in reg:
            raise NotFoundError(f"unknown registry name {name!r} (see `dirfind checkpoints list`)")
    entries = [reg[n] for n in names] if names else [e for e in reg.values() if is_cached(e)]
    results = [verify(e) for e in entries]
    emit(
        "\n".join(f"{r['name']}: {r['status']}  {r['path']}" for r in results) or "nothing cached", {"results": results}
    )
    bad = [r["name"] for r in results if r["status"] == "mismatch"]
    if bad:
        raise IntegrityError(
            f"sha256 mismatch for {', '.join(bad)}; re-fetch with `dirfind checkpoints fetch {bad[0]} --force`"
        )
    missing = [r["name"] for r in results if r["status"] == "missing" and names]
    if missing:
        raise NotFoundError(f"not cached: {', '.join(missing)}")


# ---------------------------------------------------------------------- sample / ganspace / merge


def _resume_options(f: Callable) -> Callable:
    """--shard, --resume and --checkpoint-every, shared by the streaming commands."""
    f = click.option(
        "--checkpoint-every",
        type=float,
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help="Save progress at most this often (0 = after every batch).",
    )(f)
    f = click.option("--resume", is_flag=True, help="Continue an interrupted run from <out>.progress/ (same options).")(
        f
    )
    f = click.option(
        "--shard",
        default=None,
        metavar="K/N",
        help="Process only shard K of N (disjoint sample ranges); combine the outputs with `dirfind merge`.",
    )(f)
    return f


@contextlib.contextmanager
def _resume_hint(out: str) -> Any:
    """On Ctrl-C / SIGTERM, say where the progress is and how to continue."""
    from .jobs import progress_dir
    from .progress import warn

    try:
        yield
    except KeyboardInterrupt:
        folder = progress_dir(out)
        if (folder / "state.npz").exists():
            warn(f"progress saved in {folder}; rerun the same command with --resume to continue")
        raise


@command(cli, "sample")
@ckpt_option()
@click.option("-n", "n", type=int, required=True, help="Number of samples (all shards together).")
@click.option(
    "--space", type=click.Choice(["z", "w", "w+"]), default="z", show_default=True, help="Latent space to store."
)
@click.option("--images", default=None, metavar="DIR", help="Also render each sample to DIR/<index>.png.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Samples per generator call.")
@render_options
@_resume_options
@out_option("latents.npz", "Where to write the latents (.npz: indices, z, latents, meta).")
def sample_cmd(
    ckpt: str,
    n: int,
    space: str,
    images: str | None,
    batch_size: int,
    truncation: float | None,
    truncation_cutoff: int | None,
    noise_mode: str | None,
    class_index: int | None,
    transform: tuple[float, float, float] | None,
    shard: str | None,
    resume: bool,
    checkpoint_every: float,
    out: str,
) -> None:
    """Sample latents (and images) deterministically by --seed, e.g. for external labelling."""
    from .fileio import check_writable
    from .samples import write_samples
    from .sampling import check_seed, parse_shard

    shard_t = parse_shard(shard)
    check_writable(out, SETTINGS.force)
    gen = load_gen(
        ckpt,
        truncation=truncation,
        truncation_cutoff=truncation_cutoff,
        noise_mode=noise_mode,
        class_index=class_index,
        transform=transform,
    )
    with _resume_hint(out):
        res = write_samples(
            gen,
            n,
            out,
            space=space,
            seed=check_seed(SETTINGS.seed),
            batch_size=batch_size,
            shard=shard_t,
            images=images,
            resume=resume,
            force=SETTINGS.force,
            every=checkpoint_every,
        )
    lo, hi = res["range"]
    text = f"wrote {out}: samples {lo}..{hi - 1} of {n} in {space} {tuple(res['shape'])}, seed {res['seed']}"
    if images:
        text += f"; images in {images}/"
    emit(text, res)


@command(cli, "ganspace")
@ckpt_option()
@click.option(
    "--space",
    default=None,
    metavar="w|z|act:LAYER",
    help="PCA space: w (style-based default), z, or a layer's activations, e.g. act:main.2 (DCGAN default).",
)
@click.option("-n", "n", type=int, default=1_000_000, show_default=True, help="Samples for the PCA.")
@click.option("-k", "k", type=int, default=80, show_default=True, help="Number of components.")
@click.option(
    "--layers",
    default=None,
    metavar="SPEC",
    help="w+ layers the directions edit (w space), e.g. 0-1, 2-5 (default all).",
)
@click.option(
    "--solver",
    type=click.Choice(["auto", "exact", "randomized"]),
    default="auto",
    show_default=True,
    help="exact: float64 covariance + eigh (D^2 memory); randomized: block Rayleigh-Ritz passes (O(D k) memory); "
    "auto: exact up to D=2048.",
)
@click.option("--tol", type=float, default=1e-4, show_default=True, help="Randomized solver: residual tolerance.")
@click.option("--max-passes", type=int, default=25, show_default=True, help="Randomized solver: pass limit.")
@click.option(
    "--regression-n",
    type=int,
    default=None,
    help="Fresh samples for regressing activation components to the latent (default max(10000, n)).",
)
@click.option("--batch-size", type=int, default=500, show_default=True, help="Samples per generator call.")
@render_options
@_resume_options
@out_option("directions.npz", "Where to write the bank (or the shard's partial statistics with --shard).")
def ganspace_cmd(
    ckpt: str,
    space: str | None,
    n: int,
    k: int,
    layers: str | None,
    solver: str,
    tol: float,
    max_passes: int,
    regression_n: int | None,
    batch_size: int,
    truncation: float | None,
    truncation_cutoff: int | None,
    noise_mode: str | None,
    class_index: int | None,
    transform: tuple[float, float, float] | None,
    shard: str | None,
    resume: bool,
    checkpoint_every: float,
    out: str,
) -> None:
    """GANSpace: principal components of sampled w latents or layer activations (sigma-scaled steps)."""
    from .fileio import check_writable
    from .jobs import Job, progress_dir
    from .methods.ganspace import plan as make_plan
    from .methods.ganspace import run, run_shard
    from .sampling import check_seed, parse_shard
    from .specs import parse_indices

    shard_t = parse_shard(shard)
    check_writable(out, SETTINGS.force)
    gen = load_gen(
        ckpt,
        truncation=truncation,
        truncation_cutoff=truncation_cutoff,
        noise_mode=noise_mode,
        class_index=class_index,
        transform=transform,
    )
    layer_list = None if layers is None else parse_indices(layers, gen.num_ws, "layer")
    plan = make_plan(
        gen,
        space=space,
        n=n,
        k=k,
        batch_size=batch_size,
        seed=check_seed(SETTINGS.seed),
        layers=layer_list,
        solver=solver,
        n_regression=regression_n,
        shard=shard_t,
    )
    job = Job.open(progress_dir(out), plan.job_identity, resume=resume, force=SETTINGS.force, every=checkpoint_every)
    if shard_t is not None:
        with _resume_hint(out):
            meta, arrays = run_shard(gen, plan, job=job)
        _save_partial(out, meta, arrays)
        job.finish()
        lo, hi = meta["range"]
        emit(
            f"wrote {out}: statistics of samples {lo}..{hi - 1} of {n} (shard {shard}); "
            "combine all shards with `dirfind merge`",
            {"out": str(out), **meta},
        )
        return
    with _resume_hint(out):
        bank = run(gen, plan, job=job, tol=tol, max_passes=max_passes)
    bank.save(out, force=SETTINGS.force)
    job.finish()
    emit(_bank_text(bank, out), {"out": str(out), **bank.summary()})


def _save_partial(out: str, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
    import numpy as np

    from .fileio import atomic_path

    with atomic_path(out, force=True, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


@command(cli, "merge")
@click.argument("parts", nargs=-1, required=True)
@ckpt_option(required=False)
@out_option(None, "Merged output (default: latents.npz for samples, directions.npz for GANSpace).")
def merge_cmd(parts: tuple[str, ...], ckpt: str | None, out: str | None) -> None:
    """Combine the outputs of `--shard K/N` runs (dirfind sample or dirfind ganspace) into one result."""
    import zipfile

    import numpy as np

    from .errors import BadInputError, NotFoundError
    from .fileio import check_writable

    metas = []
    for p in parts:
        if not Path(p).exists():
            raise NotFoundError(f"file not found: {p}")
        try:
            with np.load(p, allow_pickle=False) as f:
                metas.append(json.loads(str(f["meta"][()])))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            raise BadInputError(f"{p}: not a shard output of dirfind sample or dirfind ganspace") from None
    kinds = {m.get("format") for m in metas}
    if kinds == {"dirfind.samples"}:
        from .samples import merge_samples

        out = out or "latents.npz"
        res = merge_samples(list(parts), out, force=SETTINGS.force)
        emit(f"wrote {out}: {res['count']} samples from {res['parts']} shards", res)
        return
    if kinds != {"dirfind.ganspace-partial"}:
        raise BadInputError("give shard outputs of one kind: all from dirfind sample or all from dirfind ganspace")
    from .methods.ganspace import merge_partials

    out = out or "directions.npz"
    check_writable(out, SETTINGS.force)
    loaded = []
    for p in parts:
        with np.load(p, allow_pickle=False) as f:
            loaded.append((json.loads(str(f["meta"][()])), {k: f[k] for k in f.files if k != "meta"}))
    from types import SimpleNamespace

    gen = load_gen(ckpt or _bank_checkpoint(SimpleNamespace(generator=metas[0]["generator"])))
    bank = merge_partials(gen, loaded)
    bank.save(out, force=SETTINGS.force)
    emit(_bank_text(bank, out), {"out": str(out), "parts": len(parts), **bank.summary()})


# ---------------------------------------------------------------------- interfacegan / convert


@command(cli, "interfacegan")
@click.option(
    "--latents",
    "latents_path",
    default=None,
    metavar="FILE",
    help="Latents: a `dirfind sample` .npz, or a plain .npy with --ckpt.",
)
@click.option(
    "--scores",
    "scores_path",
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
    metavar="SPEC",
    help="w: the w+ layers edits apply to; w+: the layers the boundary is fitted on (concatenated).",
)
@click.option(
    "--ratio",
    type=float,
    default=0.02,
    show_default=True,
    help="Samples per side: a fraction in (0, 1] of all samples, or a count.",
)
@click.option(
    "--val-split", type=float, default=0.3, show_default=True, help="Fraction of each side held out for validation."
)
@click.option("--C", "C", type=float, default=1.0, show_default=True, help="SVM regularisation parameter.")
@click.option(
    "--solver",
    type=click.Choice(["svc", "linearsvc"]),
    default="svc",
    show_default=True,
    help="svc: libsvm linear SVC (official); linearsvc: liblinear, faster on large sets.",
)
@click.option(
    "--invalid-value",
    type=float,
    default=None,
    help="Drop samples whose score equals this value (official invalid_value).",
)
@click.option(
    "--condition",
    "conditions",
    multiple=True,
    metavar="BANK:INDEX[,INDEX...]",
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
@click.option("--resume", is_flag=True, help="Predictor mode: continue an interrupted run from <out>.progress/.")
@click.option(
    "--checkpoint-every",
    type=float,
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Predictor mode: save progress at most this often.",
)
@out_option("boundaries.npz", "Where to write the bank (one unit normal per score column, intercepts).")
def interfacegan_cmd(
    latents_path: str | None,
    scores_path: str | None,
    ckpt: str | None,
    n: int | None,
    predictor: str | None,
    space: str | None,
    layers: str | None,
    ratio: float,
    val_split: float,
    C: float,
    solver: str,
    invalid_value: float | None,
    conditions: tuple[str, ...],
    names: str | None,
    scores_out: str | None,
    batch_size: int,
    truncation: float | None,
    truncation_cutoff: int | None,
    noise_mode: str | None,
    class_index: int | None,
    transform: tuple[float, float, float] | None,
    resume: bool,
    checkpoint_every: float,
    out: str,
) -> None:
    """InterFaceGAN: linear-SVM boundaries separating high and low attribute scores (unit normals + intercepts)."""
    from .errors import BadInputError
    from .fileio import check_writable
    from .methods import interfacegan_io as io
    from .sampling import check_seed

    predictor_mode = predictor is not None
    if predictor_mode and (latents_path or scores_path):
        raise BadInputError("give --latents and --scores, or --ckpt -n N --predictor, not both")
    if not predictor_mode and not (latents_path and scores_path):
        raise BadInputError("give --latents FILE --scores FILE, or --ckpt CKPT -n N --predictor MODULE:FUNC")
    check_writable(out, SETTINGS.force)
    if scores_out:
        check_writable(scores_out, SETTINGS.force)
    seed = check_seed(SETTINGS.seed)
    fit = {
        "ratio": ratio,
        "val_split": val_split,
        "C": C,
        "solver": solver,
        "seed": seed,
        "invalid_value": invalid_value,
    }
    name_list = [x.strip() for x in names.split(",")] if names else None
    settings = {
        "truncation": truncation,
        "truncation_cutoff": truncation_cutoff,
        "noise_mode": noise_mode,
        "class_index": class_index,
        "transform": transform,
    }
    if predictor_mode:
        if ckpt is None or n is None:
            raise BadInputError("predictor mode needs --ckpt and -n")
        from .jobs import Job, progress_dir
        from .methods.interfacegan import check_options
        from .sampling import SampleStream
        from .scores import load_predictor

        check_options(n, ratio, val_split, C, solver)
        fn = load_predictor(predictor)
        gen = load_gen(ckpt, **settings)
        sp = space or gen.spaces[0]
        ident = {
            "what": "interfacegan scores",
            "predictor": predictor,
            **SampleStream(gen, n, sp, seed=seed).identity(),
        }
        job = Job.open(progress_dir(out), ident, resume=resume, force=SETTINGS.force, every=checkpoint_every)
        try:
            with _resume_hint(out):
                bank = io.from_predictor(
                    gen, n, fn, space=sp, layers=layers, names=name_list, conditions=conditions, label=predictor,
                    batch_size=batch_size, job=job, scores_out=scores_out, force=SETTINGS.force, **fit,
                )  # fmt: skip
        except errors.DirfindError:
            if not (progress_dir(out) / "state.npz").exists():
                job.finish()  # nothing was saved: leave no empty progress folder behind
            raise
        bank.save(out, force=SETTINGS.force)
        job.finish()
    else:
        gen = load_gen(ckpt, **settings) if ckpt else None
        bank = io.from_files(
            latents_path, scores_path, space=space, layers=layers, gen=gen, names=name_list,
            conditions=conditions, force=SETTINGS.force, **fit,
        )  # fmt: skip
        bank.save(out, force=SETTINGS.force)
    emit(_boundary_text(bank, out), {"out": str(out), **bank.summary()})


def _boundary_text(bank: Any, out: str) -> str:
    g = bank.generator
    where = bank.space + (f" layers {_spec(bank.layers)}" if bank.layers is not None else "")
    kind = "boundary" if len(bank) == 1 else "boundaries"
    lines = [f"wrote {out}: {len(bank)} interfacegan {kind} in {where} of {g.get('family')} {g.get('checkpoint')}"]
    for i, b in enumerate(bank.info.get("boundaries", [])):
        val = "n/a" if b.get("val_accuracy") is None else f"{b['val_accuracy']:.4f}"
        rem = "n/a" if b.get("remaining_accuracy") is None else f"{b['remaining_accuracy']:.4f}"
        lines.append(
            f"  {i:3d}  {bank.names[i]:<16} val acc {val}  remaining acc {rem}  intercept {bank.intercepts[i]:+.4f}"
        )
    return "\n".join(lines)


@command(cli, "convert")
@click.argument("source")
@ckpt_option(required=False)
@click.option(
    "--space",
    type=click.Choice(["z", "w", "w+"]),
    default=None,
    help="Import: the boundary's space (default: from an official file name, ..._w_boundary.npy -> w, else z).",
)
@click.option("--layers", default=None, metavar="SPEC", help="Import: w+ layers the direction edits (w/w+).")
@click.option("--name", default=None, help="Import: direction name (default: the file name).")
@click.option(
    "--intercept",
    type=float,
    default=0.0,
    show_default=True,
    help="Import: hyperplane offset (official files have none).",
)
@click.option("--dir", "direction", type=int, default=0, show_default=True, help="Export: which direction of the bank.")
@out_option(None, "Import: bank .npz (default: <source>.npz); export: boundary .npy (default: <name>_boundary.npy).")
def convert_cmd(
    source: str,
    ckpt: str | None,
    space: str | None,
    layers: str | None,
    name: str | None,
    intercept: float,
    direction: int,
    out: str | None,
) -> None:
    """Import an official InterFaceGAN boundary.npy into a bank, or export a bank direction as boundary.npy."""
    from .bank import DirectionBank
    from .errors import BadInputError
    from .fileio import check_writable
    from .methods import interfacegan_io as io

    src = Path(source)
    if src.suffix.lower() == ".npy":
        out = out or str(src.with_suffix(".npz").name)
        check_writable(out, SETTINGS.force)
        gen = load_gen(ckpt) if ckpt else None
        bank = io.import_boundary(src, gen=gen, space=space, layers=layers, name=name, intercept=intercept)
        bank.save(out, force=SETTINGS.force)
        emit(
            f"wrote {out}: {bank.names[0]} in {bank.space} ({bank.dim}-d) from {source}",
            {"out": str(out), **bank.summary()},
        )
        return
    if src.suffix.lower() != ".npz":
        raise BadInputError(f"{source}: give an official boundary .npy to import or a dirfind bank .npz to export")
    bank = DirectionBank.load(src)
    (k,) = bank.check_indices([direction])
    out = out or f"{bank.names[k]}_boundary.npy"
    check_writable(out, SETTINGS.force)
    res = io.export_boundary(bank, k, out, force=SETTINGS.force)
    emit(f"wrote {out}: direction {k} ({bank.names[k]}, {bank.space}) as a (1, {bank.dim}) boundary", res)


# ---------------------------------------------------------------------- jacobian / hessian / orojar


@command(cli, "jacobian")
@ckpt_option()
@click.option("--seeds", default="0", show_default=True, metavar="SPEC", help="Sample seed(s); several need --average.")
@click.option("--average", is_flag=True, help="Average JᵀJ over the samples: global instead of local directions.")
@click.option(
    "--space", type=click.Choice(["z", "w", "w+"]), default=None, help="Edit space (default: w if any, else z)."
)
@click.option("--layers", default=None, metavar="SPEC", help="w/w+ layers the edit moves (default all).")
@click.option("-k", "k", type=int, default=None, help="Keep the top K directions (default: all).")
@click.option(
    "--size", type=int, default=None, help="Resize outputs (nearest) to SIZE px first, e.g. 256 as LowRankGAN."
)
@click.option(
    "--channels",
    type=click.Choice(["mean", "sum", "all"]),
    default="mean",
    show_default=True,
    help="Channel reduction of the outputs: mean (LowRankGAN), sum (ReSeFa) or all.",
)
@click.option("--region", default=None, metavar="X0,Y0,X1,Y1", help="Local editing: a box in output pixels.")
@click.option(
    "--mask", "mask_path", default=None, metavar="FILE.png", help="Local editing: a mask image (non-zero = region)."
)
@click.option(
    "--local-method",
    type=click.Choice(["nullspace", "generalized"]),
    default="nullspace",
    show_default=True,
    help="nullspace: LowRankGAN projection onto the background null space; generalized: ReSeFa eigenproblem.",
)
@click.option(
    "--rank-method",
    type=click.Choice(["rpca", "energy"]),
    default="rpca",
    show_default=True,
    help="nullspace ranks: rpca (official Robust PCA) or energy (share of each trace, --energy).",
)
@click.option("--energy", type=float, default=0.99, show_default=True, help="Trace share for --rank-method energy.")
@click.option("--relax", type=int, default=0, show_default=True, help="LowRankGAN num_relax: enlarge the null space.")
@click.option("--tau", type=float, default=1e-3, show_default=True, help="ReSeFa regulariser: B + tau*trace(B)*I.")
@click.option("--chunk", type=int, default=32, show_default=True, help="Tangents per forward-mode pass (memory).")
@render_options
@out_option("directions.npz", "Where to write the direction bank.")
def jacobian_cmd(
    ckpt: str,
    seeds: str,
    average: bool,
    space: str | None,
    layers: str | None,
    k: int | None,
    size: int | None,
    channels: str,
    region: str | None,
    mask_path: str | None,
    local_method: str,
    rank_method: str,
    energy: float,
    relax: int,
    tau: float,
    chunk: int,
    truncation: float | None,
    truncation_cutoff: int | None,
    noise_mode: str | None,
    class_index: int | None,
    transform: tuple[float, float, float] | None,
    out: str,
) -> None:
    """LowRankGAN / ReSeFa: eigenvectors of the image Jacobian's JᵀJ (exact, forward mode)."""
    from .errors import BadInputError
    from .fileio import check_writable
    from .methods.lowrank import lowrank, parse_region, read_mask, region_mask
    from .specs import parse_indices

    check_writable(out, SETTINGS.force)
    if region is not None and mask_path is not None:
        raise BadInputError("give --region or --mask, not both")
    gen = load_gen(
        ckpt,
        truncation=truncation,
        truncation_cutoff=truncation_cutoff,
        noise_mode=noise_mode,
        class_index=class_index,
        transform=transform,
    )
    space = space or ("w" if "w" in gen.spaces else "z")
    layer_list = None if layers is None else parse_indices(layers, gen.num_ws, "layer")
    mask = None
    if region is not None:
        mask = region_mask(parse_region(region), gen.resolution)
    elif mask_path is not None:
        mask = read_mask(mask_path)
    seed_list = parse_indices(seeds, None, "seed")
    bank = lowrank(
        gen,
        gen.z_from_seeds(seed_list),
        space=space,
        layers=layer_list,
        k=k,
        average=average,
        size=size,
        channels=channels,
        mask=mask,
        local_method=local_method,
        rank_method=rank_method,
        energy=energy,
        relax=relax,
        tau=tau,
        chunk=chunk,
        seeds=seed_list,
    )
    bank.save(out, force=SETTINGS.force)
    emit(_bank_text(bank, out), {"out": str(out), **bank.summary()})


def _learn_options(f: Callable) -> Callable:
    """Options shared by `dirfind hessian` and `dirfind orojar` (official defaults)."""
    opts = [
        click.option(
            "-k", "--ndirs", "ndirs", type=int, default=None, help="Directions to learn (default: slice width)."
        ),
        click.option("--steps", type=int, default=1000, show_default=True, help="Optimisation steps (in total)."),
        click.option("--batch-size", type=int, default=8, show_default=True, help="Samples per step."),
        click.option("--lr", type=float, default=0.01, show_default=True, help="Adam learning rate."),
        click.option(
            "--estimator",
            type=click.Choice(["fd", "exact"]),
            default="fd",
            show_default=True,
            help="fd: official finite differences (eps); exact: forward-mode derivatives.",
        ),
        click.option("--probes", "k", type=int, default=2, show_default=True, help="Rademacher probes per sample."),
        click.option("--epsilon", type=float, default=0.1, show_default=True, help="Finite-difference step (fd)."),
        click.option(
            "--search-space",
            default="all",
            show_default=True,
            metavar="all|coarse|mid|fine|A:B",
            help="Slice of the latent the directions live in (coarse/mid/fine = thirds).",
        ),
        click.option("--space", type=click.Choice(["z", "w"]), default="z", show_default=True, help="Edit space."),
        click.option(
            "--init", type=click.Choice(["random", "coords"]), default="random", show_default=True, help="Initial A."
        ),
        click.option(
            "--checkpoint-steps", type=int, default=100, show_default=True, help="Save progress every N steps."
        ),
        click.option("--resume", is_flag=True, help="Continue an interrupted run from <out>.progress/ (same options)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _learn_cmd(method: str, ckpt: str, out: str, checkpoint_steps: int, resume: bool, **opts: Any) -> None:
    render = {k: opts.pop(k) for k in ("truncation", "truncation_cutoff", "noise_mode", "class_index", "transform")}
    from .fileio import check_writable
    from .jobs import Job, progress_dir
    from .methods.learn import LearnConfig, identity, learn
    from .sampling import check_seed

    check_writable(out, SETTINGS.force)
    gen = load_gen(ckpt, **render)
    cfg = LearnConfig(method=method, seed=check_seed(SETTINGS.seed), **opts)
    job = Job.open(progress_dir(out), identity(gen, cfg), resume=resume, force=SETTINGS.force)
    with _resume_hint(out):
        bank = learn(gen, cfg, job=job, checkpoint_steps=checkpoint_steps)
    bank.save(out, force=SETTINGS.force)
    job.finish()
    loss = bank.info["loss"]
    text = _bank_text(bank, out, top=0).splitlines()[0] + (
        f"\n  loss {loss['first']:.5g} -> {loss['last']:.5g} over {loss['steps']} steps "
        f"(mean of last 10%: {loss['mean_last_10pct']:.5g})"
    )
    emit(text, {"out": str(out), **bank.summary()})


@command(cli, "hessian")
@ckpt_option()
@_learn_options
@render_options
@click.option("--path-size", type=float, default=5.0, show_default=True, help="Distances along a direction ~ U[-P, P].")
@out_option("directions.npz", "Where to write the direction bank.")
def hessian_cmd(ckpt: str, out: str, checkpoint_steps: int, resume: bool, **opts: Any) -> None:
    """Hessian Penalty: learn K orthonormal directions with a diagonal generator Hessian (Peebles et al.)."""
    _learn_cmd("hessian", ckpt, out, checkpoint_steps, resume, **opts)


@command(cli, "orojar")
@ckpt_option()
@_learn_options
@render_options
@out_option("directions.npz", "Where to write the direction bank.")
def orojar_cmd(ckpt: str, out: str, checkpoint_steps: int, resume: bool, **opts: Any) -> None:
    """OroJaR: learn K directions whose image changes are orthogonal (Wei et al.)."""
    _learn_cmd("orojar", ckpt, out, checkpoint_steps, resume, path_size=0.0, **opts)


# ---------------------------------------------------------------------- demo


@command(cli, "demo")
@ckpt_option(required=False)
@out_option("dirfind-demo", "Folder for the demo's bank and images.")
def demo_cmd(ckpt: str | None, out: str) -> None:
    """Fetch the default face generator, run SeFa and render traversals of the top directions."""
    from .fileio import check_writable
    from .methods.sefa import sefa
    from .render import traverse

    folder = Path(out)
    check_writable(folder, SETTINGS.force)
    gen = load_gen(ckpt or "dcgan-digiface")
    bank = sefa(gen, k=10)
    folder.mkdir(parents=True, exist_ok=True)
    files = [str(bank.save(folder / "directions.npz", force=True))]
    for d in range(5):
        files += traverse(gen, bank, [d], seeds=range(6), steps=9, out=folder / f"sefa_d{d}.png", force=True)["files"]
    files += traverse(gen, bank, [0], seeds=range(4), steps=9, out=folder / "sefa_d0.gif", force=True)["files"]
    emit("demo images:\n" + "\n".join(f"  {f}" for f in files), {"files": files, **bank.summary()})


# ---------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the CLI, mapping errors to one stderr line and an exit code."""
    try:
        cli.main(args=argv, prog_name="dirfind", standalone_mode=False)
        return errors.EXIT_OK
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("dirfind: interrupted", err=True)
        return errors.EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("dirfind: interrupted", err=True)
        return errors.EXIT_INTERRUPTED
    except errors.DirfindError as e:
        if SETTINGS.debug:
            traceback.print_exc()
        click.echo(f"dirfind: error: {e}", err=True)
        return e.exit_code
    except MemoryError:
        click.echo("dirfind: error: out of memory; lower --batch-size", err=True)
        return errors.EXIT_FAILURE
    except Exception as e:  # a bug: keep it to one line unless --debug
        if SETTINGS.debug:
            traceback.print_exc()
        msg = " ".join(str(e).split())[:300]
        click.echo(
            f"dirfind: internal error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)", err=True
        )
        return errors.EXIT_FAILURE
    finally:
        SETTINGS.__dict__.update(asdict(Settings()))  # main() may be called again in-process (tests)
