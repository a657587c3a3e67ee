"""Film frames made to look like photos: the inputs of the scene styles' synthetic pairs (`data.target=degraded`).

The generator learns the way back, photo-like frame -> the frame itself, so its targets are the film's own pixels
(palette, painted skies, flat regions, outlines) rather than anything made from a photo: the trick of Real-ESRGAN's
synthetic degradations, with "photo-like" as the degradation.  What a photo has that a frame lacks, each drawn at
random per sample:
- the colours of a real photo: the frame's Lab mean and spread moved part of the way to a random training photo's
  (Reinhard et al. 2001), so the generator learns the film's palette for each kind of content;
- the dark outlines closed away (a 3x3 grey closing) half of the time, so it learns to draw them back;
- photo texture: fine 1/f noise and a little of a random photo's own high-pass, so it learns to paint regions flat;
- a photo's crispness: the frame's own detail boosted at two scales (video frames are softer than photos).
"""
from __future__ import annotations

import cv2
import numpy as np


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB) * 255.0


PARTS = ("colour", "outlines", "texture", "crisp")


def photo_like(frame: np.ndarray, photo: np.ndarray, rng: np.random.Generator, parts=PARTS) -> np.ndarray:
    """(H, W, 3) uint8 frame -> (H, W, 3) uint8 of the same scene as a photo would show it; `photo` (any size, uint8
    RGB) lends its colour statistics and texture; `parts`: which of the changes to make."""
    h, w = frame.shape[:2]
    f, p = _lab(frame).reshape(-1, 3), _lab(photo).reshape(-1, 3)
    matched = (f - f.mean(0)) * (p.std(0) + 1e-3) / (f.std(0) + 1e-3) + p.mean(0)
    a = rng.uniform(0.2, 0.7) if "colour" in parts else 0.0
    out = _rgb(((1 - a) * f + a * matched).reshape(h, w, 3))
    if rng.random() < 0.5 and "outlines" in parts:
        out = cv2.morphologyEx(out, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    noise = rng.standard_normal((h, w)).astype(np.float32)
    texture = sum(cv2.GaussianBlur(noise * s, (0, 0), s) for s in (0.7, 1.5, 3.0)) * rng.uniform(1, 5)
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32)
    if gray.shape[0] >= h and gray.shape[1] >= w:
        y, x = int(rng.integers(gray.shape[0] - h + 1)), int(rng.integers(gray.shape[1] - w + 1))
        gray = gray[y:y + h, x:x + w]
        texture += (gray - cv2.GaussianBlur(gray, (0, 0), 0.8)) * rng.uniform(0, 0.5)
    if "texture" in parts:
        out = out + texture[..., None]
    for sigma in (1.0, 2.5):
        amount = rng.uniform(0.3, 1.2)
        if "crisp" in parts:
            out = out + amount * (out - cv2.GaussianBlur(out, (0, 0), sigma))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
