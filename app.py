"""Cartoon Studio: the web app (Gradio), locally or on Hugging Face Spaces.

    python app.py                       # http://127.0.0.1:7860
    python app.py --host 0.0.0.0 --port 8080 --share

Thin on purpose: the UI, the queue and the wiring live here; every image operation lives in `cartoon/` (decoding,
the generator, tiling, strength, and `cartoon.studio`: the models, the scene / portrait / auto policy) and
`facecrop/` (face detection, alignment, pasting back).

Scripting it (`pip install gradio_client`):

    from gradio_client import Client, handle_file
    c = Client("http://127.0.0.1:7860")
    cartoon_png, before_after, saliency_png, crops, download, info = c.predict(
        handle_file("photo.jpg"), "ghibli", "auto", 1.0, "photo", 1024, 512, "auto", api_name="/cartoonize")
    gallery, info = c.predict([handle_file("a.jpg"), handle_file("b.jpg")], "shinkai", "scene", 0.8, "photo",
                              1024, 512, "auto", api_name="/cartoonize_batch")
    video, download, info = c.predict(handle_file("clip.mp4"), "ghibli", 1.0, 480, api_name="/cartoonize_video")
    c.predict(api_name="/styles")      # the styles this server can run
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home at start (and none offline)

import argparse
import ctypes
import functools
import html
import importlib.util
import logging
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

import gradio as gr
import numpy as np
from PIL import Image

from cartoon import CartoonError, RGBImage, load_image, save_image
from cartoon import video as cvideo
from cartoon.imageio import MIN_SIDE, smallest_max_side
from cartoon.options import BACKGROUNDS, MODES
from cartoon.registry import DEFAULT_STYLE, STYLES, WEIGHTS_DIR, Style
from cartoon.studio import Studio, StudioResult

try:  # Hugging Face ZeroGPU: present on Spaces only; the GPU is attached for the duration of a decorated call
    import spaces
except ImportError:
    spaces = None

log = logging.getLogger("cartoon.app")

# The library's choices, with the page's words for them (a choice added there without words here stops the start).
_MODE_TEXT = {"auto": "Auto (portrait when a face is large enough)", "scene": "Scene", "portrait": "Portrait"}
MODE_LABELS = [(_MODE_TEXT[m], m) for m in MODES]
_BACKGROUND_TEXT = {"photo": "Keep the photo", "cartoon": "Cartoon it too"}
BACKGROUND_LABELS = [(_BACKGROUND_TEXT[b], b) for b in BACKGROUNDS]
MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE = 64, 4096  # the longest output side; inputs are only ever downscaled
OUTPUT_SIDE_CPU, OUTPUT_SIDE_GPU = 1024, 2048  # its default: a 1024 px photo takes seconds on 2 CPU threads
MIN_TILE, MAX_TILE = 128, 2048  # the page's own range (the library takes tiles down to cartoon.tiling.MIN_TILE)
MAX_UPLOAD = "40mb"
MAX_BATCH = 16  # photos per batch request
OUTPUT_TTL_S = 3600  # written PNGs older than this are removed
GPU_DURATION_S = 120  # ZeroGPU: seconds of GPU one request may hold
# Video: the longest part cartoonized per request (s). Two CPU threads run `lite` at 480p at about 2 frames/s, so 10 s
# of video is minutes of work; CARTOON_VIDEO_MAX_SECONDS overrides both.
VIDEO_MAX_SECONDS_CPU, VIDEO_MAX_SECONDS_GPU = 10, 60
MIN_VIDEO_SIDE, MAX_VIDEO_SIDE = 64, 1920
GPU_VIDEO_DURATION_S = 300


# ---------------------------------------------------------------------------------------------------------------
# Models: loaded once, shared by every request (cartoon.studio.Studio)

STUDIO: Studio | None = None


def studio() -> Studio:
    """The server's cartoon.studio.Studio: every style with weights loaded (and warmed up) once, at start."""
    global STUDIO
    if STUDIO is None:
        STUDIO = Studio()
        STUDIO.preload()
    return STUDIO


