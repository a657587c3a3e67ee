"""Portrait mode on real photos (issue 30): the cartoon face keeps the photo's skin tone and light, is pasted back
inside the person with no rectangle and none of the crop's white, is no sharper than the photo where that is out of
focus, gets the photo's grain, and faces are found at full resolution. The real detector, the shipped segmenter and
the shipped `portrait` style, on scikit-image's astronaut recoloured to other skin tones and lights."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from cartoon import Cartoonizer, CartoonError
from cartoon.registry import STYLES
from facecrop import Face, FacePipeline, NoFaceError, harmonize
from facecrop.align import apply

SHARED = Path(__file__).resolve().parents[2] / "shared"
PEOPLE = SHARED / "data" / "people"
needs_people = pytest.mark.skipif(not PEOPLE.is_dir(), reason="../shared/data/people is not here")
needs_portrait = pytest.mark.skipif(not STYLES["portrait"].has_local_weights(), reason="no weights/portrait")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    return FacePipeline(threads=1)


@pytest.fixture(scope="module")
def raw() -> FacePipeline:
    """The same pipeline pasting the stylizer's output as it is: what the harmonizing is measured against."""
    return FacePipeline(threads=1, harmonize=False)


@pytest.fixture(scope="module")
def portrait() -> Cartoonizer:
    return Cartoonizer("portrait", device="cpu", threads=1)


def inner(box) -> tuple[slice, slice]:
    """The face's inner region: the middle half of the box's width, 35-85 % of its height (the issue's measure)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return slice(round(y0 + 0.35 * h), round(y0 + 0.85 * h)), slice(round(x0 + 0.25 * w), round(x0 + 0.75 * w))


def mean_lab(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(rgb.reshape(-1, 3).mean(0)[None, None] / 255)[0, 0]


def delta_e(a: np.ndarray, b: np.ndarray, box) -> float:
    sl = inner(box)
    return float(np.linalg.norm(mean_lab(a[sl]) - mean_lab(b[sl])))


def relight(rgb: np.ndarray, kind: str) -> np.ndarray:
    """The astronaut as another person / another light: darker skin, warm tungsten indoors, dim bluish night,
    backlit (the face in shadow)."""
    x = rgb.astype(np.float32) / 255
    if kind == "dark":
        lab = cv2.cvtColor(x, cv2.COLOR_RGB2Lab)
        lab[..., 0] *= 0.5
        lab[..., 1] += 4
        lab[..., 2] += 10
        x = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    elif kind == "warm":
        x = x * np.array([1.0, 0.78, 0.5], np.float32)
    elif kind == "night":
        x = 0.45 * x ** 1.3 * np.array([0.8, 0.9, 1.15], np.float32)
    elif kind == "backlit":
        x = x ** 1.8 * 0.7
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def laplacian_energy(rgb: np.ndarray, box) -> float:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    g = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = cv2.resize(g, (96, 96), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(g, cv2.CV_32F).std())


# ---- tone and light -------------------------------------------------------------------------------------------

@needs_portrait
@pytest.mark.parametrize("kind", ["as is", "dark", "warm", "night", "backlit"])
def test_the_cartoon_face_keeps_the_photos_skin_tone_and_light(pipe, raw, portrait, astronaut, kind):
    photo = relight(astronaut, kind)
    out = pipe.run(photo, portrait)
    (face,) = [c.face for c in out.crops]
    assert delta_e(out.image, photo, face.box) < 4.0, kind
    # the shipped style alone bleaches the face (what portrait mode did before)
    assert delta_e(raw.run(photo, portrait).image, photo, face.box) > 12, kind
    # and the cartoon's own structure is kept: the face differs from the photo in its detail
    sl = inner(face.box)
    assert np.abs(out.image[sl].astype(np.float32) - photo[sl]).mean() > 2.0


def test_match_tone_moves_the_low_frequencies_and_keeps_the_line_work():
    """A bleached, outlined 'cartoon' of a brown disc on white: afterwards the disc is the photo's brown, the
    outline and the white background are where they were."""
    side = 128
    yy, xx = np.mgrid[0:side, 0:side]
    disc = (xx - 64) ** 2 + (yy - 64) ** 2 < 45 ** 2
    photo = np.full((side, side, 3), 255, np.uint8)
    photo[disc] = (120, 80, 55)
    mask = disc.astype(np.float32)
    cartoon = np.full((side, side, 3), 255, np.uint8)
    cartoon[disc] = (250, 238, 230)
    line = disc & (np.abs(xx - 64) <= 1) & (np.abs(yy - 64) < 25)
    cartoon[line] = (40, 30, 30)
    out = harmonize.match_tone(cartoon, photo, mask)
    body = disc & ~cv2.dilate(line.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    body &= cv2.erode(disc.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert np.linalg.norm(mean_lab(out[body]) - mean_lab(photo[body])) < 3
    near = disc & ~line & cv2.dilate(line.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    light_out, light_cartoon = harmonize.to_lab(out)[..., 0], harmonize.to_lab(cartoon)[..., 0]
    contrast = light_out[near].mean() - light_out[line].mean()  # CIELAB L: the line's darkness against its skin
    # as dark against the skin as in the cartoon, unless that would be darker than black
    assert contrast > 0.8 * min(light_cartoon[near].mean() - light_cartoon[line].mean(), light_out[near].mean())
    np.testing.assert_array_equal(out[~disc], cartoon[~disc])


# ---- the grey blotch ------------------------------------------------------------------------------------------

def test_prepare_gives_blown_out_skin_the_skins_chroma_and_leaves_eyes_and_mouth():
    """A forehead blown out to colourless near-white (what the generator painted as a grey blotch) gets the skin's
    chroma; the eyes' whites and the teeth (as colourless and bright) and everything off the face do not."""
    side = 256
    lm = np.array([[97.0, 119.5], [158.7, 119.5], [128.0, 150.0], [103.0, 186.0], [153.0, 186.0]])
    skin = np.array([200, 150, 120], np.uint8)
    crop = np.full((side, side, 3), 255, np.uint8)
    yy, xx = np.mgrid[0:side, 0:side]
    face = ((xx - 128) / 80.0) ** 2 + ((yy - 140) / 105.0) ** 2 < 1
    crop[face] = skin
    crop[60:90, 105:150] = (232, 232, 230)  # the highlight
    for x, y in lm[:2]:
        crop[int(y) - 4:int(y) + 5, int(x) - 8:int(x) + 9] = (240, 240, 238)  # the eyes' whites
    crop[183:190, 110:147] = (245, 245, 243)  # teeth
    out = harmonize.prepare(crop, face.astype(np.float32), lm)
    lab_in, lab_out, lab_skin = harmonize.to_lab(crop), harmonize.to_lab(out), harmonize.to_lab(skin[None, None])
    chroma = np.hypot(lab_out[..., 1], lab_out[..., 2])
    skin_chroma = float(np.hypot(*lab_skin[0, 0, 1:]))
    assert chroma[65:85, 110:145].mean() > 0.7 * skin_chroma  # it was ~1 (at L 92 sRGB holds ~0.8 of it)
    np.testing.assert_allclose(lab_out[65:85, 110:145, 0], lab_in[65:85, 110:145, 0], atol=2.5)  # light kept
    for x, y in lm[:2]:
        np.testing.assert_array_equal(out[int(y) - 2:int(y) + 3, int(x) - 3:int(x) + 4],
                                      crop[int(y) - 2:int(y) + 3, int(x) - 3:int(x) + 4])
    np.testing.assert_array_equal(out[185:188, 118:140], crop[185:188, 118:140])
    np.testing.assert_array_equal(out[~face], crop[~face])


