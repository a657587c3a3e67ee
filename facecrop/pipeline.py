"""Portrait mode: every face of a photo -> aligned white-background crop -> stylized -> toned to the photo and pasted
back without seams (facecrop.harmonize)."""
from __future__ import annotations

import dataclasses
import numbers
import os
from typing import Callable

import cv2
import numpy as np

from cartoon.errors import CartoonError
from cartoon.imageio import ImageInput, RGBImage, load_image
from cartoon.options import BACKGROUNDS

from . import align, harmonize
from .align import AlignedFace
from .detect import Face, get_detector
from .segment import OnnxSegmenter, keep_person

MIN_CROP_SIZE = 64
PROFILE_RATIO = 0.2  # eye distance / eye-to-mouth distance below this: a profile (the eyes' landmarks nearly
# coincide, so the eye line no longer says how the face is turned; frontal faces are ~0.9, three-quarter ~0.3-0.6)
BLURRED = 0.04  # blur (Gaussian sigma) over the face's size above this: too far out of focus for a cartoon face (the
# faces of a shallow-focus party photo measured 0.015-0.017; `blur_sigma` reads ~4.4 px at most on a ~95 px face)
SKIP_REASONS = ("too small", "profile", "blurred")


class NoFaceError(CartoonError):
    """No usable face was found; callers can fall back to scene mode."""


@dataclasses.dataclass(eq=False)
class SkippedFace:
    face: Face  # in the pixels of the image it was found in (the source, when the pipeline got one)
    reason: str  # one of SKIP_REASONS
    detail: str  # e.g. "31 px, under 48"


@dataclasses.dataclass(eq=False)
class PortraitResult:
    image: np.ndarray  # (H, W, 3) uint8: the photo (or its scene cartoon) with the cartoon faces pasted in
    crops: list[AlignedFace]
    stylized: list[np.ndarray]  # (S, S, 3) uint8, one per crop: what the stylizer returned
    alpha: np.ndarray | None = None  # (H, W) uint8, the input's alpha channel if it had one
    pasted: list[np.ndarray] = dataclasses.field(default_factory=list)  # (S, S, 3) uint8: as pasted (toned)
    skipped: list[SkippedFace] = dataclasses.field(default_factory=list)  # faces found but left as they are
    scale: float = 1.0  # image pixels per pixel of the image the faces were found and cropped in (`source`)

    def to_image(self) -> RGBImage:
        return RGBImage(self.image, self.alpha)

    def boxes(self) -> list[tuple[float, float, float, float]]:
        """The cartoonized faces' boxes in `image` pixels, in `crops` order."""
        return [c.face.scaled(self.scale).box for c in self.crops]


