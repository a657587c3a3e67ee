"""Video numbers: frames/second at 480p and 720p, flicker with per-frame vs smoothed statistics, peak memory.

    python benchmarks/bench_video.py                     # speed: 854x480 and 1280x720, end to end
    python benchmarks/bench_video.py --flicker           # flicker ratios on a pan/zoom clip made of real photos
    python benchmarks/bench_video.py --rss               # peak RSS of the CLI on a short and a 10x longer clip
    python benchmarks/bench_video.py --flicker --weights runs/ghibli/best   # any weights folder

Speed: a clip of `--frames` frames (a slow pan over a photo, h264 with an AAC tone) goes through
`cartoon.video.cartoonize_video` end to end (decode, turn upright, scale, statistics pass, generator, strength,
encode, audio copy) on `--threads` CPU threads (default 2), default tile size unless `--tile`; frames/second is
frames written over wall time, after one warm-up clip.  Seeded random `lite` weights unless `--weights` (speed does
not depend on the values).

Flicker: mean |out[t] - out[t-1]| / mean |in[t] - in[t-1]| over consecutive frames of the same shot (the pair across
the cut is left out), `cartoon.temporal.flicker_ratio`.  The clip: two photos from ../shared/data/scene_photo/test
(read, never copied), each 2 s of a slow pan and zoom at 24 fps, a hard cut between them, mild sensor noise
(Gaussian, sigma 2 of 255), encoded to h264 (crf 20) and decoded back, as a camera file would be.  "global" is the
same ratio on 1/8-size frames: the colour pumping that per-frame statistics cause.  Rows: every frame on its own
(what a frames-only script does, exactly the photo path), its own statistics from the small copy (no averaging:
isolates the averaging), moving averages with time constants 0.5 s and 1 s, and the motion-compensated blend with
the previous output (`cartoon.temporal.TemporalBlend`) without and with the smoothed statistics (the default).  With no trained style shipped,
the default weights are weights/ghibli when present, else seeded random `lite` weights (a poor proxy: say which).
"from per-frame" is how far a variant's frames are from the per-frame cartoons (mean absolute difference, 0..255):
what the smoothing changes besides the flicker (a blend that smeared moving things would show up there).

Peak RSS: a fresh `python -m cartoon` process on a 640x360 clip of `--long` frames (and on one a tenth as long),
--max-side 160, its VmHWM at exit: bounded memory means both are about the same.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cartoon import Cartoonizer, Generator, save_pretrained
from cartoon.temporal import FrameStylizer, flicker_ratio
from cartoon.video import cartoonize_video

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "data" / "scene_photo" / "test"
FPS = 24


def write_clip(path: Path, frames, fps: int = FPS, audio: bool = True, crf: int = 20, preset: str = "medium"):
    import av

    frames = iter(frames)
    first = next(frames)  # the frame size
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.height, v.width = first.shape[:2]
        v.pix_fmt = "yuv420p"
        v.codec_context.options = {"crf": str(crf), "preset": preset}
        a = c.add_stream("aac", rate=44100, layout="stereo") if audio else None
        n = 0
        for f in _chain(first, frames):  # one frame at a time: long clips are never held in memory
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = n
            n += 1
            for p in v.encode(vf):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            total = int(44100 * n / fps)
            for k in range(0, total, 1024):
                t = np.arange(k, min(k + 1024, total)) / 44100
                tone = np.stack([0.2 * np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32)
                af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
                af.sample_rate, af.pts = 44100, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def _chain(first, rest):
    yield first
    yield from rest


def decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def pan(photo: np.ndarray, n: int, w: int, h: int, zoom: float = 1.0, rng=None, noise: float = 0.0):
    """n frames of a slow left-to-right pan (and zoom by `zoom` over the shot) across `photo`, resized to w x h."""
    H, W = photo.shape[:2]
    img = Image.fromarray(photo)
    for i in range(n):
        s = i / max(1, n - 1)
        cw = W * 0.75 / (1 + (zoom - 1) * s)
        ch = cw * h / w
        x0 = (W - cw) * (0.1 + 0.8 * s)
        y0 = (H - ch) * 0.5
        f = np.asarray(img.resize((w, h), Image.Resampling.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch)))
        if noise:
            f = np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)
        yield f


def load_engine(weights: str | None, threads: int) -> tuple[Cartoonizer, str]:
    torch.set_num_threads(threads)
    if weights:
        return Cartoonizer(weights, device="cpu"), weights
    ghibli = REPO / "weights" / "ghibli"
    if (ghibli / "model.safetensors").is_file():
        return Cartoonizer(str(ghibli), device="cpu"), "weights/ghibli"
    torch.manual_seed(0)
    return Cartoonizer(Generator("lite"), device="cpu"), "seeded random lite weights (no style shipped yet)"


def bench_speed(args) -> None:
    engine, what = load_engine(args.weights, args.threads)
    from skimage import data

    photo = data.astronaut()
    print(f"speed, {args.threads} CPU threads, {what}, tile {args.tile or engine.tile}, end to end "
          "(decode + statistics pass + generator + encode h264 + audio copy)")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        warm = write_clip(d / "warm.mp4", pan(photo, 4, 320, 180))
        cartoonize_video(engine, warm, d / "warm_out.mp4", tile=args.tile)
        for name, (w, h) in (("480p", (854, 480)), ("720p", (1280, 720))):
            src = write_clip(d / f"{name}.mp4", pan(photo, args.frames, w, h))
            t = time.perf_counter()
            r = cartoonize_video(engine, src, d / f"{name}_out.mp4", tile=args.tile)
            dt = time.perf_counter() - t
            print(f"  {name} ({w}x{h}): {r.frames / dt:.2f} frames/s ({r.frames} frames in {dt:.1f} s)", flush=True)


def bench_flicker(args) -> None:
    engine, what = load_engine(args.weights, args.threads)
    names = sorted(PHOTOS.glob("*.jpg"))
    if len(names) < 2:
        sys.exit(f"flicker: needs two photos in {PHOTOS}")
    a, b = (np.asarray(Image.open(p).convert("RGB")) for p in names[args.photo:args.photo + 2])
    rng = np.random.default_rng(0)
    n = args.shot_frames
    w, h = args.size
    frames = list(pan(a, n, w, h, zoom=1.15, rng=rng, noise=2.0)) + list(pan(b, n, w, h, zoom=1.1, rng=rng,
                                                                              noise=2.0))
    with tempfile.TemporaryDirectory() as d:
        clip = write_clip(Path(d) / "clip.mp4", frames, audio=False)
        frames = decode(clip)
    times = [i / FPS for i in range(len(frames))]
    print(f"flicker, {what}: {len(frames)} frames {w}x{h} at {FPS} fps, photos {names[args.photo].name} | "
          f"{names[args.photo + 1].name}, cut at frame {n}")
    print("  mean|out[t]-out[t-1]| / mean|in[t]-in[t-1]| within shots (1 = as much change as the input); "
          "'from per-frame': mean |out - per-frame cartoon| (0..255)")

    def small(fs):
        return [np.asarray(Image.fromarray(f).resize((w // 8, h // 8), Image.Resampling.BOX)) for f in fs]

    inputs_small = small(frames)
    reference = None  # the per-frame cartoons: how far each variant moves away from them
    for label, smoothing, blend in (("per-frame statistics (photo path)", None, 0.0),
                                    ("own statistics, small copy", 0.0, 0.0),
                                    ("statistics smoothed, 0.5 s", 0.5, 0.0),
                                    ("statistics smoothed, 1 s", 1.0, 0.0),
                                    ("per-frame statistics + blend 0.7", None, 0.7),
                                    ("smoothed 0.5 s + blend 0.7 (default)", 0.5, 0.7)):
        st = FrameStylizer(engine, smoothing=smoothing, blend=blend)
        outs = []
        t = time.perf_counter()
        for k in range(0, len(frames), 8):
            outs += st(frames[k:k + 8], times[k:k + 8])
        dt = time.perf_counter() - t
        cuts = [c for c in st.cuts if c]
        r = flicker_ratio(frames, outs, cuts=[n])
        g = flicker_ratio(inputs_small, small(outs), cuts=[n])
        reference = outs if reference is None else reference
        dev = np.mean([np.abs(o.astype(np.float32) - q).mean() for o, q in zip(outs, reference)])
        print(f"  {label:38s} {r:.3f}   global {g:.3f}   from per-frame {dev:5.2f}   (cuts found at {cuts}, "
              f"{dt:.0f} s)", flush=True)


def bench_rss(args) -> None:
    from skimage import data

    photo = data.astronaut()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        weights = d / "lite"
        torch.manual_seed(0)
        save_pretrained(Generator("lite"), weights)
        print(f"peak RSS of `python -m cartoon` on 640x360 clips, --max-side 160, {args.threads} threads")
        for n in (args.long // 10, args.long):
            src = write_clip(d / f"clip{n}.mp4", _pan_frames(photo, n), preset="ultrafast")
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", PEAK, "-i", str(src), "-o", str(d / f"out{n}.mp4"),
                                "--style", str(weights), "--max-side", "160", "--threads", str(args.threads)],
                               cwd=REPO, capture_output=True, text=True)
            dt = time.perf_counter() - t
            if r.returncode:
                sys.exit(r.stderr)
            peak = int(r.stdout.split()[-1]) / 1024
            print(f"  {n} frames ({n / FPS:.0f} s): peak RSS {peak:.0f} MB, {dt:.0f} s", flush=True)


# The CLI in a fresh process that prints its peak resident memory (kB) at the end.
PEAK = ("import sys; from cartoon.__main__ import main; rc = main(sys.argv[1:]); "
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(rc)")


def _pan_frames(photo: np.ndarray, n: int):
    """A long clip without holding it: a pan back and forth, one frame at a time."""
    H, W = photo.shape[:2]
    img = Image.fromarray(photo)
    for i in range(n):
        s = (i % 96) / 95
        s = s if (i // 96) % 2 == 0 else 1 - s
        x0 = (W - 360) * s
        yield np.asarray(img.resize((640, 360), Image.Resampling.BILINEAR, box=(x0, 150, x0 + 360, 352.5)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flicker", action="store_true", help="flicker ratios instead of speed")
    p.add_argument("--rss", action="store_true", help="peak memory on a long clip instead of speed")
    p.add_argument("--weights", default=None, help="a weights folder (default: weights/ghibli, else random)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=24, help="speed: frames per clip")
    p.add_argument("--tile", type=int, default=None, help="speed: tile size (default: the engine's)")
    p.add_argument("--size", type=int, nargs=2, default=(384, 216), metavar=("W", "H"), help="flicker: frame size")
    p.add_argument("--shot-frames", type=int, default=48, help="flicker: frames per shot")
    p.add_argument("--photo", type=int, default=0, help="flicker: index of the first of the two photos")
    p.add_argument("--long", type=int, default=2400, help="rss: frames of the long clip")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.flicker:
        bench_flicker(args)
    elif args.rss:
        bench_rss(args)
    else:
        bench_speed(args)


if __name__ == "__main__":
    main()
