"""The ``dirfind`` command: a thin click layer over the library, one module per command.

Results go to stdout (``--json`` for machine-readable output), progress and logs to stderr.
Expected failures print one line ``dirfind: error: ...`` and exit with the codes in
:mod:`dirfind.errors`; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

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
        "Render what directions do: a grid (rows = samples x directions, columns = steps), a GIF or frames.",
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
    "demo": (
        "demo",
        "demo_cmd",
        "Fetch the default face generator, run SeFa and render traversals of the top directions.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        import importlib

        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)

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


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the CLI, mapping errors to one stderr line and an exit code."""
    obj = Settings()
    try:
        cli.main(args=argv, prog_name="dirfind", standalone_mode=False, obj=obj)
        return errors.EXIT_OK
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("dirfind: interrupted", err=True)
        return errors.EXIT_INTERRUPTED
    except KeyboardInterrupt as e:
        progress = getattr(e, "progress", None)
        if progress is not None:
            click.echo(
                f"dirfind: progress saved in {progress}; rerun the same command with --resume to continue", err=True
            )
        click.echo("dirfind: interrupted", err=True)
        return errors.EXIT_INTERRUPTED
    except errors.DirfindError as e:
        if obj.debug:
            traceback.print_exc()
        click.echo(f"dirfind: error: {e}", err=True)
        return e.exit_code
    except MemoryError:
        click.echo("dirfind: error: out of memory; lower --batch-size", err=True)
        return errors.EXIT_FAILURE
    except Exception as e:  # a bug: keep it to one line unless --debug
        if obj.debug:
            traceback.print_exc()
        msg = " ".join(str(e).split())[:300]
        click.echo(
            f"dirfind: internal error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)", err=True
        )
        return errors.EXIT_FAILURE
