"""Portrait mode: faces of a photo -> aligned white-background crops -> stylized -> pasted back where they were.

    from facecrop import FacePipeline
    pipe = FacePipeline()                       # RetinaFace + the shipped segmenter, 256 crops
    result = pipe.run("photo.jpg", stylize)     # stylize: (S, S, 3) uint8 -> (S, S, 3) uint8
"""
from .align import AlignedFace
from .detect import DETECTORS, FaceAlignmentDetector, Face, RetinaFaceDetector
from .pipeline import BACKGROUNDS, SKIP_REASONS, FacePipeline, NoFaceError, PortraitResult, SkippedFace
from .segment import DEFAULT_SEGMENTER, OnnxSegmenter

__all__ = [
    "AlignedFace", "BACKGROUNDS", "DEFAULT_SEGMENTER", "DETECTORS", "Face", "FaceAlignmentDetector", "FacePipeline",
    "NoFaceError", "OnnxSegmenter", "PortraitResult", "RetinaFaceDetector", "SKIP_REASONS", "SkippedFace",
]
