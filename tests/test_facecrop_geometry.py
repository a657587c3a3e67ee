"""Alignment geometry: the forward and inverse maps, crops, and pasting back, on synthetic images."""
import math

import numpy as np
import pytest

from facecrop import Face
from facecrop.align import EYE_CENTRE, EYE_DISTANCE, EYE_MOUTH_DISTANCE, alignment, apply, crop, invert, paste


def template_landmarks(crop_size: int) -> np.ndarray:
    """Five landmarks exactly where `alignment` puts them in a crop of `crop_size` (pixel centres at integers)."""
    cx, cy = EYE_CENTRE[0] * crop_size - 0.5, EYE_CENTRE[1] * crop_size - 0.5
    half_eyes = EYE_DISTANCE * crop_size / 2
    mouth_y = cy + EYE_MOUTH_DISTANCE * crop_size
    return np.array([[cx - half_eyes, cy], [cx + half_eyes, cy], [cx, (cy + mouth_y) / 2],
                     [cx - 0.8 * half_eyes, mouth_y], [cx + 0.8 * half_eyes, mouth_y]])


def place(landmarks: np.ndarray, scale: float, angle_deg: float, offset) -> np.ndarray:
    """The landmarks as they would appear in a photo: scaled, rotated (counter-clockwise on screen), moved."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    return landmarks @ (scale * rot).T + np.asarray(offset, float)


def face_at(landmarks: np.ndarray) -> Face:
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    return Face((x0, y0, x1, y1), 1.0, landmarks)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A band-limited random colour image: bilinear interpolation of it is nearly exact."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 40.0
    chans = [sum(np.sin(rng.uniform(0.3, 1.0) * xx * np.cos(t) + rng.uniform(0.3, 1.0) * yy * np.sin(t) + p)
                 for t, p in rng.uniform(0, 2 * np.pi, (3, 2))) for _ in range(3)]
    img = np.stack(chans, axis=2)
    img = (img - img.min()) / (img.max() - img.min())
    return np.rint(20 + 215 * img).astype(np.uint8)


@pytest.mark.parametrize("scale,angle", [(1.0, 0.0), (2.3, 17.0), (0.4, -33.0), (0.9, 180.0)])
def test_alignment_puts_eyes_on_the_template_level(scale, angle):
    size = 256
    lm = place(template_landmarks(size), scale, angle, (400.0, 300.0))
    fwd = alignment(lm, size)
    mapped = apply(fwd, lm)
    np.testing.assert_allclose(mapped[:2], template_landmarks(size)[:2], atol=1e-9)
    assert abs(mapped[0, 1] - mapped[1, 1]) < 1e-9  # the eye line is level
    np.testing.assert_allclose(apply(invert(fwd), mapped), lm, atol=1e-9)
    np.testing.assert_allclose(np.vstack([fwd, [0, 0, 1]]) @ np.vstack([invert(fwd), [0, 0, 1]]), np.eye(3), atol=1e-9)


def test_turned_head_keeps_the_face_in_the_crop():
    """A short eye line (head turned) must not blow the face up: the eye-mouth distance sets the scale then."""
    lm = template_landmarks(256)
    turned = lm.copy()
    turned[:, 0] = 128 + (lm[:, 0] - 128) * 0.4  # eyes 40% as far apart
    fwd = alignment(turned, 256)
    assert math.isclose(math.hypot(*fwd[:, 0]), 1.0, rel_tol=1e-9)


def test_crop_at_unit_scale_is_a_copy_and_pastes_back_exactly():
    img = smooth_image(300, 400)
    lm = place(template_landmarks(128), 1.0, 0.0, (150, 90))  # integer offset: no resampling at all
    image, coverage, fwd = crop(img, face_at(lm), 128)
    np.testing.assert_array_equal(image, img[90:218, 150:278])
    assert coverage.min() == 1.0
    canvas = np.zeros(img.shape, np.float32)
    paste(canvas, image, np.ones((128, 128), np.float32), invert(fwd))
    np.testing.assert_array_equal(canvas[90:218, 150:278], img[90:218, 150:278])
    # nothing lands outside the crop (OpenCV's SIMD paths may leave ~1e-26 residues of the 0-weight border)
    assert canvas[:90].max() < 1e-6 and canvas[218:].max() < 1e-6 and canvas[:, :150].max() < 1e-6


@pytest.mark.parametrize("scale,angle", [(1.6, 25.0), (0.8, -12.0)])
def test_rotated_crop_round_trip_is_exact_up_to_interpolation(scale, angle):
    img = smooth_image(420, 520, seed=1)
    size = 128
    lm = place(template_landmarks(size) - size / 2, scale, angle, (260.0, 210.0))
    image, coverage, fwd = crop(img, face_at(lm), size)
    assert coverage.min() > 0.999  # the crop lies inside the photo
    canvas = np.zeros(img.shape, np.float32)
    weight = np.zeros((size, size), np.float32)
    weight[8:-8, 8:-8] = 1  # stay clear of the crop's own edge, where bilinear reads the border
    paste(canvas, image, weight, invert(fwd))
    inside = np.zeros((size, size), np.float32)
    inside[12:-12, 12:-12] = 1
    footprint = np.zeros((img.shape[0], img.shape[1], 3), np.float32)  # where the crop's interior lands
    paste(footprint, np.full_like(image, 255), inside, invert(fwd))
    sel = footprint[..., 0] > 254.5
    assert sel.sum() > 0.5 * (size - 24) ** 2 * scale ** 2
    err = np.abs(canvas[sel] - img[sel].astype(np.float32))
    assert err.mean() < 1.0 and err.max() < 8


@pytest.mark.parametrize("scale", [1.0, 0.3, 3.0])  # direct warp, averaged-down warp, upsampling warp
def test_a_dot_on_a_landmark_lands_on_the_template(scale):
    size = 256
    lm = place(template_landmarks(size) - size / 2, 1 / scale, 10.0, (700.0, 650.0))
    img = np.zeros((1400, 1400, 3), np.uint8)
    x, y = np.rint(lm[0]).astype(int)
    lm[0] = (x, y)  # put the left eye on a pixel centre and paint a dot there
    r = max(2, round(3 / scale))
    img[y - r:y + r + 1, x - r:x + r + 1] = 255
    image, _, fwd = crop(img, face_at(lm), size)
    weights = image[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:size, 0:size]
    centroid = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
    np.testing.assert_allclose(centroid, apply(fwd, lm[:1])[0], atol=0.05)


def test_crop_past_the_photo_edge_is_white_with_no_coverage():
    img = smooth_image(200, 200)
    lm = place(template_landmarks(128), 1.0, 0.0, (-40, -30))  # the crop starts outside the photo
    image, coverage, _ = crop(img, face_at(lm), 128)
    assert (image[:25, :, :] == 255).all() and (image[:, :35] == 255).all()
    assert coverage[:25].max() == 0 and coverage[:, :35].max() == 0
    assert coverage[40:, 50:].min() == 1
    np.testing.assert_array_equal(image[40:, 50:], img[10:98, 10:88])


def test_bad_landmarks_are_refused():
    with pytest.raises(ValueError):
        alignment(np.zeros((4, 2)), 256)
    with pytest.raises(ValueError):
        alignment(np.full((5, 2), np.nan), 256)
    with pytest.raises(ValueError):
        alignment(np.zeros((5, 2)), 256)
