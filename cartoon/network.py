"""The saliency-augmented CartoonGAN generator ("improved CartoonGAN").

CartoonGAN's generator (flat 7x7 conv, two down-conv blocks, residual blocks, two up-conv blocks, 7x7 conv to RGB)
with a residual saliency network beside it.  The saliency network's first three layers (flat conv, two down blocks)
are concatenated to the generator's features at the same three layers; each concatenation goes through a CBAM block
(channel then spatial attention) and a conv block that brings the channel count back.  The saliency network's own
up-convs produce a one-channel saliency map, the second output.

Two modules carry whole-image statistics: instance norm (per-channel mean/std) and CBAM's channel attention
(global avg/max pooling).  Both can record their statistics on one pass and replay them on another
(`Generator.recording_stats` / `Generator.using_stats`), which is what makes tiled inference seamless: every tile is
normalised with the statistics of the whole image instead of its own.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .filters import chroma_guard, guided_filter

BLOCK_TYPES = ("plain", "dwsep", "inverted")
OUTPUT_FILTER_FIELDS = ("smooth_radius", "smooth_eps", "chroma_gain", "chroma_floor")
UPSAMPLE_TYPES = ("transposed", "resize")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Architecture kwargs; `config.json` next to the weights holds exactly these fields."""

    channels: tuple[int, int, int] = (64, 128, 256)  # flat conv, down block 1, down block 2
    saliency_channels: tuple[int, int, int] = (64, 128, 256)
    num_res_blocks: int = 8
    block: str = "plain"  # 3x3 (and 7x7) convs: plain | dwsep (depthwise + pointwise) | inverted (MobileNetV2)
    expansion: int = 4  # inverted-residual expansion factor
    upsample: str = "transposed"  # transposed (fractional stride 1/2, as CartoonGAN) | resize (nearest x2 + conv)
    cbam_reduction: int = 16
    residual: bool = False  # output = input + learned change (starts at the identity: no reconstruction phase needed)
    # A self-guided filter on the output (0: none).  A residual generator passes the photo's fine texture (grass,
    # brick, grain) straight through, and its up path, at a quarter of the resolution, cannot cancel it: the filter
    # flattens what varies less than sqrt(smooth_eps) in a (2r+1)^2 window and keeps outlines and region edges.
    smooth_radius: int = 0
    smooth_eps: float = 0.02
    # A chroma guard after that (0: none): the output's saturation, over 5x5 windows, held under the photo's plus
    # chroma_floor, and a boost up to chroma_gain x only where the photo is colourful (`filters.chroma_guard`): no
    # colour on surfaces the photo has as grey.
    chroma_gain: float = 0.0
    chroma_floor: float = 0.03
    # U-Net skips: the full- and half-resolution encoder features join the up path (1x1 convs, zero at the start,
    # so a generator without them loads unchanged).  Without them the up path sees the photo only through the
    # quarter-resolution bottleneck and cannot cancel the fine texture that the residual passes through.
    skips: bool = False

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "saliency_channels", tuple(int(c) for c in self.saliency_channels))
        if len(self.channels) != 3 or len(self.saliency_channels) != 3 or min(self.channels + self.saliency_channels) < 1:
            raise ValueError("channels and saliency_channels need three positive widths each")
        if self.block not in BLOCK_TYPES:
            raise ValueError(f"block must be one of {BLOCK_TYPES}, got {self.block!r}")
        if self.upsample not in UPSAMPLE_TYPES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_TYPES}, got {self.upsample!r}")
        if self.num_res_blocks < 0 or self.expansion < 1 or self.cbam_reduction < 1:
            raise ValueError("num_res_blocks >= 0, expansion >= 1 and cbam_reduction >= 1 are required")
        if self.smooth_radius < 0 or self.smooth_eps <= 0:
            raise ValueError("smooth_radius >= 0 and smooth_eps > 0 are required")
        if self.chroma_gain < 0 or self.chroma_floor < 0:
            raise ValueError("chroma_gain >= 0 and chroma_floor >= 0 are required")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["saliency_channels"] = list(self.saliency_channels)
        return d

    def weight_layout(self) -> dict:
        """The fields that shape the weights: configs equal here load each other's state dicts (the output filter
        and the chroma guard have no parameters)."""
        return {k: v for k, v in self.to_dict().items() if k not in OUTPUT_FILTER_FIELDS}

    def loads_from(self, other: "GeneratorConfig") -> bool:
        """Whether `other`'s weights initialise this generator: the same layout, or the same without the skips
        (which start at zero)."""
        mine, theirs = self.weight_layout(), other.weight_layout()
        return mine == theirs or (self.skips and not other.skips and mine == theirs | {"skips": True})

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown generator config keys: {sorted(unknown)}")
        return cls(**d)


