"""Video: cartoonize a clip frame by frame, with its sound, its timing and no flicker.

    from cartoon import Cartoonizer
    from cartoon.video import cartoonize_video
    cartoonize_video(Cartoonizer("ghibli"), "clip.mp4", "clip_cartoon.mp4", max_side=720)

Decoding and encoding go through PyAV, whose wheels ship FFmpeg (no system ffmpeg needed).  Frames stream through
the generator a few at a time, so memory does not grow with the clip's length; the output is written to a temporary
file next to the destination and renamed over it only when complete (an error or Ctrl-C leaves nothing behind).

Kept from the input: every audio stream, copied packet for packet when the output container can hold its codec
(re-encoded to AAC, or Opus for WebM, when it cannot); the frame timestamps, so the frame rate, variable or constant,
is the input's (unless `fps` resamples to a constant rate); the rotation (frames are turned upright before the
generator sees them, and written upright); container metadata (title, date, ...) and stream languages.
Subtitle and data streams are dropped.

No flicker.  Instance norm and CBAM's channel attention normalise every frame with statistics of that frame, and
those jump from frame to frame (noise, small motion, an object entering the picture): the cartoon's colours pump.
Here each frame's statistics are recorded on a small copy (`Generator.recording_stats`, as tiling does), averaged
over time with an exponential moving average (time constant `smoothing` seconds, using the real frame times, so
variable frame rates are handled), and the frame is run with the averaged statistics (`Generator.using_stats`).
At a scene cut (`CutDetector`) the average restarts from the new shot's own statistics.  That removes the global
pumping; what remains is local (textures and outlines that the generator redraws differently as sensor noise and
compression change), which `TemporalBlend` removes by mixing each cartoon with the previous output warped along the
photo's optical flow, where the flow is reliable.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from .engine import Cartoonizer, check_strength
from .errors import CartoonError
from .imageio import MIN_SIDE, atomic_path, file_problem
from .strength import apply_strength
from .tiling import from_network, pad_to_multiple, run_tiled, stats_copy, to_network

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv",
                  ".flv", ".3gp", ".ogv"}
# Output suffix -> FFmpeg muxer.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# Our codec names -> FFmpeg encoders (all in PyAV's wheels), their CRF range and default.
CODECS = {"h264": "libx264", "h265": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
CRF_RANGE = {"h264": (0, 51), "h265": (0, 51), "vp9": (0, 63), "av1": (1, 63)}
DEFAULT_CRF = {"h264": 18, "h265": 22, "vp9": 30, "av1": 32}
CONTAINER_CODECS = {"mp4": ("h264", "h265", "av1", "vp9"), "mov": ("h264", "h265"),
                    "matroska": ("h264", "h265", "vp9", "av1"), "webm": ("vp9", "av1")}
# Audio that the output container cannot hold is re-encoded to this.
FALLBACK_AUDIO = {"mp4": "aac", "mov": "aac", "matroska": "libopus", "webm": "libopus"}
# Audio codecs that browsers play from an .mp4 (the app re-encodes others to AAC).
BROWSER_AUDIO = ("aac", "mp3", "opus")
# Frames larger than 8K are refused before anything is decoded.
MAX_VIDEO_SIDE = 8192
MAX_VIDEO_PIXELS = 8192 * 4320
MAX_FPS = 240
DEFAULT_SMOOTHING = 0.5  # s: time constant of the statistics' moving average
DEFAULT_BLEND = 0.7  # weight of the motion-compensated previous output where the motion is tracked
STATS_SIDE = 384  # px: long side of the copy each frame's statistics are recorded on

Progress = Callable[[int, "int | None"], None]  # (frames written, frames expected or None)


class VideoError(CartoonError, ValueError):
    """The input is not a video we can cartoonize, or an option does not fit it. The message is for the user."""


# ---------------------------------------------------------------------------------------------------------------
# Flicker: statistics smoothed over time, restarted at scene cuts


class CutDetector:
    """Hard cuts from the change between consecutive frames' thumbnails (mean absolute difference in 0..1).

    A frame starts a new shot when its change is at least `min_change` and at least `ratio` times the shot's
    recent average change, so a fast pan (large changes all the time) is not a string of cuts (at most its first
    frame counts as one: harmless, the averages restart).  The first frame always starts a shot.
    """

    def __init__(self, min_change: float = 0.1, ratio: float = 3.0, side: int = 64):
        self.min_change, self.ratio, self.side = float(min_change), float(ratio), int(side)
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._avg = self.min_change / self.ratio

    def change(self, rgb: np.ndarray) -> float | None:
        """The change from the previous frame (None for the first one); advances the detector."""
        h, w = rgb.shape[:2]
        s = self.side / max(h, w)
        thumb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        thumb = thumb.astype(np.float32) / 255.0
        prev, self._prev = self._prev, thumb
        if prev is None or prev.shape != thumb.shape:
            return None
        return float(np.abs(thumb - prev).mean())

    def __call__(self, rgb: np.ndarray) -> bool:
        d = self.change(rgb)
        if d is None:
            self._avg = self.min_change / self.ratio
            return True
        cut = d >= self.min_change and d >= self.ratio * self._avg
        # after a cut the average starts at that change: if the next ones are as large (a fast pan), they are not cuts
        self._avg = d if cut else 0.7 * self._avg + 0.3 * d
        return cut


class StatsSmoother:
    """Exponential moving average of the generator's whole-image statistics over time, restarted at cuts.

    `time_constant` in seconds: a statistic recorded `dt` seconds ago weighs exp(-dt / time_constant) as much as
    one recorded now.  0 uses every frame's own statistics (no smoothing).
    """

    def __init__(self, time_constant: float = DEFAULT_SMOOTHING):
        if not time_constant >= 0:
            raise VideoError(f"smoothing must be a time in seconds, at least 0; got {time_constant!r}")
        self.time_constant = float(time_constant)
        self.reset()

    def reset(self) -> None:
        self._state: list[np.ndarray] | None = None
        self._t = 0.0

    def __call__(self, stats: Sequence[np.ndarray], t: float, cut: bool = False) -> list[np.ndarray]:
        """The smoothed statistics at time `t` (s), given this frame's own; `cut` restarts the average."""
        if cut or self._state is None or self.time_constant == 0 or len(stats) != len(self._state):
            self._state = [np.array(s, np.float32) for s in stats]
        else:
            keep = math.exp(-max(0.0, t - self._t) / self.time_constant)
            for acc, s in zip(self._state, stats):
                acc *= keep
                acc += (1.0 - keep) * np.asarray(s, np.float32)
        self._t = t
        return [s.copy() for s in self._state]


