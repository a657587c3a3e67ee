import numpy as np
import pytest
import torch
from PIL import Image

from cartoon import CartoonError, Cartoonizer, Generator, ImageError, StyleError, WeightsError
from cartoon.runners import TorchRunner, choose_dtype, cpu_has_fast_bf16, resolve_device
from cartoon.strength import apply_strength
from cartoon.tiling import pad_to_multiple, run_tiled, tile_starts


@pytest.fixture(scope="module")
def engine(lite_weights):
    return Cartoonizer(lite_weights)


def test_output_matches_input_size_and_keeps_alpha(engine):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    res = engine(np.dstack([rgb, alpha]))
    assert res.image.rgb.shape == (37, 53, 3) and res.saliency.shape == (37, 53)
    np.testing.assert_array_equal(res.image.alpha, alpha)
    assert res.to_pil().mode == "RGBA" and res.saliency_pil().mode == "L"


def test_result_is_the_generator_output(engine, astronaut_small):
    """No post-processing sneaks in at strength 1: the engine returns what the network computes."""
    g = engine.runner.generator
    x = torch.from_numpy(astronaut_small.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y, sal = g(x)
    expected = np.clip(np.rint((y[0].permute(1, 2, 0).numpy() + 1) * 127.5), 0, 255)
    res = engine(astronaut_small)
    assert np.abs(res.image.rgb.astype(int) - expected).max() <= 1
    assert np.abs(res.saliency.astype(int) - np.rint(sal[0, 0].numpy() * 255)).max() <= 1


def test_padding_is_reflect_and_cropped_back():
    a = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    p = pad_to_multiple(a, 4)
    assert p.shape == (8, 8, 3)
    np.testing.assert_array_equal(p[:5, :7], a)
    np.testing.assert_array_equal(p[5, :7], a[3])  # reflected, not repeated


def test_tile_starts_cover_everything():
    for length, tile, overlap in [(1000, 256, 64), (256, 256, 64), (300, 256, 64), (4096, 512, 64)]:
        starts = tile_starts(length, tile, overlap)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all() and starts[-1] + min(tile, length) == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def _runner_for(seed):
    torch.manual_seed(seed)
    return TorchRunner(Generator("lite"), device="cpu", precision="fp32")


def test_tiles_are_seamless_because_statistics_are_shared(astronaut_small):
    """Tiled output with whole-image statistics matches the one-pass output; per-tile statistics do not."""
    runner = _runner_for(0)
    img = np.asarray(Image.fromarray(astronaut_small).resize((256, 256)))
    whole, _ = run_tiled(runner, img, tile=512, overlap=32, stats_side=256)
    tiled, _ = run_tiled(runner, img, tile=128, overlap=64, stats_side=256)

    def own_stats_runner(x, stats=None, record=False):  # the naive way: every tile normalises itself
        return runner(x, stats=None, record=record)

    naive, _ = run_tiled(own_stats_runner, img, tile=128, overlap=64, stats_side=256)
    err_shared = np.abs(tiled - whole).mean()
    err_naive = np.abs(naive - whole).mean()
    assert err_shared < 1.5, err_shared
    assert err_naive > 2 * err_shared, (err_naive, err_shared)
    # no seam: the step across the tile border (x = 64..127 overlap) is no larger than steps elsewhere
    steps = np.abs(np.diff(tiled, axis=1)).mean(axis=(0, 2))
    assert steps[60:132].max() < 3 * np.median(steps) + 5


def test_large_images_take_the_tiled_path(lite_weights):
    engine = Cartoonizer(lite_weights, tile=128, overlap=32)
    rng = np.random.default_rng(1)
    img = np.asarray(Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize((401, 299)))
    calls = []
    res = engine(img, progress=lambda done, total: calls.append((done, total)))
    assert res.image.rgb.shape == (299, 401, 3)
    assert calls and calls[-1][0] == calls[-1][1] > 1


@pytest.mark.parametrize("w, h, tile, within", [(600, 16, 512, 1), (16, 600, 512, 1), (2000, 40, 512, 1),
                                                (2000, 40, 256, 3)])
def test_panoramas_and_tall_strips(w, h, tile, within):
    """Strips of a real photo, 37:1 and 50:1, tile by tile: they used to fail (the copy the whole-image statistics
    come from had a 12 px short side, less than the generator takes). Now that copy keeps their shape and enough of
    the short side: they come out as one pass would (exactly while the whole strip fits in tile² pixels; a 4:3 photo
    differs by about 8 with statistics from a copy downscaled 2x)."""
    from skimage import data

    side, band = max(w, h), 512 * min(w, h) / max(w, h)  # a band across the middle of the 512 x 512 photo
    box = (0, 256, 512, 256 + band) if w > h else (256, 0, 256 + band, 512)
    strip = np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.Resampling.LANCZOS, box=box))
    torch.manual_seed(0)
    g = Generator("lite")
    tiled = Cartoonizer(g, device="cpu", precision="fp32", tile=tile)(strip)
    whole = Cartoonizer(g, device="cpu", precision="fp32", tile=side)(strip)  # one pass, its own statistics
    assert tiled.image.size == (w, h) and tiled.saliency.shape == (h, w)
    assert np.abs(tiled.image.rgb.astype(int) - whole.image.rgb).mean() < within