def default_concurrency() -> int:
    """Requests that run at once. One on CPU: torch already uses every core for one image. Two on a GPU: one
    decodes / encodes on the CPU while the other runs the network."""
    import torch

    return 2 if (spaces is not None or torch.cuda.is_available()) else 1


def default_max_side() -> int:
    """The output size (longest side) the page starts with: larger where a GPU makes it quick."""
    import torch

    return OUTPUT_SIDE_GPU if (spaces is not None or torch.cuda.is_available()) else OUTPUT_SIDE_CPU


def device_choices() -> list[str]:
    import torch

    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------------------------------------------------------
# Outputs on disk (Gradio serves files; the PNGs are written losslessly by cartoon.save_image)

OUTPUT_ROOT = Path(tempfile.gettempdir()) / "cartoon-studio"


def _new_output_dir() -> Path:
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in OUTPUT_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > OUTPUT_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    d = OUTPUT_ROOT / uuid.uuid4().hex
    d.mkdir()
    return d


def _stem(path: str | None, fallback: str = "photo") -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(path).stem if path else "")[:60].strip("._")
    return stem or fallback


def _save(img: RGBImage | np.ndarray, path: Path) -> str:
    """Write a lossless PNG: an RGB(A) image, an (H, W, 3) array or an (H, W) map (saliency)."""
    if isinstance(img, np.ndarray):
        img = RGBImage(np.ascontiguousarray(img)) if img.ndim == 3 else Image.fromarray(img, "L")
    return str(save_image(img, path))


# ---------------------------------------------------------------------------------------------------------------
# The work


class UserError(CartoonError):
    """A request we refuse, with a message for the user."""


def _text(message: str) -> str:
    """A message for Gradio, which renders it as HTML: file names are the user's, so no markup gets through."""
    return html.escape(message, quote=False)


