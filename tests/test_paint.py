"""The paint after a scene style's generator (cartoon/paint.py), shared with training's structure term: flat regions,
soft shading, outlines only between unlike regions; and how the engine applies it (images, not video)."""
import numpy as np
import pytest
import torch

from cartoon import Cartoonizer, Generator
from cartoon.errors import CartoonError
from cartoon.paint import paint, segment_count, superpixel_colour
from cartoon.registry import STYLES


def _two_regions(rng, noise: float) -> np.ndarray:
    img = np.zeros((64, 64, 3), np.float64)
    img[:, :32] = (200, 60, 40)
    img[:, 32:] = (40, 90, 210)
    return np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)


def test_the_painting_s_outlines_follow_boundaries_between_unlike_regions_only():
    rng = np.random.default_rng(2)
    noisy = _two_regions(rng, 6)
    plain, lined = superpixel_colour(noisy, 20), superpixel_colour(noisy, 20, outline=60)
    dark = lined.sum(-1) < 0.6 * plain.sum(-1)  # where a line darkened the painting
    cols = np.flatnonzero(dark.mean(0) > 0.5)
    assert cols.size and np.all(np.abs(cols - 31.5) < 3)  # one line down the red / blue boundary ...
    assert dark.mean() < 0.06  # ... and no line between the like-coloured segments within each region
    never = superpixel_colour(noisy, 20, outline=1000)
    assert np.array_equal(never, plain)


def test_the_smooth_painting_removes_noise_keeps_shading_and_draws_the_same_outlines():
    rng = np.random.default_rng(3)
    img = np.zeros((64, 64, 3))
    img[:, :32], img[:, 32:] = (200, 60, 40), (40, 90, 210)
    truth = np.clip(img + np.linspace(-40, 40, 64)[:, None, None], 0, 255)  # two regions, each shaded top to bottom
    noisy = np.clip(truth + rng.normal(0, 12, truth.shape), 0, 255).astype(np.uint8)
    smooth, regions = superpixel_colour(noisy, 20, fill="smooth"), superpixel_colour(noisy, 20)
    inside = list(range(4, 28)) + list(range(36, 60))  # away from the boundary
    def error(im):
        return float(np.abs(im.astype(np.float32) - truth)[:, inside].mean())
    assert error(smooth) < 0.4 * error(noisy) and error(smooth) < 0.75 * error(regions)
    def largest_step(im):  # the biggest jump between neighbouring rows of the left region: cells are steps
        return float(np.abs(np.diff(im[:, 4:28].astype(np.float32).mean((1, 2)))).max())
    assert largest_step(smooth) < 0.5 * largest_step(regions)
    dark = superpixel_colour(noisy, 20, 60, fill="smooth").sum(-1) < 0.6 * smooth.sum(-1)
    cols = np.flatnonzero(dark.mean(0) > 0.5)
    assert cols.size and np.all(np.abs(cols - 31.5) < 3) and dark.mean() < 0.06
    with pytest.raises(ValueError, match="fill"):
        superpixel_colour(noisy, 20, fill="cells")


def test_segment_count_scales_with_area_and_stops_at_the_cap():
    assert segment_count(256, 256, 300) == 300 and segment_count(128, 128, 300) == 75
    assert segment_count(16, 16, 300) == 8  # at least 8
    assert segment_count(1024, 1024, 300, cap=1200) == 1200 and segment_count(256, 256, 300, cap=1200) == 300


def test_the_engine_paints_images_with_the_style_s_outline_and_not_when_told_not_to(astronaut_small):
    torch.manual_seed(0)
    g = Generator("lite")
    plain = Cartoonizer(g, device="cpu", precision="fp32")
    painted = Cartoonizer(g, device="cpu", precision="fp32", paint=60)
    assert plain.paint == 0 and painted.paint == 60  # a bare generator has no paint of its own
    (raw, _), = painted.stylize([astronaut_small], paint=False)  # what video gets: no per-frame superpixels
    (unpainted, _), = plain.stylize([astronaut_small])
    np.testing.assert_array_equal(raw, unpainted)
    (done, _), = painted.stylize([astronaut_small])
    np.testing.assert_array_equal(done, paint(raw, 60))
    assert np.abs(done - raw).mean() > 1.0
    out = painted(astronaut_small).image.rgb  # the image path: painted, then strength 1
    np.testing.assert_array_equal(out, np.clip(np.rint(done), 0, 255).astype(np.uint8))
    with pytest.raises(CartoonError, match="paint"):
        Cartoonizer(g, device="cpu", paint=-1)


def test_the_scene_styles_paint_and_the_portrait_style_does_not():
    assert STYLES["ghibli"].paint > 0 and STYLES["shinkai"].paint > 0
    assert STYLES["portrait"].paint == 0
