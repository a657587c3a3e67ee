"""Face-ID loss for portraits: 1 - cosine between MobileFaceNet embeddings of the photo and of the output.

MobileFaceNet (Chen et al. 2018) as in Xiaoccer/MobileFaceNet_Pytorch, with the same module names so its
state dict loads as it is: input 112x96 (H x W) BGR, (x - 127.5) / 128, a 128-d embedding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .config import ConfigError

# t (expansion), c (channels), n (repeats), s (first stride)
BOTTLENECK_SETTING = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))
INPUT_HW = (112, 96)


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, k, s: int, p: int, depthwise: bool = False, linear: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p, groups=cin if depthwise else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = None if linear else nn.PReLU(cout)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return x if self.prelu is None else self.prelu(x)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand -> BN -> PReLU -> depthwise 3x3 -> BN -> PReLU -> 1x1 -> BN."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, mid, 1, 1, 0, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileFaceNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.dw_conv1 = ConvBlock(64, 64, 3, 1, 1, depthwise=True)
        blocks, cin = [], 64
        for t, c, n, s in BOTTLENECK_SETTING:
            for i in range(n):
                blocks.append(Bottleneck(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = ConvBlock(128, 512, 1, 1, 0)
        self.linear7 = ConvBlock(512, 512, (7, 6), 1, 0, depthwise=True, linear=True)
        self.linear1 = ConvBlock(512, 128, 1, 1, 0, linear=True)

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        """(N, 3, 112, 96) BGR normalised as (x - 127.5) / 128 -> (N, 128)."""
        x = self.blocks(self.dw_conv1(self.conv1(bgr)))
        return self.linear1(self.linear7(self.conv2(x))).flatten(1)


def load_mobilefacenet(path: str | Path) -> MobileFaceNet:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"loss.face_id_weights: {path}: no such file (MobileFaceNet safetensors; see ../shared/README.md)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ConfigError(f"loss.face_id_weights: {path}: not a safetensors file ({e})") from None
    net = MobileFaceNet()
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"loss.face_id_weights: {path}: not MobileFaceNet weights ({str(e).splitlines()[0]})") from None
    return net.eval().requires_grad_(False)


class FaceIDLoss(nn.Module):
    """1 - cos(embed(photo), embed(output)), both cropped to the face box of aligned portraits."""

    def __init__(self, weights: str | Path, face_box: Sequence[float]):
        super().__init__()
        self.net = load_mobilefacenet(weights)
        self.face_box = tuple(float(v) for v in face_box)

    def train(self, mode: bool = True):
        return super().train(False)  # BatchNorm statistics stay the pretrained ones

    def embed(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] (N, 3, H, W) -> (N, 128)."""
        h, w = rgb.shape[-2:]
        top, bottom, left, right = self.face_box
        face = rgb[:, :, round(top * h):round(bottom * h), round(left * w):round(right * w)]
        face = F.interpolate(face.float(), size=INPUT_HW, mode="bilinear", antialias=True, align_corners=False)
        # [-1, 1] -> (x255 - 127.5) / 128, and RGB -> BGR
        return self.net(face.flip(1) * (127.5 / 128.0))

    def forward(self, output: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.embed(photo)
        return (1.0 - F.cosine_similarity(self.embed(output), target, dim=1)).mean()
