"""Aligned square face crops and the way back: the affine maps, warping without aliasing, weighted pasting (the
weight portrait mode pastes with, and the rest of making a face fit its photo: facecrop/harmonize.py).

The crop puts the eye line level and frames the face the way the portrait data (`face_photo`, photo2cartoon's
training portraits) is framed: room for the hair above, the chin and neck below.  The ratios below are medians
of RetinaFace's landmarks on every third `face_photo` portrait (454 of 256x256: eye centre at pixel (127.6, 119.7),
eyes 61.7 px apart, 66.6 px from the eye centre to the mouth centre), so a `face_photo` portrait re-cropped is
itself.
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from .detect import Face

EYE_CENTRE = (0.5, 0.469)  # where the midpoint of the eyes lands, as fractions of the crop side
EYE_DISTANCE = 0.2409  # eye-to-eye distance, as a fraction of the crop side
EYE_MOUTH_DISTANCE = 0.2601  # eye centre to mouth centre
# Averaging first: cv2.warpAffine samples 4 pixels per output pixel, which aliases when shrinking beyond this.
_MAX_DIRECT_SHRINK = 0.75


@dataclasses.dataclass(eq=False)
class AlignedFace:
    image: np.ndarray  # (S, S, 3) uint8, aligned, background white: what the portrait style gets
    mask: np.ndarray  # (S, S) float32 in [0, 1]: the person (0 outside the photo)
    forward: np.ndarray  # (2, 3) image -> crop
    inverse: np.ndarray  # (2, 3) crop -> image
    face: Face
    photo: np.ndarray | None = None  # (S, S, 3) uint8: the crop's person as in the photo (`image` before
    # facecrop.harmonize.prepare), background white; None: the same as `image`

    @property
    def original(self) -> np.ndarray:
        return self.image if self.photo is None else self.photo


def alignment(landmarks: np.ndarray, crop_size: int) -> np.ndarray:
    """The (2, 3) similarity that maps image pixels to an aligned `crop_size` square (pixel centres at integers).

    Rotation levels the eye line.  The scale uses the larger of the eye distance and the eye-to-mouth distance,
    each against its share of the crop: a turned head shortens the first, a nodding one the second, and neither
    should make the crop cut into the face.
    """
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (5, 2) or not np.isfinite(pts).all():
        raise ValueError(f"landmarks must be a finite (5, 2) array, got shape {pts.shape}")
    eyes = (pts[0] + pts[1]) / 2
    mouth = (pts[3] + pts[4]) / 2
    eye_line = pts[1] - pts[0]
    side = max(np.hypot(*eye_line) / EYE_DISTANCE, np.hypot(*(mouth - eyes)) / EYE_MOUTH_DISTANCE)
    if not side > 0:
        raise ValueError("degenerate landmarks: the eyes and the mouth coincide")
    angle = math.atan2(eye_line[1], eye_line[0])
    k = crop_size / side
    rot = k * np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    # Pixel centres: the crop's continuous centre line x = S/2 lies at pixel coordinate S/2 - 0.5.
    target = np.array([EYE_CENTRE[0] * crop_size - 0.5, EYE_CENTRE[1] * crop_size - 0.5])
    return np.hstack([rot, (target - rot @ eyes)[:, None]])


def invert(affine: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(affine, np.float64))


def apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a (2, 3) affine."""
    points = np.asarray(points, np.float64)
    return points @ affine[:, :2].T + affine[:, 2]


def warp(src: np.ndarray, affine: np.ndarray, size: tuple[int, int], border_value: float | tuple = 0,
         interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """`cv2.warpAffine(src, affine, size)`, reading only the part of `src` the output covers, and averaging it
    down first when the map shrinks by more than 4/3 (no aliasing on large photos or small pastes)."""
    w, h = size
    corners = apply(invert(affine), np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64))
    x0 = max(0, int(math.floor(corners[:, 0].min())) - 2)
    y0 = max(0, int(math.floor(corners[:, 1].min())) - 2)
    x1 = min(src.shape[1], int(math.ceil(corners[:, 0].max())) + 3)
    y1 = min(src.shape[0], int(math.ceil(corners[:, 1].max())) + 3)
    if x0 >= x1 or y0 >= y1:  # the output lies entirely outside src
        return np.full((h, w) + src.shape[2:], border_value, src.dtype)
    sub = np.ascontiguousarray(src[y0:y1, x0:x1])
    # sub pixel (u, v) is src pixel (u + x0, v + y0)
    m = np.asarray(affine, np.float64).copy()
    m[:, 2] += m[:, :2] @ [x0, y0]
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
    if scale < _MAX_DIRECT_SHRINK:
        sw, sh = max(1, round(sub.shape[1] * scale)), max(1, round(sub.shape[0] * scale))
        fx, fy = sub.shape[1] / sw, sub.shape[0] / sh
        sub = cv2.resize(sub, (sw, sh), interpolation=cv2.INTER_AREA)
        # small pixel (p, q) covers sub pixels around ((p + 0.5) fx - 0.5, (q + 0.5) fy - 0.5)
        to_sub = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
        m = m @ to_sub
    return cv2.warpAffine(sub, m, (w, h), flags=interpolation, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border_value)


def crop(rgb: np.ndarray, face: Face, crop_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(aligned crop, coverage, forward affine): outside the photo the crop is white and coverage is 0."""
    forward = alignment(face.landmarks, crop_size)
    size = (crop_size, crop_size)
    image = warp(rgb, forward, size, border_value=(255, 255, 255))
    everywhere = np.broadcast_to(np.float32(1), rgb.shape[:2])  # materialised only where the crop reads it
    coverage = warp(everywhere, forward, size, border_value=0)
    return image, coverage, forward


def paste(base: np.ndarray, crop_rgb: np.ndarray, weight: np.ndarray, inverse: np.ndarray) -> None:
    """Blend `crop_rgb` into `base` (float32 (H, W, 3), in place) through `inverse`, weighted by `weight`."""
    h, w = base.shape[:2]
    footprint = apply(inverse, np.array([[0, 0], [crop_rgb.shape[1], 0], [0, crop_rgb.shape[0]],
                                          [crop_rgb.shape[1], crop_rgb.shape[0]]], np.float64))
    x0 = max(0, int(math.floor(footprint[:, 0].min())) - 1)
    y0 = max(0, int(math.floor(footprint[:, 1].min())) - 1)
    x1 = min(w, int(math.ceil(footprint[:, 0].max())) + 2)
    y1 = min(h, int(math.ceil(footprint[:, 1].max())) + 2)
    if x0 >= x1 or y0 >= y1:
        return
    m = np.asarray(inverse, np.float64).copy()
    m[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    colour = warp(crop_rgb.astype(np.float32), m, size, border_value=0)
    alpha = warp(weight.astype(np.float32), m, size, border_value=0)[..., None]
    region = base[y0:y1, x0:x1]
    region += alpha * (colour - region)
