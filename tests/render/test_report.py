"""The direction atlas in a real headless Chromium (no console errors, every image loaded, the strips on
the screenshot, sorting), annotated grids and H.264 video."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dirfind.errors import UnsupportedError
from dirfind.methods import sefa
from dirfind.methods.interpret import evaluate
from dirfind.render import traverse
from dirfind.render.report import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe)."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="dirfind-chromium-")
        to_chrome, self._w = os.pipe()
        self._r, from_chrome = os.pipe()

        def fds() -> None:
            os.dup2(to_chrome, 3)
            os.dup2(from_chrome, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        flags += ["--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
        self.proc = subprocess.Popen(
            [CHROMIUM, *flags, f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buf, self._id, self.events = b"", 0, []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
            session=True,
        )

    def _next(self, timeout: float = 60) -> dict:
        end = time.monotonic() + timeout
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._r], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, session: bool = False, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._next()
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(m["error"])
                return m["result"]
            self.events.append(m)

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url, session=True)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._next())

    def js(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True, session=True)["result"]["value"]

    def errors(self) -> list[dict]:
        bad = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                bad.append(p)
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                bad.append(p)
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                bad.append(p)
        return bad

    def screenshot(self) -> Image.Image:
        data = self.send("Page.captureScreenshot", format="png", session=True)["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(20)
        except (OSError, EOFError, TimeoutError, RuntimeError, subprocess.TimeoutExpired):
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def atlas(dcgan, tmp_path_factory):
    bank = sefa(dcgan, k=3)
    ev = evaluate(
        dcgan, bank, n=4, steps=3, predictors=(f"{Path(__file__).parents[2]}/examples/predictors.py:face_attributes",)
    )
    out = tmp_path_factory.mktemp("report") / "atlas"
    res = report(dcgan, bank, out, ev, seeds=(0, 1), steps=5)
    return out, res, ev


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary")
def test_atlas_loads_in_chromium_without_errors_and_shows_every_strip(atlas):
    out, res, ev = atlas
    browser = Browser()
    try:
        browser.open((out / "index.html").as_uri())
        assert browser.errors() == []
        images = browser.js(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"
        )
        srcs = {src for src, ok in images if ok}
        assert len(srcs) == len(images) and len(images) == 3 * 2 + 2
        assert {f"strips/d{k:03d}.png" for k in range(3)} <= srcs and {f"heat/d{k:03d}.png" for k in range(3)} <= srcs
        box = browser.js(
            "(() => { const r = document.querySelector('img[src=\"strips/d000.png\"]').getBoundingClientRect();"
            " return [r.left, r.top, r.width, r.height]; })()"
        )
        shot = np.asarray(browser.screenshot())
        strip = np.asarray(Image.open(out / "strips" / "d000.png").convert("RGB"))
        x, y, w, h = (round(v) for v in box)
        assert (w, h) == strip.shape[1::-1]
        assert np.abs(shot[y : y + h, x : x + w].astype(int) - strip).mean() < 2, "the strip is on the page"
        order = browser.js(
            "document.querySelector('th[data-col=effect]').click();"
            "Array.from(document.querySelectorAll('#directions tbody tr')).map(r => +r.cells[0].textContent)"
        )
        assert order == [int(i) for i in np.argsort(ev["effect"])]
        assert browser.errors() == []
    finally:
        browser.close()


def test_atlas_files_and_header(atlas, dcgan):
    out, res, _ = atlas
    page = (out / "index.html").read_text()
    assert "sefa" in page and dcgan.fingerprint[:16] in page and "&quot;variant&quot;: &quot;genforce&quot;" in page
    for name in ("latent_cos.png", "entanglement.png", "strips/d002.png", "heat/d002.png"):
        assert (out / name).is_file()
    strip = Image.open(out / "strips" / "d000.png")
    assert strip.width > 5 * 64 and strip.height > 2 * 64  # annotated: margins for the labels


def test_annotated_grid_keeps_the_tiles_and_adds_labels(dcgan, tmp_path):
    bank = sefa(dcgan, k=2)
    plain = traverse(dcgan, bank, [0, 1], seeds=[0, 1], steps=3, out=tmp_path / "p.png")
    traverse(dcgan, bank, [0, 1], seeds=[0, 1], steps=3, out=tmp_path / "a.png", annotate=True)
    a = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))
    p = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    top, left = a.shape[0] - p.shape[0], a.shape[1] - p.shape[1]
    assert top > 8 and left > 40
    np.testing.assert_array_equal(a[top:, left:], p)  # the grid itself is unchanged
    tiles = plain["images"]
    for c in range(3):  # a step label above every column
        col = a[:top, left + c * 66 : left + c * 66 + 64]
        assert (col < 128).any(), f"no text over column {c}"
    for r in range(4):  # a name beside every row
        assert (a[top + r * 66 : top + r * 66 + 64, :left] < 128).any(), f"no text beside row {r}"
    assert tiles.shape == (4, 3, 64, 64, 3)
    other = np.asarray(
        Image.open(
            traverse(dcgan, bank, [0, 1], seeds=[0, 1], steps=3, span=(-1, 1), out=tmp_path / "b.png", annotate=True)[
                "files"
            ][0]
        ).convert("RGB")
    )
    assert (other[:top] != a[:top]).any(), "other steps, other column labels"


@pytest.mark.skipif(importlib.util.find_spec("imageio_ffmpeg") is None, reason="the video extra is not installed")
def test_mp4_is_h264_with_the_traversal_frames(dcgan, tmp_path):
    import imageio_ffmpeg

    bank = sefa(dcgan, k=1)
    res = traverse(dcgan, bank, [0], seeds=[0, 1], steps=4, out=tmp_path / "t.mp4", fps=4)
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "t.mp4"))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for f in reader]
    assert meta["codec"].startswith("h264") and meta["fps"] == 4
    assert len(frames) == 2 * 4 - 2  # forth and back
    assert tuple(meta["size"]) == (64, 2 * 64 + 2)
    tiles = res["images"]
    first = np.concatenate([tiles[0, 0], np.full((2, 64, 3), 255, np.uint8), tiles[1, 0]])
    assert np.abs(frames[0].astype(int) - first).mean() < 8  # lossy, but the same picture
    assert np.abs(frames[3].astype(int) - first).mean() > np.abs(frames[0].astype(int) - first).mean() + 5


def test_mp4_without_the_extra_is_a_one_line_error(dcgan, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(UnsupportedError, match=r"dirfind\[video\]"):
        traverse(dcgan, sefa(dcgan, k=1), [0], seeds=[0], steps=2, out=tmp_path / "t.mp4")
    assert not (tmp_path / "t.mp4").exists()
