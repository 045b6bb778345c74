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
    from ..util.fileio import check_writable

    folder = Path(out)
    check_writable(folder, settings().force)
    gen = open_generator(ckpt or "dcgan-digiface")
    bank = sefa(gen, k=10)
    folder.mkdir(parents=True, exist_ok=True)
    files = [str(bank.save(folder / "directions.npz", force=True))]
    for d in range(5):
        files += traverse(gen, bank, [d], seeds=range(6), steps=9, out=folder / f"sefa_d{d}.png", force=True)["files"]
    files += traverse(gen, bank, [0], seeds=range(4), steps=9, out=folder / "sefa_d0.gif", force=True)["files"]
    emit("demo images:\n" + "\n".join(f"  {f}" for f in files), {"files": files, **bank.summary()})
