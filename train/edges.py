"""CartoonGAN's edge-smoothed cartoons: the same image with its outlines blurred, shown to the discriminator as fake.

Canny edges -> dilate -> Gaussian blur only inside the dilated band.  The discriminator learns that soft outlines mean
"not a cartoon", which pushes the generator to draw sharp ones.
"""
from __future__ import annotations

import cv2
import numpy as np


def smooth_edges(rgb: np.ndarray, canny_low: int = 100, canny_high: int = 200, kernel: int = 5) -> np.ndarray:
    """(H, W, 3) uint8 -> the same with the pixels near edges replaced by their Gaussian-blurred values."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, canny_low, canny_high)
    band = cv2.dilate(edges, np.ones((kernel, kernel), np.uint8)) > 0
    # sigma 0: OpenCV derives it from the kernel size, as CartoonGAN's getGaussianKernel(kernel, 0) does
    blurred = cv2.GaussianBlur(rgb, (kernel, kernel), 0, borderType=cv2.BORDER_REFLECT_101)
    out = rgb.copy()
    out[band] = blurred[band]
    return out