CONFIGS = {
    # The paper's generator: 64/128/256, 8 plain residual blocks.
    "paper": GeneratorConfig(),
    # Narrow, depthwise-separable, resize-conv upsampling: built for the 2-thread CPU latency target.
    "lite": GeneratorConfig(
        channels=(16, 32, 64), saliency_channels=(8, 16, 32), num_res_blocks=4, block="dwsep",
        upsample="resize", cbam_reduction=4,
    ),
    # `lite` with a global residual from the input: training starts from the photo itself (the CPU recipe).
    "lite-res": GeneratorConfig(
        channels=(16, 32, 64), saliency_channels=(8, 16, 32), num_res_blocks=4, block="dwsep",
        upsample="resize", cbam_reduction=4, residual=True,
    ),
    # Twice `lite`'s width, residual: VGG dominates a training step, so the wider generator costs little there.
    "wide-res": GeneratorConfig(
        channels=(32, 64, 128), saliency_channels=(8, 16, 32), num_res_blocks=4, block="dwsep",
        upsample="resize", cbam_reduction=4, residual=True,
    ),
    # `wide-res` whose output goes through a 5x5 self-guided filter: the scene styles' flat regions.
    "wide-res-smooth": GeneratorConfig(
        channels=(32, 64, 128), saliency_channels=(8, 16, 32), num_res_blocks=4, block="dwsep",
        upsample="resize", cbam_reduction=4, residual=True, smooth_radius=2, smooth_eps=0.02,
    ),
    # `wide-res-smooth` with the chroma guard: the shipped scene styles (their generators made near-grey surfaces red).
    "wide-res-smooth-guard": GeneratorConfig(
        channels=(32, 64, 128), saliency_channels=(8, 16, 32), num_res_blocks=4, block="dwsep",
        upsample="resize", cbam_reduction=4, residual=True, smooth_radius=2, smooth_eps=0.02, chroma_gain=1.3,
    ),
    # `wide-res-smooth` with U-Net skips: the up path sees the photo's fine texture and can paint it flat.
    "wide-unet-smooth": GeneratorConfig(
        channels=(32, 64, 128), saliency_channels=(8, 16, 32), num_res_blocks=4, block="dwsep",
        upsample="resize", cbam_reduction=4, residual=True, smooth_radius=2, smooth_eps=0.02, skips=True,
    ),
}


def get_config(name_or_config: str | dict | GeneratorConfig) -> GeneratorConfig:
    if isinstance(name_or_config, GeneratorConfig):
        return name_or_config
    if isinstance(name_or_config, dict):
        return GeneratorConfig.from_dict(name_or_config)
    try:
        return CONFIGS[name_or_config]
    except KeyError:
        raise ValueError(f"unknown generator config {name_or_config!r}; known: {sorted(CONFIGS)}") from None


# --------------------------------------------------------------------------------------------------------------
# Whole-image statistics that can be recorded and replayed


class _GlobalStatistic(nn.Module):
    """A module whose output depends on statistics of the whole feature map."""

    def __init__(self):
        super().__init__()
        self.recorded: torch.Tensor | None = None
        self.replay: torch.Tensor | None = None
        self.recording = False


class InstanceNorm(_GlobalStatistic):
    """Affine instance norm; its statistic is (mean, 1/std) per channel, stacked as (N, 2C, 1, 1)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.replay is None and not self.recording:
            return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
        if self.replay is None:
            var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, unbiased=False)
            stat = torch.cat([mean, torch.rsqrt(var + self.eps)], dim=1)
            self.recorded = stat
        else:
            stat = self.replay
        mean, rstd = stat.to(x.dtype).chunk(2, dim=1)
        scale = rstd * self.weight.view(1, -1, 1, 1).to(x.dtype)
        return x * scale + (self.bias.view(1, -1, 1, 1).to(x.dtype) - mean * scale)


class ChannelAttention(_GlobalStatistic):
    """CBAM channel attention: sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))); its statistic is that (N, C, 1, 1) gate."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.replay is not None:
            gate = self.replay.to(x.dtype)
        else:
            avg = x.mean(dim=(2, 3), keepdim=True)
            mx = x.amax(dim=(2, 3), keepdim=True)
            gate = torch.sigmoid(self.mlp(avg) + self.mlp(mx))
            if self.recording:
                self.recorded = gate.float()
        return x * gate