@needs_portrait
@needs_people
def test_no_grey_blotch_on_a_blown_out_forehead(pipe, raw, portrait):
    """The face that got a grey blotch: the generator painted its blown-out forehead as a grey patch, darker than
    the cheeks it otherwise paints nearly white; on the pipeline's crop the forehead is as light as the cheeks."""
    photo = np.asarray(Image.open(PEOPLE / "insightface_t1.jpg").convert("RGB"))[150:430, 1060:1320]
    (c,) = pipe.crop(photo)
    (plain,) = raw.crop(photo)
    eyes = apply(c.forward, c.face.landmarks[:2])
    d = float(np.hypot(*(eyes[1] - eyes[0])))
    ex, ey = eyes.mean(0)

    def darkest_forehead_and_cheeks(rgb):
        light = cv2.blur(harmonize.to_lab(rgb)[..., 0], (15, 15))
        forehead = light[int(ey - 0.95 * d):int(ey - 0.55 * d), int(ex - 0.3 * d):int(ex + 0.3 * d)]
        cheeks = light[int(ey + 0.35 * d):int(ey + 0.7 * d), int(ex - d):int(ex + d)]
        return float(forehead.min()), float(np.median(cheeks))

    forehead, cheeks = darkest_forehead_and_cheeks(portrait(plain.image).image.rgb)
    assert forehead < cheeks - 8  # the blotch, as the generator paints it from the photo's crop (15 darker)
    forehead, cheeks = darkest_forehead_and_cheeks(portrait(c.image).image.rgb)
    assert forehead > cheeks - 4  # (2 darker)