def _user_errors(fn: Callable) -> Callable:
    """Every failure reaches the user as a gr.Error with a message, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except CartoonError as e:
            raise gr.Error(_text(str(e)), title="Cannot cartoonize this", print_exception=False) from None
        except MemoryError:
            raise gr.Error("Out of memory: choose a smaller output size.", print_exception=False) from None
        except Exception as e:  # noqa: BLE001 - the details go to the server log, a message to the user
            if type(e).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
                raise gr.Error("The GPU ran out of memory: choose a smaller output size or tile size.",
                               print_exception=False) from None
            log.exception("request failed")
            raise gr.Error(f"Something went wrong on our side ({type(e).__name__}); the server log has the details.",
                           print_exception=False) from None

    return wrapper


def _available(style: str) -> Style:
    """The style asked for, when this server has it; else a UserError naming those it has."""
    styles = {s.name: s for s in studio().styles()}
    if not styles:
        raise UserError(no_styles_message())
    if style not in styles:
        raise UserError(f"style {style!r} is not available here; choose one of: {', '.join(styles)}")
    return styles[style]


def _check_options(style: str, max_side: float, tile: float, device: str) -> tuple[Style, int, int]:
    """The style and the page's own limits; mode, background and strength are the library's to check
    (`Studio.run`, where they come in)."""
    st = _available(style)
    try:
        max_side, tile = int(max_side), int(tile)
    except (TypeError, ValueError):
        raise UserError("output size and tile size must be numbers") from None
    if not MIN_OUTPUT_SIDE <= max_side <= MAX_OUTPUT_SIDE:
        raise UserError(f"output size must be between {MIN_OUTPUT_SIDE} and {MAX_OUTPUT_SIDE} px, got {max_side}")
    if not MIN_TILE <= tile <= MAX_TILE:
        raise UserError(f"tile size must be between {MIN_TILE} and {MAX_TILE} px, got {tile}")
    if device not in device_choices():
        raise UserError(f"device must be one of {', '.join(device_choices())}, got {device!r}")
    return st, max_side, tile


def _process(path: str, name: str, style: Style, mode: str, strength: float, background: str, max_side: int,
             tile: int, device: str, progress: Callable[[float, str], None]) -> tuple[StudioResult, str]:
    """One photo through the library's Studio (the mode policy lives there); `name` is the file name to show.
    Returns the result and what the output size did to the photo ("" when nothing)."""
    img = load_image(path, name=name)
    w, h = img.size
    need = smallest_max_side(img.size)
    if max_side < need:
        short = max(1, round(min(w, h) * max_side / max(w, h)))
        todo = (f"set the output size to at least {need} px, or crop it" if need <= MAX_OUTPUT_SIDE else
                f"crop it to a less extreme shape (the output size goes up to {MAX_OUTPUT_SIDE} px)")
        raise UserError(f"{name}: {w}x{h} is too long and thin for an output size of {max_side} px (its short side "
                        f"would be {short} px, under {MIN_SIDE}); {todo}.")
    out = studio().run(img, style, mode, strength, background, tile, max_side=max_side, device=device,
                       progress=progress)
    resized = f"downscaled from {w}×{h} px to the output size, {max_side} px" if out.photo.size != img.size else ""
    return out, resized


def _progress_fn(progress) -> Callable[[float, str], None]:
    def report(fraction: float, desc: str) -> None:
        try:
            progress(fraction, desc=desc)
        except Exception:  # noqa: BLE001 - progress is cosmetic (and absent outside a Gradio request)
            pass
    return report


def _gpu(fn: Callable) -> Callable:
    """ZeroGPU: hold a GPU for the duration of the call when the `spaces` package is present."""
    return spaces.GPU(duration=GPU_DURATION_S)(fn) if spaces is not None else fn


@_gpu
@_user_errors
def cartoonize(photo: str | None, style: str, mode: str, strength: float, background: str, max_side: float,
               tile: float, device: str, progress=gr.Progress()):
    """Cartoonize one photo. Returns (cartoon PNG, (photo, cartoon) for the before/after slider, saliency PNG,
    face crops gallery, the PNG again for the download button, a line saying what was done)."""
    if photo is None:
        raise UserError("Upload a photo first (JPEG, PNG, WebP, BMP or TIFF).")
    st, max_side, tile = _check_options(style, max_side, tile, device)
    name = Path(photo).name
    out, resized = _process(photo, name, st, mode, strength, background, max_side, tile, device,
                            _progress_fn(progress))
    _progress_fn(progress)(0.95, "Saving PNG")
    d = _new_output_dir()
    stem = _stem(name)
    cartoon_png = _save(out.image, d / f"{stem}_{_made_with(out, st)}.png")
    photo_png = _save(out.photo, d / f"{stem}.png")
    saliency_png = _save(out.saliency, d / f"{stem}_{st.name}_saliency.png") if out.saliency is not None else None
    captioned = []
    for i, face in enumerate(out.faces, 1):
        captioned += [(face.photo, f"face {i}: aligned photo"), (face.cartoon, f"face {i}: {out.face_style}"),
                      (face.saliency, f"face {i}: saliency")]
    crops = [(_save(arr, d / f"{stem}_face_{i}.png"), caption) for i, (arr, caption) in enumerate(captioned)]
    info = out.summary + (f" · {resized}" if resized else "")
    if out.saliency is None and out.faces:
        info += " · saliency maps: per face, in Face crops"
    return (cartoon_png, (photo_png, cartoon_png), saliency_png, crops,
            gr.DownloadButton(value=cartoon_png, visible=True), info)


def _made_with(out: StudioResult, style: Style) -> str:
    """For file names: the style, or in portrait mode the faces' style (and the background's when it is a cartoon)."""
    if out.mode != "portrait":
        return style.name
    faces = out.face_style_name  # what `run` gave them
    return faces if out.background != "cartoon" or faces == style.name else f"{faces}_{style.name}"


@_gpu
@_user_errors
def cartoonize_batch(files: list[str] | None, style: str, mode: str, strength: float, background: str,
                     max_side: float, tile: float, device: str, progress=gr.Progress()):
    """Cartoonize several photos. Returns (gallery of cartoon PNGs, a summary). Photos that cannot be used are
    skipped with a warning naming them; when none can be used, the error says why."""
    files = [f for f in (files or []) if f]
    if not files:
        raise UserError("Upload one or more photos first.")
    if len(files) > MAX_BATCH:
        raise UserError(f"{len(files)} photos is more than the {MAX_BATCH} a batch may hold; split them up.")
    st, max_side, tile = _check_options(style, max_side, tile, device)
    report = _progress_fn(progress)
    d = _new_output_dir()
    gallery, failed, seen = [], [], set()
    t0 = time.perf_counter()
    for i, path in enumerate(files):
        name = Path(path).name
        report(i / len(files), f"Photo {i + 1} of {len(files)}: {name}")
        try:
            out, resized = _process(
                path, name, st, mode, strength, background, max_side, tile, device,
                lambda f, desc: report((i + f) / len(files), f"Photo {i + 1} of {len(files)}: {desc}"))
        except CartoonError as e:
            failed.append(str(e) if str(e).startswith(name) else f"{name}: {e}")
            continue
        stem = _stem(name, f"photo{i + 1}")
        while stem in seen:
            stem += "_"
        seen.add(stem)
        gallery.append((_save(out.image, d / f"{stem}_{_made_with(out, st)}.png"),
                        f"{name} · {out.summary}" + (f" · {resized}" if resized else "")))
    if not gallery:
        raise UserError("None of the photos could be cartoonized: " + "; ".join(failed))
    for msg in failed:
        gr.Warning(_text(f"Skipped {msg}"))
    summary = (f"{len(gallery)} of {len(files)} photos cartoonized with {st.display_name} in "
               f"{time.perf_counter() - t0:.1f} s")
    if failed:
        summary += " · skipped: " + "; ".join(_text(m) for m in failed)
    return gallery, summary


def video_max_seconds() -> float:
    """The app's length limit for one video: CARTOON_VIDEO_MAX_SECONDS, else one for CPU and one for GPU servers."""
    import torch

    env = os.environ.get("CARTOON_VIDEO_MAX_SECONDS")
    if env:
        return float(env)
    return VIDEO_MAX_SECONDS_GPU if (spaces is not None or torch.cuda.is_available()) else VIDEO_MAX_SECONDS_CPU


