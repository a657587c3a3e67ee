"""End to end tests of the web app: `python app.py` launched for real, driven by gradio_client and by a real browser.

The app runs in a subprocess with CARTOON_WEIGHTS_DIR pointing at generators with random weights saved through the
real weights format, so the cartoons can be checked pixel for pixel against `cartoon.Cartoonizer` run here.
"""
from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cartoon

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from conftest import write_clip  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"
STYLES = ("ghibli", "shinkai", "portrait")
CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT_S = 180


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: weights, photos, a launched app


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """Random-weight generators for every style, plus the repository's face segmenter (portrait mode needs it)."""
    d = tmp_path_factory.mktemp("weights")
    for seed, name in enumerate(STYLES):
        torch.manual_seed(seed)
        cartoon.save_pretrained(cartoon.Generator("lite"), d / name)
    segmenter = REPO / "weights" / "segmenter"
    if segmenter.is_dir():
        (d / "segmenter").symlink_to(segmenter, target_is_directory=True)
    return d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, weights: Path, workdir: Path, *args: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        env = dict(os.environ, CARTOON_WEIGHTS_DIR=str(weights), GRADIO_ANALYTICS_ENABLED="False",
                   HF_HUB_OFFLINE="1", GRADIO_TEMP_DIR=str(workdir / "gradio"), TMPDIR=str(workdir))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(APP), "--host", "127.0.0.1", "--port", str(self.port), *args],
                                     cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"app.py exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/gradio_api/info", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"app.py did not answer within {START_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.5)

    def log(self) -> str:
        if not self._log.closed:  # stop() closes it; the failure message still wants the log
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture(scope="module")
def server(weights_dir, tmp_path_factory):
    s = Server(weights_dir, tmp_path_factory.mktemp("app"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def engines(weights_dir) -> dict[str, cartoon.Cartoonizer]:
    """The same generators, run here: what the app must give back."""
    return {name: cartoon.Cartoonizer(str(weights_dir / name), device="cpu") for name in STYLES}


def photo(path: Path, w: int, h: int, seed: int = 0) -> Path:
    """A smooth photo-like image (gradients plus a few blobs) of exactly w x h."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin((xx + yy) / (5 + 10 * rng.random()))], -1) * 200
    for _ in range(4):
        cx, cy, r = rng.random() * w, rng.random() * h, 5 + rng.random() * min(w, h) / 3
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


def rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def options(style="ghibli", mode="scene", strength=1.0, background="photo", max_side=1024, tile=512, device="auto"):
    return (style, mode, strength, background, max_side, tile, device)


def assert_close(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Equal up to float rounding (the app's torch may use another thread count)."""
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05, f"{what}: max diff {diff.max()}, mean {diff.mean():.3f}"


def facecrop_missing() -> str | None:
    """Why portrait mode cannot run here (None when it can): facecrop or its shipped models not there yet."""
    try:
        from facecrop import FacePipeline
    except ImportError as e:
        return f"facecrop does not export FacePipeline yet ({e})"
    try:
        FacePipeline(detector="retinaface", crop_size=256, segmenter=None, min_face=48)
    except cartoon.WeightsError as e:
        return f"facecrop's models are not in the repository yet ({e})"
    return None


FACECROP_MISSING = facecrop_missing()
needs_facecrop = pytest.mark.skipif(FACECROP_MISSING is not None, reason=str(FACECROP_MISSING))


# ---------------------------------------------------------------------------------------------------------------
# The API (gradio_client)


def test_api_names_are_stable(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/cartoonize", "/cartoonize_batch", "/cartoonize_video", "/styles"} <= set(api)
    params = [p["parameter_name"] for p in api["/cartoonize"]["parameters"]]
    assert params == ["photo", "style", "mode", "strength", "background", "max_side", "tile", "device"]


def test_styles_endpoint_lists_what_has_weights(client):
    styles = client.predict(api_name="/styles")
    assert [s["name"] for s in styles] == list(STYLES)
    assert all(s["description"] and s["mode"] in ("scene", "portrait") for s in styles)


@pytest.mark.parametrize("style", STYLES)
def test_scene_mode_each_style(client, engines, tmp_path, style):
    src = photo(tmp_path / "street.png", 112, 84, seed=1)
    out, before_after, saliency, crops, download, info = client.predict(
        handle_file(str(src)), *options(style=style), api_name="/cartoonize")
    assert Path(out).suffix == ".png" and Path(out).name == f"street_{style}.png"
    got = rgb(out)
    assert got.shape == (84, 112, 3)
    expected = engines[style](src)
    assert_close(got, expected.image.rgb, f"{style} cartoon")  # the chosen style's generator, nothing else
    assert_close(rgb(saliency)[..., 0], expected.saliency, f"{style} saliency")
    before, after = before_after
    assert np.array_equal(rgb(before), rgb(src)) and np.array_equal(rgb(after), got)
    assert np.array_equal(rgb(download["value"]), got)
    assert crops == []
    assert "scene mode" in info and cartoon.STYLES[style].display_name in info


def test_output_size_downscales_and_strength_zero_is_the_photo(client, tmp_path):
    src = photo(tmp_path / "big.png", 200, 150, seed=2)
    out, (before, _), *_, info = client.predict(handle_file(str(src)), *options(strength=0.0, max_side=64),
                                                api_name="/cartoonize")
    got = rgb(out)
    assert got.shape == (48, 64, 3)
    assert np.array_equal(got, rgb(before))  # strength 0: the (downscaled) photo itself
    assert "64×48 px" in info and "downscaled from 200×150 px to the output size, 64 px" in info  # said, not hidden


def test_panorama_through_the_app(client, engines, tmp_path):
    """A 50:1 strip of a real photo in auto mode, the app's default: cartoonized like the library does it (at
    1024×20 it used to be "Something went wrong on our side (RuntimeError)")."""
    from skimage import data
    src = tmp_path / "pano.png"
    band = (0, 250, 512, 250 + 512 / 50)  # across her shoulders
    Image.fromarray(data.astronaut()).resize((5000, 100), Image.Resampling.LANCZOS, box=band).save(src)
    out, *_, info = client.predict(handle_file(str(src)), *options(mode="auto"), api_name="/cartoonize")
    assert_close(rgb(out), engines["ghibli"](src, max_side=1024).image.rgb, "panorama")
    assert "1024×20 px" in info and "downscaled from 5000×100 px" in info


@pytest.mark.parametrize("w, todo", [
    (10000, "crop it to a less extreme shape (the output size goes up to 4096 px)."),
    (2000, "set the output size to at least 1600 px, or crop it."),
])
def test_a_strip_too_thin_for_the_output_size_is_named_as_uploaded(client, tmp_path, w, todo):
    """The message names the user's image as uploaded (it used to say "image: 1024x2 is too small", the size after
    the app's own downscale) and what to do."""
    src = tmp_path / "strip.png"
    Image.new("RGB", (w, 20), "gray").save(src)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(src)), *options(), api_name="/cartoonize")
    assert str(e.value) == (f"strip.png: {w}x20 is too long and thin for an output size of 1024 px (its short side "
                            f"would be {round(20 * 1024 / w)} px, under 16); {todo}")


def test_tiling_option_matches_the_engine(client, weights_dir, tmp_path):
    """A 128 px tile size makes a 300 x 140 photo run tile by tile; the app must give the same as the engine."""
    src = photo(tmp_path / "wide.png", 300, 140, seed=3)
    out, *_ = client.predict(handle_file(str(src)), *options(tile=128), api_name="/cartoonize")
    tiled = cartoon.Cartoonizer(str(weights_dir / "ghibli"), device="cpu", tile=128)
    untiled = cartoon.Cartoonizer(str(weights_dir / "ghibli"), device="cpu", tile=512)
    expected = tiled(src).image.rgb
    assert not np.array_equal(expected, untiled(src).image.rgb)  # the tile size really changes the computation
    assert_close(rgb(out), expected, "tiled cartoon")


def test_alpha_is_kept(client, tmp_path):
    src = tmp_path / "logo.png"
    a = np.zeros((64, 80, 4), np.uint8)
    a[..., :3] = 180
    a[16:48, 20:60, 3] = 255
    Image.fromarray(a, "RGBA").save(src)
    out, *_ = client.predict(handle_file(str(src)), *options(), api_name="/cartoonize")
    with Image.open(out) as im:
        assert im.mode == "RGBA" and im.size == (80, 64)
        assert np.array_equal(np.asarray(im)[..., 3], a[..., 3])


def _png_claiming(w: int, h: int) -> bytes:
    """A small, valid 64x64 PNG whose header says w x h (what a decompression bomb looks like before decoding)."""
    import io
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", w, h) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.parametrize("name, content, message", [
    ("notes.png", b"this is not an image at all", "not an image"),
    ("empty.jpg", b"", "empty"),
    ("tiny.png", None, "too small"),
    ("huge.png", _png_claiming(10000, 10000), "more than the 67 MP limit"),
    ("bomb.png", _png_claiming(20000, 20000), "far too large"),
    ("cut.png", "truncated", "truncated or corrupt"),
], ids=["not-an-image", "empty", "too-small", "too-large", "bomb", "truncated"])
def test_bad_uploads_get_a_message(client, tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        Image.new("RGB", (8, 8)).save(path)
    elif content == "truncated":
        photo(tmp_path / "full.png", 96, 96, seed=4)
        path.write_bytes((tmp_path / "full.png").read_bytes()[:400])
    else:
        path.write_bytes(content)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(path)), *options(), api_name="/cartoonize")
    assert message in str(e.value)
    assert "Traceback" not in str(e.value) and str(tmp_path) not in str(e.value)


