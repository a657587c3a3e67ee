"""The portrait pipeline end to end: real detector, the shipped segmenter, a real (random-weights) generator."""
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import cartoon
from cartoon.errors import CartoonError, ImageError, WeightsError
from cartoon.imageio import load_image
from facecrop import AlignedFace, Face, FacePipeline, NoFaceError, PortraitResult
from facecrop.align import apply

SHARED = Path(__file__).resolve().parents[2] / "shared"
needs_shared = pytest.mark.skipif(not (SHARED / "data" / "face_photo").is_dir(), reason="../shared/data is not here")


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    """Pastes the stylizer's output as it is (no tone, focus or grain matching: tests/test_facecrop_harmonize.py),
    so where each face lands can be read off the result."""
    return FacePipeline(harmonize=False)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def cartoonizer() -> cartoon.Cartoonizer:
    torch.manual_seed(0)
    return cartoon.Cartoonizer(cartoon.Generator("lite"), threads=2)


def invert(crop: np.ndarray) -> np.ndarray:
    return 255 - crop


def posterize(rgb: np.ndarray) -> np.ndarray:
    return (rgb // 64) * 64 + 32


def footprint(shape, crops: list[AlignedFace], margin: int = 4) -> np.ndarray:
    """Pixels of an image of `shape` that some crop covers, grown by `margin`."""
    cover = np.zeros(shape[:2], np.uint8)
    for c in crops:
        s = c.image.shape[0]
        corners = apply(c.inverse, np.array([[0, 0], [s, 0], [s, s], [0, s]], float))
        cv2.fillConvexPoly(cover, np.rint(corners).astype(np.int32), 1)
    return cv2.dilate(cover, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) > 0


def test_detect_returns_faces_in_image_pixels(pipe, astronaut):
    faces = pipe.detect(astronaut)
    assert len(faces) == 1 and isinstance(faces[0], Face)
    f = faces[0]
    assert len(f.box) == 4 and all(isinstance(v, float) for v in f.box) and isinstance(f.score, float)
    assert f.landmarks.shape == (5, 2) and f.landmarks.dtype == np.float64
    png = io.BytesIO()
    Image.fromarray(astronaut).save(png, format="PNG")
    np.testing.assert_allclose(pipe.detect(png.getvalue())[0].landmarks, f.landmarks)  # any load_image input


def test_crop_is_aligned_segmented_and_white(pipe, astronaut):
    (c,) = pipe.crop(astronaut)
    assert c.image.shape == (256, 256, 3) and c.image.dtype == np.uint8
    assert c.mask.shape == (256, 256) and c.mask.dtype == np.float32 and 0 <= c.mask.min() and c.mask.max() <= 1
    np.testing.assert_allclose(np.vstack([c.forward, [0, 0, 1]]) @ np.vstack([c.inverse, [0, 0, 1]]), np.eye(3),
                               atol=1e-9)
    eyes = apply(c.forward, c.face.landmarks[:2])
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-6  # level
    # The face is the person; the wall and flag in the crop's top corners are not, and are white.
    for x, y in apply(c.forward, c.face.landmarks):
        assert c.mask[int(round(y)), int(round(x))] > 0.5
    x0, y0 = apply(c.forward, c.face.landmarks).min(0).astype(int)
    x1, y1 = apply(c.forward, c.face.landmarks).max(0).astype(int)
    assert c.mask[y0:y1, x0:x1].mean() > 0.9
    assert c.mask[:40, :40].mean() < 0.1 and c.mask[:40, -40:].mean() < 0.1
    background = c.mask < 0.02
    assert background.mean() > 0.1
    assert (c.image[background] >= 250).all()
    person = c.mask > 0.98
    raw = cv2.warpAffine(astronaut, c.forward, (256, 256), flags=cv2.INTER_LINEAR)
    assert np.abs(c.image[person].astype(int) - raw[person]).mean() < 3  # the person is the photo


def test_run_pastes_cartoon_faces_over_the_photo(pipe, astronaut, cartoonizer):
    result = pipe.run(astronaut, cartoonizer)  # a Cartoonizer's CartoonResult is accepted as it is
    assert isinstance(result, PortraitResult)
    assert result.image.shape == astronaut.shape and result.image.dtype == np.uint8
    assert len(result.crops) == len(result.stylized) == 1
    assert result.stylized[0].shape == (256, 256, 3) and result.stylized[0].dtype == np.uint8
    away = ~footprint(astronaut.shape, result.crops)
    np.testing.assert_array_equal(result.image[away], astronaut[away])
    x0, y0, x1, y1 = (int(v) for v in result.crops[0].face.box)
    changed = np.abs(result.image[y0:y1, x0:x1].astype(int) - astronaut[y0:y1, x0:x1]).mean()
    assert changed > 20  # random weights: the face is replaced by something else entirely


def test_run_over_a_scene_cartoon(pipe, astronaut):
    result = pipe.run(astronaut, invert, background="cartoon", scene=posterize)
    away = ~footprint(astronaut.shape, result.crops)
    np.testing.assert_array_equal(result.image[away], posterize(astronaut)[away])
    nose = np.rint(result.crops[0].face.landmarks[2]).astype(int)
    np.testing.assert_allclose(result.image[nose[1], nose[0]], 255 - astronaut[nose[1], nose[0]], atol=12)


@needs_shared
def test_every_face_of_two_photos_side_by_side(pipe, astronaut):
    portrait = np.asarray(load_image(sorted((SHARED / "data" / "face_photo").rglob("*.jpg"))[0]).to_pil()
                          .resize((512, 512), Image.Resampling.BICUBIC))
    both = np.hstack([astronaut, portrait])
    faces = pipe.detect(both)
    assert len(faces) == 2
    assert faces[0].width * faces[0].height > faces[1].width * faces[1].height  # largest first
    assert faces[0].box[0] > 512 and faces[1].box[2] < 512  # the portrait's face is the larger one
    result = pipe.run(both, invert)
    assert len(result.crops) == 2
    for face in faces:
        x, y = np.rint(face.landmarks[2]).astype(int)  # the nose of each face is inverted
        np.testing.assert_allclose(result.image[y, x], 255 - both[y, x], atol=12)
    away = ~footprint(both.shape, result.crops)
    np.testing.assert_array_equal(result.image[away], both[away])


def test_crop_size_512_and_large_inputs(astronaut):
    pipe = FacePipeline(crop_size=512)
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048), Image.Resampling.BICUBIC))
    (c,) = pipe.crop(big)
    assert c.image.shape == (512, 512, 3) and c.mask.shape == (512, 512)
    (small,) = FacePipeline().detect(astronaut)
    # (the 2048 px copy is detected at its own size, the 512 px one at its: RetinaFace's landmarks move a little)
    np.testing.assert_allclose((c.face.landmarks + 0.5) / 4 - 0.5, small.landmarks, atol=3.0)