def _gpu_video(fn: Callable) -> Callable:
    """ZeroGPU: as _gpu, for the longer video requests."""
    return spaces.GPU(duration=GPU_VIDEO_DURATION_S)(fn) if spaces is not None else fn


@_gpu_video
@_user_errors
def cartoonize_video(video: str | None, style: str, strength: float, max_side: float, progress=gr.Progress()):
    """Cartoonize one video (scene mode, sound kept, no flicker; cartoon.video). Returns (the MP4, the MP4 again for
    the download button, a line saying what was done)."""
    if video is None:
        raise UserError("Upload a video first (MP4, MOV, MKV, WebM, AVI...).")
    try:
        side = int(max_side)
    except (TypeError, ValueError):
        raise UserError("the longest side must be a number") from None
    if not MIN_VIDEO_SIDE <= side <= MAX_VIDEO_SIDE:
        raise UserError(f"the longest side must be between {MIN_VIDEO_SIDE} and {MAX_VIDEO_SIDE} px, got {side}")
    st = _available(style)
    name = Path(video).name
    report = _progress_fn(progress)
    report(0.0, "Reading the video")
    out = _new_output_dir() / f"{_stem(name, 'video')}_{st.name}.mp4"
    result = studio().video(
        video, out, st, strength, max_side=side, max_seconds=video_max_seconds(), copy_audio=cvideo.BROWSER_AUDIO,
        name=name,
        progress=lambda done, total: report(min(done / total, 1.0) if total else 0.0,
                                            f"Frame {done}" + (f" of {total}" if total else "")))
    return str(out), gr.DownloadButton(value=str(out), visible=True), f"{st.display_name} · {result.summary}"


