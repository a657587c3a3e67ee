import io
import os
import stat

import numpy as np
import pytest
from PIL import Image

from cartoon.imageio import MIN_SIDE, RGBImage, atomic_path, load_image, resize_max_side, save_image
from cartoon.errors import ImageError


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture()
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)


def test_path_bytes_pil_and_array_agree(tmp_path, rgb):
    png = _encode(Image.fromarray(rgb), "PNG")
    (tmp_path / "a.png").write_bytes(png)
    for src in (tmp_path / "a.png", str(tmp_path / "a.png"), png, Image.fromarray(rgb), rgb):
        img = load_image(src)
        assert img.rgb.dtype == np.uint8 and img.alpha is None
        np.testing.assert_array_equal(img.rgb, rgb)


def test_exif_orientation_is_applied(rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encode(Image.fromarray(rgb), "JPEG", exif=exif.tobytes(), quality=95)
    img = load_image(data)
    assert img.size == (40, 60)  # width and height swapped


def test_grayscale_palette_cmyk_are_converted(rgb):
    gray = Image.fromarray(rgb[..., 0], "L")
    img = load_image(_encode(gray, "PNG"))
    assert img.rgb.shape == (40, 60, 3) and (img.rgb[..., 0] == img.rgb[..., 2]).all()
    pal = Image.fromarray(rgb).quantize(16)
    np.testing.assert_array_equal(load_image(_encode(pal, "PNG")).rgb, np.asarray(pal.convert("RGB")))
    cmyk = Image.fromarray(rgb).convert("CMYK")
    out = load_image(_encode(cmyk, "JPEG", quality=95)).rgb
    assert out.shape == (40, 60, 3) and np.abs(out.astype(int) - rgb).mean() < 20


def test_16bit_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (32, 1))
    img = load_image(_encode(Image.fromarray(ramp), "PNG"))
    assert img.rgb[0, 0, 0] == 0 and img.rgb[0, -1, 0] == 255 and 120 <= img.rgb[0, 32, 0] <= 135
    arr = load_image(np.dstack([ramp] * 3))
    np.testing.assert_array_equal(arr.rgb, img.rgb)


def test_alpha_is_kept_aside(rgb):
    alpha = np.tile(np.linspace(0, 255, 60).astype(np.uint8), (40, 1))
    img = load_image(_encode(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG"))
    np.testing.assert_array_equal(img.alpha, alpha)
    np.testing.assert_array_equal(img.rgb, rgb)
    pal = Image.fromarray(rgb).quantize(8)
    pal.info["transparency"] = 0
    img = load_image(_encode(pal, "PNG", transparency=0))
    assert img.alpha is not None and set(np.unique(img.alpha)) <= {0, 255} and (img.alpha == 0).any()
    la = load_image(np.dstack([rgb, alpha]).astype(np.float32) / 255)
    np.testing.assert_array_equal(la.alpha, alpha)


def test_float_arrays_in_unit_range():
    a = np.full((20, 20, 3), 0.5, np.float32)
    assert load_image(a).rgb[0, 0, 0] == 128
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((20, 20, 3), np.nan, np.float32))


@pytest.mark.parametrize("make,match", [
    (lambda p: b"this is not an image at all", "not an image"),
    (lambda p: b"", "empty"),
    (lambda p: _encode(Image.new("RGB", (1, 1)), "PNG"), "too small"),
    (lambda p: _encode(Image.new("RGB", (MIN_SIDE - 1, 100)), "PNG"), "too small"),
])
def test_bad_bytes_get_clear_errors(make, match):
    with pytest.raises(ImageError, match=match):
        load_image(make(None))


def test_truncated_jpeg(rgb):
    big = np.asarray(Image.fromarray(rgb).resize((600, 400)))
    data = _encode(Image.fromarray(big), "JPEG", quality=95)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _encode(Image.new("1", (9000, 9000)), "PNG")  # ~10 kB on disk, 81 megapixels decoded
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match="megapixels"):
        load_image(bomb)
    with pytest.raises(ImageError, match="limit"):
        load_image(np.zeros((100, 100, 3), np.uint8), max_pixels=5000)


def test_animated_gif_is_refused(rgb):
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(ImageError, match="animated"):
        load_image(data)
    still = _encode(frames[0], "GIF")
    assert load_image(still).size == (60, 40)


def test_paths_and_types(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="cannot read"):
        load_image(12345)
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((20, 20, 2), np.uint8))


def test_resize_max_side_downscales_only(rgb):
    img = RGBImage(rgb, np.full(rgb.shape[:2], 7, np.uint8))
    small = resize_max_side(img, 30)
    assert small.size == (30, 20) and small.alpha.shape == (20, 30)
    assert resize_max_side(img, 1000) is img


def test_max_side_too_small_for_a_thin_strip_names_the_image_and_what_to_do(tmp_path):
    Image.new("RGB", (10000, 20), "gray").save(tmp_path / "w.png")
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / "w.png", name="w.png", max_side=1024)
    assert str(e.value) == ("w.png: 10000x20 would be 1024x2 at a longest side of 1024 px, under the 16 px minimum; "
                            "crop it to a less extreme shape, or allow a longest side of at least 8000 px")
    assert load_image(tmp_path / "w.png", max_side=8000).size == (8000, 16)
    with pytest.raises(ImageError, match=f"^{tmp_path / 'w.png'}: 10000x20 would be"):  # the path by default
        load_image(tmp_path / "w.png", max_side=1024)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_open_gives(tmp_path, rgb, umask):
    """Not the temporary file's private 0600: what the umask leaves of 0666, like any file open() creates."""
    old = os.umask(umask)
    try:
        out = save_image(RGBImage(rgb), tmp_path / "out.png")
        with atomic_path(tmp_path / "data.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for path in (out, tmp_path / "data.bin"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_save_image_is_atomic_and_lossless(tmp_path, rgb):
    out = save_image(RGBImage(rgb), tmp_path / "sub" / "out.png")
    np.testing.assert_array_equal(np.asarray(Image.open(out)), rgb)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.png"]
    with pytest.raises(ImageError, match="unknown output format"):
        save_image(RGBImage(rgb), tmp_path / "out.xyz")
    rgba = RGBImage(rgb, np.zeros(rgb.shape[:2], np.uint8))
    jpg = save_image(rgba, tmp_path / "flat.jpg")
    assert Image.open(jpg).mode == "RGB" and np.asarray(Image.open(jpg)).min() > 240  # transparent -> white


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half-writ")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
