"""Does the person stay recognisable?  dlib's ResNet face descriptor (128-d, trained on face recognition) of each
photo against that of its output.  The portrait training's face-ID loss uses MobileFaceNet, so this network judges
with eyes the generator was never optimised to please.

    pip install dlib-bin face_recognition_models

Faces are found with dlib's HOG frontal detector (upsampled once); on an aligned portrait where it finds none the
aligned face box below stands in (counted, so a report can say how often).  The 5-point landmark model places the
face; dlib calls two descriptors the same person below a Euclidean distance of 0.6.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

# Where the HOG detector puts the face on the aligned 256x256 portraits (left, top, right, bottom, fractions of the
# width / height): the stand-in box when it finds none, e.g. on a heavily stylised output.
ALIGNED_FACE_BOX = (0.18, 0.28, 0.78, 0.88)
SAME_PERSON_DISTANCE = 0.6  # dlib's threshold on the Euclidean distance of two descriptors
INSTALL = "pip install dlib-bin face_recognition_models"


class IdentityUnavailable(RuntimeError):
    """dlib or its model files are missing; the message says what to install."""


def model_files() -> tuple[Path, Path]:
    """(5-point landmark model, ResNet recognition model) of the face_recognition_models package.  Found without
    importing it: its __init__ needs pkg_resources, which recent setuptools no longer ships."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise IdentityUnavailable(f"face_recognition_models is not installed ({INSTALL})")
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    files = (models / "shape_predictor_5_face_landmarks.dat", models / "dlib_face_recognition_resnet_model_v1.dat")
    for f in files:
        if not f.is_file():
            raise IdentityUnavailable(f"{f}: missing; reinstall face_recognition_models")
    return files


class FaceDescriptors:
    """rgb (H, W, 3) uint8 -> (128-d descriptor, whether the detector found the face)."""

    def __init__(self):
        try:
            import dlib
        except ImportError as e:
            raise IdentityUnavailable(f"dlib is not importable ({e}; {INSTALL})") from None
        landmarks, recognizer = model_files()
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(landmarks))
        self.recognizer = dlib.face_recognition_model_v1(str(recognizer))

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, bool]:
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        faces = list(self.detector(img, 1))
        if faces:
            box = max(faces, key=lambda r: r.area())
        else:
            h, w = img.shape[:2]
            left, top, right, bottom = ALIGNED_FACE_BOX
            box = self.dlib.rectangle(round(left * w), round(top * h), round(right * w) - 1, round(bottom * h) - 1)
        shape = self.landmarks(img, box)
        return np.asarray(self.recognizer.compute_face_descriptor(img, shape), np.float64), bool(faces)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def identity_numbers(photos: np.ndarray, outputs: np.ndarray, cartoons: np.ndarray) -> dict:
    """Mean cosine and Euclidean distance of each photo's descriptor to its output's, and as references to its
    paired cartoon's and to another photo's of the set (photo i + n/2: almost surely another person, so the level
    that means "not recognisable" on this data); with how many faces the detector found in each set."""
    describe = FaceDescriptors()
    numbers = {}
    desc = {}
    for name, images in (("photos", photos), ("outputs", outputs), ("cartoons", cartoons)):
        found = [describe(im) for im in images]
        desc[name] = np.stack([d for d, _ in found])
        numbers[f"id_faces_{name}"] = sum(f for _, f in found)
    others = np.roll(desc["photos"], len(photos) // 2, axis=0)
    for name, d in (("output", desc["outputs"]), ("cartoon", desc["cartoons"]), ("other", others)):
        numbers[f"id_cos_{name}"] = float(np.mean(cosine(desc["photos"], d)))
        numbers[f"id_dist_{name}"] = float(np.mean(np.linalg.norm(desc["photos"] - d, axis=-1)))
    return numbers