def test_too_large_upload_is_refused_with_a_message(server, client, tmp_path):
    """Files over the app's upload limit are refused by the server (not read into memory) and by the client."""
    import httpx
    big = tmp_path / "huge.jpg"
    with open(big, "wb") as f:
        f.truncate(41 * 2**20)  # sparse: costs no disk
    with open(big, "rb") as f:
        r = httpx.post(server.url + "/gradio_api/upload", files={"files": ("huge.jpg", f, "image/jpeg")}, timeout=60)
    assert r.status_code == 413 and "maximum" in r.text.lower()
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(str(big)), *options(), api_name="/cartoonize")


@pytest.mark.parametrize("opts, message", [
    (options(strength=1.5), "Value 1.5 is greater than maximum value 1.0"),
    (options(max_side=10), "Value 10 is less than minimum value 64"),
    (options(tile=16), "Value 16 is less than minimum value 128"),
    (options(mode="cubist"), "'cubist'.* is not in the list of choices"),
], ids=["strength", "max-side", "tile", "mode"])
def test_bad_options_get_a_message(client, tmp_path, opts, message):
    src = photo(tmp_path / "p.png", 64, 64)
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(src)), *opts, api_name="/cartoonize")


def test_no_photo_gets_a_message(client):
    with pytest.raises(AppError, match="Upload a photo first"):
        client.predict(None, *options(), api_name="/cartoonize")