def styles() -> list[dict]:
    """The styles this server can run: name (what /cartoonize takes), display name, description, mode."""
    return [{"name": s.name, "display_name": s.display_name, "description": s.description, "mode": s.mode}
            for s in studio().styles()]


# ---------------------------------------------------------------------------------------------------------------
# The page


def photo_input(**kwargs) -> gr.Image:
    """gr.Image that hands the uploaded file to us undecoded: `cartoon.load_image` is the one decoding path (EXIF,
    colour profiles, alpha, decompression bombs), so a bad upload gets our message instead of a PIL traceback.
    (An instance override, not a subclass: Gradio writes a .pyi file next to any module that subclasses a
    component.)"""
    component = gr.Image(type="filepath", image_mode=None, **kwargs)
    decode = component.preprocess

    def preprocess(payload):
        if payload is None or payload.path is None:  # nothing, or a data: URL (Gradio's own decoding)
            return decode(payload)
        return str(payload.path)

    component.preprocess = preprocess
    return component


def no_styles_message() -> str:
    return (f"No style weights were found in {WEIGHTS_DIR}. Each style needs a folder there with model.safetensors "
            "and config.json (see `python -m train.export`), or set CARTOON_WEIGHTS_DIR to a folder that has them; "
            "then restart the app.")


# Group photos for portrait mode, read where the project's shared data sits next to the checkout (they cannot be
# redistributed, so they are never copied into the repository; without that folder the app simply lists fewer).
SHARED_PEOPLE = Path(__file__).resolve().parent.parent / "shared" / "data" / "people"
GROUP_EXAMPLES = ("insightface_t1.jpg", "whitebox_party7.jpg")  # six at a card table; four at a dinner table


SCENERY_EXAMPLES = Path(__file__).resolve().parent / "examples"  # landscapes and a street, licences: examples/README.md


