"""The ``dirfind`` command: a thin click layer over the library, one module per command.

Results go to stdout (``--json`` for machine-readable output), progress and logs to stderr.
Expected failures print one line ``dirfind: error: ...`` and exit with the codes in
:mod:`dirfind.errors`; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import sys
import traceback

import click

from .. import __version__, errors
from ._options import Settings, global_options, settings

#: command name -> (module in this package, attribute, one-line help); modules are imported only
#: when their command runs, so ``dirfind --help`` stays fast (a test keeps the help lines true)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "sefa": ("sefa", "sefa_cmd", "SeFa: closed-form directions from the weights that read the latent."),
    "traverse": (
        "traverse",
        "traverse_cmd",
        "Render what directions do: a grid (rows = samples x directions, columns = steps), a GIF, a video or frames.",
    ),
    "sample": (
        "sample",
        "sample_cmd",
        "Sample latents (and images) deterministically by --seed, e.g. for external labelling.",
    ),
    "merge": (
        "merge",
        "merge_cmd",
        "Combine the outputs of `--shard K/N` runs (dirfind sample or dirfind ganspace) into one result.",
    ),
    "ganspace": (
        "ganspace",
        "ganspace_cmd",
        "GANSpace: principal components of sampled w latents or layer activations (sigma-scaled steps).",
    ),
    "interfacegan": (
        "interfacegan",
        "interfacegan_cmd",
        "InterFaceGAN: linear-SVM boundaries separating high and low attribute scores (unit normals + intercepts).",
    ),
    "convert": (
        "convert",
        "convert_cmd",
        "Import an official InterFaceGAN boundary.npy into a bank, or export a bank direction as boundary.npy.",
    ),
    "jacobian": (
        "jacobian",
        "jacobian_cmd",
        "LowRankGAN / ReSeFa: eigenvectors of the image Jacobian's JᵀJ (exact, forward mode).",
    ),
    "hessian": (
        "learn",
        "hessian_cmd",
        "Hessian Penalty: learn K orthonormal directions with a diagonal generator Hessian (Peebles et al.).",
    ),
    "orojar": ("learn", "orojar_cmd", "OroJaR: learn K directions whose image changes are orthogonal (Wei et al.)."),
    "project": (
        "project",
        "project_cmd",
        "Project images into a generator's latent space (optimisation, as NVIDIA's projector.py).",
    ),
    "edit": (
        "edit",
        "edit_cmd",
        "Apply bank directions to given latents (e.g. projected photos) and render them before and after.",
    ),
    "info": ("info", "info_cmd", "Summarise a direction bank or a checkpoint (family, dims, fingerprint, directions)."),
    "checkpoints": (
        "checkpoints",
        "group",
        "List, download and verify checkpoints from the registry (checkpoints.toml).",
    ),
    "evaluate": (
        "evaluate",
        "evaluate_cmd",
        "Measure every direction: effect size, locality, content preservation, attribute response, entanglement.",
    ),
    "label": (
        "label",
        "label_cmd",
        "Name each direction after the attribute it changes most (+smile, -age, mixed); writes a new bank.",
    ),
    "compare": (
        "compare",
        "compare_cmd",
        "Compare banks of one generator and space: principal angles, |cos| matching, unmatched directions.",
    ),
    "report": (
        "report",
        "report_cmd",
        "Write the direction atlas: a static HTML page with strips, heat-maps, labels and sortable metrics.",
    ),
    "demo": (
        "demo",
        "demo_cmd",
        "Fetch the default face generator, run SeFa and render traversals of the top directions.",
    ),
}


@functools.cache  # once per process
def _freeze_imports() -> None:
    """Exempt what the imports made (torch's and click's objects, for life) from cyclic garbage
    collection: a full collection over them costs ~75 ms each time loading a checkpoint allocates
    its thousands of objects, and ~0.3 s at exit (docs/benchmarks.md#sefa)."""
    import gc

    gc.freeze()


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        import importlib

        module, attr, _ = COMMANDS[name]
        command = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        _freeze_imports()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, click.utils.make_default_short_help(COMMANDS[n][2], limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@click.version_option(__version__, prog_name="dirfind")
def cli() -> None:
    """Find interpretable directions in pretrained GAN latent spaces and render them.

    \b
    Typical use:
      dirfind sefa --ckpt dcgan-digiface          # writes directions.npz
      dirfind traverse --dir 3 --steps 9           # renders traverse_d3.png
    """
    from ..util.progress import configure

    s = settings()
    configure(quiet=s.quiet, debug=s.debug)


#: commands whose work is split over the processes of a ``torchrun`` launch; any other command runs
#: on rank 0 alone while the other processes wait for its outcome
DISTRIBUTED = frozenset(
    {"sample", "ganspace", "interfacegan", "traverse", "jacobian", "hessian", "orojar", "evaluate", "project"}
)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the CLI, mapping errors to one stderr line and an exit code.

    Under ``torchrun`` (or in a process group the caller initialised) every process runs the
    command; they all end with the same exit code and final line (docs/distributed.md)."""
    obj = Settings()
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if _distributed_launch():
        return _main_distributed(args, obj)
    code, lines = _invoke(args, obj)
    _echo(lines)
    return code


def _echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)


def _invoke(args: list[str], obj: Settings) -> tuple[int, list[str]]:
    """Run the CLI once: (exit code, the stderr lines that say how it ended)."""
    try:
        cli.main(args=args, prog_name="dirfind", standalone_mode=False, obj=obj)
        return errors.EXIT_OK, []
    except click.exceptions.Exit as e:
        return e.exit_code, []
    except click.ClickException as e:
        return e.exit_code, [f"dirfind: error: {_usage_line(e)}"]
    except click.exceptions.Abort as e:  # click's form of a KeyboardInterrupt inside a command
        return _interrupted(e.__cause__ or e.__context__)
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except errors.RemoteFailure as e:  # another process of a distributed run failed: its line, as it is
        return e.exit_code, [e.line]
    except errors.DirfindError as e:
        if obj.debug:
            traceback.print_exc()
        return e.exit_code, [f"dirfind: error: {e}"]
    except MemoryError:
        return errors.EXIT_FAILURE, ["dirfind: error: out of memory; lower --batch-size"]
    except Exception as e:  # a bug: keep it to one line unless --debug
        if obj.debug:
            traceback.print_exc()
        msg = " ".join(str(e).split())[:300]
        return errors.EXIT_FAILURE, [
            f"dirfind: internal error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)"
        ]


def _interrupted(e: BaseException | None) -> tuple[int, list[str]]:
    progress = getattr(e, "progress", None)
    hint = f"dirfind: progress saved in {progress}; rerun the same command with --resume to continue"
    return errors.EXIT_INTERRUPTED, [hint, "dirfind: interrupted"] if progress is not None else ["dirfind: interrupted"]


def _distributed_launch() -> bool:
    """Launched by torchrun with several processes, or inside a process group the caller set up
    (checked without importing torch, so ``dirfind --help`` stays light)."""
    try:
        if int(os.environ.get("WORLD_SIZE") or 1) > 1 and "RANK" in os.environ:
            return True
    except ValueError:
        return False
    tdist = sys.modules.get("torch.distributed")
    return tdist is not None and tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def _main_distributed(args: list[str], obj: Settings) -> int:
    from ..core import dist
    from ..util.progress import mute

    own = not dist.initialized()  # else the caller set up the process group and tears it down
    try:
        w = dist.init()
    except errors.DirfindError as e:
        click.echo(f"dirfind: error: {e}", err=True)
        return e.exit_code
    dist.new_session()
    if not w.is_main:
        mute()
    name = next((a for a in args if a in COMMANDS), None)
    old = signal.signal(signal.SIGTERM, _terminate)  # torchrun stops workers with SIGTERM: end like Ctrl-C
    try:
        if name in DISTRIBUTED:
            # rank 0 alone prints results; the others' stdout (--help, --version too) is dropped
            with contextlib.nullcontext() if w.is_main else contextlib.redirect_stdout(io.StringIO()):
                code, lines = _invoke(args, obj)
            code, lines = _conclude(dist, code, lines)
        elif w.is_main:
            with dist.single():
                code, lines = _invoke(args, obj)
            dist.publish_outcome(lines[-1] if lines else "", code)
        else:
            line, code = dist.wait_outcome()
            lines = [line] if line else []
    finally:
        signal.signal(signal.SIGTERM, old)
    _echo(lines)
    if own:
        if code == errors.EXIT_OK:
            dist.shutdown()
        else:  # collectives may still be pending: leave without waiting for them
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _conclude(dist: object, code: int, lines: list[str]) -> tuple[int, list[str]]:
    """Every process of a distributed command ends the same way: the first failure published
    (its line and exit code) or, after a final barrier, success."""
    if code == errors.EXIT_OK:
        try:
            dist.barrier("finishing")  # type: ignore[attr-defined]
            return code, lines
        except KeyboardInterrupt:
            code, lines = errors.EXIT_INTERRUPTED, ["dirfind: interrupted"]
        except errors.RemoteFailure as e:
            code, lines = e.exit_code, [e.line]
        except errors.DirfindError as e:
            code, lines = e.exit_code, [f"dirfind: error: {e}"]
    line, agreed = dist.agree_failure(lines[-1] if lines else "", code)  # type: ignore[attr-defined]
    hints = lines[:-1] if agreed == code and dist.is_main() else []  # type: ignore[attr-defined]
    return agreed, [*hints, line] if line else hints


def _usage_line(e: click.ClickException) -> str:
    """click's own error (no such command, invalid value, missing option) as one line, with the
    command's ``--help`` hint for usage errors instead of click's usage block."""
    text = " ".join(e.format_message().split()).rstrip(".")
    ctx = getattr(e, "ctx", None)
    if isinstance(e, click.UsageError) and ctx is not None:
        text += f" (see '{ctx.command_path} --help')"
    return text
