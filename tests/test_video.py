"""Video: real clips written here with PyAV (a few small frames and a tone), cartoonized with a random-weight `lite`
generator through the Python API and the CLI; the outputs are decoded back and checked."""
from __future__ import annotations

import math
import signal
import stat
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from cartoon import Cartoonizer  # noqa: E402
from cartoon.temporal import CutDetector, FrameStylizer, StatsSmoother, flicker_ratio  # noqa: E402
from cartoon.video import VideoError, cartoonize_video  # noqa: E402
from conftest import REPO, write_clip  # noqa: E402

# Small clips on a shared CPU: one thread avoids OpenMP waits on descheduled siblings.
pytestmark = pytest.mark.usefixtures("one_thread")

W, H, FPS = 64, 48, 24


def scene(astronaut: np.ndarray, i: int, w: int = W, h: int = H) -> np.ndarray:
    """Frame i of a slow pan across the photo."""
    return np.ascontiguousarray(astronaut[10 + i // 2:10 + i // 2 + h, 8 + i:8 + i + w])


def decode(path: Path) -> tuple[list[np.ndarray], list[int], Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames, pts = [], []
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="rgb24"))
            pts.append(f.pts)
        return frames, pts, s.time_base


def packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return []
        return [bytes(p) for p in c.demux(streams[0]) if p.size]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def engine(lite_weights) -> Cartoonizer:
    return Cartoonizer(lite_weights, device="cpu")


@pytest.fixture(scope="module")
def big_photo() -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((160, 160), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def clip(tmp_path_factory, big_photo) -> Path:
    """12 frames of a pan, 64x48 at 24 fps, with an AAC tone."""
    d = tmp_path_factory.mktemp("clips")
    return write_clip(d / "clip.mp4", [scene(big_photo, i) for i in range(12)])


# ---------------------------------------------------------------------------------------------------------------
# The file: sound, timing, rotation, options


def test_sound_copied_packet_for_packet_and_timestamps_kept(clip, engine, tmp_path):
    out = tmp_path / "clip_cartoon.mp4"
    seen = []
    r = cartoonize_video(engine, clip, out, progress=lambda done, total: seen.append((done, total)))
    assert (r.frames, r.width, r.height) == (12, W, H) and r.audio == ["aac (copied)"]
    frames, pts, tb = decode(out)
    src_frames, src_pts, src_tb = decode(clip)
    assert len(frames) == 12 and frames[0].shape == (H, W, 3)
    assert [p * tb for p in pts] == [p * src_tb for p in src_pts]
    assert packets(out, "audio") == packets(clip, "audio")  # copied as they are, not re-encoded
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "a walk"
    assert seen[-1] == (12, 12) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # a cartoon, not the photo: the random generator changes the frames a lot
    assert np.abs(frames[5].astype(float) - src_frames[5]).mean() > 20
    assert leftovers(tmp_path) == []


def test_variable_frame_rate_is_kept(big_photo, engine, tmp_path):
    tb = Fraction(1, 1000)
    pts = [0, 40, 60, 140, 160, 260, 280, 300]  # ms: irregular gaps
    src = write_clip(tmp_path / "vfr.mkv", [scene(big_photo, i) for i in range(len(pts))], pts=pts, time_base=tb,
                     audio="libopus")
    r = cartoonize_video(engine, src, tmp_path / "vfr_cartoon.mkv")
    _, out_pts, out_tb = decode(tmp_path / "vfr_cartoon.mkv")
    assert [p * out_tb for p in out_pts] == [p * tb for p in pts]
    assert r.audio == ["opus (copied)"]


def test_rotation_is_applied_to_the_pixels(big_photo, engine, tmp_path):
    stored = big_photo[:48, :64].copy()
    stored[:12, :16] = (255, 0, 0)  # a red block at the stored top-left
    src = write_clip(tmp_path / "phone.mp4", [stored] * 3, rotation=90)
    with av.open(str(src)) as c:  # stored 64 x 48, shown turned by 90 degrees
        first = next(c.decode(video=0))
        assert (first.rotation, first.width, first.height) == (90, 64, 48)
    out = tmp_path / "upright.mp4"
    cartoonize_video(engine, src, out, strength=0.0)  # strength 0: the photo itself, so the pixels can be compared
    frames, _, _ = decode(out)
    with av.open(str(out)) as c:
        assert next(c.decode(video=0)).rotation == 0  # written upright, no rotation left to apply
    assert frames[0].shape == (64, 48, 3)
    upright = np.rot90(stored, k=1)  # 90 degrees counter-clockwise, as the display matrix says
    err = np.abs(frames[0].astype(float) - upright).mean()
    assert err < 6, err
    assert np.abs(frames[0].astype(float) - np.rot90(stored, k=-1)).mean() > 3 * err
    assert frames[0][-12:, :12, 0].mean() > 200 and frames[0][-12:, :12, 1].mean() < 60  # red block: bottom-left


def test_fps_start_duration_max_side_crf(big_photo, engine, tmp_path):
    src = write_clip(tmp_path / "long.mp4", [scene(big_photo, i, 96, 64) for i in range(24)])
    out = tmp_path / "part.mp4"
    r = cartoonize_video(engine, src, out, fps=10, start=0.25, duration=0.5, max_side=48, crf=30)
    frames, pts, tb = decode(out)
    assert r.frames == 5 and len(frames) == 5 and frames[0].shape == (32, 48, 3)
    assert [p * tb for p in pts] == [Fraction(k, 10) for k in range(5)]
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        end = max(float((p.pts + p.duration) * p.time_base) for p in c.demux(a) if p.size)
    assert 0.4 < end < 0.65  # the audio of the part, shifted with the video
    # a lower crf is a larger file
    cartoonize_video(engine, src, tmp_path / "hq.mp4", fps=10, start=0.25, duration=0.5, max_side=48, crf=5)
    assert (tmp_path / "hq.mp4").stat().st_size > out.stat().st_size


def test_audio_the_container_cannot_hold_is_reencoded(big_photo, engine, tmp_path):
    src = write_clip(tmp_path / "pcm.mov", [scene(big_photo, i) for i in range(6)], audio="pcm_s16le")
    r = cartoonize_video(engine, src, tmp_path / "out.webm")
    assert r.codec == "vp9" and r.audio[0].startswith("pcm_s16le -> opus")
    with av.open(str(tmp_path / "out.webm")) as c:
        assert [s.codec_context.name for s in c.streams] == ["vp9", "opus"]
        assert sum(f.samples for f in c.decode(audio=0)) > 0.2 * 48000


def test_a_video_without_audio_odd_sized_and_not_yuv(big_photo, engine, tmp_path):
    src = write_clip(tmp_path / "silent.mov", [scene(big_photo, i, 65, 49) for i in range(4)], audio=None,
                     codec="png")
    r = cartoonize_video(engine, src, tmp_path / "out.mkv")
    assert r.audio == [] and "no sound" in r.summary
    frames, _, _ = decode(tmp_path / "out.mkv")
    assert packets(tmp_path / "out.mkv", "audio") == [] and len(frames) == 4
    assert frames[0].shape == (48, 64, 3)  # yuv420p needs even sides: the odd last row and column are cut


def test_frames_in_batches_get_their_own_statistics(engine, big_photo):
    import copy

    frames = noisy_pan(big_photo, 8)
    one, _ = stylize(engine, frames, 0.5, blend=0.7)
    batched = copy.copy(engine)
    batched.batch_size = 4  # as on a GPU: four frames per forward pass, each with its own smoothed statistics
    four, _ = stylize(batched, frames, 0.5, blend=0.7)
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(one, four)) <= 2


def test_interrupted_run_leaves_nothing(clip, engine, tmp_path):
    def stop(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cartoonize_video(engine, clip, tmp_path / "out.mp4", progress=stop)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# Bad input: a clear VideoError, nothing written


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory, clip, big_photo) -> dict[str, tuple[Path, str]]:
    d = tmp_path_factory.mktemp("bad")
    (d / "notes.mp4").write_text("this is not a video")
    (d / "empty.mp4").write_bytes(b"")
    data = clip.read_bytes()
    (d / "cut_short.mp4").write_bytes(data[:len(data) // 2])  # an mp4's index is at its end: unreadable
    mkv = write_clip(d / "whole.mkv", [scene(big_photo, i) for i in range(48)], audio=None)
    (d / "cut_short.mkv").write_bytes(mkv.read_bytes()[:mkv.stat().st_size // 2])  # decodes, just fewer frames
    mkv.unlink()
    with av.open(str(d / "sound.mp4"), "w") as c:  # audio only
        a = c.add_stream("aac", rate=16000, layout="mono")
        for k in range(0, 16000, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, k
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    write_clip(d / "huge.mov", [np.zeros((16, 8200, 3), np.uint8)], codec="png", audio=None)
    Image.fromarray(big_photo).save(d / "photo.mp4", format="JPEG")  # a photo with a video's name
    return {
        "notes.mp4": "not a video",
        "empty.mp4": "empty file",
        "cut_short.mp4": "truncated or corrupt",
        "cut_short.mkv": "truncated",
        "sound.mp4": "audio-only",
        "huge.mov": "larger than 8K",
        "photo.mp4": "still image",
    }, d


def test_bad_inputs_get_a_clear_message_and_no_output(bad_videos, engine, tmp_path):
    expected, folder = bad_videos
    for name, message in expected.items():
        out = tmp_path / f"{name}.out.mp4"
        with pytest.raises(VideoError, match=message):
            cartoonize_video(engine, folder / name, out)
        assert not out.exists(), name
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs,message", [
    (dict(dst="out.avi"), "cannot write video"),
    (dict(codec="vp9", dst="out.mov"), "cannot hold vp9"),
    (dict(crf=80), "crf for h264"),
    (dict(fps=0), "fps must be"),
    (dict(start=5.0), "past the end"),
    (dict(duration=-1.0), "duration must be"),
    (dict(max_seconds=0.1), "at most 0.1 s"),
])
def test_bad_options(clip, engine, tmp_path, kwargs, message):
    dst = tmp_path / kwargs.pop("dst", "out.mp4")
    with pytest.raises(VideoError, match=message):
        cartoonize_video(engine, clip, dst, **kwargs)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# No flicker: smoothed statistics, reset at cuts


def noisy_pan(photo: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    """A slow pan with mild sensor noise: the input's own frame-to-frame change is small."""
    rng = np.random.default_rng(seed)
    return [np.clip(scene(photo, i, 96, 72).astype(np.float32) + rng.normal(0, 4, (72, 96, 3)), 0, 255)
            .astype(np.uint8) for i in range(n)]


def stylize(engine, frames, smoothing, blend=0.0, stats_side=32, cuts=None):
    st = FrameStylizer(engine, smoothing=smoothing, blend=blend, stats_side=stats_side, cuts=cuts)
    out = []
    for k in range(0, len(frames), 4):  # in batches, as cartoonize_video feeds it
        out += st(frames[k:k + 4], [i / FPS for i in range(k, min(k + 4, len(frames)))])
    return out, st


def test_smoothed_statistics_jump_less_and_the_cartoon_changes_less(engine, big_photo):
    frames = noisy_pan(big_photo, 16)
    # the generator's own statistics of each frame (on the small copy), and their moving average
    own = engine.statistics(frames, 32)
    raw = [np.concatenate([r.ravel() for r in rec]) for rec in own]
    sm = StatsSmoother(0.5)
    smooth = [np.concatenate([s.ravel() for s in sm(rec, i / FPS, i == 0)]) for i, rec in enumerate(own)]
    jump = lambda xs: np.mean([np.abs(b - a).mean() for a, b in zip(xs, xs[1:])])  # noqa: E731
    assert jump(smooth) < 0.3 * jump(raw)

    per_frame, _ = stylize(engine, frames, 0.0)
    smoothed, st = stylize(engine, frames, 0.5)
    assert st.cuts == [0]
    r_per_frame, r_smoothed = flicker_ratio(frames, per_frame), flicker_ratio(frames, smoothed)
    assert r_smoothed < 0.97 * r_per_frame, (r_per_frame, r_smoothed)
    assert np.array_equal(per_frame[0], smoothed[0])  # the first frame has nothing to average with


def test_a_cut_restarts_the_average(engine, big_photo):
    a = noisy_pan(big_photo, 8)
    other = np.asarray(Image.fromarray(255 - big_photo[::-1]).resize((160, 160)))
    b = noisy_pan(other, 8, seed=1)
    frames = a + b
    smoothed, st = stylize(engine, frames, 2.0, blend=0.7)
    own, _ = stylize(engine, frames, 0.0)
    assert st.cuts == [0, 8]
    # right after the cut the new shot's own statistics are used and nothing of the old shot is blended in
    assert np.array_equal(smoothed[8], own[8])
    # without the reset it would be a mix (a detector that never fires shows the difference)
    mixed, st2 = stylize(engine, frames, 2.0, blend=0.7, cuts=CutDetector(min_change=2.0))
    assert st2.cuts == [0]
    assert np.abs(mixed[8].astype(float) - own[8]).mean() > 1.0


def test_blend_removes_local_flicker_but_not_what_moves(engine, big_photo):
    frames = noisy_pan(big_photo, 12)
    plain, _ = stylize(engine, frames, 0.5)
    blended, _ = stylize(engine, frames, 0.5, blend=0.7)
    r_plain, r_blended = flicker_ratio(frames, plain), flicker_ratio(frames, blended)
    assert r_blended < 0.8 * r_plain and r_blended <= 1.1, (r_plain, r_blended)
    # something new appears: there the cartoon is the new frame's, not a trail of the old one
    still = [scene(big_photo, 0, 96, 72)] * 3
    moved = still[-1].copy()
    moved[20:44, 30:54] = (250, 250, 40)
    clip = still + [moved]
    plain, _ = stylize(engine, clip, 0.5)
    blended, st = stylize(engine, clip, 0.5, blend=0.7)
    assert st.cuts == [0]
    box = (slice(24, 40), slice(34, 50))
    assert np.abs(blended[3][box].astype(float) - plain[3][box]).mean() < 2.0
    assert np.abs(blended[3][box].astype(float) - blended[2][box]).mean() > 20


def test_cut_detector_ignores_a_pan_and_finds_a_cut(big_photo):
    det = CutDetector()
    pan = [scene(big_photo, i, 96, 72) for i in range(20)]
    other = [scene(255 - big_photo[::-1], i, 96, 72) for i in range(5)]
    assert [i for i, f in enumerate(pan + other) if det(f)] == [0, 20]
    # a fast pan: big changes all the time; at most its first one counts as a cut (the averages restart: harmless)
    fast = CutDetector()
    wide = np.tile(big_photo, (1, 2, 1))
    cuts = [i for i in range(0, 120, 6) if fast(scene(wide, i, 96, 72))]
    assert cuts[0] == 0 and len(cuts) <= 2, cuts


def test_stats_smoother_uses_real_time_and_resets():
    sm = StatsSmoother(time_constant=1.0)
    one, zero = [np.ones((1, 2, 1, 1))], [np.zeros((1, 2, 1, 1))]
    assert sm(one, 0.0, cut=True)[0].mean() == 1.0
    assert sm(zero, 1.0)[0].mean() == pytest.approx(math.exp(-1.0))  # 1 s later: weight e^-1 on the past
    assert sm(zero, 1.0)[0].mean() == pytest.approx(math.exp(-1.0))  # no time passed: the past keeps its weight
    assert sm(one, 1.0, cut=True)[0].mean() == 1.0
    with pytest.raises(VideoError):
        StatsSmoother(-1)


def test_flicker_ratio_leaves_out_the_cut():
    inp = [np.full((4, 4), v, np.uint8) for v in (0, 10, 200, 210)]
    out = [np.full((4, 4), v, np.uint8) for v in (0, 20, 100, 120)]
    assert flicker_ratio(inp, out, cuts=[2]) == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------------------------
# The CLI


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "cartoon", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=600, **kwargs)


def test_cli_folder_with_videos_photos_and_bad_files(bad_videos, clip, tmp_path, lite_weights, astronaut_small):
    expected, bad = bad_videos
    d = tmp_path / "in"
    d.mkdir()
    (d / "clip.mp4").write_bytes(clip.read_bytes())
    Image.fromarray(astronaut_small).save(d / "photo.jpg")
    for name in ("notes.mp4", "cut_short.mkv", "sound.mp4"):
        (d / name).write_bytes((bad / name).read_bytes())
    out = tmp_path / "out"
    r = run_cli("-i", d, "-o", out, "--style", lite_weights, "--max-side", "32", "--crf", "28")
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4", "photo.png"]
    frames, _, _ = decode(out / "clip.mp4")
    assert len(frames) == 12 and frames[0].shape == (24, 32, 3)
    for name in ("notes.mp4", "cut_short.mkv", "sound.mp4"):
        assert name in r.stderr and expected[name] in r.stderr
    assert "3 failed" in r.stderr and "Traceback" not in r.stderr


def _default_sigint() -> None:
    """In the child: Ctrl-C ends it as in a terminal, also when pytest itself runs with SIGINT ignored (a
    background job, `trap '' INT`), which the child would inherit and Python would keep."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_one_clip_and_ctrl_c(big_photo, tmp_path, lite_weights):
    src = write_clip(tmp_path / "clip.mov", [scene(big_photo, i) for i in range(8)])
    r = run_cli("-i", src, "-o", tmp_path / "clip_cartoon.mp4", "--style", lite_weights, "--fps", "12", umask=0o022)
    assert r.returncode == 0, r.stderr
    assert len(decode(tmp_path / "clip_cartoon.mp4")[0]) == 4 and "frame" in r.stderr
    assert stat.S_IMODE((tmp_path / "clip_cartoon.mp4").stat().st_mode) == 0o644  # as open() makes it, not 0600

    # Ctrl-C in the middle of a longer clip: exit 130, nothing under the output name, no temporary file
    long = write_clip(tmp_path / "long.mp4", [scene(big_photo, i % 40, 128, 96) for i in range(600)], audio=None)
    out = tmp_path / "o"
    out.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "cartoon", "-i", str(long), "-o", str(out / "long_cartoon.mp4"),
                          "--style", str(lite_weights)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 300
    while not any(out.iterdir()) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert p.poll() is None, p.communicate()[1]
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(out.iterdir()) == []