def test_batch_gallery_skips_bad_files_with_a_message(client, engines, tmp_path):
    a = photo(tmp_path / "a.png", 96, 64, seed=5)
    b = photo(tmp_path / "b.jpg", 72, 80, seed=6)
    bad = tmp_path / "c.png"
    bad.write_text("not an image")
    gallery, summary = client.predict([handle_file(str(a)), handle_file(str(bad)), handle_file(str(b))],
                                      *options(style="shinkai"), api_name="/cartoonize_batch")
    assert len(gallery) == 2
    assert [Path(g["image"]).name for g in gallery] == ["a_shinkai.png", "b_shinkai.png"]
    assert_close(rgb(gallery[0]["image"]), engines["shinkai"](a).image.rgb, "batch a")
    assert rgb(gallery[1]["image"]).shape == (80, 72, 3)
    assert "2 of 3 photos" in summary and "c.png: not an image" in summary
    with pytest.raises(AppError, match="None of the photos could be cartoonized"):
        client.predict([handle_file(str(bad))], *options(), api_name="/cartoonize_batch")


def test_portrait_mode_without_a_face_pipeline_says_so_or_needs_a_face(client, tmp_path):
    """Portrait mode on a photo without a face: a clear message either way (no face / no face pipeline)."""
    src = photo(tmp_path / "noface.png", 96, 96, seed=7)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(src)), *options(mode="portrait"), api_name="/cartoonize")
    msg = str(e.value).lower()
    assert "face" in msg and "traceback" not in msg


