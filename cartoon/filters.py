"""He et al.'s guided filter, shared by the generator's output smoothing and the training's surface representation
(White-box cartoonization's `guided_filter`)."""
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
