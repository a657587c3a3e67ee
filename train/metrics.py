"""Quality numbers of a generator: KID (with its spread over subsets), grayscale SSIM to the input, the thin lines
it adds over texture, and the contact sheet.  FID is in `fid.py`; both take the Inception features that
`FIDEvaluator.features` computes.

KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged
over random subsets; reported x10^3.  Unlike FID it is unbiased for small sets, so a few hundred validation images
give comparable numbers, and its subset spread says how far to trust a difference.
"""
from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from .targets import texture_mask


def kid(feats1: np.ndarray, feats2: np.ndarray, subsets: int = 50, subset_size: int = 100,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of MMD^2 over `subsets` random subsets of min(subset_size, n1, n2) images from each side."""
    a = np.asarray(feats1, np.float64)
    b = np.asarray(feats2, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least two images on each side")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 or float in 0..255 -> float64 luma (BT.601)."""
    x = np.asarray(rgb, np.float64)
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def ssim_gray(a: np.ndarray, b: np.ndarray) -> float:
    """Grayscale SSIM (skimage defaults: 7x7 uniform window) between two RGB images in 0..255."""
    return float(structural_similarity(gray(a), gray(b), data_range=255.0))


def texture_lines(photo: np.ndarray, output: np.ndarray) -> float | None:
    """Thin lines, dark or light, that the output adds over the photo's texture, in grey levels (0: none): the mean,
    over the photo's texture (`targets.texture_mask`: grass, surf, snow), of the output's luma closing less opening
    (black-hat plus top-hat, 7-px disc) less the photo's.  A style that learned to outline every Canny chain draws
    a crackle there that SSIM barely sees.  None when the photo has no texture."""
    mask = texture_mask(np.asarray(photo, np.uint8))
    if not mask.any():
        return None
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    def lines(rgb):
        y = gray(rgb).astype(np.float32)
        return cv2.morphologyEx(y, cv2.MORPH_CLOSE, disc) - cv2.morphologyEx(y, cv2.MORPH_OPEN, disc)
    return float(np.maximum(lines(output) - lines(photo), 0)[mask].mean())


def contact_sheet(pairs: list[tuple[np.ndarray, ...]], thumb: int = 160, gap: int = 4) -> np.ndarray:
    """Rows of (input | output [| more outputs]) thumbnails, `thumb` px high, on white: (H, W, 3) uint8."""
    from PIL import Image

    rows = []
    for images in pairs:
        cells = []
        for im in images:
            im = np.clip(np.asarray(im), 0, 255).astype(np.uint8)
            h, w = im.shape[:2]
            cells.append(np.asarray(Image.fromarray(im).resize((max(1, round(w * thumb / h)), thumb),
                                                               Image.Resampling.LANCZOS)))
            cells.append(np.full((thumb, gap, 3), 255, np.uint8))
        rows.append(np.concatenate(cells[:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    out = []
    for r in rows:
        out.append(np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(out, axis=0)[:-gap]
