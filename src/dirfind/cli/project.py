"""``dirfind project``: find the latents that make a generator reproduce your images (GAN inversion)."""

from __future__ import annotations

from typing import Any

import click

from ..methods.project.options import ProjectOptions
from ._options import ckpt_option, command, open_generator, option_from, out_option, render_options, settings
from ._options import seed as global_seed
from ._output import emit


class LossSpec(click.ParamType):
    """``vgg:1,l2:0.1`` (a bare name weighs 1) as ((name, weight), ...)."""

    name = "loss"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, tuple):
            return value
        out = []
        for part in str(value).split(","):
            name, _, w = part.strip().partition(":")
            try:
                out.append((name.strip().lower(), float(w) if w else 1.0))
            except ValueError:
                self.fail(f"{part!r}: write NAME:WEIGHT, e.g. vgg:1,l2:0.1", param, ctx)
        return tuple(out)


@command("project")
@click.argument("images", nargs=-1, required=True)
@ckpt_option()
@option_from(ProjectOptions, "space", "--space")
@option_from(ProjectOptions, "steps", "--steps", type=int)
@option_from(ProjectOptions, "loss", "--loss", type=LossSpec(), show_default="vgg:1,l2:1")
@option_from(ProjectOptions, "restarts", "--restarts", type=int)
@option_from(ProjectOptions, "batch_size", "--batch-size", type=int)
@option_from(ProjectOptions, "fit", "--fit")
@click.option("--mask", default=None, metavar="FILE", help="Mask image: the loss counts only where it is set.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images (warning each) instead of refusing the run.")
@option_from(ProjectOptions, "lr", "--lr", type=float)
@option_from(ProjectOptions, "noise_factor", "--noise-factor", type=float)
@option_from(ProjectOptions, "noise_regularize", "--noise-regularize", type=float)
@option_from(ProjectOptions, "optimize_noise", "--optimize-noise/--no-optimize-noise")
@option_from(ProjectOptions, "prior", "--prior", type=float)
@option_from(ProjectOptions, "candidates", "--candidates", type=int)
@option_from(ProjectOptions, "checkpoint_steps", "--checkpoint-steps", type=int)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from <out>.progress/ (same options).")
@click.option("--preview", default=None, metavar="GRID.png", help="Also write targets beside their reconstructions.")
@render_options
@out_option("latents.npz", "Where to write the projection (latents, losses, noise maps).")
def project_cmd(
    images: tuple[str, ...],
    ckpt: str,
    mask: str | None,
    skip_bad: bool,
    resume: bool,
    preview: str | None,
    render: dict[str, Any],
    out: str,
    **opts: Any,
) -> None:
    """Project images into a generator's latent space (optimisation, as NVIDIA's projector.py)."""
    import numpy as np

    from ..core.dist import is_main
    from ..methods.project import project
    from ..render.images import check_traversal_out, write_traversal
    from ..util.fileio import check_writable

    force = settings().force
    options = ProjectOptions(seed=global_seed(), **opts)  # every option is checked before anything is loaded
    check_writable(out, force)
    if preview:
        check_traversal_out(preview, force, "preview")
    gen = open_generator(ckpt, render)
    res = project(gen, list(images), options, mask=mask, skip_bad=skip_bad, out=out, resume=resume, force=force)
    if preview and is_main():  # a distributed run: every process has the result, rank 0 writes
        write_traversal(np.stack([res["targets"], res["reconstructions"]], 1), preview, force=force)
    per = res["meta"]["results"]
    lines = [
        f"wrote {out}: {len(per)} image(s) in {res['space']} of {gen.family} {gen.checkpoint}, "
        f"{options.steps} steps x {options.restarts} restart(s); "
        f"PSNR {np.mean(res['psnr']):.2f} dB (min {np.min(res['psnr']):.2f}), SSIM {np.mean(res['ssim']):.3f}"
    ]
    lines += [f"  {r['path']}: loss {r['loss']:.4g}, PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}" for r in per[:20]]
    skipped = res["meta"]["images"]["skipped"]
    if skipped:
        lines.append(f"skipped {len(skipped)} unreadable image(s)")
    if preview:
        lines.append(f"wrote {preview}: targets (left) and reconstructions (right)")
    emit(
        "\n".join(lines),
        {
            "out": out,
            "preview": preview,
            "space": res["space"],
            "images": per,
            "skipped": skipped,
            "loss_terms": res["meta"]["loss_terms"],
            "loss_curve": np.asarray(res["loss_curve"]).round(6).tolist(),
        },
    )
