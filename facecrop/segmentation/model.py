"""A small encoder-decoder for person masks on aligned face crops.

Encoder: two plain strided convolutions to 1/4, then MobileNetV2-style inverted residuals down to 1/32 (8x8 at
256), where a global-pooling gate (as in LR-ASPP) lets the whole crop decide what is the person.  Decoder: bilinear
x2, concatenation with the encoder's feature at that scale, a depthwise-separable conv; the head predicts at 1/2 and
the logits are upsampled to full size.  Input (N, 3, H, W) RGB in [0, 1] with H, W multiples of 32; output
(N, 1, H, W) logits (the exported graph applies the sigmoid).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

SIZE_MULTIPLE = 32


@dataclasses.dataclass(frozen=True)
class SegmenterConfig:
    """Encoder widths at 1/2 .. 1/32, inverted-residual blocks per stage (1/4 .. 1/32), expansion, and decoder
    widths at 1/16 .. 1/2.  The 1/2 and 1/4 stages are plain convolutions: on a CPU they cost less than expanded
    depthwise blocks at the resolutions where memory traffic dominates."""

    widths: tuple[int, ...] = (12, 24, 32, 64, 96)
    depths: tuple[int, ...] = (1, 2, 3, 2)
    expansion: int = 4
    decoder: tuple[int, ...] = (64, 32, 24, 12)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SegmenterConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        layers = [conv_bn(cin, mid, 1)] if expansion != 1 else []
        layers += [conv_bn(mid, mid, 3, stride, groups=mid), conv_bn(mid, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class GlobalGate(nn.Module):
    """x * sigmoid(W . avgpool(x)): scene-level context at the bottleneck."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        c = cin + cskip
        self.fuse = nn.Sequential(conv_bn(c, c, 3, groups=c), conv_bn(c, cout, 1))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, skip], dim=1))


class Segmenter(nn.Module):
    def __init__(self, config: SegmenterConfig = SegmenterConfig()):
        super().__init__()
        self.config = config
        w, d, e = config.widths, config.depths, config.expansion
        stages = [
            conv_bn(3, w[0], 3, 2),  # 1/2
            nn.Sequential(conv_bn(w[0], w[1], 3, 2), *[InvertedResidual(w[1], w[1], 1, e) for _ in range(d[0])]),
        ]
        for cin, cout, n in zip(w[1:-1], w[2:], d[1:]):  # 1/8 .. 1/32
            stages.append(nn.Sequential(InvertedResidual(cin, cout, 2, e),
                                        *[InvertedResidual(cout, cout, 1, e) for _ in range(n - 1)]))
        self.encoder = nn.ModuleList(stages)
        self.gate = GlobalGate(w[-1])
        dec = []
        cin = w[-1]
        for cskip, cout in zip(reversed(w[:-1]), config.decoder):
            dec.append(DecoderBlock(cin, cskip, cout))
            cin = cout
        self.decoder = nn.ModuleList(dec)
        self.head = nn.Conv2d(cin, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = (x - 0.5) / 0.25  # [0, 1] -> roughly zero mean, unit spread
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = self.gate(skips.pop())
        for block in self.decoder:
            x = block(x, skips.pop())
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)


class SegmenterWithSigmoid(nn.Module):
    """What the ONNX file holds: probabilities, so any runtime can threshold them without knowing the model."""

    def __init__(self, model: Segmenter):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