# ---- paste-back -----------------------------------------------------------------------------------------------

def test_paste_weight_is_inside_the_mask_and_has_no_rectangle():
    """The weight in the photo's geometry (rotated, scaled): 0 wherever the warped mask is not the person and on
    the crop's border, 1 deep inside; where the person runs off the crop (shoulders) it fades gently."""
    side = 256
    mask = np.zeros((side, side), np.float32)
    yy, xx = np.mgrid[0:side, 0:side]
    mask[((xx - 128) / 70.0) ** 2 + ((yy - 120) / 95.0) ** 2 < 1] = 1  # the head
    mask[190:, 40:216] = 1  # the shoulders, through the crop's bottom edge
    a, s = np.radians(20), 0.7
    inverse = np.array([[s * np.cos(a), -s * np.sin(a), 150], [s * np.sin(a), s * np.cos(a), 40]])
    size = (400, 400)
    w = harmonize.paste_weight(mask, inverse, size)
    person = cv2.warpAffine(mask, inverse, size, flags=cv2.INTER_LINEAR) >= 0.5
    assert w[~person].max() == 0
    centre = np.rint(apply(inverse, np.array([[128.0, 120.0]]))[0]).astype(int)
    assert w[centre[1], centre[0]] == pytest.approx(1.0)
    edge = np.zeros((side, side), np.float32)
    edge[[0, -1]] = 1
    edge[:, [0, -1]] = 1
    on_edge = cv2.warpAffine(edge, inverse, size, flags=cv2.INTER_LINEAR) > 0
    assert w[on_edge].max() < 0.02
    gy, gx = np.gradient(w)
    assert np.hypot(gx, gy).max() < 0.25  # no step anywhere: a ramp of several pixels


@pytest.mark.parametrize("harmonized", [True, False])
def test_none_of_the_crops_white_reaches_the_photo(pipe, raw, astronaut, harmonized):
    """A stylizer that returns its crop as it is (white around the person): no pixel of the result turns near
    white where the photo was not, so the white background stays out."""
    photo = relight(astronaut, "night")
    out = (pipe if harmonized else raw).run(photo, lambda crop: crop).image
    white = (out >= 235).all(2) & (cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) < 200)
    assert white.sum() == 0


def test_an_out_of_focus_face_is_not_pasted_back_sharp(pipe, raw, astronaut):
    """The astronaut out of focus (blur 3 px) and a stylizer that draws crisp lines: the pasted face has no more
    fine detail than the photo there, where the plain paste had much more."""
    photo = cv2.GaussianBlur(astronaut, (0, 0), 3.0)

    def crisp(crop):  # the crop with its edges drawn as dark lines, as a cartoon would
        edges = cv2.Canny(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), 20, 60) > 0
        out = cv2.GaussianBlur(crop, (0, 0), 2).copy()
        out[edges] = (30, 20, 20)
        return out

    result = pipe.run(photo, crisp)
    box = result.crops[0].face.box
    assert laplacian_energy(result.image, box) < 1.15 * laplacian_energy(photo, box)
    assert laplacian_energy(raw.run(photo, crisp).image, box) > 1.5 * laplacian_energy(photo, box)


def test_the_pasted_face_gets_the_photos_grain(pipe, raw, astronaut):
    rng = np.random.default_rng(0)
    photo = np.clip(cv2.GaussianBlur(astronaut, (0, 0), 1.0) + rng.normal(0, 6, astronaut.shape), 0, 255)
    photo = photo.astype(np.uint8)

    def flat(crop):
        return cv2.bilateralFilter(crop, 9, 60, 9)

    result = pipe.run(photo, flat)
    box = result.crops[0].face.box
    sl = inner(box)
    photo_noise = harmonize.noise_sigma(cv2.cvtColor(photo[sl], cv2.COLOR_RGB2GRAY))
    pasted_noise = harmonize.noise_sigma(cv2.cvtColor(result.image[sl], cv2.COLOR_RGB2GRAY))
    plain_noise = harmonize.noise_sigma(cv2.cvtColor(raw.run(photo, flat).image[sl], cv2.COLOR_RGB2GRAY))
    assert 0.6 * photo_noise < pasted_noise < 1.5 * photo_noise
    assert plain_noise < 0.5 * photo_noise
    # over a scene cartoon the photo's grain is not added
    over_cartoon = pipe.run(photo, flat, background="cartoon", scene=lambda rgb: cv2.bilateralFilter(rgb, 9, 60, 9))
    assert harmonize.noise_sigma(cv2.cvtColor(over_cartoon.image[sl], cv2.COLOR_RGB2GRAY)) < 0.5 * photo_noise


