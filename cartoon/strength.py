"""The strength knob: 0 gives the photo back, 1 the full cartoon.

A plain pixel mix at 0.5 looks like a double exposure: the photo's fine texture sits on top of the cartoon's flat
shading and outlines.  Here the photo is split into a base layer (edge-preserving smoothing: shapes and colour, what
the cartoon also has) and a detail layer (texture, grain).  Colour and shading move linearly from the photo's base
towards the cartoon, while the photo's texture fades out faster, quadratically; so intermediate strengths look like a
lighter cartoon (flatter, cleaner) rather than a faded one.

    out(s) = base + s * (cartoon - base) + (1 - s)^2 * (photo - base)

out(0) = photo and out(1) = cartoon exactly.
"""
from __future__ import annotations

import cv2
import numpy as np


def photo_base(photo: np.ndarray) -> np.ndarray:
    """Edge-preserving smoothing, sized to the image so the split means the same at any resolution."""
    d = int(np.clip(round(max(photo.shape[:2]) / 200), 5, 15))
    return cv2.bilateralFilter(photo, d, sigmaColor=30, sigmaSpace=d).astype(np.float32)


def apply_strength(photo: np.ndarray, cartoon: np.ndarray, strength: float) -> np.ndarray:
    """photo (H, W, 3) uint8, cartoon (H, W, 3) float32 in 0..255 -> (H, W, 3) uint8."""
    s = float(strength)
    if s >= 1.0:
        out = cartoon
    elif s <= 0.0:
        return photo.copy()
    else:
        base = photo_base(photo)
        detail = photo.astype(np.float32)
        detail -= base  # in place: 4096 x 4096 inputs make every full-size float copy count
        out = cartoon - base
        out *= s
        out += base
        del base
        detail *= (1.0 - s) ** 2
        out += detail
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
