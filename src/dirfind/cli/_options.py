"""Shared CLI pieces: global options on ``ctx.obj``, the render-settings option group, options made
from the library's options dataclasses, and parameter types for index specs, shards and transforms."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from ..util.options import describe

# ---------------------------------------------------------------------- global options


@dataclass
class Settings:
    """The global options of one invocation (``ctx.obj``): given before or after the command name."""

    device: str = "auto"
    seed: int | None = None
    json: bool = False
    force: bool = False
    debug: bool = False
    quiet: bool = False


def settings(ctx: click.Context | None = None) -> Settings:
    """The invocation's :class:`Settings` (created on first use)."""
    ctx = ctx or click.get_current_context()
    return ctx.find_root().ensure_object(Settings)


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    # Only explicit values count, so an option given before the subcommand is not reset by the
    # subcommand's own default (click reports no parameter source inside eager callbacks).
    if value != param.default:
        s = settings(ctx)
        setattr(s, param.name, value)
        if param.name in ("quiet", "debug"):
            from ..util.progress import configure

            configure(quiet=s.quiet, debug=s.debug)
    return value


def _global(*decls: str, **kw: Any) -> Callable:
    return click.option(*decls, expose_value=False, callback=_store, is_eager=True, **kw)


_GLOBAL_OPTIONS = [
    _global(
        "--device",
        default="auto",
        metavar="auto|cpu|cuda[:N]",
        help="Where to run the generator (default: auto = CUDA if available).",
    ),
    _global("--seed", type=int, default=None, help="Seed for every random choice (sampling, shuffles, noise)."),
    _global("--json", "json", is_flag=True, default=False, help="Print machine-readable JSON results on stdout."),
    _global(
        "--force",
        is_flag=True,
        default=False,
        help="Overwrite existing outputs; use a bank with a different generator.",
    ),
    _global("--debug", is_flag=True, default=False, help="Show full tracebacks on errors."),
    _global(
        "-q",
        "--quiet",
        "quiet",
        is_flag=True,
        default=False,
        help="No progress bars or log lines (errors still go to stderr).",
    ),
]


def global_options(f: Callable) -> Callable:
    """Accept the global options both before and after the subcommand name."""
    for opt in reversed(_GLOBAL_OPTIONS):
        f = opt(f)
    return f


# ---------------------------------------------------------------------- errors as flags


def _flags(ctx: click.Context) -> dict[str, str]:
    """Parameter name -> the flag the user sees, for the command of ``ctx`` (and its parents)."""
    out: dict[str, str] = {}
    c: click.Context | None = ctx
    while c is not None:
        for p in c.command.params:
            if isinstance(p, click.Option) and p.name and p.name not in out:
                out[p.name] = p.opts[0]
            elif isinstance(p, click.Argument) and p.name and p.name not in out:
                out[p.name] = p.human_readable_name
        c = c.parent
    return out


def as_flags(message: str, params: tuple[str, ...], ctx: click.Context) -> str:
    """Rewrite the library's parameter names in ``message`` as this command's flags."""
    flags = _flags(ctx)
    for name in params:
        flag = flags.get(name)
        if flag:
            message = re.sub(rf"(?<![\w-]){re.escape(name)}(?:=True|=False)?(?![\w-])", flag, message)
    return message


def command(name: str, **kw: Any) -> Callable:
    """``click.command`` plus the global options, seeding, and library errors shown with flags."""

    def deco(f: Callable) -> click.Command:
        @functools.wraps(f)
        def run(*args: Any, **kwargs: Any) -> Any:
            from ..errors import DirfindError

            s = settings()
            if s.seed is not None:
                import torch

                torch.manual_seed(s.seed)
            try:
                return f(*args, **kwargs)
            except DirfindError as e:
                if e.params:
                    text = as_flags(str(e), e.params, click.get_current_context())
                    if text != str(e):
                        raise type(e)(text, param=e.params).with_traceback(e.__traceback__) from None
                raise

        return click.command(name, **kw)(global_options(run))

    return deco


# ---------------------------------------------------------------------- options from dataclasses


def option_from(cls: type, name: str, *decls: str, **kw: Any) -> Callable:
    """A click option whose default, help and choices come from field ``name`` of options dataclass
    ``cls`` (its one source of defaults); ``kw`` adds or overrides click settings."""
    default, meta = describe(cls, name)
    if default is dataclasses.MISSING:
        default = None
    settings_: dict[str, Any] = {"default": default, "help": meta.get("help") or None}
    plain = _plain_type(cls, name)
    if plain is not None and plain is not bool:
        settings_["type"] = plain
    if meta.get("choices"):
        settings_["type"] = click.Choice(list(meta["choices"]))
    if meta.get("metavar"):
        settings_["metavar"] = meta["metavar"]
    if isinstance(default, bool) and "is_flag" not in kw and "/" not in "".join(decls):
        settings_["is_flag"] = True
    if default is not None and not isinstance(default, bool):
        settings_["show_default"] = True
    settings_.update(kw)
    return click.option(*decls, name, **settings_)


def _plain_type(cls: type, name: str) -> type | None:
    """``int``/``float``/``str``/``bool`` when field ``name`` is annotated as one (or ``X | None``)."""
    import types
    import typing

    hint = typing.get_type_hints(cls).get(name)
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else ()
    if args:
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else None
    return hint if hint in (int, float, str, bool) else None


def ckpt_option(required: bool = True) -> Callable:
    return click.option(
        "--ckpt",
        required=required,
        metavar="PATH|URL|NAME",
        help="Checkpoint: a file, an https URL, or a name from `dirfind checkpoints list`.",
    )