def example_photos() -> list[str]:
    """The repository's scenery photos (examples/), photos that installed packages ship: scikit-image's (always, it
    is a requirement) and scikit-learn's; and, for portrait mode, group photos from ../shared/data/people when that
    folder is there."""
    paths = sorted(SCENERY_EXAMPLES.glob("*.jpg"))
    spec = importlib.util.find_spec("skimage")
    if spec and spec.origin:
        data = Path(spec.origin).parent / "data"
        paths += [data / n for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")]
    paths += [SHARED_PEOPLE / n for n in GROUP_EXAMPLES]
    spec = importlib.util.find_spec("sklearn")
    if spec and spec.origin:
        images = Path(spec.origin).parent / "datasets" / "images"
        paths += [images / n for n in ("china.jpg", "flower.jpg")]
    return [str(p) for p in paths if p.is_file()]


def _style_markdown(name: str | None) -> str:
    s = STYLES.get(name or "")
    return f"*{s.description}*" if s else ""


FAILED = "⚠️ **Not cartoonized**: the error message says why. The previous result was removed."


def _visible(shown: bool, n: int) -> list:
    return [gr.update(visible=shown)] * n


CSS = """
#info {min-height: 1.5em}
"""


def build_demo(st: Studio | None = None, concurrency: int | None = None, max_queue: int = 64) -> gr.Blocks:
    """The page. `concurrency`: requests that run at once (default: `default_concurrency()`); `max_queue`: requests
    that may wait, more are refused with a message."""
    global STUDIO
    if st is not None:
        STUDIO = st
    st = studio()
    names = st.styles()
    choices = [(f"{s.display_name} ({s.mode})", s.name) for s in sorted(names, key=lambda s: s.mode != "scene")]
    default = (DEFAULT_STYLE if any(s.name == DEFAULT_STYLE for s in names)
               else next((s.name for s in names if s.mode == "scene"), names[0].name if names else None))
    ready = bool(names)
    limit = max(1, concurrency or default_concurrency())

    with gr.Blocks(title="Cartoon Studio", delete_cache=(OUTPUT_TTL_S, OUTPUT_TTL_S)) as demo:
        gr.Markdown("# Cartoon Studio\nTurn a photo into a cartoon: pick a style, a mode and a strength. "
                    "Results are lossless PNGs.")
        if not ready:
            gr.Markdown(f"### ⚠️ No styles available\n{_text(no_styles_message())}", elem_id="no-styles")
        for name, err in st.errors.items():
            gr.Markdown(f"⚠️ Style **{name}** could not be loaded: {_text(err)}")

        with gr.Row():
            with gr.Column(scale=1):
                # With no styles, any value reaches cartoonize(), which says what to do (not "not in the choices").
                style = gr.Dropdown(choices, value=default, label="Style", interactive=ready, elem_id="style",
                                    allow_custom_value=not ready)
                style_info = gr.Markdown(_style_markdown(default), elem_id="style-info")
                face_error = st.faces_error()
                mode = gr.Radio(MODE_LABELS, value="auto", label="Mode", elem_id="mode",
                                info=(f"Portrait mode is unavailable: {face_error}" if face_error else
                                      "Portrait: faces are aligned, cartoonized with the portrait style and put back"))
                background = gr.Radio(BACKGROUND_LABELS, value="photo",
                                      label="Portrait background", elem_id="background",
                                      info="portrait mode: around the faces, the photo or the chosen style's cartoon")
                strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength",
                                     info="0 = the photo, 1 = the full style", elem_id="strength")
                max_side = gr.Slider(MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE, value=default_max_side(), step=32,
                                     label="Output size: longest side (px)", elem_id="max-side",
                                     info="larger photos are downscaled to this; larger sizes take longer")
                with gr.Accordion("Tiling, device", open=False) as advanced:
                    tile = gr.Slider(MIN_TILE, MAX_TILE, value=st.default_tile(), step=64, label="Tile size (px)",
                                     info="larger images run tile by tile, seamlessly; smaller tiles use less memory")
                    device = gr.Dropdown(device_choices(), value="auto", label="Device")
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("One photo", id="one") as one_tab:
                        with gr.Row():
                            photo = photo_input(label="Photo", sources=["upload", "clipboard", "webcam"],
                                                elem_id="photo", height=420)
                            result = gr.Image(label="Cartoon (PNG)", type="filepath", format="png",
                                              interactive=False, elem_id="result", height=420,
                                              buttons=["download", "fullscreen"])
                        run = gr.Button("Cartoonize", variant="primary", interactive=ready, elem_id="run")
                        info = gr.Markdown(label="info", elem_id="info")
                        download = gr.DownloadButton("Download PNG", visible=False, elem_id="download")
                        with gr.Accordion("Before / after, saliency, face crops", open=False):
                            with gr.Tabs():
                                with gr.Tab("Before / after"):
                                    compare = gr.ImageSlider(label="Photo | cartoon", type="filepath", format="png",
                                                             elem_id="compare")
                                with gr.Tab("Saliency"):
                                    saliency = gr.Image(label="Saliency map (what the generator found salient)",
                                                        type="filepath", format="png", interactive=False,
                                                        elem_id="saliency")
                                with gr.Tab("Face crops"):
                                    crops = gr.Gallery(label="Aligned faces (portrait mode)", format="png",
                                                       columns=3, elem_id="crops")
                        examples = example_photos()
                        if examples:
                            gr.Examples([[p] for p in examples], inputs=[photo], label="Examples (click one)",
                                        examples_per_page=8)
                    with gr.Tab("Several photos", id="many") as many_tab:
                        files = gr.File(label="Photos", file_count="multiple", file_types=["image"],
                                        elem_id="files")
                        run_batch = gr.Button("Cartoonize all", variant="primary", interactive=ready,
                                              elem_id="run-batch")
                        batch_info = gr.Markdown(label="summary", elem_id="batch-info")
                        gallery = gr.Gallery(label="Cartoons (PNG)", format="png", columns=3, elem_id="gallery",
                                             buttons=["download", "download_all", "fullscreen"])
                    with gr.Tab("Video", id="video") as video_tab:
                        gr.Markdown(f"Up to **{video_max_seconds():g} s** of video per request here (longer clips: "
                                    "`python -m cartoon -i clip.mp4`). Scene mode with the style and strength on "
                                    "the left; the sound is kept and the statistics are smoothed over time, so "
                                    "the cartoon does not flicker.", elem_id="video-limit")
                        with gr.Row():
                            video_in = gr.Video(label="Video", sources=["upload"], elem_id="video", height=360)
                            video_out = gr.Video(label="Cartoon (MP4)", interactive=False, elem_id="video-result",
                                                 height=360)
                        video_side = gr.Slider(MIN_VIDEO_SIDE, MAX_VIDEO_SIDE, value=480, step=16,
                                               label="Longest side (px)", elem_id="video-side",
                                               info="frames are downscaled to this first; larger is slower")
                        run_video = gr.Button("Cartoonize video", variant="primary", interactive=ready,
                                              elem_id="run-video")
                        video_info = gr.Markdown(label="info", elem_id="video-info")
                        video_download = gr.DownloadButton("Download MP4", visible=False, elem_id="video-download")

        options = [style, mode, strength, background, max_side, tile, device]
        style.change(_style_markdown, style, style_info, queue=False, api_visibility="private")
        # the Video tab takes the style and the strength only (its size is its own)
        photo_only = [mode, background, max_side, advanced]
        for tab, shown in ((one_tab, True), (many_tab, True), (video_tab, False)):
            tab.select(functools.partial(_visible, shown, len(photo_only)), None, photo_only, queue=False,
                       api_visibility="private")
        # A failed request leaves no earlier result behind as if it were this one's: cleared, and the line says so.
        run.click(cartoonize, [photo, *options], [result, compare, saliency, crops, download, info],
                  api_name="cartoonize", concurrency_limit=limit, concurrency_id="model").failure(
            lambda: (None, None, None, [], gr.DownloadButton(value=None, visible=False), FAILED),
            None, [result, compare, saliency, crops, download, info], queue=False, api_visibility="private")
        run_batch.click(cartoonize_batch, [files, *options], [gallery, batch_info], api_name="cartoonize_batch",
                        concurrency_limit=limit, concurrency_id="model").failure(
            lambda: ([], FAILED), None, [gallery, batch_info], queue=False, api_visibility="private")
        run_video.click(cartoonize_video, [video_in, style, strength, video_side],
                        [video_out, video_download, video_info], api_name="cartoonize_video",
                        concurrency_limit=limit, concurrency_id="model").failure(
            lambda: (None, gr.DownloadButton(value=None, visible=False), FAILED), None,
            [video_out, video_download, video_info], queue=False, api_visibility="private")
        gr.api(styles, api_name="styles", queue=False)
    demo.queue(max_size=max(1, max_queue), default_concurrency_limit=limit)
    return demo


