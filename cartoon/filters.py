"""The generator's parameter-free output filters: He et al.'s guided filter (shared with the training's surface
representation, White-box cartoonization's `guided_filter`) and a chroma guard against colour the photo does not
have."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def box_mean_pooled(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window round each pixel, the window cut at the borders.  Exact at any image size and
    exported to ONNX as one AveragePool; for small radii (the training's large-radius filter uses cumulative sums)."""
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def guided_filter(guide: torch.Tensor, x: torch.Tensor, r: int, eps: float,
                  box: Callable[[torch.Tensor, int], torch.Tensor] = box_mean_pooled) -> torch.Tensor:
    """`x` smoothed with edges where `guide` has them, per channel, on [-1, 1] images.  `guided_filter(y, y, r, eps)`
    flattens what varies less than sqrt(eps) within a window (texture, grain) and keeps stronger edges.  Computed in
    float32 (a variance as E[x^2] - E[x]^2 is noise in half precision), returned in `x`'s dtype."""
    dtype, guide, x = x.dtype, guide.float(), x.float()
    mean_g, mean_x = box(guide, r), box(x, r)
    a = (box(guide * x, r) - mean_g * mean_x) / (box(guide * guide, r) - mean_g * mean_g + eps)
    b = mean_x - a * mean_g
    return (box(a, r) * guide + box(b, r)).to(dtype)


# BT.601 YUV of a [0, 1] image, and back
_RGB_TO_YUV = ((0.299, 0.587, 0.114), (-0.14714119, -0.28886916, 0.43601035), (0.61497538, -0.51496512, -0.10001026))
_YUV_TO_RGB = tuple(map(tuple, torch.linalg.inv(torch.tensor(_RGB_TO_YUV, dtype=torch.float64)).tolist()))


def _mix(x: torch.Tensor, m: tuple) -> torch.Tensor:
    """Per-pixel 3x3 colour matrix, as channel sums: elementwise ops stay in float32 under autocast (a matmul would
    run in bfloat16)."""
    c = x.unbind(1)
    return torch.stack([row[0] * c[0] + row[1] * c[1] + row[2] * c[2] for row in m], 1)


def rgb_to_yuv(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [-1, 1] -> YUV of the [0, 1] image (Y in [0, 1], U and V within about +-0.62), float32."""
    return _mix((rgb.float() + 1.0) / 2.0, _RGB_TO_YUV)


def yuv_to_rgb(yuv: torch.Tensor) -> torch.Tensor:
    return _mix(yuv.float(), _YUV_TO_RGB) * 2.0 - 1.0


@torch.compiler.disable  # compiled after the guided filter, inductor recomputed that filter in every window: 1.1 s
def chroma_guard(photo: torch.Tensor, out: torch.Tensor, gain: float, floor: float, r: int = 2,
                 grey: float = 0.15) -> torch.Tensor:
    """`out` with its chroma scaled down wherever its saturation (chroma over luma, each averaged over a (2r+1)^2
    window) is above the photo's plus `floor`, or, where the photo's is above `grey`, above a boost of that excess by
    `gain`.  The scene generators turn the faint tints of near-grey surfaces into colour the photo does not have
    (asphalt and limestone red, dark trunks red), most of all where they also darken them; the saturation boost of
    colourful regions (greener grass, bluer sky) passes, and so do the output's luma and its fine chroma detail.
    Both images in [-1, 1]; computed in float32, returned in `out`'s dtype."""
    yuv_p, yuv_o = rgb_to_yuv(photo), rgb_to_yuv(out)
    mean_p, mean_o = box_mean_pooled(yuv_p, r), box_mean_pooled(yuv_o, r)
    luma_o = mean_o[:, :1] + 0.05  # the offset keeps near-black windows from counting as saturated
    saturation_p = mean_p[:, 1:].pow(2).sum(1, keepdim=True).sqrt() / (mean_p[:, :1] + 0.05)
    chroma_o = (mean_o[:, 1:].pow(2).sum(1, keepdim=True) + 1e-12).sqrt()  # + 1e-12: a finite gradient at grey
    allowed = saturation_p + (gain - 1.0) * (saturation_p - grey).clamp(min=0.0) + floor
    scale = (allowed * luma_o / (chroma_o + 1e-6)).clamp(max=1.0)
    guarded = torch.cat([yuv_o[:, :1], yuv_o[:, 1:] * scale], 1)
    return yuv_to_rgb(guarded).clamp(-1.0, 1.0).to(out.dtype)