def out_option(default: str | None, help: str) -> Callable:
    return click.option("--out", "-o", "out", default=default, show_default=default is not None, help=help)


# ---------------------------------------------------------------------- parameter types


class IndexSpec(click.ParamType):
    """``all``, ``3``, ``0-5`` or ``0,2,7-9`` as a list of ints (``all`` stays the string ``"all"``)."""

    name = "spec"

    def __init__(self, what: str = "index", allow_all: bool = True):
        self.what, self.allow_all = what, allow_all

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (list, tuple)):
            return list(value)
        if self.allow_all and str(value).strip().lower() in ("all", "*"):
            return "all"
        from ..util.specs import parse_indices

        return parse_indices(value, None, self.what)


class DirSpec(click.ParamType):
    """Direction indices and names: ``3``, ``0-4``, ``0,2``, ``smile``, ``+smile,2`` (names are
    resolved by the bank, :meth:`dirfind.bank.DirectionBank.resolve`)."""

    name = "dirs"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (list, tuple)):
            return list(value)
        from ..errors import BadInputError
        from ..util.specs import parse_indices

        out: list[int | str] = []
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                raise BadInputError(f"empty item in direction spec {value!r}")
            try:
                out.extend(parse_indices(part, None, "direction"))
            except BadInputError:
                out.append(part)  # a name
        return out


def expand(spec: list[int] | str | None, n: int, what: str = "layer") -> list[int] | None:
    """An :class:`IndexSpec` value checked against ``0..n-1`` (``all`` = every index)."""
    if spec is None:
        return None
    from ..util.specs import parse_indices

    return parse_indices("all" if spec == "all" else ",".join(map(str, spec)), n, what)


class ShardType(click.ParamType):
    """``K/N``: shard K of N, as (K, N)."""

    name = "K/N"
    _RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        from ..errors import BadInputError

        m = self._RE.match(str(value))
        if not m:
            raise BadInputError(f"--shard must look like K/N (e.g. 0/4), got {value!r}")
        k, n = int(m[1]), int(m[2])
        if n < 1 or not 0 <= k < n:
            raise BadInputError(f"--shard {value}: need N >= 1 and 0 <= K < N")
        return k, n


class TransformType(click.ParamType):
    """``TX,TY[,DEG]`` as (tx, ty, degrees); finiteness is checked by the render settings."""

    name = "TX,TY[,DEG]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            vals = [float(p.strip()) for p in str(value).split(",")]
        except ValueError:
            vals = []
        if len(vals) not in (2, 3):
            from ..errors import BadInputError

            raise BadInputError(f"--transform must be TX,TY[,DEGREES] (numbers), got {value!r}")
        return vals[0], vals[1], vals[2] if len(vals) == 3 else 0.0


# ---------------------------------------------------------------------- render settings and resumable runs

#: the RenderSettings fields and their options (the group many rendering commands share)
RENDER_FIELDS = ("truncation", "truncation_cutoff", "noise_mode", "class_index", "transform")


def render_options(f: Callable) -> Callable:
    """The render-settings options, passed to the command as one ``render`` dict of the given ones."""

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        given = {k: kwargs.pop(k) for k in RENDER_FIELDS}
        return f(*args, render={k: v for k, v in given.items() if v is not None}, **kwargs)

    opts = [
        click.option(
            "--truncation",
            "--psi",
            "truncation",
            type=float,
            default=None,
            help="Truncation psi towards the average latent (default 1 = none).",
        ),
        click.option(
            "--truncation-cutoff", type=int, default=None, help="Apply truncation only to the first N layers of w+."
        ),
        click.option(
            "--noise-mode",
            type=click.Choice(["const", "random", "none"]),
            default=None,
            help="Per-pixel noise for style-based generators (default const).",
        ),
        click.option(
            "--class", "class_index", type=int, default=None, help="Class index for class-conditional generators."
        ),
        click.option(
            "--transform",
            type=TransformType(),
            default=None,
            help="StyleGAN3: translate the image by (TX, TY) and rotate it by DEG degrees, as NVIDIA's "
            "gen_images.py --translate/--rotate.",
        ),
    ]
    for opt in reversed(opts):
        run = opt(run)
    return run


def resume_options(shard: bool = True, *, prefix: str = "") -> Callable:
    """``--resume`` and ``--checkpoint-every`` (and ``--shard``) of the streaming commands."""

    def deco(f: Callable) -> Callable:
        f = click.option(
            "--checkpoint-every",
            "every",
            type=float,
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            help=f"{prefix}Save progress at most this often (0 = after every batch).",
        )(f)
        f = click.option(
            "--resume", is_flag=True, help=f"{prefix}Continue an interrupted run from <out>.progress/ (same options)."
        )(f)
        if shard:
            f = click.option(
                "--shard",
                type=ShardType(),
                default=None,
                help="Process only shard K of N (disjoint sample ranges); combine the outputs with `dirfind merge`.",
            )(f)
        return f

    return deco


def open_generator(ckpt: str, render: dict[str, Any] | None = None, dtype: str | None = None) -> Any:
    """Load ``ckpt`` on the invocation's ``--device`` with the given render settings (and dtype)."""
    from ..generators import load_generator
    from ..util.device import resolve_device, resolve_dtype

    device = resolve_device(settings().device)
    return load_generator(
        ckpt, device=device, settings=render or None, dtype=None if dtype is None else resolve_dtype(dtype, device)
    )


def seed() -> int:
    """The invocation's ``--seed`` for sampling (0 when not given)."""
    from ..core.sampling import check_seed

    return check_seed(settings().seed)
