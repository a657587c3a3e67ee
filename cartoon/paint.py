"""Paint: an image made flat with dark outlines on object boundaries.

One function serves the scene styles at inference (`paint`, after the generator: the cartoon's texture flattened
and its object boundaries outlined) and training's structure term (`superpixel_colour` of the generator's own
output: White-box cartoonization's superpixel structure representation, and AnimeGANv3's region smoothing).
"""
from __future__ import annotations

import cv2
import numpy as np

SMOOTH_SIGMA_S = 60  # the smooth fill's edge-preserving filter: spatial sigma per 256 px of image side ...
SMOOTH_SIGMA_R = 0.25  # ... and range sigma (0.4 flattened windows and brick joints away)
PAINT_SEGMENTS = 300  # superpixels per 256x256 of image ...
PAINT_MAX_SEGMENTS = 1200  # ... and at most this many (512x512's): larger images get larger regions, not more lines


def segment_count(height: int, width: int, per_256: int, cap: int | None = None) -> int:
    """Superpixels for an image: `per_256` per 256x256 area (regions of the same size in pixels at any crop size),
    at least 8, at most `cap`."""
    n = max(8, round(per_256 * height * width / 256 ** 2))
    return min(n, cap) if cap else n


def paint(cartoon: np.ndarray, outline: float, segments_per_256: int = PAINT_SEGMENTS) -> np.ndarray:
    """(H, W, 3) float32 in 0..255 (the generator's output) -> the same, smoothed flat (edge-preserving) with dark
    outlines between neighbouring superpixels whose colours differ by more than `outline` (sum of R, G, B)."""
    rgb = np.clip(np.rint(cartoon), 0, 255).astype(np.uint8)
    segments = segment_count(rgb.shape[0], rgb.shape[1], segments_per_256, PAINT_MAX_SEGMENTS)
    return superpixel_colour(rgb, segments, outline, fill="smooth")


OUTLINE_DARKNESS = 0.45  # an outline is the region's colour times this


def superpixel_colour(rgb: np.ndarray, segments: int = 100, outline: float = 0.0, fill: str = "regions") -> np.ndarray:
    """White-box's structure representation of one (H, W, 3) uint8 image: SLIC superpixels, each painted one colour,
    adaptively (the mean where the region is smooth, the median where it is textured: a textured region's mean is a
    muddy grey no cartoon has).  `outline` > 0 also draws a dark line (the colour x OUTLINE_DARKNESS) on the darker
    side of every boundary between two regions whose colours differ by more than `outline` (summed over R, G, B in
    0..255): outlines on object boundaries, none between the like-coloured segments of grass, water or sky.

    `fill="smooth"` paints with an edge-preserving filter of the image instead (OpenCV's recursive domain transform,
    SMOOTH_SIGMA_S per 256 px, SMOOTH_SIGMA_R): texture goes, shading stays soft inside regions and no superpixel
    cells appear; the superpixels of the smoothed image only decide where the outlines go (AnimeGANv3's region smoothing, the cells'
    mosaic left out)."""
    from skimage.segmentation import slic

    if fill == "smooth":
        scale = (rgb.shape[0] * rgb.shape[1]) ** 0.5 / 256
        rgb = cv2.edgePreservingFilter(np.ascontiguousarray(rgb), flags=cv2.RECURS_FILTER,
                                       sigma_s=SMOOTH_SIGMA_S * scale, sigma_r=SMOOTH_SIGMA_R)
    elif fill != "regions":
        raise ValueError(f"fill must be 'regions' or 'smooth', not {fill!r}")
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
    regions = out.reshape(rgb.shape)
    out = regions.copy() if fill == "regions" else rgb.astype(np.float32)
    if outline > 0:
        out[_outline_mask(regions, labels, outline)] *= OUTLINE_DARKNESS
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
