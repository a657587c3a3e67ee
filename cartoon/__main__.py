"""Command line: cartoonize a photo or a folder of photos.

    python -m cartoon -i photo.jpg -o cartoon.png
    python -m cartoon -i photos/ -o cartoons/ --style shinkai --strength 0.8 --max-side 2048
    python -m cartoon -i people/ -o cartoons/ --style ghibli --mode auto --background cartoon
    python -m cartoon -i clip.mp4 -o clip_cartoon.mp4 --style ghibli --max-side 720

Videos (.mp4, .mov, .mkv, .webm, .avi, ...; also in folders) are cartoonized in scene mode with their sound, timing
and rotation kept and without flicker; see cartoon/video.py and the video options below.

Modes: scene (default) cartoonizes the whole image with the style; portrait finds every face, cartoonizes it with the
portrait style and puts it back over the photo or (--background cartoon) over the style's cartoon; auto is portrait
when the largest face is at least 15% of the shorter side, else scene.

Exit status: 0 when every image was written, 1 when some could not be read (they are reported and skipped),
2 when nothing could run (unknown style, missing weights, bad arguments), 130 when interrupted (Ctrl-C: the file
being written is left out, never half-written).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tqdm import tqdm

from .engine import BACKENDS
from .errors import CartoonError
from .imageio import IMAGE_SUFFIXES, save_image
from .options import BACKGROUNDS, MODES, check_strength, check_tile
from .registry import DEFAULT_STYLE, STYLES, Style, resolve_style
from .runners import PRECISIONS
from .studio import Studio
from .temporal import DEFAULT_BLEND, DEFAULT_SMOOTHING
from .video import CODECS, CONTAINERS, DEFAULT_CRF, VIDEO_SUFFIXES, VideoResult, is_video

OUTPUT_FORMATS = ("png", "jpg", "webp")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cartoon", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-i", "--input", required=True, help="an image or video file, or a folder of them")
    p.add_argument("-o", "--output", default="results",
                   help="output file (for one input image) or folder (default: results/)")
    p.add_argument("-s", "--style", default=DEFAULT_STYLE,
                   help=f"style name ({', '.join(STYLES)}), a weights folder or a Hugging Face repo id")
    p.add_argument("--mode", default="scene", choices=MODES,
                   help="scene (default): the whole image; portrait: the faces, with the portrait style; "
                        "auto: portrait when a face is large enough, else scene")
    p.add_argument("--background", default="photo", choices=BACKGROUNDS,
                   help="portrait and auto modes: around the faces, the photo (default) or the style's cartoon")
    p.add_argument("--strength", type=float, default=1.0, help="0 = the photo, 1 = full style (default 1)")
    p.add_argument("--max-side", type=int, default=None, help="downscale inputs so the longer side is at most this")
    p.add_argument("--tile", type=int, default=None, help="tile size for large images (default 512 CPU, 1024 GPU)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels (default 64)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--backend", default="torch", choices=BACKENDS)
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator (slow start, faster runs)")
    p.add_argument("--ext", default="png", choices=OUTPUT_FORMATS, help="output format for folders (default png)")
    p.add_argument("--saliency", action="store_true", help="also write the saliency map as NAME_saliency.png")
    add_video_arguments(p)
    return p


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
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


def output_path(src: Path, out: Path, into_folder: bool) -> Path:
    """Where a video goes: `out` itself when it is a video file name (one input), else `out/<stem><suffix>`, keeping
    the input's container when we can write it, else .mp4."""
    if not into_folder and out.suffix.lower() in CONTAINERS and not out.is_dir():
        return out
    suffix = src.suffix.lower() if src.suffix.lower() in CONTAINERS else ".mp4"
    return out / f"{src.stem}{suffix}"