class FacePipeline:
    """Detect, align, segment, stylize and paste back every usable face: at least `min_face` pixels, not in
    profile, not blurred past recognition (the others are listed in the result's `skipped`, with why).

    detector: "retinaface" (default), "face-alignment", or any object with `.detect(rgb) -> list[Face]`.
    crop_size: side of the aligned crops, the portrait style's input size (256 or 512).
    segmenter: None for the shipped ONNX model, the path of another ONNX model (see segment.py for the contract),
      or any callable (S, S, 3) uint8 -> (S, S) float mask in [0, 1].
    min_face: faces whose box has a side shorter than this (in the pixels they are found in) are left alone.
    harmonize: the cartoon faces take the photo's colour and light, focus and (over the photo) grain, and the
      generator gets blown-out highlights with the skin's chroma (facecrop.harmonize); False pastes the stylizer's
      output as it is (still with the mask-shaped, feathered weight).
    """

    def __init__(self, detector="retinaface", crop_size: int = 256,
                 segmenter: str | os.PathLike | Callable[[np.ndarray], np.ndarray] | None = None,
                 min_face: float = 48, threads: int | None = 2, harmonize: bool = True):
        if not isinstance(crop_size, numbers.Integral) or crop_size < MIN_CROP_SIZE:
            raise CartoonError(f"crop_size must be an integer of at least {MIN_CROP_SIZE}, got {crop_size!r}")
        if not isinstance(min_face, numbers.Real) or not min_face >= 0:
            raise CartoonError(f"min_face must be a number of pixels >= 0, got {min_face!r}")
        self.crop_size = int(crop_size)
        self.min_face = float(min_face)
        self.harmonize = bool(harmonize)
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
        """The usable faces, largest first (an empty list when there are none)."""
        return self.examine(image)[0]

    def examine(self, image: ImageInput | RGBImage) -> tuple[list[Face], list[SkippedFace]]:
        """(usable faces, largest first; the other faces found, with why each is left alone)."""
        rgb = load_image(image).rgb
        return self._select(self.detector.detect(rgb), rgb)

    def crop(self, image: ImageInput | RGBImage, faces: list[Face] | None = None) -> list[AlignedFace]:
        """One aligned, white-background crop per face, largest first; `NoFaceError` when there is none.
        `faces` from an earlier `detect` on the same image skips detecting again."""
        rgb = load_image(image).rgb
        faces, skipped = self.examine(rgb) if faces is None else self._select(faces, rgb)
        return self._crop(rgb, faces, skipped)

    def run(self, image: ImageInput | RGBImage, stylize: Callable[[np.ndarray], np.ndarray],
            background: str = "photo", scene: Callable[[np.ndarray], np.ndarray] | None = None,
            faces: list[Face] | None = None, source: ImageInput | RGBImage | None = None) -> PortraitResult:
        """Stylize every face crop and paste it back, over the photo (`background="photo"`) or over `scene(rgb)`,
        a scene-mode cartoon of the whole photo (`background="cartoon"`).

        source: the same picture at a higher resolution (the original `image` was downscaled from): faces are
          found and cropped there, so a face too small in `image` is still found and gets a sharp crop, and are
          pasted into `image`. `faces`: from an earlier `detect` on `source` (else on `image`)."""
        if background not in BACKGROUNDS:
            raise CartoonError(f"background must be one of {BACKGROUNDS}, got {background!r}")
        if background == "cartoon" and scene is None:
            raise CartoonError('background="cartoon" needs scene=, a function that cartoonizes the whole photo')
        if not callable(stylize):
            raise CartoonError("stylize must be a function from an (S, S, 3) uint8 crop to its cartoon")
        img = load_image(image)
        rgb = img.rgb
        src, scale = rgb, 1.0
        if source is not None:
            src = source.rgb if isinstance(source, RGBImage) else load_image(source, name="source").rgb
            scale = rgb.shape[1] / src.shape[1]
            if abs(src.shape[0] * scale - rgb.shape[0]) > max(2.0, scale):
                raise CartoonError(f"source must be the same picture as image at another size: "
                                   f"{src.shape[1]}x{src.shape[0]} vs {rgb.shape[1]}x{rgb.shape[0]}")
        found, skipped = self.examine(src) if faces is None else self._select(faces, src)
        crops = self._crop(src, found, skipped)
        stylized = [_as_rgb(stylize(c.image), (self.crop_size, self.crop_size), "stylize") for c in crops]
        pasted = [harmonize.match_tone(s, c.original, c.mask) if self.harmonize else s
                  for c, s in zip(crops, stylized)]
        base = rgb if background == "photo" else _as_rgb(scene(rgb), (rgb.shape[1], rgb.shape[0]), "scene")
        canvas = base.astype(np.float32)
        # crop -> source -> image: pixel centres at integers in both
        to_image = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])
        # Smallest first: a larger face is usually nearer the camera and should end up on top.
        for c, cartoon in sorted(zip(crops, pasted), key=lambda cs: cs[0].face.size):
            inverse = (to_image @ np.vstack([c.inverse, [0, 0, 1]]))[:2]
            harmonize.paste(canvas, cartoon, c.mask, inverse, photo=rgb if self.harmonize else None,
                            grain=self.harmonize and background == "photo")
        out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        return PortraitResult(out, crops, stylized, img.alpha, pasted, skipped, scale)

    # ---- internals ----------------------------------------------------------------------------------------------

    def _select(self, found: list[Face], rgb: np.ndarray) -> tuple[list[Face], list[SkippedFace]]:
        """(usable faces, the others with why), both largest first."""
        found = sorted(found, key=lambda f: f.width * f.height, reverse=True)
        keep, skipped = [], []
        for f in found:
            why = self._why_not(f, rgb)
            if why is None:
                keep.append(f)
            else:
                skipped.append(SkippedFace(f, *why))
        return keep, skipped

    def _why_not(self, face: Face, rgb: np.ndarray) -> tuple[str, str] | None:
        if face.size < self.min_face:
            return "too small", f"{face.size:.0f} px, under {self.min_face:g}"
        lm = np.asarray(face.landmarks, np.float64)
        eyes = np.hypot(*(lm[1] - lm[0]))
        mouth = np.hypot(*((lm[3] + lm[4]) / 2 - (lm[0] + lm[1]) / 2))
        if mouth > 0 and eyes / mouth < PROFILE_RATIO:
            return "profile", f"eyes {eyes:.0f} px apart, {mouth:.0f} px above the mouth"
        # the box grown by half: the face's outline against the hair and the background is where blur shows best
        (x0, y0, x1, y1), cx, cy = face.box, (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        x0, x1 = max(0, round(cx - 0.75 * (x1 - x0))), round(cx + 0.75 * (x1 - x0))
        y0, y1 = max(0, round(cy - 0.75 * (y1 - y0))), round(cy + 0.75 * (y1 - y0))
        box = rgb[y0:max(y0 + 1, y1), x0:max(x0 + 1, x1)]
        if box.shape[0] >= 16 and box.shape[1] >= 16:
            sigma = harmonize.blur_sigma(cv2.cvtColor(np.ascontiguousarray(box), cv2.COLOR_RGB2GRAY))
            if sigma is not None and sigma > BLURRED * face.size:
                return "blurred", f"out of focus (blur {sigma:.1f} px on a {face.size:.0f} px face)"
        return None

    def _no_face(self, skipped: list[SkippedFace]) -> NoFaceError:
        if not skipped:
            return NoFaceError("no face found in this photo; portrait mode needs a face turned roughly towards the "
                               "camera. Try scene mode for this photo")
        counts = {r: [s for s in skipped if s.reason == r] for r in SKIP_REASONS}
        parts, helps = [], []
        if counts["too small"]:
            largest = max(s.face.size for s in counts["too small"])
            parts.append(f"{len(counts['too small'])} smaller than {self.min_face:g} pixels (the largest is "
                         f"{largest:.0f}, measured in the photo as given, before any resizing)")
            helps.append("a closer shot where the faces are larger (a larger output size does not help)")
        if counts["profile"]:
            parts.append(f"{len(counts['profile'])} in profile")
            helps.append("faces turned towards the camera")
        if counts["blurred"]:
            parts.append(f"{len(counts['blurred'])} out of focus")
            helps.append("faces in focus")
        return NoFaceError(f"found {len(skipped)} face(s), none usable: {', '.join(parts)}. Portrait mode needs "
                           f"{' and '.join(helps)}; or use scene mode for this photo")

    def _crop(self, rgb: np.ndarray, faces: list[Face], skipped: list[SkippedFace] = ()) -> list[AlignedFace]:
        if not faces:
            raise self._no_face(list(skipped))
        aligned = [align.crop(rgb, f, self.crop_size) for f in faces]
        masks = self._segment([image for image, _, _ in aligned])
        out = []
        for face, (image, coverage, forward), mask in zip(faces, aligned, masks):
            points = align.apply(forward, face.landmarks)
            mask = keep_person(np.asarray(mask, np.float32) * coverage, points)
            white = image.astype(np.float32) * mask[..., None] + 255 * (1 - mask[..., None])
            photo = np.clip(np.rint(white), 0, 255).astype(np.uint8)
            given = harmonize.prepare(photo, mask, points) if self.harmonize else photo
            out.append(AlignedFace(given, mask, forward, align.invert(forward), face,
                                   None if given is photo else photo))
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
