"""Any image size: run the generator tile by tile with overlap and feathered blending.

Instance norm and CBAM's channel attention use statistics of the whole feature map, so each tile normalised by its
own statistics would come out in a slightly different colour and show seams.  Instead, one pass over a downscaled
copy of the whole image records those statistics, and every tile reuses them.  What remains different between
neighbouring tiles is only the convolutions' border handling, which the overlap and the feathered blend remove.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from PIL import Image

# The generator downsamples twice by 2: its inputs' sides are multiples of this (images are padded, then cropped).
SIZE_MULTIPLE = 4
# px: the smallest side the generator takes (at 1/4 resolution its 7x7 reflect padding needs 4 px); smaller tile
# sizes are raised to this
MIN_TILE = 4 * SIZE_MULTIPLE


def to_network(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [-1, 1]: the one normalisation used everywhere."""
    return (rgb.astype(np.float32).transpose(2, 0, 1)[None] / 127.5) - 1.0


def from_network(x: np.ndarray) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) float32 in [0, 255]."""
    return (np.clip(x, -1.0, 1.0).transpose(1, 2, 0) + 1.0) * 127.5


def pad_to_multiple(rgb: np.ndarray, multiple: int = SIZE_MULTIPLE) -> np.ndarray:
    """Reflect-pad bottom/right so both sides are multiples of `multiple` (cropped back after the network)."""
    h, w = rgb.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return rgb
    return np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of `tile`, neighbours sharing at least `overlap`."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(length: int, overlap: int, feather_start: bool, feather_end: bool) -> np.ndarray:
    """1-D blending weight: rises over the overlap at interior edges, 1 elsewhere (never 0, so coverage is safe)."""
    w = np.ones(length, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if feather_start:
            w[:overlap] = np.minimum(w[:overlap], r)
        if feather_end:
            w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


Runner = Callable[..., tuple]


def stats_copy(rgb: np.ndarray, stats_side: int) -> np.ndarray:
    """The downscaled copy whose forward pass gives the whole-image statistics: long side `stats_side`, sides
    multiples of SIZE_MULTIPLE. A panorama's copy keeps its short side at stats_side / 4 (or whole), in at most
    stats_side² pixels (what one square tile holds): a thinner copy would leave its statistics to the borders. Only
    one longer than 1:(stats_side / MIN_TILE)² is squeezed, to MIN_TILE, the shortest side the generator takes."""
    h, w = rgb.shape[:2]
    m = SIZE_MULTIPLE
    s = min(1.0, max(stats_side / max(h, w), min(stats_side / 4 / min(h, w), stats_side / math.sqrt(h * w))))
    longest = stats_side * stats_side // MIN_TILE // m * m
    sh, sw = (min(longest, max(MIN_TILE, round(n * s / m) * m)) for n in (h, w))
    if (sh, sw) == (h, w):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((sw, sh), Image.Resampling.BILINEAR, reducing_gap=2.0))


def run_tiled(runner: Runner, rgb: np.ndarray, tile: int, overlap: int, stats_side: int,
              batch_size: int = 1, progress: Callable[[int, int], None] | None = None, stats: list | None = None):
    """Cartoonize `rgb` (H, W, 3) uint8, sides multiples of SIZE_MULTIPLE. Returns (cartoon (H, W, 3) float32 in
    0..255, saliency (H, W) float32 in 0..1).  Images no larger than `tile` run in one pass.  `stats`: whole-image
    statistics to use instead of the image's own (video: smoothed over time), each (1, C, 1, 1)."""
    h, w = rgb.shape[:2]
    m = SIZE_MULTIPLE
    tile = max(MIN_TILE, tile // m * m)
    overlap = min(max(0, overlap // m * m), tile // 2)
    if h <= tile and w <= tile:
        y, sal, _ = runner(to_network(rgb), stats=stats)
        return from_network(y[0]), sal[0, 0]

    # 1. whole-image statistics from a downscaled copy
    if stats is None:
        _, _, stats = runner(to_network(stats_copy(rgb, stats_side)), record=True)

    # 2. tiles, normalised with those statistics, blended with feathered weights
    out = np.zeros((h, w, 3), np.float32)
    sal_out = np.zeros((h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    boxes = [(y0, x0) for y0 in tile_starts(h, tile, overlap) for x0 in tile_starts(w, tile, overlap)]
    th, tw = min(tile, h), min(tile, w)
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i:i + batch_size]
        x = np.concatenate([to_network(rgb[y0:y0 + th, x0:x0 + tw]) for y0, x0 in chunk])
        y, sal, _ = runner(x, stats=stats)
        for (y0, x0), yt, st in zip(chunk, y, sal):
            wy = _ramp(th, overlap, y0 > 0, y0 + th < h)
            wx = _ramp(tw, overlap, x0 > 0, x0 + tw < w)
            wt = wy[:, None] * wx[None, :]
            out[y0:y0 + th, x0:x0 + tw] += from_network(yt) * wt[..., None]
            sal_out[y0:y0 + th, x0:x0 + tw] += st[0] * wt
            weight[y0:y0 + th, x0:x0 + tw] += wt
        if progress:
            progress(min(i + batch_size, len(boxes)), len(boxes))
    out /= weight[..., None]
    sal_out /= weight
    return out, sal_out
