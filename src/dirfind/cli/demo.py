"""``dirfind demo``: the default face generator, SeFa and traversals of its top directions."""

from __future__ import annotations

from pathlib import Path

from ._options import ckpt_option, command, open_generator, out_option, settings
from ._output import emit


@command("demo")
@ckpt_option(required=False)
@out_option("dirfind-demo", "Folder for the demo's bank and images.")
def demo_cmd(ckpt: str | None, out: str) -> None:
    """Fetch the default face generator, run SeFa and render traversals of the top directions."""
    from ..methods.sefa import sefa
    from ..render.traverse import traverse
    from ..util.fileio import check_writable, missing_dirs, remove_created

    folder = Path(out)
    check_writable(folder, settings().force, directory=True)
    gen = open_generator(ckpt or "dcgan-digiface")
    bank = sefa(gen, k=10)
    created = missing_dirs(folder)
    files: list[str] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files.append(str(bank.save(folder / "directions.npz", force=True)))
        for d in range(5):
            out_d = folder / f"sefa_d{d}.png"
            files += traverse(gen, bank, [d], seeds=range(6), steps=9, out=out_d, force=True)["files"]
        files += traverse(gen, bank, [0], seeds=range(4), steps=9, out=folder / "sefa_d0.gif", force=True)["files"]
    except BaseException:
        for f in files if created else []:
            Path(f).unlink(missing_ok=True)
        remove_created(created)  # a folder this run created goes again (an existing one stays)
        raise
    emit("demo images:\n" + "\n".join(f"  {f}" for f in files), {"files": files, **bank.summary()})
