"""Per-photo training targets for scene styles, which have no paired cartoons: the photo flattened the classical way.

White-box cartoonization (Wang & Yu, CVPR 2020) steers its generator with hand-made "surface" and "structure"
representations of the image instead of waiting for a discriminator to learn what a cartoon is.  On a 2-core CPU
that wait is the whole budget (the discriminator of the unpaired recipe learns nothing for ~500 steps), so the scene
recipe gives the generator such a target from the first step: an edge-preserving smoothing (flat shading), the
strong edges of the smoothed image drawn as thin dark outlines, and the photos' Lab colour statistics moved to the
cartoons' (the style's palette).  The adversarial and Gram terms then add the style's texture on top.
"""
from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

TARGET_VERSION = 2


@dataclasses.dataclass(frozen=True)
class LabStats:
    """Per-channel mean and std of a set of images in OpenCV's 8-bit Lab."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, images: list[np.ndarray]) -> "LabStats":
        lab = np.concatenate([cv2.cvtColor(im, cv2.COLOR_RGB2LAB).reshape(-1, 3) for im in images]).astype(np.float64)
        # rounded: the stats are part of the cache key, and a re-listed folder must give the same key
        return cls(tuple(round(float(v), 1) for v in lab.mean(0)), tuple(round(float(v), 1) for v in lab.std(0)))


def smooth(rgb: np.ndarray, passes: int = 2, sigma_color: float = 30.0, sigma_space: float = 7.0) -> np.ndarray:
    """Repeated small bilateral filters: flat regions, edges kept."""
    for _ in range(passes):
        rgb = cv2.bilateralFilter(rgb, 9, sigma_color, sigma_space)
    return rgb


def edge_density(edges: np.ndarray, window: int = 31) -> np.ndarray:
    """(H, W) float32: the fraction of edge pixels (non-zero in `edges`) in the `window`-px square round each pixel."""
    return cv2.boxFilter((edges > 0).astype(np.float32), -1, (window, window))


def texture_mask(rgb: np.ndarray, low: int = 80, high: int = 180, max_density: float = 0.2, window: int = 31) -> np.ndarray:
    """(H, W) bool: where the photo is texture (grass, surf, snowy slopes) rather than regions and their outlines."""
    return edge_density(cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high), window) > max_density


def outlines(rgb: np.ndarray, low: int = 80, high: int = 180, min_length: int = 40, width: float = 1.0,
             max_density: float | None = None, density_window: int = 31) -> np.ndarray:
    """(H, W) float32 in [0, 1]: Canny edges of `rgb` without the short fragments (texture, not outlines), drawn
    as soft lines about 2 + 2 * `width` px wide (a Gaussian of sigma `width`): lines a small generator can learn
    to place, where a 1-px line's exact position is a guess that pixel L1 would rather leave out.

    `max_density`: also drop the edge pixels whose `density_window`-px square is more than this fraction edges.
    Grass, surf and snowy slopes give long connected Canny chains that the length filter keeps, and a generator
    trained on them draws a crackle of thin lines over every such texture; a skyline or a figure is one or two
    lines through the window (~0.03-0.07 at 31 px), a meadow's edges 0.3 and more."""
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high)
    if max_density is not None:
        edges[edge_density(edges, density_window) > max_density] = 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(edges, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_length
    lines = keep[labels].astype(np.float32)
    soft = cv2.GaussianBlur(lines, (0, 0), width)
    return np.clip(soft / max(float(soft.max()), 1e-6) * 1.6 if soft.max() > 0 else soft, 0.0, 1.0)


def transfer_colour(rgb: np.ndarray, source: LabStats, target: LabStats) -> np.ndarray:
    """Reinhard colour transfer with set-level statistics: each channel standardised by the photos' stats and
    rescaled to the cartoons'.  Set-level, so a sunset stays orange while the overall palette moves."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float64)
    lab = (lab - np.array(source.mean)) / np.maximum(np.array(source.std), 1e-3) * np.array(target.std) + np.array(target.mean)
    return cv2.cvtColor(np.clip(np.round(lab), 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def flat_target(rgb: np.ndarray, photo_stats: LabStats, cartoon_stats: LabStats, line_darkness: float = 0.65,
                max_density: float | None = None) -> np.ndarray:
    """The training target of one photo: smoothed, outlined (lines darken by `line_darkness`; `max_density`: see
    `outlines`), recoloured."""
    flat = smooth(rgb)
    lines = outlines(flat, max_density=max_density)[..., None]
    drawn = flat.astype(np.float32) * (1.0 - line_darkness * lines)
    return transfer_colour(np.clip(np.round(drawn), 0, 255).astype(np.uint8), photo_stats, cartoon_stats)


# data.target kinds computed from the photo alone (cached maps), each (rgb, photo_stats, cartoon_stats) -> rgb.
# Measured on the Ghibli validation split (KID ratio to the photos' own / SSIM to the photo): flat 0.83 / 0.69,
# flat-clean (flat without the outlines over texture: see `outlines`) 0.85 / 0.78 (cv2.stylization, a target since
# removed: 0.73 / 0.39).  "colour"
# recolours only: for styles of crisp detail such as Shinkai's, where smoothing moves the photos away from the frames
# (Shinkai validation split: flat 1.03x, the recoloured photo 0.96x).
STYLE_TARGETS = {"flat": flat_target, "flat-clean": functools.partial(flat_target, max_density=0.2),
                 "colour": transfer_colour}


def style_target(rgb: np.ndarray, kind: str, photo_stats: LabStats, cartoon_stats: LabStats) -> np.ndarray:
    """The training target of one photo for data.target `kind` (a key of STYLE_TARGETS)."""
    if kind not in STYLE_TARGETS:
        raise ValueError(f"no target of kind {kind!r}")
    return STYLE_TARGETS[kind](rgb, photo_stats, cartoon_stats)
