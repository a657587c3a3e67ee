"""Person masks for aligned face crops: our shipped ONNX segmenter, or any ONNX model with the same contract.

Contract of a segmentation model: one image input (N, 3, H, W) float32 RGB, `(x / 255 - mean) / std`; the first
output (N, 1, H, W) or (N, H, W) is the person probability in [0, 1] (or logits, with `logits=True`) at any
resolution (it is resized back).  Fixed input sizes are read from the graph; dynamic ones use the `input_size`
metadata entry (ours: 256) or 256.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from cartoon.errors import CartoonError, WeightsError
from cartoon.runners import onnx_session
from cartoon.registry import WEIGHTS_DIR

DEFAULT_SEGMENTER = WEIGHTS_DIR / "segmenter" / "segmenter.onnx"
DEFAULT_INPUT_SIZE = 256


class OnnxSegmenter:
    """`segmenter(rgb) -> (H, W) float32` person probability for an (H, W, 3) uint8 crop."""

    def __init__(self, path: str | os.PathLike | None = None, threads: int | None = 2,
                 mean: tuple[float, float, float] = (0.0, 0.0, 0.0), std: tuple[float, float, float] = (1.0, 1.0, 1.0),
                 logits: bool = False):
        self.path = Path(path) if path is not None else DEFAULT_SEGMENTER
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: segmentation model not found; pass the path of an ONNX model"
                               + ("" if path is not None else " or restore weights/segmenter/ from the repository"))
        self.session = onnx_session(self.path, threads)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise WeightsError(f"{self.path}: a segmentation model needs one (N, 3, H, W) input, "
                               f"this one has {[(i.name, i.shape) for i in inputs]}")
        self.input_name = inputs[0].name
        h, w = inputs[0].shape[2:]
        if isinstance(h, int) and isinstance(w, int):
            self.input_size = (w, h)
        else:
            meta = self.session.get_modelmeta().custom_metadata_map
            side = int(meta.get("input_size", DEFAULT_INPUT_SIZE))
            self.input_size = (side, side)
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        self.logits = logits

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.batch([rgb])[0]

    def batch(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Masks for several crops of any sizes, run as one batch at the model's input size."""
        if not crops:
            return []
        for c in crops:
            if c.ndim != 3 or c.shape[2] != 3 or c.dtype != np.uint8:
                raise CartoonError(f"the segmenter takes (H, W, 3) uint8 crops, got {c.shape} {c.dtype}")
        w, h = self.input_size
        x = np.stack([_resize(c, (w, h)) for c in crops]).astype(np.float32).transpose(0, 3, 1, 2) / 255
        x = (x - self.mean) / self.std
        out = np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0], np.float32)
        if out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 3 or out.shape[0] != len(crops):
            raise WeightsError(f"{self.path}: expected a (N, 1, H, W) or (N, H, W) mask output, got {out.shape}")
        if self.logits:
            out = 1 / (1 + np.exp(-out))
        return [np.clip(_resize(m, (c.shape[1], c.shape[0])), 0, 1) for m, c in zip(out, crops)]


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (a.shape[1], a.shape[0]) == size:
        return a
    shrink = size[0] < a.shape[1]
    return cv2.resize(a, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def keep_person(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The silhouette in `mask` that holds the face: solid inside, the model's own soft transition at its outline.

    A head-and-shoulders silhouette has neither islands nor holes, and is not half transparent; a small segmenter
    trained on composites leaves all three on real photos (background patches the colour of skin or hair, unsure
    cheeks).  The component of `mask >= 0.5` touching the `seeds` ((N, 2) (x, y) points on the face: its landmarks
    in the crop), with its holes filled, becomes 1 except within 2 pixels of its outline, where `mask` is kept;
    everything farther out becomes 0.  When no seed falls on the mask, it is returned unchanged.
    """
    h, w = mask.shape
    _, labels = cv2.connectedComponents((mask >= 0.5).astype(np.uint8), connectivity=8)
    xy = np.rint(np.asarray(seeds, np.float64)).astype(int)
    xy = xy[(xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)]
    keep = np.unique(labels[xy[:, 1], xy[:, 0]])
    keep = keep[keep > 0]
    if keep.size == 0:
        return mask
    person = np.isin(labels, keep)
    _, gaps = cv2.connectedComponents((~person).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([gaps[0], gaps[-1], gaps[:, 0], gaps[:, -1]]))
    solid = (person | ((gaps > 0) & ~np.isin(gaps, border))).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    inside = cv2.erode(solid, disc, borderType=cv2.BORDER_REPLICATE) > 0
    near = cv2.dilate(solid, disc) > 0
    return np.where(inside, np.float32(1), np.where(near, mask, np.float32(0))).astype(np.float32)