def test_twenty_concurrent_requests_all_answered(server, engines, tmp_path):
    """20 requests at once: every one is answered with its own result (none lost, none swapped), and the app
    still answers afterwards."""
    n = 20
    srcs = [photo(tmp_path / f"c{i}.png", 48 + 4 * i, 40 + 2 * i, seed=100 + i) for i in range(n)]
    clients = [Client(server.url, verbose=False) for _ in range(4)]
    jobs = [clients[i % 4].submit(handle_file(str(s)), *options(style=STYLES[i % 2]), api_name="/cartoonize")
            for i, s in enumerate(srcs)]
    results = [job.result(timeout=240) for job in jobs]
    for i, (src, res) in enumerate(zip(srcs, results)):
        got = rgb(res[0])
        assert got.shape == (40 + 2 * i, 48 + 4 * i, 3), f"request {i}"
        assert_close(got, engines[STYLES[i % 2]](src).image.rgb, f"request {i}")
    assert clients[0].predict(api_name="/styles")
    log = server.log_path.read_text()
    for style in STYLES:  # models are loaded once, at start, and reused by every request
        assert log.count(f"loaded style {style} on") == 1, log[-3000:]


ARENAS = """
import ctypes, sys, threading
import app
if sys.argv[1] == "limited":
    app.limit_malloc_arenas()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
started, done = threading.Barrier(9), threading.Barrier(9)
def request():  # a worker thread that allocates, alive while the others are
    buffers = [ctypes.create_string_buffer(100_000) for _ in range(10)]
    started.wait()
    done.wait()
threads = [threading.Thread(target=request) for _ in range(8)]
for t in threads:
    t.start()
started.wait()
f = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(f))
libc.fclose(ctypes.c_void_p(f))
done.wait()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_malloc_arenas_are_bounded(tmp_path):
    """What kept the app's memory growing under load (bench_app_memory.py): glibc gives every thread that allocates
    an arena of its own, and keeps what is freed in each. The app's main() limits them to two."""
    counts = {}
    for how in ("default", "limited"):
        out = tmp_path / f"{how}.xml"
        subprocess.run([sys.executable, "-c", ARENAS, how, str(out)], cwd=REPO, check=True, timeout=120)
        counts[how] = out.read_text().count("<heap nr=")
    assert counts["limited"] == 2 < counts["default"], counts  # default: one per thread (9 here), up to 8 per core


# ---------------------------------------------------------------------------------------------------------------
# Portrait and auto modes (facecrop)


@needs_facecrop
def test_portrait_mode_faces_and_crops(client, engines, tmp_path):
    """Faces go through the portrait generator; the rest is the photo, or the chosen scene style's cartoon."""
    from skimage import data
    src = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()[:320, 96:416]).save(src)  # her face is ~95 x 125 px, top left of centre
    photo_rgb = rgb(src)
    for background in ("photo", "cartoon"):
        out, _, saliency, crops, download, info = client.predict(
            handle_file(str(src)), *options(mode="portrait", background=background), api_name="/cartoonize")
        got = rgb(out)
        assert got.shape == (320, 320, 3)
        assert not np.array_equal(got[40:200, 60:200], photo_rgb[40:200, 60:200]), "the face was left alone"
        captions = [c["caption"] for c in crops]
        assert captions[:3] == ["face 1: aligned photo", "face 1: Portrait", "face 1: saliency"]
        aligned, stylized = rgb(crops[0]["image"]), rgb(crops[1]["image"])
        assert aligned.shape == stylized.shape == (256, 256, 3)
        assert_close(stylized, engines["portrait"](aligned).image.rgb, "stylized face")
        corner = np.s_[260:, 260:]  # far from the face
        if background == "photo":
            assert np.array_equal(got[corner], photo_rgb[corner])
            assert saliency is None
        else:
            scene = engines["ghibli"](src)
            assert_close(got[corner], scene.image.rgb[corner], "cartoon background")
            assert_close(rgb(saliency)[..., 0], scene.saliency, "scene saliency")
        assert "portrait mode" in info and "faces: Portrait" in info and "1 face" in info
        # named after what made it: the portrait style, and the scene style when it made the background
        expected = "astronaut_portrait.png" if background == "photo" else "astronaut_portrait_ghibli.png"
        assert Path(out).name == Path(download["value"]).name == expected


