"""Portrait mode: every face of a photo -> aligned white-background crop -> stylized -> pasted back."""
from __future__ import annotations

import dataclasses
import numbers
import os
from typing import Callable

import cv2
import numpy as np

from cartoon.errors import CartoonError
from cartoon.imageio import ImageInput, RGBImage, load_image
from cartoon.studio import BACKGROUNDS

from . import align
from .align import AlignedFace
from .detect import Face, get_detector
from .segment import OnnxSegmenter, keep_person

MIN_CROP_SIZE = 64


class NoFaceError(CartoonError):
    """No face large enough was found; callers can fall back to scene mode."""


@dataclasses.dataclass(eq=False)
class PortraitResult:
    image: np.ndarray  # (H, W, 3) uint8: the photo (or its scene cartoon) with the cartoon faces pasted in
    crops: list[AlignedFace]
    stylized: list[np.ndarray]  # (S, S, 3) uint8, one per crop
    alpha: np.ndarray | None = None  # (H, W) uint8, the input's alpha channel if it had one

    def to_image(self) -> RGBImage:
        return RGBImage(self.image, self.alpha)


class FacePipeline:
    """Detect, align, segment, stylize and paste back every face of at least `min_face` pixels.

    detector: "retinaface" (default), "face-alignment", or any object with `.detect(rgb) -> list[Face]`.
    crop_size: side of the aligned crops, the portrait style's input size (256 or 512).
    segmenter: None for the shipped ONNX model, the path of another ONNX model (see segment.py for the contract),
      or any callable (S, S, 3) uint8 -> (S, S) float mask in [0, 1].
    min_face: faces whose box has a side shorter than this (in input pixels) are left alone.
    """

    def __init__(self, detector="retinaface", crop_size: int = 256,
                 segmenter: str | os.PathLike | Callable[[np.ndarray], np.ndarray] | None = None,
                 min_face: float = 48, threads: int | None = 2):
        if not isinstance(crop_size, numbers.Integral) or crop_size < MIN_CROP_SIZE:
            raise CartoonError(f"crop_size must be an integer of at least {MIN_CROP_SIZE}, got {crop_size!r}")
        if not isinstance(min_face, numbers.Real) or not min_face >= 0:
            raise CartoonError(f"min_face must be a number of pixels >= 0, got {min_face!r}")
        self.crop_size = int(crop_size)
        self.min_face = float(min_face)
        self.detector = get_detector(detector, threads=threads)
        if segmenter is None or isinstance(segmenter, (str, os.PathLike)):
            self.segmenter = OnnxSegmenter(segmenter, threads=threads)
        elif callable(segmenter):
            self.segmenter = segmenter
        else:
            raise CartoonError(f"segmenter must be None, the path of an ONNX model or a callable; "
                               f"got {type(segmenter).__name__}")

    # ---- stages -------------------------------------------------------------------------------------------------

    def detect(self, image: ImageInput | RGBImage) -> list[Face]:
        """Faces of at least `min_face` pixels, largest first (an empty list when there are none)."""
        return self._faces(load_image(image).rgb)[0]

    def crop(self, image: ImageInput | RGBImage, faces: list[Face] | None = None) -> list[AlignedFace]:
        """One aligned, white-background crop per face, largest first; `NoFaceError` when there is none.
        `faces` from an earlier `detect` on the same image skips detecting again."""
        return self._crop(load_image(image).rgb, faces)

    def run(self, image: ImageInput | RGBImage, stylize: Callable[[np.ndarray], np.ndarray],
            background: str = "photo", scene: Callable[[np.ndarray], np.ndarray] | None = None,
            faces: list[Face] | None = None) -> PortraitResult:
        """Stylize every face crop and paste it back, over the photo (`background="photo"`) or over `scene(rgb)`,
        a scene-mode cartoon of the whole photo (`background="cartoon"`). `faces` as in `crop`."""
        if background not in BACKGROUNDS:
            raise CartoonError(f"background must be one of {BACKGROUNDS}, got {background!r}")
        if background == "cartoon" and scene is None:
            raise CartoonError('background="cartoon" needs scene=, a function that cartoonizes the whole photo')
        if not callable(stylize):
            raise CartoonError("stylize must be a function from an (S, S, 3) uint8 crop to its cartoon")
        img = load_image(image)
        rgb = img.rgb
        crops = self._crop(rgb, faces)
        stylized = [_as_rgb(stylize(c.image), (self.crop_size, self.crop_size), "stylize") for c in crops]
        base = rgb if background == "photo" else _as_rgb(scene(rgb), (rgb.shape[1], rgb.shape[0]), "scene")
        canvas = base.astype(np.float32)
        # Smallest first: a larger face is usually nearer the camera and should end up on top.
        for c, cartoon in sorted(zip(crops, stylized), key=lambda cs: cs[0].face.size):
            align.paste(canvas, cartoon, align.paste_weight(c.mask), c.inverse)
        out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        return PortraitResult(out, crops, stylized, img.alpha)

    # ---- internals ----------------------------------------------------------------------------------------------

    def _faces(self, rgb: np.ndarray) -> tuple[list[Face], list[Face]]:
        return self._select(self.detector.detect(rgb))

    def _select(self, found: list[Face]) -> tuple[list[Face], list[Face]]:
        """(faces of at least min_face, all faces), both largest first."""
        found = sorted(found, key=lambda f: f.width * f.height, reverse=True)
        return [f for f in found if f.size >= self.min_face], found

    def _crop(self, rgb: np.ndarray, detected: list[Face] | None = None) -> list[AlignedFace]:
        faces, found = self._faces(rgb) if detected is None else self._select(detected)
        if not faces:
            if found:
                raise NoFaceError(f"found {len(found)} face(s), but all smaller than {self.min_face:g} pixels "
                                  f"(the largest is {found[0].size:.0f}); use a closer or larger photo, or scene mode")
            raise NoFaceError("no face found in this photo; portrait mode needs a face turned roughly towards the "
                              "camera. Try scene mode for this photo")
        aligned = [align.crop(rgb, f, self.crop_size) for f in faces]
        masks = self._segment([image for image, _, _ in aligned])
        out = []
        for face, (image, coverage, forward), mask in zip(faces, aligned, masks):
            mask = keep_person(np.asarray(mask, np.float32) * coverage, align.apply(forward, face.landmarks))
            white = image.astype(np.float32) * mask[..., None] + 255 * (1 - mask[..., None])
            out.append(AlignedFace(np.clip(np.rint(white), 0, 255).astype(np.uint8), mask, forward,
                                   align.invert(forward), face))
        return out

    def _segment(self, images: list[np.ndarray]) -> list[np.ndarray]:
        if isinstance(self.segmenter, OnnxSegmenter):
            return self.segmenter.batch(images)
        masks = []
        for image in images:
            m = np.asarray(self.segmenter(image), np.float32)
            if m.shape != image.shape[:2]:
                raise CartoonError(f"the segmenter returned a mask of shape {m.shape} for a crop of {image.shape[:2]}")
            masks.append(np.clip(m, 0, 1))
        return masks


def _as_rgb(out, size: tuple[int, int], what: str) -> np.ndarray:
    """A stylizer's output as (H, W, 3) uint8 of `size` (w, h): arrays, PIL images, `RGBImage`s and
    `cartoon.CartoonResult`s are accepted; another size is resized."""
    if isinstance(getattr(out, "image", None), RGBImage):  # a CartoonResult
        out = out.image
    try:
        rgb = load_image(out, name=f"the output of {what}").rgb
    except CartoonError as e:
        raise CartoonError(f"{what} must return an image: {e}") from None
    if (rgb.shape[1], rgb.shape[0]) != size:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if rgb.shape[1] > size[0] else cv2.INTER_LINEAR)
    return rgb
