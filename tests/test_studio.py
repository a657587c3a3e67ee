"""cartoon.studio: the mode policy every front end shares (scene / portrait / auto, the portrait-style fallback, the
background, per-call tile sizes), run in-process on real random-weight generators, the real face detector and the
shipped segmenter."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

import cartoon
from cartoon import CartoonError, Cartoonizer, ImageError, Studio, StyleError
from cartoon.registry import Style
from cartoon.studio import AUTO_PORTRAIT_FACE_FRACTION, PORTRAIT_MIN_FACE, shared_studio

facecrop = pytest.importorskip("facecrop")
from facecrop import NoFaceError  # noqa: E402


@pytest.fixture(scope="module")
def portrait_weights(tmp_path_factory):
    """A second random generator (another seed): what faces get, so it can be told apart from the scene style."""
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("weights") / "portrait-random"
    cartoon.save_pretrained(cartoon.Generator("lite"), folder)
    return folder


@pytest.fixture(scope="module")
def studio(portrait_weights) -> Studio:
    return Studio(device="cpu", portrait_style=str(portrait_weights))


@pytest.fixture(scope="module")
def scene_engine(lite_weights) -> Cartoonizer:
    return Cartoonizer(lite_weights, device="cpu")


@pytest.fixture(scope="module")
def portrait_engine(portrait_weights) -> Cartoonizer:
    return Cartoonizer(portrait_weights, device="cpu")


@pytest.fixture(scope="module")
def face_photo() -> np.ndarray:
    """The astronaut, cropped so her face (~95 x 125 px) is about a third of the 320 px side."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:320, 96:416])


def smooth_photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Gradients and a few discs: photo-like, and no face in it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin((xx + yy) / 9)], -1) * 200
    for _ in range(3):
        cx, cy, r = rng.random() * w, rng.random() * h, 5 + rng.random() * min(w, h) / 4
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def face_mask(studio: Studio, result) -> np.ndarray:
    """Every pixel pasting a face back can touch (the aligned crops' footprints, grown by 4 px)."""
    import cv2
    from facecrop.align import apply

    cover = np.zeros(result.photo.rgb.shape[:2], np.uint8)
    for c in studio.faces().crop(result.photo):
        s = c.image.shape[0]
        corners = apply(c.inverse, np.array([[0, 0], [s, 0], [s, s], [0, s]], float))
        cv2.fillConvexPoly(cover, np.rint(corners).astype(np.int32), 1)
    return cv2.dilate(cover, np.ones((9, 9), np.uint8)) > 0


# ---------------------------------------------------------------------------------------------------------------
# scene mode, tile size per call


def test_scene_mode_is_the_style_on_the_whole_photo(studio, scene_engine, lite_weights, face_photo):
    r = studio.run(face_photo, str(lite_weights), "scene")
    expected = scene_engine(face_photo)
    assert np.array_equal(r.image.rgb, expected.image.rgb)
    assert np.array_equal(r.saliency, expected.saliency)
    assert np.array_equal(r.photo.rgb, face_photo)
    assert (r.mode, r.requested_mode, r.reason, r.faces, r.face_style) == ("scene", "scene", "", [], None)
    assert r.summary.startswith("lite-random · scene mode · strength 1 · 320×320 px · cpu, fp32 · ")
    assert r.to_pil().size == (320, 320) and r.saliency_pil().mode == "L"


def test_tile_is_a_per_call_argument_and_the_engine_is_shared(studio, lite_weights):
    img = smooth_photo(300, 140, seed=3)
    tiled = Cartoonizer(lite_weights, device="cpu", tile=128)(img).image.rgb
    whole = studio.run(img, str(lite_weights), "scene").image.rgb
    assert not np.array_equal(tiled, whole)  # the tile size really changes the computation
    assert np.array_equal(studio.run(img, str(lite_weights), "scene", tile=128).image.rgb, tiled)
    engine, _ = studio.engine(str(lite_weights))
    assert engine.tile == 512 and studio.engine(str(lite_weights))[0] is engine  # one model, left as it was
    assert np.array_equal(studio.run(img, str(lite_weights), "scene").image.rgb, whole)


def test_concurrent_runs_with_different_tiles_match_serial_runs(studio, lite_weights):
    """Threads share one generator (its lock serialises the calls); no call sees another's tile size."""
    imgs = [smooth_photo(200, 100, seed=s) for s in range(4)]
    tiles = [128, None, 128, None]
    expected = [studio.run(i, str(lite_weights), "scene", tile=t).image.rgb for i, t in zip(imgs, tiles)]
    got: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        got[k] = studio.run(imgs[k], str(lite_weights), "scene", tile=tiles[k]).image.rgb

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(np.array_equal(got[k], expected[k]) for k in range(4))


def test_max_side_and_alpha(studio, lite_weights):
    rgba = np.dstack([smooth_photo(200, 100), np.full((100, 200), 255, np.uint8)])
    rgba[:, :50, 3] = 0
    r = studio.run(rgba, str(lite_weights), "scene", max_side=100)
    assert r.image.rgb.shape == (50, 100, 3) and r.photo.size == (100, 50)
    assert r.image.alpha is not None and r.image.alpha[:, :20].max() == 0 and r.image.alpha[:, 30:].min() == 255


