"""CartoonGAN's shallow patch discriminator: one score per ~(H/4 x W/4) patch."""
from __future__ import annotations

import torch
from torch import nn


def _norm_act(channels: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(channels, affine=True), nn.LeakyReLU(0.2, inplace=True)]


class Discriminator(nn.Module):
    """k3n(c)s1 -> [k3n(2c)s2, k3n(4c)s1 + IN] -> [k3n(4c)s2, k3n(8c)s1 + IN] -> k3n(8c)s1 + IN -> k3n1s1,
    LeakyReLU 0.2 after every conv but the last.  c = 32 in CartoonGAN."""

    def __init__(self, channels: int = 32, in_channels: int = 3):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 2 * c, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * c, 4 * c, 3, 1, 1), *_norm_act(4 * c),
            nn.Conv2d(4 * c, 4 * c, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * c, 8 * c, 3, 1, 1), *_norm_act(8 * c),
            nn.Conv2d(8 * c, 8 * c, 3, 1, 1), *_norm_act(8 * c),  # feature construction block
            nn.Conv2d(8 * c, 1, 3, 1, 1),
        )

    def forward(self, x):
        return self.net(x)


class FeatureDiscriminator(nn.Module):
    """A small patch head on frozen VGG19 features (the content layer's): 1x1 -> 3x3 -> 1x1 convs, LeakyReLU 0.2.
    After Projected GANs / Vision-aided GAN (Sauer et al. 2021, Kumari et al. 2022): a discriminator on pretrained
    features learns from few images within hundreds of steps, where one on pixels learns little from a few thousand
    cartoons in a CPU budget.  The VGG features are shared with the content loss, so it costs one frozen VGG pass on
    the cartoons per step."""

    def __init__(self, in_channels: int = 512, channels: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, 1, 1),
        )

    def forward(self, features):
        return self.net(features)