def test_strength_ends_and_middle(engine, astronaut_small):
    full = engine(astronaut_small, strength=1.0).image.rgb
    np.testing.assert_array_equal(engine(astronaut_small, strength=0.0).image.rgb, astronaut_small)
    half = engine(astronaut_small, strength=0.5).image.rgb.astype(float)
    d_photo = np.abs(half - astronaut_small).mean()
    d_cartoon = np.abs(half - full).mean()
    assert 0 < d_photo and 0 < d_cartoon
    # texture fades faster than colour moves: the half-way image is smoother than a plain pixel mix
    mix = 0.5 * astronaut_small + 0.5 * full
    lap = lambda a: np.abs(np.diff(a, 2, axis=0)).mean() + np.abs(np.diff(a, 2, axis=1)).mean()
    assert lap(half) < lap(mix)


def test_strength_formula_end_points_exact():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cartoon = rng.uniform(0, 255, (32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(apply_strength(photo, cartoon, 0), photo)
    np.testing.assert_array_equal(apply_strength(photo, cartoon, 1), np.rint(cartoon).astype(np.uint8))


@pytest.mark.parametrize("bad", [-0.1, 1.5, "strong", None])
def test_bad_strength(engine, astronaut_small, bad):
    with pytest.raises(CartoonError, match="strength"):
        engine(astronaut_small, strength=bad)


def test_max_side(engine, astronaut_small):
    assert engine(astronaut_small, max_side=64).image.size == (64, 64)


def test_batch_matches_single_calls(engine, astronaut_small):
    other = np.ascontiguousarray(astronaut_small[::-1])
    small = np.asarray(Image.fromarray(astronaut_small).resize((50, 70)))
    results = engine.batch([astronaut_small, other, small], strength=0.8)
    for img, res in zip([astronaut_small, other, small], results):
        single = engine(img, strength=0.8)
        assert np.abs(single.image.rgb.astype(int) - res.image.rgb).max() <= 1


def test_bad_inputs_raise_image_errors(engine, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"GIF89a nonsense")
    for bad in (tmp_path / "x.jpg", b"", np.zeros((1, 1, 3), np.uint8)):
        with pytest.raises(ImageError):
            engine(bad)


def test_unknown_style_and_missing_weights(tmp_path):
    with pytest.raises(StyleError, match="known styles"):
        Cartoonizer("van-gogh")
    with pytest.raises(WeightsError, match="no such weights folder"):
        Cartoonizer(str(tmp_path / "missing" / "folder"))
    with pytest.raises(CartoonError, match="backend"):
        Cartoonizer(Generator("lite"), backend="tensorflow")


def test_precision_auto_follows_the_cpu():
    runner = TorchRunner(Generator("lite"), device="cpu", precision="auto")
    if cpu_has_fast_bf16():
        assert runner.precision in ("bf16", "fp32")  # bf16 only if it passed the quality probe
    else:
        assert runner.precision == "fp32"
    with pytest.raises(CartoonError, match="CUDA"):
        TorchRunner(Generator("lite"), device="cpu", precision="fp16")


def test_choose_dtype_is_the_one_precision_rule():
    """What inference uses (with its quality probe) and what training can use (fp32 instead of fp16 on GPUs without
    bf16), from a preference string and a device."""
    cpu = torch.device("cpu")
    assert choose_dtype("fp32", cpu) is torch.float32 and choose_dtype("bf16", "cpu") is torch.bfloat16
    fast = cpu_has_fast_bf16()
    assert choose_dtype("auto", cpu) is (torch.bfloat16 if fast else torch.float32)
    assert choose_dtype("auto", cpu, cuda_fallback=torch.float32) is (torch.bfloat16 if fast else torch.float32)
    probed = []
    assert choose_dtype("auto", cpu, bf16_ok=lambda: probed.append(1) or False) is torch.float32  # probe says no
    assert probed == ([1] if fast else [])  # the probe runs only where bf16 would be chosen
    with pytest.raises(CartoonError, match="fp16 runs on CUDA only"):
        choose_dtype("fp16", cpu)
    with pytest.raises(CartoonError, match="precision must be one of auto, fp32, bf16, fp16, got 'fp64'"):
        choose_dtype("fp64", cpu)
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        assert choose_dtype("fp16", gpu) is torch.float16
        bf16 = torch.cuda.is_bf16_supported()
        assert choose_dtype("auto", gpu) is (torch.bfloat16 if bf16 else torch.float16)
        assert choose_dtype("auto", gpu, cuda_fallback=torch.float32) is (torch.bfloat16 if bf16 else torch.float32)


def test_bad_device_names_get_a_message(lite_weights):
    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("gpu", "cuda:x", 3.5):
        with pytest.raises(CartoonError, match="device must be auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    with pytest.raises(CartoonError, match="device must be"):
        Cartoonizer(lite_weights, device="gpu")


def test_tile_per_call_equals_an_engine_built_with_that_tile(engine, lite_weights):
    img = np.ascontiguousarray(np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8))
    own = Cartoonizer(lite_weights, tile=64)(img).image.rgb
    assert np.array_equal(engine(img, tile=64).image.rgb, own)
    assert engine.tile == 512 and not np.array_equal(engine(img).image.rgb, own)
    for bad in (0, 8, 12.5, "big"):
        with pytest.raises(CartoonError, match="tile size must be a whole number of pixels, at least 16"):
            engine(img, tile=bad)
    with pytest.raises(CartoonError, match="tile size"):
        Cartoonizer(lite_weights, tile=-5)


def test_bf16_path_stays_close_to_fp32(astronaut_small):
    torch.manual_seed(0)
    g = Generator("lite")
    fp32 = Cartoonizer(g, device="cpu", precision="fp32")(astronaut_small).image.rgb.astype(float)
    bf16_engine = Cartoonizer(g, device="cpu", precision="bf16")
    assert bf16_engine.precision == "bf16" and bf16_engine.runner.channels_last
    bf16 = bf16_engine(astronaut_small).image.rgb.astype(float)
    assert np.abs(fp32 - bf16).mean() < 8  # random weights amplify rounding; trained weights are gentler


def test_stylize_is_the_one_pass_for_stills_tiles_batches_and_video_frames(engine, astronaut_small):
    """`Cartoonizer.stylize` is what a still, a tiled image, a batch and a video's frames all go through: each path
    gives the pixels the primitive gives (strength applied by `finish`)."""
    from cartoon.imageio import RGBImage
    from cartoon.temporal import FrameStylizer, StatsSmoother

    rng = np.random.default_rng(1)
    small = [np.ascontiguousarray(astronaut_small[i:i + 62, i:i + 90]) for i in (0, 10, 20)]  # unpadded 62 x 90
    big = np.ascontiguousarray(np.asarray(Image.fromarray(astronaut_small).resize((150, 110))))
    noisy = np.clip(big.astype(int) + rng.integers(-6, 7, big.shape), 0, 255).astype(np.uint8)

    # a still is stylize + finish, at any strength; the saliency map too
    (cartoon, sal), = engine.stylize([small[0]])
    assert cartoon.shape == (62, 90, 3) and cartoon.dtype == np.float32 and sal.shape == (62, 90)
    for s in (1.0, 0.5):
        still, via = engine(small[0], strength=s), engine.finish(RGBImage(small[0]), cartoon, sal, s)
        assert np.array_equal(still.image.rgb, via.image.rgb) and np.array_equal(still.saliency, via.saliency)
    # larger than the tile: tile by tile inside stylize, as a tiled still
    (tiled, _), = engine.stylize([big], tile=64)
    assert np.array_equal(engine(big, tile=64).image.rgb, apply_strength(big, tiled, 1.0))
    # one call over mixed sizes gives each image what it gets alone (grouped by size, tiled where needed)
    alone = [engine.stylize([x], tile=64)[0] for x in (small[0], big, small[1])]
    for (c, s), (c1, s1) in zip(engine.stylize([small[0], big, small[1]], tile=64), alone):
        assert np.array_equal(c, c1) and np.array_equal(s, s1)
    # a batch shares forward passes: the same pixels as single calls (within float rounding of the batch)
    for res, x in zip(engine.batch(small), small):
        assert np.abs(res.image.rgb.astype(int) - engine(x).image.rgb).max() <= 1
    # video frames without smoothing or blend are stills, whole or tiled
    frames = FrameStylizer(engine, strength=0.5, smoothing=None, blend=0.0)(small, [0.0, 0.04, 0.08])
    assert all(np.array_equal(f, engine(x, strength=0.5).image.rgb) for f, x in zip(frames, small))
    frames = FrameStylizer(engine, smoothing=None, blend=0.0, tile=64)([big, noisy], [0.0, 0.04])
    assert all(np.array_equal(f, engine(x, tile=64).image.rgb) for f, x in zip(frames, (big, noisy)))
    # and with smoothed statistics, a frame is stylize run with them
    st = FrameStylizer(engine, smoothing=0.5, blend=0.0, stats_side=64)
    out = st([big, noisy], [0.0, 0.04])
    own = engine.statistics([big, noisy], 64)
    sm = StatsSmoother(0.5)
    stats = [sm(own[0], 0.0, True), sm(own[1], 0.04)]
    expected = [apply_strength(x, c, 1.0) for x, (c, _) in zip((big, noisy), engine.stylize([big, noisy], stats))]
    assert all(np.array_equal(a, b) for a, b in zip(out, expected))
    assert not np.array_equal(out[1], engine(noisy).image.rgb)  # the smoothed statistics are not the frame's own


def test_importing_the_package_loads_no_torch():
    """`import cartoon.errors` (what facecrop and scripts import for the exceptions) and `import cartoon` are light:
    torch is loaded by what runs the torch backend, not by the package."""
    import subprocess
    import sys

    from conftest import REPO

    code = ("import sys, cartoon.errors; a = 'torch' in sys.modules; import cartoon, cartoon.studio, cartoon.video; "
            "print(a, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["False", "False"], r.stdout + r.stderr