# ---------------------------------------------------------------------------------------------------------------
# portrait mode


def test_portrait_over_the_photo(studio, portrait_engine, lite_weights, face_photo):
    r = studio.run(face_photo, str(lite_weights), "portrait", background="photo")
    assert (r.mode, r.background, r.face_style) == ("portrait", "photo", "portrait-random")
    assert len(r.faces) == 1 and r.saliency is None
    face = r.faces[0]
    assert face.photo.shape == face.cartoon.shape == (256, 256, 3) and face.saliency.shape == (256, 256)
    expected = portrait_engine(face.photo)  # the face got the portrait style, not the scene one
    assert np.array_equal(face.cartoon, expected.image.rgb) and np.array_equal(face.saliency, expected.saliency)
    touched = face_mask(studio, r)
    assert np.array_equal(r.image.rgb[~touched], face_photo[~touched])  # the rest is the photo
    x0, y0, x1, y1 = (int(v) for v in face.box)
    assert np.abs(r.image.rgb[y0:y1, x0:x1].astype(int) - face_photo[y0:y1, x0:x1]).mean() > 10
    assert "faces: portrait-random, background: the photo (1 face) · portrait mode · " in r.summary


def test_portrait_over_the_scene_cartoon(studio, scene_engine, lite_weights, face_photo):
    r = studio.run(face_photo, str(lite_weights), "portrait", background="cartoon")
    scene = scene_engine(face_photo)
    touched = face_mask(studio, r)
    assert np.array_equal(r.image.rgb[~touched], scene.image.rgb[~touched])
    assert np.array_equal(r.saliency, scene.saliency)
    assert "background: lite-random cartoon (1 face)" in r.summary


def test_portrait_finds_faces_in_the_full_size_photo_and_says_which_it_left(studio, lite_weights, face_photo):
    """max_side shrinks the face under PORTRAIT_MIN_FACE; it is found and cropped in the photo as given and pasted
    into the smaller one. A face too small even there is left as it is, and the result says so."""
    r = studio.run(face_photo, str(lite_weights), "portrait", max_side=120)
    assert r.photo.size == (120, 120) and r.image.rgb.shape == (120, 120, 3) and len(r.faces) == 1
    (full,) = studio.detect(face_photo)
    np.testing.assert_allclose(r.faces[0].box, np.array(full.box) * 120 / 320, atol=1e-6)
    assert r.skipped == [] and "(1 face) ·" in r.summary
    tiny = np.asarray(Image.fromarray(face_photo).resize((96, 96), Image.Resampling.LANCZOS))
    group = np.full((320, 416, 3), 255, np.uint8)
    group[:, :320] = face_photo
    group[100:196, 320:] = tiny  # her face at ~28 px: found, under 48
    r = studio.run(group, str(lite_weights), "portrait")
    assert len(r.faces) == 1 and [s.reason for s in r.skipped] == ["too small"]
    assert r.skipped[0].box[0] > 320 and "px, under 48" in r.skipped[0].detail
    assert "(1 face; 1 left as they are: 1 too small)" in r.summary


def test_portrait_without_a_face_raises_no_face(studio, lite_weights):
    with pytest.raises(NoFaceError, match="no face"):
        studio.run(smooth_photo(160, 120), str(lite_weights), "portrait")


def test_faces_get_the_chosen_style_when_it_is_a_portrait_style(studio, portrait_weights, lite_weights, face_photo):
    """A portrait-mode style is used for the faces even when the Studio has another portrait style."""
    own = Style("own-portrait", "Own portrait", "a portrait style for this test", mode="portrait", config="lite",
                folder=str(lite_weights))  # an absolute folder: WEIGHTS_DIR / folder is the folder itself
    r = studio.run(face_photo, own, "portrait")
    assert r.face_style == "Own portrait"
    assert np.array_equal(r.faces[0].cartoon, Cartoonizer(lite_weights, device="cpu")(r.faces[0].photo).image.rgb)


@pytest.mark.parametrize("portrait_style", ["missing", None], ids=["unloadable", "none"])
def test_faces_fall_back_to_the_chosen_style(tmp_path, scene_engine, lite_weights, face_photo, portrait_style,
                                             caplog):
    spec = None if portrait_style is None else str(tmp_path / portrait_style)  # an empty folder: no weights
    if spec is not None:
        (tmp_path / portrait_style).mkdir()
    st = Studio(device="cpu", portrait_style=spec)
    r = st.run(face_photo, str(lite_weights), "portrait")
    assert r.face_style == "lite-random"
    assert np.array_equal(r.faces[0].cartoon, scene_engine(r.faces[0].photo).image.rgb)
    if spec is not None:  # why is kept and logged, once
        assert spec in st.errors and "portrait style" in caplog.text
        st.run(face_photo, str(lite_weights), "portrait")
        assert caplog.text.count("portrait style") == 1


# ---------------------------------------------------------------------------------------------------------------
# auto mode