@needs_facecrop
def test_auto_mode_picks_portrait_for_a_big_face_and_scene_otherwise(client, tmp_path):
    from skimage import data
    face = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()[:320, 96:416]).save(face)
    *_, info = client.predict(handle_file(str(face)), *options(mode="auto"), api_name="/cartoonize")
    assert "portrait mode (auto: largest face is" in info
    scene = photo(tmp_path / "scene.png", 128, 96, seed=8)
    *_, info = client.predict(handle_file(str(scene)), *options(mode="auto"), api_name="/cartoonize")
    assert "scene mode (auto: " in info


@needs_facecrop
def test_portrait_mode_without_a_face_says_no_face(client, tmp_path):
    src = photo(tmp_path / "noface.png", 128, 128, seed=9)
    with pytest.raises(AppError, match="(?i)no face"):
        client.predict(handle_file(str(src)), *options(mode="portrait"), api_name="/cartoonize")


# ---------------------------------------------------------------------------------------------------------------
# No weights at all: the app still starts and says what to do


def test_app_without_any_weights_starts_and_explains(tmp_path):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    s = Server(empty, tmp_path)
    try:
        with urllib.request.urlopen(s.url + "/config", timeout=10) as r:
            config = r.read().decode()
        assert "No styles available" in config and "No style weights were found" in config
        c = Client(s.url, verbose=False)
        assert c.predict(api_name="/styles") == []
        with pytest.raises(AppError, match="No style weights were found"):
            c.predict(handle_file(str(photo(tmp_path / "p.png", 64, 64))), *options(), api_name="/cartoonize")
    finally:
        s.stop()
    assert "Traceback" not in s.log_path.read_text()


# ---------------------------------------------------------------------------------------------------------------
# Video (the "Video" tab, /cartoonize_video)