def flicker_ratio(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray], cuts: Iterable[int] = ()) -> float:
    """mean |out[t] - out[t-1]| / mean |in[t] - in[t-1]| over consecutive frames of the same shot (`cuts`: the
    indices of frames that start a shot; the pair across a cut is left out).  1 means the cartoon changes exactly
    as much as the input does; per-frame statistics make it larger."""
    cuts = set(cuts)
    num = den = 0.0
    for t in range(1, len(inputs)):
        if t in cuts:
            continue
        den += float(np.abs(inputs[t].astype(np.float32) - inputs[t - 1].astype(np.float32)).mean())
        num += float(np.abs(outputs[t].astype(np.float32) - outputs[t - 1].astype(np.float32)).mean())
    if den == 0:
        raise ValueError("the input frames do not change: the ratio is undefined")
    return num / den


class TemporalBlend:
    """Motion-compensated blending of each cartoon with the previous output, where the photo shows the same thing.

    A generator also flickers locally: sensor noise and compression change its textures and outlines from frame to
    frame.  The previous output is warped onto the current frame along the photo's optical flow (OpenCV's DIS, on
    the frames as they go in), and mixed in with weight `strength` * exp(-(e / tolerance)^2), where e is how much the
    photo itself differs from its warped previous frame there (0..255): full blending where the motion is tracked,
    none where something new appears (occlusions, fast motion, outside the previous frame).  Restarted at cuts.
    """

    def __init__(self, strength: float = 0.7, tolerance: float = 8.0):
        if not 0.0 <= strength < 1.0:
            raise VideoError(f"blend must be at least 0 and below 1, got {strength!r}")
        self.strength, self.tolerance = float(strength), float(tolerance)
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.reset()

    def reset(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # photo, its gray, the output

    def __call__(self, photo: np.ndarray, cartoon: np.ndarray, cut: bool = False) -> np.ndarray:
        """photo (H, W, 3) uint8, its cartoon (H, W, 3) float32 0..255 -> the blended cartoon (float32)."""
        gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        prev = self._prev
        if cut or prev is None or prev[1].shape != gray.shape or self.strength == 0:
            self._prev = (photo, gray, cartoon)
            return cartoon
        h, w = gray.shape
        flow = self.flow.calc(gray, prev[1], None)  # for each pixel now: where it was in the previous frame
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        warped_photo = cv2.remap(prev[0], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped_out = cv2.remap(prev[2], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.abs(photo.astype(np.float32) - warped_photo).mean(axis=2)
        err = cv2.blur(err, (5, 5))
        alpha = self.strength * np.exp(-np.square(err / self.tolerance))
        alpha[(map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)] = 0.0  # not in the previous frame
        out = cartoon + alpha[..., None] * (warped_out - cartoon)
        self._prev = (photo, gray, out)
        return out


class FrameStylizer:
    """Cartoonizes consecutive frames of one clip (same size, in time order) without flicker.

    engine: a Cartoonizer (its runner, tile and overlap are used). smoothing: the statistics' time constant in
    seconds (see StatsSmoother); None runs every frame exactly as a photo (its own statistics). blend: strength of
    the motion-compensated blend with the previous output (TemporalBlend; 0 = off). stats_side: long side of the
    small copy the statistics are recorded on.  cuts: the scene-cut detector (both restart at a cut).  lock: held
    around each use of the generator (the app shares one generator between requests).
    """

    def __init__(self, engine: Cartoonizer, strength: float = 1.0, smoothing: float | None = DEFAULT_SMOOTHING,
                 blend: float = DEFAULT_BLEND, stats_side: int = STATS_SIDE, tile: int | None = None,
                 cuts: CutDetector | None = None, lock=None):
        self.engine = engine
        self.strength = check_strength(strength)
        self.smoother = None if smoothing is None else StatsSmoother(smoothing)
        self.blend = TemporalBlend(blend) if blend else None
        self.stats_side = int(stats_side)
        self.tile = int(tile or engine.tile)
        self.detector = cuts or CutDetector()
        self.lock = lock
        self.cuts: list[int] = []  # indices (frames seen so far) that started a shot
        self.frames = 0
        self.stats_batch = 4 * max(1, engine.batch_size)

    def __call__(self, frames: Sequence[np.ndarray], times: Sequence[float]) -> list[np.ndarray]:
        """(H, W, 3) uint8 frames and their times in seconds -> their cartoons, (H, W, 3) uint8."""
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        cut = [self.detector(f) for f in frames]
        self.cuts += [self.frames + i for i, c in enumerate(cut) if c]
        self.frames += len(frames)
        padded = [pad_to_multiple(f) for f in frames]
        hp, wp = padded[0].shape[:2]
        runner, engine = self.engine.runner, self.engine
        with self.lock if self.lock is not None else contextlib.nullcontext():
            stats: list = [None] * len(frames)  # None: the frame's own statistics
            if self.smoother is not None:
                for k in range(0, len(frames), self.stats_batch):
                    chunk = padded[k:k + self.stats_batch]
                    _, _, rec = runner(np.concatenate([to_network(stats_copy(f, self.stats_side)) for f in chunk]),
                                       record=True)
                    for i in range(len(chunk)):
                        stats[k + i] = self.smoother([r[i:i + 1] for r in rec], float(times[k + i]), cut[k + i])
            cartoons: list[np.ndarray] = []
            if max(hp, wp) <= self.tile:  # one pass per frame, a batch of frames at a time
                n = max(1, engine.batch_size)
                for k in range(0, len(frames), n):
                    x = np.concatenate([to_network(f) for f in padded[k:k + n]])
                    chunk = stats[k:k + n]
                    y, _, _ = runner(x, stats=None if chunk[0] is None else [np.concatenate(s) for s in zip(*chunk)])
                    cartoons.extend(from_network(yi) for yi in y)
            else:
                for f, st in zip(padded, stats):
                    c, _ = run_tiled(runner, f, self.tile, engine.overlap, engine.stats_side,
                                     batch_size=engine.batch_size, stats=st)
                    cartoons.append(c)
        out = []
        for f, c, is_cut in zip(frames, cartoons, cut):
            c = np.ascontiguousarray(c[:h, :w])
            if self.blend is not None:
                c = self.blend(f, c, is_cut)
            out.append(apply_strength(f, c, self.strength))
        return out


# ---------------------------------------------------------------------------------------------------------------
# Reading


def _av():
    try:
        import av
    except ImportError:
        raise VideoError("video needs PyAV, which is not installed here: pip install av") from None
    return av


@dataclasses.dataclass
class VideoInfo:
    width: int  # as displayed: rotation applied
    height: int
    rotation: int  # degrees counter-clockwise that the stored frames are turned to be displayed
    fps: float | None  # average frame rate
    duration: float | None  # seconds
    frames: int | None  # as the container says (or estimated from duration x fps)
    codec: str
    audio: list[str]  # codec of each audio stream
    format: str


def _open(path: Path, label: str):
    """Open `path` for reading: (container, video stream). VideoError with a message for anything unusable."""
    av = _av()
    problem = file_problem(path, "a video")
    if problem:
        raise VideoError(f"{label}: {problem}")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(f"{label}: not a video, or truncated or corrupt (FFmpeg: {_reason(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VideoError(f"{label}: cannot be read ({e})") from None
    try:
        fmt = container.format.name
        if fmt == "image2" or fmt.endswith("_pipe"):
            raise VideoError(f"{label}: is a still image, not a video; cartoonize it as a photo")
        attached = av.stream.Disposition.attached_pic
        videos = [s for s in container.streams.video if not (s.disposition & attached)]
        if not videos:
            if container.streams.audio:
                raise VideoError(f"{label}: has sound but no video stream (an audio-only file): nothing to cartoonize")
            raise VideoError(f"{label}: no video stream found; the file is truncated or corrupt, or not a video")
        stream = videos[0]
        cc = stream.codec_context
        if not cc.width or not cc.height:
            raise VideoError(f"{label}: the video stream has no frame size; the file is truncated or corrupt")
        if max(cc.width, cc.height) > MAX_VIDEO_SIDE or cc.width * cc.height > MAX_VIDEO_PIXELS:
            raise VideoError(f"{label}: {cc.width}x{cc.height} frames are larger than 8K ({MAX_VIDEO_SIDE}x4320), "
                             "the most this accepts; downscale the video first")
    except BaseException:
        container.close()
        raise
    return container, stream


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


def probe(path: str | os.PathLike, name: str | None = None) -> VideoInfo:
    """What the video is (size as displayed, rotation, rate, duration, audio); VideoError if it is not one."""
    path = Path(path)
    container, stream = _open(path, name or str(path))
    with container:
        return _info(container, stream, _first_rotation(container, stream))


def _first_rotation(container, stream) -> int:
    """The rotation of the first frame (PyAV puts the display matrix on every decoded frame)."""
    av = _av()
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation or 0))
    except (av.FFmpegError, ValueError):
        return 0
    finally:
        try:
            container.seek(0)
        except av.FFmpegError:
            pass
    return 0


def _info(container, stream, rotation: int) -> VideoInfo:
    cc = stream.codec_context
    w, h = (cc.height, cc.width) if rotation % 180 else (cc.width, cc.height)
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    else:
        duration = None
    frames = stream.frames or (round(duration * fps) if duration and fps else None)
    return VideoInfo(w, h, rotation, fps, duration, frames or None, cc.name,
                     [a.codec_context.name for a in container.streams.audio], container.format.name)


# ---------------------------------------------------------------------------------------------------------------
# Writing


@dataclasses.dataclass
class VideoResult:
    path: Path
    frames: int  # frames written
    processed: int  # distinct frames that went through the generator (fewer when --fps drops frames)
    width: int
    height: int
    duration: float  # seconds, first frame to the end of the last
    fps: float  # average output frame rate
    codec: str
    audio: list[str]  # what happened to each audio stream, e.g. "aac (copied)", "pcm_s16le -> aac"
    cuts: int  # scene cuts found (each restarts the statistics' average)
    seconds: float  # wall time
    dropped: list[str] = dataclasses.field(default_factory=list)  # streams not kept (subtitles, data)

    @property
    def summary(self) -> str:
        sound = ", ".join(self.audio) if self.audio else "no sound"
        return (f"{self.frames} frames, {self.width}×{self.height}, {self.fps:.3g} fps, {self.duration:.1f} s, "
                f"{self.codec}, sound: {sound}, {self.cuts} shot{'s' if self.cuts != 1 else ''}, "
                f"{self.processed / max(self.seconds, 1e-9):.2f} frames/s")


def check_video_options(dst: Path, codec: str | None, crf: int | None, fps: float | None, start: float,
                        duration: float | None, max_side: int | None) -> tuple[str, str, int]:
    """(container format, codec, crf) for `dst`; VideoError for options that do not fit."""
    fmt = CONTAINERS.get(dst.suffix.lower())
    if fmt is None:
        raise VideoError(f"{dst}: cannot write video as {dst.suffix or 'a file without suffix'!r}; "
                         f"use {', '.join(sorted(CONTAINERS))}")
    codec = codec or ("vp9" if fmt == "webm" else "h264")
    if codec not in CODECS:
        raise VideoError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if codec not in CONTAINER_CODECS[fmt]:
        raise VideoError(f"{dst.suffix} files cannot hold {codec}; use {', '.join(CONTAINER_CODECS[fmt])}")
    lo, hi = CRF_RANGE[codec]
    crf = DEFAULT_CRF[codec] if crf is None else crf
    if not (isinstance(crf, (int, np.integer)) and lo <= crf <= hi):
        raise VideoError(f"crf for {codec} must be a whole number from {lo} (best) to {hi} (smallest), got {crf!r}")
    if fps is not None and not (0 < fps <= MAX_FPS):
        raise VideoError(f"fps must be above 0 and at most {MAX_FPS}, got {fps:g}")
    if not (start >= 0 and math.isfinite(start)):
        raise VideoError(f"start must be a time in seconds, at least 0; got {start:g}")
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise VideoError(f"duration must be a positive number of seconds, got {duration:g}")
    if max_side is not None and max_side < MIN_SIDE:
        raise VideoError(f"max side must be at least {MIN_SIDE} px, got {max_side}")
    return fmt, codec, int(crf)


def _out_size(w: int, h: int, max_side: int | None) -> tuple[int, int]:
    """Display size after `max_side` (never upscaled), even (yuv420p needs it)."""
    s = min(1.0, max_side / max(w, h)) if max_side else 1.0
    return max(2, round(w * s)) // 2 * 2, max(2, round(h * s)) // 2 * 2


def _rate(fps: float) -> Fraction:
    for exact in (24000 / 1001, 30000 / 1001, 60000 / 1001):  # NTSC rates, as users round them
        if abs(fps - exact) < 0.005:
            return Fraction(round(exact * 1001), 1001)
    return Fraction(fps).limit_denominator(1001)


def cartoonize_video(engine: Cartoonizer, src: str | os.PathLike, dst: str | os.PathLike, *, strength: float = 1.0,
                     max_side: int | None = None, fps: float | None = None, start: float = 0.0,
                     duration: float | None = None, codec: str | None = None, crf: int | None = None,
                     smoothing: float | None = DEFAULT_SMOOTHING, blend: float = DEFAULT_BLEND,
                     tile: int | None = None, lock=None, max_seconds: float | None = None,
                     copy_audio: Iterable[str] | None = None, progress: Progress | None = None,
                     name: str | None = None) -> VideoResult:
    """Cartoonize the video `src` into `dst` (.mp4, .m4v, .mov, .mkv or .webm), written atomically.

    max_side: downscale frames so the longer side is at most this. fps: resample to this constant rate (default:
    the input's timestamps, variable rates too). start / duration: the part to cartoonize, in seconds (audio is cut
    at the nearest packet). codec: h264 (default; vp9 for .webm), h265, vp9 or av1; crf: its quality (lower is
    better; defaults in DEFAULT_CRF). smoothing, blend: see FrameStylizer. max_seconds: refuse longer parts (the app's
    limit). copy_audio: the audio codecs to copy (default: any the container can hold; the app passes what browsers
    play), others are re-encoded. progress(frames written, frames expected or None).  Raises VideoError (a CartoonError) with a message
    for the user; nothing is left at `dst` then.
    """
    av = _av()
    t_start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    label = name or str(src)
    fmt, codec, crf = check_video_options(dst, codec, crf, fps, start, duration, max_side)
    strength = check_strength(strength)
    container, vstream = _open(src, label)
    with container:
        info = _info(container, vstream, 0)
        if info.duration is not None and start >= info.duration:
            raise VideoError(f"{label}: start {start:g} s is past the end of the video ({info.duration:.2f} s)")
        window = None if info.duration is None else min(info.duration - start, duration or math.inf)
        if max_seconds is not None and (window is None or window > max_seconds + 1e-3):
            length = "of unknown length" if window is None else f"{window:.1f} s long"
            raise VideoError(f"{label}: the video is {length}; at most {max_seconds:g} s can be cartoonized here "
                             "(choose a shorter part)")
        out_rate = _rate(fps) if fps else None
        expected = None
        if window is not None:
            expected = math.ceil(window * float(out_rate)) if out_rate else (
                round(window * info.fps) if info.fps else None)
        if duration is None and start == 0 and not out_rate and vstream.frames:
            expected = vstream.frames
        stylizer = FrameStylizer(engine, strength, smoothing, blend, tile=tile, lock=lock)
        with atomic_path(dst) as tmp:
            options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
            with av.open(str(tmp), "w", format=fmt, options=options) as out:
                job = _Job(av, container, vstream, out, fmt, codec, crf, stylizer, label, max_side, start, duration,
                           out_rate, expected, progress, None if copy_audio is None else set(copy_audio))
                job.run()
    written = job.written
    w, h = job.size
    span = job.span()
    return VideoResult(dst, written, job.processed, w, h, span, (written / span) if span else 0.0, codec, job.audio_log,
                       len(stylizer.cuts), time.perf_counter() - t_start, job.dropped)


class _Job:
    """One pass over the input: demux every stream; video frames are decoded, turned upright, scaled, cartoonized in
    batches and encoded; audio packets are copied (or decoded and re-encoded) as they come."""

    BATCH = 4  # frames decoded ahead of the generator (times the engine's batch size)

    def __init__(self, av, container, vstream, out, fmt, codec, crf, stylizer: FrameStylizer, label, max_side,
                 start, duration, out_rate, expected, progress, copy_audio=None):
        self.av, self.container, self.vstream, self.out = av, container, vstream, out
        self.fmt, self.codec, self.crf, self.stylizer, self.label = fmt, codec, crf, stylizer, label
        self.max_side, self.start, self.out_rate, self.expected = max_side, float(start), out_rate, expected
        self.end = None if duration is None else self.start + float(duration)
        self.progress = progress or (lambda done, total: None)
        self.copy_audio = copy_audio
        self.in_tb = vstream.time_base or Fraction(1, 90000)
        self.written = self.processed = 0
        self.size: tuple[int, int] = (0, 0)
        self.batch: list[tuple[np.ndarray, float, list[int]]] = []
        self.pending = None  # (frame, t): the last decoded frame, whose outputs are known when the next arrives
        self.last_pts: int | None = None
        self.next_out = 0  # --fps: index of the next output frame
        self.venc = None
        self.first_t: float | None = None
        self.last_t = 0.0
        self.last_dur = 0.0
        self.max_end = 0.0  # the latest packet end seen (s): shows a truncated file
        self.audio: dict[int, dict] = {}
        self.backlog: list | None = []  # audio packets that arrive before the first video frame is decoded
        self.audio_log: list[str] = []
        self.dropped: list[str] = []
        self.eof = True
        rate = vstream.average_rate or vstream.guessed_rate
        self.in_frame_dur = float(1 / rate) if rate else 1 / 25

    # ---- setup ------------------------------------------------------------------------------------------------

    def _setup_audio(self) -> None:
        out = self.out
        supported = out.supported_codecs
        for s in self.container.streams:
            if s is self.vstream:
                continue
            if s.type != "audio":
                if s.type in ("subtitle", "data", "attachment") or s.type == "video":
                    kind = "cover picture" if s.type == "video" else s.type
                    self.dropped.append(f"{kind} stream #{s.index}")
                continue
            name = s.codec_context.name
            entry: dict = {"in": s}
            if name in supported and (self.copy_audio is None or name in self.copy_audio):
                entry["out"] = out.add_stream_from_template(s)
                entry["copy"] = True
                self.audio_log.append(f"{name} (copied)")
            else:
                enc = FALLBACK_AUDIO[self.fmt]
                rate = 48000 if enc == "libopus" else (s.rate or 48000)
                layout = s.layout.name if s.layout and s.codec_context.channels <= 2 else "stereo"
                entry["out"] = out.add_stream(enc, rate=rate, layout=layout)
                entry["copy"] = False
                why = (f"the {self.fmt} container cannot hold {name}" if name not in supported
                       else "for playing in browsers")
                self.audio_log.append(f"{name} -> {enc.removeprefix('lib')} ({why})")
            lang = s.metadata.get("language")
            if lang:
                entry["out"].metadata["language"] = lang
            self.audio[s.index] = entry

    def _setup_video(self, w: int, h: int) -> None:
        out = self.out
        enc = CODECS[self.codec]
        rate = self.out_rate or self.vstream.average_rate or self.vstream.guessed_rate or Fraction(25)
        stream = out.add_stream(enc, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        cc = stream.codec_context
        cc.time_base = (1 / self.out_rate) if self.out_rate else self.in_tb
        stream.time_base = cc.time_base
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # BT.709, tagged: players agree on the colours
        cc.color_range = 1  # limited (tv) range
        opts = {"crf": str(self.crf)}
        if self.codec == "h264":
            opts["preset"] = "medium"
        elif self.codec == "h265":
            opts.update(preset="medium", **{"x265-params": "log-level=error"})
            if self.fmt in ("mp4", "mov"):
                cc.codec_tag = "hvc1"  # Apple players need it
        elif self.codec == "vp9":
            cc.bit_rate = 0  # constant quality
            opts.update({"deadline": "good", "cpu-used": "4", "row-mt": "1"})
        elif self.codec == "av1":
            opts["preset"] = "8"
        cc.options = opts
        lang = self.vstream.metadata.get("language")
        if lang:
            stream.metadata["language"] = lang
        for k, v in self.container.metadata.items():
            if k.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands", "duration"):
                out.metadata[k] = v
        self.venc = stream
        self.size = (w, h)

    # ---- the pass ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        av = self.av
        n_audio = len(self.container.streams.audio)
        if self.start > 0:
            try:
                self.container.seek(int(self.start / self.in_tb), stream=self.vstream, backward=True)
            except av.FFmpegError:
                self.container.seek(0)  # not seekable: decode from the start and skip
        self.vstream.thread_type = "AUTO"
        video_done = False
        audio_done: set[int] = set()
        try:
            for packet in self.container.demux():
                if packet.dts is not None and packet.time_base is not None:
                    end = (packet.pts if packet.pts is not None else packet.dts) + (packet.duration or 0)
                    self.max_end = max(self.max_end, float(end * packet.time_base))
                idx = packet.stream.index
                if packet.stream is self.vstream:
                    if video_done:
                        continue
                    for frame in packet.decode():
                        if not self._video_frame(frame):
                            video_done = True
                            break
                elif packet.stream.type == "audio":
                    if self.backlog is not None:  # nothing may be written before the video stream exists
                        self.backlog.append(packet)
                        continue
                    if idx in audio_done or idx not in self.audio:
                        continue
                    if not self._audio_packet(self.audio[idx], packet):
                        audio_done.add(idx)
                if video_done and len(audio_done) == n_audio:
                    self.eof = False
                    break
        except av.FFmpegError as e:
            at = f" at {self.last_t:.2f} s" if self.first_t is not None else ""
            raise VideoError(f"{self.label}: cannot be decoded{at}; the file is truncated or corrupt "
                             f"(FFmpeg: {_reason(e)})") from None
        self._finish_pending()
        self._flush_batch()
        if not self.written:
            self.backlog = None
            where = f" between {self.start:g} s and {self.end:g} s" if self.end else (
                f" after {self.start:g} s" if self.start else "")
            raise VideoError(f"{self.label}: no video frames{where}; the file has none, or is truncated")
        self._check_complete()
        for p in self.venc.encode(None):
            self.out.mux(p)
        for entry in self.audio.values():
            if not entry["copy"]:
                self._encode_audio(entry, None)

    def _check_complete(self) -> None:
        """A truncated file (e.g. a download cut short) decodes without an error, just fewer frames: compare the
        end of its last packet with the duration its header declares."""
        if not self.eof or self.end is not None:
            return
        declared = self.container.duration
        if not declared:
            return
        begin = (self.container.start_time or 0) / 1_000_000
        declared = declared / 1_000_000 + begin
        if self.max_end < declared - max(0.5, 0.02 * declared):
            raise VideoError(f"{self.label}: the file is truncated: its header says {declared - begin:.2f} s, "
                             f"but the data stops at {self.max_end - begin:.2f} s")

    def _video_frame(self, frame) -> bool:
        """Handle one decoded frame; False once past the end of the requested part."""
        t = frame.time
        if t is None:
            t = self.last_t + self.in_frame_dur if self.first_t is not None else 0.0
        if self.end is not None and t >= self.end - 1e-6:
            return False
        if frame.duration:
            self.last_dur = float(frame.duration * (frame.time_base or self.in_tb))
        prev, self.pending = self.pending, (frame, t)
        if prev is not None:
            self._emit(prev[0], prev[1], t)
        return True

    def _finish_pending(self) -> None:
        if self.pending is not None:
            frame, t = self.pending
            dur = self.last_dur or self.in_frame_dur
            end = t + dur if self.end is None else min(t + dur, self.end)
            self._emit(frame, t, end)
            self.pending = None

    def _emit(self, frame, t: float, t_next: float) -> None:
        """Frame `frame` is shown from `t` to `t_next` (s): decide its output timestamps, queue it."""
        if self.out_rate is None:
            if t < self.start - 1e-6:
                return
            pts = frame.pts if frame.pts is not None else round(t / self.in_tb)
            pts -= round(self.start / self.in_tb)
            if self.last_pts is not None and pts <= self.last_pts:
                return  # a repeated timestamp: the encoder would refuse it
            self.last_pts = pts
            out_pts = [pts]
        else:
            step = 1 / float(self.out_rate)
            out_pts = []
            while self.start + self.next_out * step < t_next - 1e-6:
                tau = self.start + self.next_out * step
                if tau >= t - 1e-6 or (self.first_t is None and not out_pts) or out_pts:
                    out_pts.append(self.next_out)
                self.next_out += 1
            if not out_pts:
                return  # dropped by the rate change: never goes through the generator
        if self.first_t is None:
            self.first_t = t
        self.last_t = t
        rgb = self._to_rgb(frame)
        self.batch.append((rgb, t - self.start, out_pts))
        if len(self.batch) >= self.BATCH * max(1, self.stylizer.engine.batch_size):
            self._flush_batch()

    def _to_rgb(self, frame) -> np.ndarray:
        """Decoded frame -> upright (H, W, 3) uint8 at the output size."""
        rotation = int(round(frame.rotation or 0)) % 360
        turned = rotation in (90, 270)
        dw, dh = (frame.height, frame.width) if turned else (frame.width, frame.height)
        ow, oh = _out_size(dw, dh, self.max_side)
        if min(ow, oh) < MIN_SIDE:
            raise VideoError(f"{self.label}: {ow}x{oh} frames are too small; both sides must be at least {MIN_SIDE} px")
        if self.venc is None:
            self._setup_video(ow, oh)
            self._setup_audio()  # after the video: it is stream 0, as players expect
            backlog, self.backlog = self.backlog, None
            for packet in backlog:
                if packet.stream.index in self.audio:
                    self._audio_packet(self.audio[packet.stream.index], packet)
        elif (ow, oh) != self.size:
            raise VideoError(f"{self.label}: the frame size changes mid-stream ({self.size[0]}x{self.size[1]} to "
                             f"{ow}x{oh}), which is not supported")
        sw, sh = (oh, ow) if turned else (ow, oh)  # stored orientation
        kwargs = {}
        if frame.colorspace == 2 and frame.height >= 720:  # untagged HD: BT.709, as players assume
            kwargs["src_colorspace"] = "ITU709"
        # Scaled by swscale; at full size only an odd last row / column is cut (yuv420p needs even sides).
        full = abs(sw - frame.width) <= 1 and abs(sh - frame.height) <= 1
        rgb = frame.to_ndarray(format="rgb24", width=None if full else sw, height=None if full else sh,
                               interpolation="AREA", **kwargs)
        rgb = rgb[:sh, :sw]
        if rotation:
            rgb = np.rot90(rgb, k=rotation // 90)
        return np.ascontiguousarray(rgb)

    def _flush_batch(self) -> None:
        if not self.batch:
            return
        frames = [b[0] for b in self.batch]
        cartoons = self.stylizer(frames, [b[1] for b in self.batch])
        self.processed += len(frames)
        for (_, _, pts_list), cartoon in zip(self.batch, cartoons):
            vf = self.av.VideoFrame.from_ndarray(cartoon, format="rgb24")
            vf = vf.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            for pts in pts_list:
                vf.pts = pts
                for p in self.venc.encode(vf):
                    self.out.mux(p)
                self.written += 1
            self.progress(self.written, self.expected)
        self.batch = []

    def span(self) -> float:
        if self.out_rate:
            return self.written / float(self.out_rate)
        if self.first_t is None:
            return 0.0
        end = self.last_t + (self.last_dur or self.in_frame_dur)
        if self.end is not None:
            end = min(end, self.end)
        return max(end - max(self.first_t, self.start), 0.0)

    # ---- audio ------------------------------------------------------------------------------------------------

    def _audio_packet(self, entry: dict, packet) -> bool:
        """Copy (or re-encode) one audio packet of the requested part; False once past its end."""
        if packet.dts is None:  # the demuxer's flush packet
            if not entry["copy"]:
                self._decode_audio(entry, packet)
            return True
        tb = packet.time_base
        ts = packet.pts if packet.pts is not None else packet.dts
        t = float(ts * tb)
        if self.end is not None and t >= self.end - 1e-6:
            return False
        if self.start > 0 and t < self.start - 1e-6:
            return True
        if not entry["copy"]:
            self._decode_audio(entry, packet)
            return True
        shift = round(self.start / tb)
        if shift:
            if packet.pts is not None:
                packet.pts -= shift
            packet.dts -= shift
        packet.stream = entry["out"]
        self.out.mux(packet)
        return True

    def _decode_audio(self, entry: dict, packet) -> None:
        for frame in packet.decode():
            frame.pts = None  # continuous from the start of the part; the encoder numbers the samples
            self._encode_audio(entry, frame)

    def _encode_audio(self, entry: dict, frame) -> None:
        for p in entry["out"].encode(frame):
            self.out.mux(p)


# ---------------------------------------------------------------------------------------------------------------
# The command line's part (`python -m cartoon -i clip.mp4 -o clip_cartoon.mp4`)


def add_video_arguments(parser) -> None:
    g = parser.add_argument_group("video (inputs named .mp4, .mov, .mkv, .webm, .avi, ...)")
    g.add_argument("--fps", type=float, default=None,
                   help="resample to this constant frame rate (default: keep the input's timing, variable too)")
    g.add_argument("--start", type=float, default=0.0, help="start at this time in seconds (default 0)")
    g.add_argument("--duration", type=float, default=None, help="cartoonize this many seconds (default: to the end)")
    g.add_argument("--codec", default=None, choices=tuple(CODECS),
                   help="video codec (default h264; vp9 for .webm); the sound is copied as it is")
    g.add_argument("--crf", type=int, default=None,
                   help="quality: lower is better and larger (default "
                        + ", ".join(f"{c} {q}" for c, q in DEFAULT_CRF.items()) + ")")
    g.add_argument("--smooth", type=float, default=DEFAULT_SMOOTHING,
                   help=f"time constant in seconds of the statistics' moving average against flicker (default "
                        f"{DEFAULT_SMOOTHING:g}; 0: every frame on its own, like a photo)")
    g.add_argument("--blend", type=float, default=DEFAULT_BLEND,
                   help=f"weight of the previous output, warped along the motion, where the motion is tracked "
                        f"(default {DEFAULT_BLEND:g}; 0: off)")


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def output_path(src: Path, out: Path, into_folder: bool) -> Path:
    """Where a video goes: `out` itself when it is a video file name (one input), else `out/<stem><suffix>`, keeping
    the input's container when we can write it, else .mp4."""
    if not into_folder and out.suffix.lower() in CONTAINERS and not out.is_dir():
        return out
    suffix = src.suffix.lower() if src.suffix.lower() in CONTAINERS else ".mp4"
    return out / f"{src.stem}{suffix}"


def run_from_cli(engine: Cartoonizer, src: Path, dst: Path, args, lock=None) -> VideoResult:
    """One video with the CLI's options and a progress bar in frames (with an ETA)."""
    import sys

    from tqdm import tqdm

    smoothing = args.smooth if args.smooth and args.smooth > 0 else None
    if args.smooth is not None and args.smooth < 0:
        raise VideoError(f"--smooth must be at least 0, got {args.smooth:g}")
    with tqdm(total=None, unit="frame", desc=src.name, leave=False, dynamic_ncols=True,
              file=sys.stderr) as bar:
        def progress(done: int, total: int | None) -> None:
            if total and bar.total != max(total, done):
                bar.total = max(total, done)
            bar.update(done - bar.n)

        result = cartoonize_video(engine, src, dst, strength=args.strength, max_side=args.max_side, fps=args.fps,
                                  start=args.start, duration=args.duration, codec=args.codec, crf=args.crf,
                                  smoothing=smoothing, blend=args.blend, tile=args.tile, lock=lock,
                                  progress=progress)
    tqdm.write(f"{dst}: {result.summary}", file=sys.stderr)
    return result
