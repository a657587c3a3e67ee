"""Video files: cartoonize a clip frame by frame, with its sound, its timing and no flicker.

    from cartoon import Cartoonizer, Studio
    from cartoon.video import cartoonize_video
    Studio().video("clip.mp4", "clip_cartoon.mp4", "ghibli", max_side=720)   # a Studio's style, shared with stills
    cartoonize_video(Cartoonizer("ghibli"), "clip.mp4", "clip_cartoon.mp4", max_side=720)   # or an engine of yours

Decoding and encoding go through PyAV, whose wheels ship FFmpeg (no system ffmpeg needed).  Frames stream through
the generator a few at a time, so memory does not grow with the clip's length; the output is written to a temporary
file next to the destination and renamed over it only when complete (an error or Ctrl-C leaves nothing behind).

Kept from the input: every audio stream, copied packet for packet when the output container can hold its codec
(re-encoded to AAC, or Opus for WebM, when it cannot); the frame timestamps, so the frame rate, variable or constant,
is the input's (unless `fps` resamples to a constant rate); the rotation (frames are turned upright before the
generator sees them, and written upright); container metadata (title, date, ...) and stream languages.
Subtitle and data streams are dropped.

This module is the I/O (PyAV: demuxing, decoding, turning upright, scaling, encoding, muxing, audio); what happens
between consecutive frames against flicker (statistics smoothed over time, scene cuts, the motion-compensated blend)
is cartoon/temporal.py's `FrameStylizer`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .engine import Cartoonizer
from .errors import VideoError
from .imageio import MIN_SIDE, atomic_path, file_problem
from .options import check_strength, check_tile
from .temporal import DEFAULT_BLEND, DEFAULT_SMOOTHING, FrameStylizer

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

Progress = Callable[[int, "int | None"], None]  # (frames written, frames expected or None)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


# ---------------------------------------------------------------------------------------------------------------
# Reading


def _av():
    try:
        import av
    except ImportError:
        raise VideoError("video needs PyAV, which is not installed here: pip install av") from None
    return av


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


def _timing(container, stream) -> tuple[float | None, float | None]:
    """(average frame rate, duration in seconds) as the file declares them; None where it does not."""
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    else:
        duration = None
    return (float(rate) if rate else None), duration


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
                     tile: int | None = None, max_seconds: float | None = None,
                     copy_audio: Iterable[str] | None = None, progress: Progress | None = None,
                     name: str | None = None) -> VideoResult:
    """Cartoonize the video `src` into `dst` (.mp4, .m4v, .mov, .mkv or .webm), written atomically.

    max_side: downscale frames so the longer side is at most this. fps: resample to this constant rate (default:
    the input's timestamps, variable rates too). start / duration: the part to cartoonize, in seconds (audio is cut
    at the nearest packet). codec: h264 (default; vp9 for .webm), h265, vp9 or av1; crf: its quality (lower is
    better; defaults in DEFAULT_CRF). smoothing, blend: see temporal.FrameStylizer. tile: the engine's tile size for
    the frames. max_seconds: refuse longer parts (the app's limit). copy_audio: the audio codecs to copy (default:
    any the container can hold; the app passes what browsers play), others are re-encoded. progress(frames written,
    frames expected or None).  Raises VideoError (a CartoonError) with a message for the user; nothing is left at
    `dst` then.
    """
    av = _av()
    t_start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    label = name or str(src)
    fmt, codec, crf = check_video_options(dst, codec, crf, fps, start, duration, max_side)
    strength = check_strength(strength)
    tile = None if tile is None else check_tile(tile)
    container, vstream = _open(src, label)
    with container:
        in_fps, in_duration = _timing(container, vstream)
        if in_duration is not None and start >= in_duration:
            raise VideoError(f"{label}: start {start:g} s is past the end of the video ({in_duration:.2f} s)")
        window = None if in_duration is None else min(in_duration - start, duration or math.inf)
        if max_seconds is not None and (window is None or window > max_seconds + 1e-3):
            length = "of unknown length" if window is None else f"{window:.1f} s long"
            raise VideoError(f"{label}: the video is {length}; at most {max_seconds:g} s can be cartoonized here "
                             "(choose a shorter part)")
        out_rate = _rate(fps) if fps else None
        expected = None
        if window is not None:
            expected = math.ceil(window * float(out_rate)) if out_rate else (
                round(window * in_fps) if in_fps else None)
        if duration is None and start == 0 and not out_rate and vstream.frames:
            expected = vstream.frames
        stylizer = FrameStylizer(engine, strength, smoothing, blend, tile=tile)
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