def clip(path: Path, n: int, fps: int = 12, size=(64, 48), audio: bool = True) -> Path:
    """A small real video: n frames of a pan across a photo-like image, with an AAC tone."""
    w, h = size
    big = rgb(photo(path.with_suffix(".png"), w + n, h + n // 2 + 1, seed=7))
    frames = [np.ascontiguousarray(big[i // 2:i // 2 + h, i:i + w]) for i in range(n)]
    return write_clip(path, frames, fps=fps, audio="aac" if audio else None)


def video_frames(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_video_tab_cartoonizes_with_sound_like_the_library(client, engines, tmp_path):
    import av
    from cartoon.video import cartoonize_video

    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert [p["parameter_name"] for p in api["/cartoonize_video"]["parameters"]] == [
        "video", "style", "strength", "max_side"]
    src = clip(tmp_path / "walk.mp4", 10, size=(96, 64))
    out, download, info = client.predict(handle_file(str(src)), "shinkai", 0.8, 64, api_name="/cartoonize_video")
    out = out["video"] if isinstance(out, dict) else out
    assert Path(out).name == "walk_shinkai.mp4" and Path(download["value"]).name == "walk_shinkai.mp4"
    with av.open(out) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]  # plays in browsers, sound kept
    got = video_frames(out)
    ref = cartoonize_video(engines["shinkai"], src, tmp_path / "ref.mp4", strength=0.8, max_side=64)
    expected = video_frames(tmp_path / "ref.mp4")
    assert len(got) == len(expected) == ref.frames == 10 and got[0].shape == (42, 64, 3)
    assert np.abs(np.stack(got).astype(int) - np.stack(expected)).mean() < 1.0  # the same cartoon
    assert "10 frames" in info and "Shinkai" in info and "aac (copied)" in info


def test_video_tab_limits_and_bad_uploads(client, tmp_path):
    long = clip(tmp_path / "long.mp4", 2 * 11, fps=2, size=(32, 32), audio=False)  # 11 s: over the CPU limit
    with pytest.raises(AppError, match=r"at most 10 s can be cartoonized here"):
        client.predict(handle_file(str(long)), "ghibli", 1.0, 480, api_name="/cartoonize_video")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(AppError, match="not a video") as e:
        client.predict(handle_file(str(bad)), "ghibli", 1.0, 480, api_name="/cartoonize_video")
    assert "Traceback" not in str(e.value) and str(tmp_path) not in str(e.value)
    with pytest.raises(AppError, match="Upload a video first"):
        client.predict(None, "ghibli", 1.0, 480, api_name="/cartoonize_video")


# ---------------------------------------------------------------------------------------------------------------
# A real browser: Debian's chromium driven by Playwright


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (.ci/install-browser.sh installs it)")
def test_browser_upload_click_result(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from skimage import data
    src = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).resize((192, 128), Image.Resampling.LANCZOS).save(src)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    shot = tmp_path / "app.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server.url, wait_until="domcontentloaded")
            # the output size is in sight with its default, not inside a closed section; set below the photo's size
            page.locator("#max-side").wait_for(state="visible", timeout=30_000)
            side = page.locator("#max-side input[type=number]")
            assert side.input_value() == "1024"
            side.fill("128")
            side.press("Enter")
            page.locator("#photo input[type=file]").set_input_files(str(src))
            page.locator("#photo img").first.wait_for(timeout=30_000)
            page.locator("#run").click()
            page.wait_for_function(
                "() => { const i = document.querySelector('#result img');"
                " return i && i.complete && i.naturalWidth > 0; }", timeout=90_000)
            page.locator("#info").get_by_text("scene mode").first.wait_for(timeout=10_000)
            size = page.evaluate("() => { const i = document.querySelector('#result img');"
                                 " return [i.naturalWidth, i.naturalHeight]; }")
            assert size == [128, 85]
            assert "downscaled from 192×128 px to the output size, 128 px" in page.locator("#info").inner_text()
            assert page.locator("#download").is_visible()
            page.screenshot(path=str(shot), full_page=True)

            # a bad upload in the browser: a message, not a traceback; the previous cartoon is not left as if it
            # were this one's (no image, no download, the line says so)
            page.locator("#photo button[aria-label='Remove Image']").first.click()
            page.locator("#photo input[type=file]").set_input_files(str(bad))
            page.locator("#run").click()
            toast = page.get_by_text("not an image", exact=False).first
            toast.wait_for(timeout=30_000)
            page.locator("#info").get_by_text("Not cartoonized").wait_for(timeout=10_000)
            assert "scene mode" not in page.locator("#info").inner_text()
            assert page.locator("#result img").count() == 0 and page.locator("#download").is_hidden()

            # the examples are clickable: the first, a landscape of examples/, lands in the photo input
            page.locator("#photo button[aria-label='Remove Image']").first.click()
            page.locator(".gallery-item, button.gallery-item, [data-testid='examples'] button").first.click()
            page.wait_for_function(
                "() => { const i = document.querySelector('#photo img');"
                " return i && i.complete && i.naturalWidth === 1024 && i.src.includes('forest_stream'); }",
                timeout=30_000)

            # the Video tab takes the style and the strength: the photo options are not shown there
            page.get_by_role("tab", name="Video").click()
            for hidden in ("#mode", "#background", "#max-side"):
                page.locator(hidden).wait_for(state="hidden", timeout=10_000)
            assert page.locator("#style").is_visible() and page.locator("#strength").is_visible()
            page.get_by_role("tab", name="One photo").click()
            page.locator("#mode").wait_for(state="visible", timeout=10_000)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, "/tmp/app_screenshot.png")


def test_the_examples_start_with_scenery():
    import app

    examples = [Path(p) for p in app.example_photos()]
    scenery = [p for p in examples if p.parent == app.SCENERY_EXAMPLES]
    assert len(scenery) >= 2 and examples[:len(scenery)] == scenery  # landscapes first, then the portraits
    for p in scenery:
        with Image.open(p) as im:
            assert min(im.size) >= 512  # large enough to show what a style does to texture
    assert str(app.SCENERY_EXAMPLES) in app.allowed_paths()