class SpatialAttention(nn.Module):
    """CBAM spatial attention: sigmoid(7x7 conv over [mean; max] across channels). Local, so tiles need nothing."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, padding_mode="reflect", bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


# --------------------------------------------------------------------------------------------------------------
# Building blocks


def conv(cin: int, cout: int, k: int, stride: int, cfg: GeneratorConfig) -> nn.Module:
    """A k x k convolution of the configured block type, reflect-padded (no dark or striped image borders)."""
    pad = dict(padding=k // 2, padding_mode="reflect")
    if cfg.block == "plain":
        return nn.Conv2d(cin, cout, k, stride, **pad)
    if cfg.block == "dwsep":
        return nn.Sequential(nn.Conv2d(cin, cin, k, stride, groups=cin, bias=False, **pad), nn.Conv2d(cin, cout, 1))
    mid = cin * cfg.expansion
    return nn.Sequential(
        nn.Conv2d(cin, mid, 1, bias=False), nn.ReLU(inplace=True),
        nn.Conv2d(mid, mid, k, stride, groups=mid, bias=False, **pad), nn.ReLU(inplace=True),
        nn.Conv2d(mid, cout, 1),
    )


def upconv(cin: int, cout: int, cfg: GeneratorConfig) -> nn.Module:
    """Doubles the resolution: a fractional-stride (transposed) conv, or a 1x1 conv at low resolution followed by a
    bilinear x2 resize (no checkerboard, and the channel reduction happens before the 4x larger tensor exists)."""
    if cfg.upsample == "transposed":
        return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, cfg: GeneratorConfig):
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels, 3, 1, cfg), InstanceNorm(channels), nn.ReLU(inplace=True),
            conv(channels, channels, 3, 1, cfg), InstanceNorm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SaliencyDownBlock(nn.Module):
    """Two 3x3 convs (the first with stride 2), instance norm after each, with a skip around the second."""

    def __init__(self, cin: int, cout: int, cfg: GeneratorConfig):
        super().__init__()
        self.down = nn.Sequential(conv(cin, cout, 3, 2, cfg), InstanceNorm(cout), nn.ReLU(inplace=True))
        self.body = nn.Sequential(conv(cout, cout, 3, 1, cfg), InstanceNorm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        return F.relu(y + self.body(y))


class SaliencyNet(nn.Module):
    """Residual saliency network: flat conv, two residual down blocks, two up-convs to a 1-channel sigmoid map."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        c0, c1, c2 = cfg.saliency_channels
        self.flat = nn.Sequential(conv(3, c0, 7, 1, cfg), InstanceNorm(c0), nn.ReLU(inplace=True))
        self.down1 = SaliencyDownBlock(c0, c1, cfg)
        self.down2 = SaliencyDownBlock(c1, c2, cfg)
        self.up = nn.Sequential(
            upconv(c2, c1, cfg), InstanceNorm(c1), nn.ReLU(inplace=True),
            upconv(c1, c0, cfg), InstanceNorm(c0), nn.ReLU(inplace=True),
            nn.Conv2d(c0, 1, 3, padding=1, padding_mode="reflect"),
        )

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.flat(x)
        f1 = self.down1(f0)
        f2 = self.down2(f1)
        return [f0, f1, f2]

    def head(self, f2: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(f2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[2])


class Fusion(nn.Module):
    """Concatenated generator + saliency features -> CBAM -> conv block back to the generator's width."""

    def __init__(self, c_gen: int, c_sal: int, cfg: GeneratorConfig):
        super().__init__()
        self.cbam = CBAM(c_gen + c_sal, cfg.cbam_reduction)
        self.out = nn.Sequential(conv(c_gen + c_sal, c_gen, 3, 1, cfg), InstanceNorm(c_gen), nn.ReLU(inplace=True))

    def forward(self, g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.out(self.cbam(torch.cat([g, s], dim=1)))


class Generator(nn.Module):
    """photo in [-1, 1] (N, 3, H, W), H and W multiples of 4  ->  (cartoon in [-1, 1], saliency in [0, 1])."""

    def __init__(self, config: str | dict | GeneratorConfig = "paper"):
        super().__init__()
        cfg = self.config = get_config(config)
        c0, c1, c2 = cfg.channels
        s0, s1, s2 = cfg.saliency_channels
        self.saliency = SaliencyNet(cfg)
        self.flat = nn.Sequential(conv(3, c0, 7, 1, cfg), InstanceNorm(c0), nn.ReLU(inplace=True))
        self.down1 = nn.Sequential(conv(c0, c1, 3, 2, cfg), conv(c1, c1, 3, 1, cfg), InstanceNorm(c1), nn.ReLU(inplace=True))
        self.down2 = nn.Sequential(conv(c1, c2, 3, 2, cfg), conv(c2, c2, 3, 1, cfg), InstanceNorm(c2), nn.ReLU(inplace=True))
        self.fuse = nn.ModuleList([Fusion(c0, s0, cfg), Fusion(c1, s1, cfg), Fusion(c2, s2, cfg)])
        self.res = nn.Sequential(*[ResidualBlock(c2, cfg) for _ in range(cfg.num_res_blocks)])
        self.up = nn.Sequential(
            upconv(c2, c1, cfg), conv(c1, c1, 3, 1, cfg), InstanceNorm(c1), nn.ReLU(inplace=True),
            upconv(c1, c0, cfg), conv(c0, c0, 3, 1, cfg), InstanceNorm(c0), nn.ReLU(inplace=True),
            conv(c0, 3, 7, 1, cfg), nn.Tanh(),
        )
        # the up path is run in two pieces, each resolution's skip joining after its up-conv
        self.skips = nn.ModuleList([nn.Conv2d(c1, c1, 1), nn.Conv2d(c0, c0, 1)]) if cfg.skips else None
        if self.skips is not None:
            for s in self.skips:
                nn.init.zeros_(s.weight)
                nn.init.zeros_(s.bias)
        if cfg.residual:  # the change starts at zero: the untrained generator returns its input
            last = self.up[-2][-1] if isinstance(self.up[-2], nn.Sequential) else self.up[-2]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sal = self.saliency.features(x)
        h0 = self.fuse[0](self.flat(x), sal[0])
        h1 = self.fuse[1](self.down1(h0), sal[1])
        h = self.res(self.fuse[2](self.down2(h1), sal[2]))
        if self.skips is None:
            out = self.up(h)
        else:  # up = [upconv, conv, norm, relu] x 2, conv, tanh
            h = self.up[0](h) + self.skips[0](h1)
            h = self.up[4](self.up[1:4](h)) + self.skips[1](h0)
            out = self.up[5:](h)
        if self.config.residual:
            out = (x + out).clamp(-1.0, 1.0)
        if self.config.smooth_radius:
            out = guided_filter(out, out, self.config.smooth_radius, self.config.smooth_eps).clamp(-1.0, 1.0)
        if self.config.chroma_gain:
            out = chroma_guard(x, out, self.config.chroma_gain, self.config.chroma_floor)
        return out, self.saliency.head(sal[2])

    # ---- whole-image statistics ---------------------------------------------------------------------------

    def stat_modules(self) -> list[_GlobalStatistic]:
        return [m for m in self.modules() if isinstance(m, _GlobalStatistic)]

    @contextlib.contextmanager
    def recording_stats(self) -> Iterator[list[torch.Tensor]]:
        """Within the block, forward passes record their statistics; the yielded list is filled on exit."""
        mods = self.stat_modules()
        out: list[torch.Tensor] = []
        for m in mods:
            m.recording, m.recorded = True, None
        try:
            yield out
            out.extend(m.recorded for m in mods)
        finally:
            for m in mods:
                m.recording, m.recorded = False, None

    @contextlib.contextmanager
    def using_stats(self, stats: Sequence[torch.Tensor]):
        """Within the block, forward passes use these statistics instead of their own (see `recording_stats`)."""
        mods = self.stat_modules()
        if len(stats) != len(mods):
            raise ValueError(f"expected {len(mods)} statistics, got {len(stats)}")
        for m, s in zip(mods, stats):
            m.replay = s
        try:
            yield
        finally:
            for m in mods:
                m.replay = None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