def allowed_paths() -> list[str]:
    return sorted({str(Path(p).parent) for p in example_photos()})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cartoon Studio web app")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860, or $GRADIO_SERVER_PORT)")
    p.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    p.add_argument("--concurrency", type=int, default=None,
                   help="requests that run at once (default: 1 on CPU, 2 on a GPU)")
    p.add_argument("--max-queue", type=int, default=64, help="requests that may wait; more are refused")
    return p.parse_args(argv)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Bound the memory glibc keeps. Its malloc gives threads that allocate at the same time arenas of their own (up
    to 8 per core) and keeps what is freed in each for later; requests (decoding, the generator, PNG encoding) and
    Gradio's own work run on a pool of threads, so each burst of requests left RSS higher than the last (5 rounds of
    50 concurrent calls: 752 MB after the first, 1088 MB after the fifth; with two arenas 730 MB after each,
    benchmarks/bench_app_memory.py). Two arenas serve two requests at once. Not glibc (macOS, musl): nothing to do."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_arena_max = -8  # malloc.h
    libc.mallopt(m_arena_max, arenas)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    demo = build_demo(concurrency=args.concurrency, max_queue=args.max_queue)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share or None, max_file_size=MAX_UPLOAD,
                allowed_paths=allowed_paths(), footer_links=["api"], css=CSS, show_error=False)


if __name__ == "__main__":
    main()