def plan(inp: Path, out: Path, ext: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs. A single image may go to a file path; a folder always goes to a folder."""
    if inp.is_dir():
        if out.exists() and not out.is_dir():
            raise CartoonError(f"{out}: the input is a folder, so the output must be a folder too")
        files = sorted(p for p in inp.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                       and not p.name.startswith("."))
        if not files:
            raise CartoonError(f"{inp}: no images or videos in this folder (looked for "
                               f"{', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
        return [(f, output_path(f, out, True) if is_video(f) else out / f"{f.stem}.{ext}") for f in files]
    if not inp.exists():
        raise CartoonError(f"{inp}: no such file or folder")
    if is_video(inp):
        return [(inp, output_path(inp, out, False))]
    if out.suffix.lower().lstrip(".") in OUTPUT_FORMATS + ("jpeg",) and not out.is_dir():
        return [(inp, out)]
    return [(inp, out / f"{inp.stem}.{ext}")]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_strength(args.strength, "--strength")
        if args.tile is not None:
            check_tile(args.tile, "--tile")
        jobs = plan(Path(args.input), Path(args.output), args.ext)
        inputs = {j[0].resolve() for j in jobs}
        for src, dst in jobs:
            if dst.resolve() in inputs:
                raise CartoonError(f"{dst}: the output would overwrite an input; choose another output folder")
        style = resolve_style(args.style)  # once: every image and video gets this
        studio = Studio(device=args.device, backend=args.backend, precision=args.precision, threads=args.threads,
                        compile=args.compile, overlap=args.overlap)
        engine, _ = studio.engine(style)  # load it now: missing or broken weights stop here
        faces = ""
        if args.mode != "scene":
            faces_error = studio.faces_error()
            if faces_error and args.mode == "portrait":
                raise CartoonError(f"portrait mode: {faces_error}")
            if faces_error:
                print(f"warning: {faces_error}; auto mode runs every image in scene mode", file=sys.stderr)
            else:
                # loads the portrait style now (or logs why not: then the faces get --style)
                faces = f", faces: {studio.face_style(style).display_name}"
    except CartoonError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    failed, no_saliency, modes = [], [], {}
    if args.mode != "scene" and any(is_video(src) for src, _ in jobs):
        print(f"note: videos are cartoonized in scene mode (--mode {args.mode} applies to the images)", file=sys.stderr)
    bar = tqdm(jobs, unit="file", disable=len(jobs) == 1 or None, file=sys.stderr)
    for src, dst in bar:
        bar.set_postfix_str(src.name, refresh=False)
        try:
            if is_video(src):
                run_video(studio, style, src, dst, args)
                modes["scene"] = modes.get("scene", 0) + 1
                continue
            result = studio.run(src, style, args.mode, args.strength, args.background, args.tile,
                                max_side=args.max_side)
            save_image(result.image, dst)
            modes[result.mode] = modes.get(result.mode, 0) + 1
            if args.mode == "auto":  # what it chose and why
                tqdm.write(f"{src.name}: {result.mode} mode (auto: {result.reason})", file=sys.stderr)
            if args.saliency and result.saliency is not None:
                save_image(result.saliency_pil(), dst.with_name(f"{dst.stem}_saliency.png"))
            elif args.saliency:
                no_saliency.append(src.name)
        except (CartoonError, OSError, MemoryError) as e:
            failed.append(src)
            # the image and video errors start with the file's name already
            tqdm.write(f"skipped {e}" if str(e).startswith(f"{src}: ") else f"skipped {src}: {e}", file=sys.stderr)
        except KeyboardInterrupt:
            bar.close()
            print(f"\ninterrupted: {dst} was not written (nothing half-written is left)", file=sys.stderr)
            return 130
    written = len(jobs) - len(failed)
    mode = f"{args.mode} mode" + (": " + " + ".join(f"{n} {m}" for m, n in sorted(modes.items()))
                                  if args.mode == "auto" and modes else "")
    where = jobs[0][1].parent if len(jobs) > 1 else jobs[0][1]
    done = f"{written} of {len(jobs)} written to {where}" if written else f"nothing written to {where}"
    print(f"{done} (style {args.style}, {mode}{faces}, {engine.backend} on {engine.device}, {engine.precision})",
          file=sys.stderr)
    if no_saliency:
        print(f"no saliency map for {', '.join(no_saliency)}: portrait mode over the photo has none "
              "(--background cartoon has one)", file=sys.stderr)
    if failed:
        print(f"{len(failed)} failed: {', '.join(os.fspath(f) for f in failed)}", file=sys.stderr)
        return 1
    return 0


def run_video(studio: Studio, style: Style, src: Path, dst: Path, args: argparse.Namespace) -> VideoResult:
    """One video with the CLI's options (`Studio.video`) and a progress bar in frames (with an ETA)."""
    if args.smooth is not None and args.smooth < 0:
        raise CartoonError(f"--smooth must be at least 0, got {args.smooth:g}")
    with tqdm(total=None, unit="frame", desc=src.name, leave=False, dynamic_ncols=True, file=sys.stderr) as bar:
        def progress(done: int, total: int | None) -> None:
            if total and bar.total != max(total, done):
                bar.total = max(total, done)
            bar.update(done - bar.n)

        result = studio.video(src, dst, style, args.strength, args.tile, max_side=args.max_side, fps=args.fps,
                              start=args.start, duration=args.duration, codec=args.codec, crf=args.crf,
                              smoothing=args.smooth or None, blend=args.blend, progress=progress)
    tqdm.write(f"{dst}: {result.summary}", file=sys.stderr)
    return result


if __name__ == "__main__":
    sys.exit(main())