@pytest.mark.parametrize("sigma", [1.0, 2.0, 4.0])
def test_blur_sigma_measures_the_blur_of_edges(sigma):
    img = np.zeros((120, 120), np.float32)
    img[:, 60:] = 200
    img[30:90, 20:40] = 120
    blurred = cv2.GaussianBlur(img, (0, 0), sigma)
    assert harmonize.blur_sigma(blurred) == pytest.approx(sigma, rel=0.3)
    assert harmonize.blur_sigma(np.full((50, 50), 90, np.float32)) is None  # no edge: no estimate


# ---- faces found at full resolution, and which were skipped -------------------------------------------------

def test_faces_are_found_in_the_full_size_source_and_pasted_into_the_small_image(pipe, astronaut):
    """At 128 px the astronaut's face is ~25 px, under the 48 px minimum; found in the 512 px original it is
    cartoonized, and its box is mapped to the small image."""
    small = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
    with pytest.raises(NoFaceError, match="smaller than 48 pixels"):
        pipe.run(small, lambda crop: 255 - crop)
    result = pipe.run(small, lambda crop: 255 - crop, source=astronaut)
    assert result.image.shape == small.shape and result.scale == pytest.approx(0.25)
    (full,) = pipe.detect(astronaut)
    np.testing.assert_allclose(result.boxes()[0], np.array(full.box) / 4, atol=1e-6)
    assert result.crops[0].face.size > 48  # cropped from the original's pixels
    x0, y0, x1, y1 = (int(round(v)) for v in result.boxes()[0])
    assert np.abs(result.image[y0:y1, x0:x1].astype(int) - small[y0:y1, x0:x1]).mean() > 20
    with pytest.raises(CartoonError, match="same picture"):
        pipe.run(small, lambda crop: crop, source=astronaut[:, :300])


class GivenFaces:
    """A detector that returns the faces it is given: the real astronaut face and made-up ones."""

    def __init__(self, faces):
        self.faces = faces

    def detect(self, rgb):
        return list(self.faces)


def test_skipped_faces_say_why(astronaut):
    (real,) = FacePipeline(threads=1).detect(astronaut)
    lm = real.landmarks.copy()
    profile = lm.copy()
    profile[1] = profile[0] + (3, 0)  # both eyes' landmarks on one spot: a head turned sideways
    small = real.scaled(0.3)
    faces = [real, Face(real.box, 0.9, profile), small]
    pipe = FacePipeline(detector=GivenFaces(faces), threads=1)
    result = pipe.run(astronaut, lambda crop: crop)
    assert [c.face for c in result.crops] == [real]
    assert sorted(s.reason for s in result.skipped) == ["profile", "too small"]
    only_bad = FacePipeline(detector=GivenFaces(faces[1:]), threads=1)
    with pytest.raises(NoFaceError, match=r"none usable: 1 smaller than 48 pixels.*1 in profile.*closer shot.*"
                                          r"turned towards the camera.*scene mode"):
        only_bad.run(astronaut, lambda crop: crop)
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 9)
    with pytest.raises(NoFaceError, match="out of focus.*in focus"):
        FacePipeline(detector=GivenFaces([real]), threads=1).run(blurred, lambda crop: crop)


@needs_portrait
@needs_people
def test_a_group_photo_at_the_apps_size_keeps_its_faces():
    """The crowd photo that reported 'no face large enough' at the app's default 1024 px: the faces found at full
    size are cartoonized at 1024 too, and the ones left alone are listed with why."""
    from cartoon import Studio

    studio = Studio(device="cpu", threads=1)
    path = PEOPLE / "whitebox_person1.jpg"
    full = studio.detect(str(path))
    small = studio.run(str(path), "portrait", mode="portrait", max_side=1024)
    assert len(small.faces) == len(full) >= 8
    assert small.skipped and {s.reason for s in small.skipped} <= {"too small", "profile", "blurred"}
    assert "left as they are" in small.summary
    w = small.photo.size[0]
    assert all(0 <= f.box[0] < f.box[2] <= w for f in small.faces)


@needs_people
def test_the_apps_examples_include_a_group_photo():
    import app

    groups = [p for p in app.example_photos() if Path(p).parent == PEOPLE]
    assert groups and all(Path(p).is_file() for p in groups)
    assert str(PEOPLE) in app.allowed_paths()  # Gradio may serve them
