"""CartoonGAN's edge-smoothed cartoons: the same image with its outlines blurred, shown to the discriminator as fake.

Canny edges -> dilate -> Gaussian blur only inside the dilated band.  The discriminator learns that soft outlines mean
"not a cartoon", which pushes the generator to draw sharp ones.
"""
from __future__ import annotations

import cv2
import numpy as np

from .targets import edge_density


def smooth_edges(rgb: np.ndarray, canny_low: int = 100, canny_high: int = 200, kernel: int = 5,
                 max_density: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 -> the same with the pixels near edges replaced by their Gaussian-blurred values.

    `max_density`: blur only the edges whose 31-px window is at most this fraction edge pixels (outlines, not the
    painted texture of foliage and grass): with texture blurred too, D learns that soft texture is fake, and a
    generator that flattens a photo's grass is pushed to draw a net of crisp thin lines over it instead."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, canny_low, canny_high)
    if max_density is not None:
        edges[edge_density(edges) > max_density] = 0
    band = cv2.dilate(edges, np.ones((kernel, kernel), np.uint8)) > 0
    # sigma 0: OpenCV derives it from the kernel size, as CartoonGAN's getGaussianKernel(kernel, 0) does
    blurred = cv2.GaussianBlur(rgb, (kernel, kernel), 0, borderType=cv2.BORDER_REFLECT_101)
    out = rgb.copy()
    out[band] = blurred[band]
    return out