def test_auto_picks_portrait_for_a_big_face(studio, lite_weights, face_photo):
    r = studio.run(face_photo, str(lite_weights), "auto")
    size = studio.detect(face_photo)[0].size  # the one face size measure: Face.size (the box's shorter side)
    assert r.mode == "portrait" and r.requested_mode == "auto" and len(r.faces) == 1
    assert r.reason == (f"largest face is {size / 320:.0%} of the shorter side, ≥ "
                        f"{AUTO_PORTRAIT_FACE_FRACTION:.0%}")
    assert f"portrait mode (auto: {r.reason})" in r.summary


def test_auto_threshold_is_the_face_fraction(studio, scene_engine, lite_weights, face_photo):
    """The same face on larger and larger white canvases: portrait while Face.size is at least 15% of the shorter
    side, scene after; both sides of the threshold are reached."""
    size = studio.detect(face_photo)[0].size
    seen = set()
    for side in (int(size / AUTO_PORTRAIT_FACE_FRACTION) - 40, int(size / AUTO_PORTRAIT_FACE_FRACTION) + 60):
        canvas = np.full((side, side, 3), 255, np.uint8)
        canvas[:320, :320] = face_photo
        fraction = studio.detect(canvas)[0].size / side
        r = studio.run(canvas, str(lite_weights), "auto", max_side=side)
        assert r.mode == ("portrait" if fraction >= AUTO_PORTRAIT_FACE_FRACTION else "scene"), (side, fraction)
        seen.add(r.mode)
        if r.mode == "scene":
            assert r.reason == (f"largest face is {fraction:.0%} of the shorter side, < "
                                f"{AUTO_PORTRAIT_FACE_FRACTION:.0%}")
            assert np.array_equal(r.image.rgb, scene_engine(canvas).image.rgb)
    assert seen == {"portrait", "scene"}


def test_auto_without_a_face_is_scene(studio, scene_engine, lite_weights):
    img = smooth_photo(160, 120, seed=2)
    r = studio.run(img, str(lite_weights), "auto")
    assert (r.mode, r.reason) == ("scene", f"no face of at least {PORTRAIT_MIN_FACE} px found")
    assert np.array_equal(r.image.rgb, scene_engine(img).image.rgb)
    assert "scene mode (auto: no face of at least 48 px found)" in r.summary


def test_progress_is_reported_in_order(studio, lite_weights, face_photo):
    seen = []
    studio.run(face_photo, str(lite_weights), "auto", progress=lambda f, text: seen.append((f, text)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1
    assert [t for _, t in seen][:3] == ["Reading the photo", "Looking for faces", "Aligning and cartoonizing faces"]


# ---------------------------------------------------------------------------------------------------------------
# bad input: messages, not tracebacks


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(mode="cubist"), CartoonError, "mode must be one of auto, scene, portrait, got 'cubist'"),
    (dict(background="sky"), CartoonError, "background must be one of photo, cartoon, got 'sky'"),
    (dict(strength=1.5), CartoonError, r"strength must be in \[0, 1\], got 1.5"),
    (dict(strength="strong"), CartoonError, "strength must be a number"),
    (dict(tile=0), CartoonError, "tile size must be a whole number of pixels, at least 16"),
    (dict(tile=100.5), CartoonError, "tile size must be a whole number"),
    (dict(style="van-gogh"), StyleError, "unknown style 'van-gogh'; known styles: ghibli"),
    (dict(style=42), CartoonError, "style must be a style name, a weights folder or a Hub repo id"),
    (dict(device="gpu"), CartoonError, "device must be auto, cpu, cuda or cuda:N"),
    (dict(image=b"not an image"), ImageError, "not an image"),
], ids=["mode", "background", "strength", "strength-type", "tile", "tile-fraction", "style", "style-type",
        "device", "image"])
def test_bad_arguments_raise_clear_errors(studio, lite_weights, kwargs, error, message):
    args = dict(image=smooth_photo(64, 64), style=str(lite_weights), mode="scene") | kwargs
    with pytest.raises(error, match=message):
        studio.run(**args)


# ---------------------------------------------------------------------------------------------------------------
# the one-call shortcut


def test_cartoonize_shortcut_reuses_one_studio(lite_weights, scene_engine, caplog):
    img = smooth_photo(96, 64, seed=4)
    caplog.set_level("INFO", logger="cartoon.studio")
    r = cartoon.cartoonize(img, style=str(lite_weights), mode="scene", device="cpu")
    assert isinstance(r, cartoon.StudioResult)
    assert np.array_equal(r.image.rgb, scene_engine(img).image.rgb)
    half = cartoon.cartoonize(Image.fromarray(img), style=str(lite_weights), mode="scene", strength=0.5, device="cpu")
    assert np.array_equal(half.image.rgb, scene_engine(img, strength=0.5).image.rgb)
    photo = cartoon.cartoonize(img, style=str(lite_weights), mode="scene", strength=0, device="cpu")
    assert np.array_equal(photo.image.rgb, img)
    assert caplog.text.count(f"loaded style {lite_weights} on cpu") == 1  # loaded once, then reused
    assert shared_studio() is shared_studio()