def test_alpha_is_kept_aside(pipe, astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 200, np.uint8)])
    result = pipe.run(rgba, invert)
    assert result.image.shape == astronaut.shape
    assert result.alpha is not None and (result.alpha == 200).all()
    assert result.to_image().to_pil().mode == "RGBA"


def test_no_face_is_a_clear_error(pipe):
    landscape = np.zeros((240, 320, 3), np.uint8)
    landscape[:120] = (120, 170, 230)
    landscape[120:] = (60, 120, 40)
    assert pipe.detect(landscape) == []
    with pytest.raises(NoFaceError, match="no face found.*scene mode"):
        pipe.crop(landscape)
    with pytest.raises(CartoonError):  # NoFaceError is a CartoonError: callers catch one type
        pipe.run(landscape, invert)


def test_faces_below_min_face_are_left_alone(astronaut):
    pipe = FacePipeline(min_face=200)
    assert pipe.detect(astronaut) == []
    with pytest.raises(NoFaceError, match="smaller than 200 pixels"):
        pipe.run(astronaut, invert)


def test_a_user_segmenter_function(astronaut):
    everything = FacePipeline(segmenter=lambda crop: np.ones(crop.shape[:2], np.float32))
    (c,) = everything.crop(astronaut)
    assert c.mask.min() == 1.0
    raw = cv2.warpAffine(astronaut, c.forward, (256, 256), flags=cv2.INTER_LINEAR)
    assert np.abs(c.image.astype(int) - raw).mean() < 1.5
    wrong = FacePipeline(segmenter=lambda crop: np.ones((10, 10), np.float32))
    with pytest.raises(CartoonError, match="mask of shape"):
        wrong.crop(astronaut)


def test_bad_inputs(pipe, astronaut, tmp_path):
    jpeg = io.BytesIO()
    Image.fromarray(astronaut).save(jpeg, format="JPEG")
    with pytest.raises(ImageError):
        pipe.detect(jpeg.getvalue()[:2000])  # truncated
    with pytest.raises(ImageError):
        pipe.crop(tmp_path / "missing.jpg")
    with pytest.raises(ImageError):
        pipe.run(b"not an image", invert)
    with pytest.raises(ImageError):
        pipe.detect(np.zeros((8, 8, 3), np.uint8))  # too small
    with pytest.raises(CartoonError, match="background"):
        pipe.run(astronaut, invert, background="sky")
    with pytest.raises(CartoonError, match="scene="):
        pipe.run(astronaut, invert, background="cartoon")
    with pytest.raises(CartoonError, match="stylize"):
        pipe.run(astronaut, "portrait")
    with pytest.raises(CartoonError, match="stylize must return an image"):
        pipe.run(astronaut, lambda crop: None)
    resized = pipe.run(astronaut, lambda crop: crop[::2, ::2])  # another size is resized, not refused
    assert resized.stylized[0].shape == (256, 256, 3)
    for kwargs in (dict(crop_size=10), dict(crop_size=256.5), dict(min_face=-1), dict(detector="haar"),
                   dict(segmenter=3)):
        with pytest.raises(CartoonError):
            FacePipeline(**kwargs)
    with pytest.raises(WeightsError):
        FacePipeline(segmenter=tmp_path / "missing.onnx")


def test_faces_from_an_earlier_detect_are_used_as_they_are(pipe, astronaut):
    faces = pipe.detect(astronaut)
    again = pipe.run(astronaut, invert, faces=faces)
    np.testing.assert_array_equal(again.image, pipe.run(astronaut, invert).image)
    # the given list is what is used: an empty one means no face, whatever the photo holds
    with pytest.raises(NoFaceError, match="no face"):
        pipe.crop(astronaut, faces=[])
