"""Studio: the one entry point for every front end (the app, `python -m cartoon`, video, scripts).

    from cartoon import Studio, cartoonize
    studio = Studio()                                          # loads styles on first use, then keeps them
    result = studio.run("photo.jpg", "ghibli", mode="auto")    # -> StudioResult
    result.to_pil().save("cartoon.png"); print(result.summary)
    studio.video("clip.mp4", "clip_cartoon.mp4", "ghibli")     # -> cartoon.video.VideoResult (scene mode)
    cartoonize("photo.jpg", style="ghibli", mode="auto")       # the same through one shared Studio

The style is resolved once, where a call comes in (`registry.resolve_style`), and its options are checked there
(`cartoon.options`); what runs below takes them as they are.

Modes. "scene": the style's generator on the whole photo. "portrait": every face of at least PORTRAIT_MIN_FACE px
(in the photo as given, before `max_side`: faces are found and cropped at full resolution, then pasted into the
downscaled picture), not in profile and in focus, is found, aligned and cut out (`facecrop`), cartoonized with the
portrait style, given the photo's colour, light, focus and grain, and pasted back over the photo
(`background="photo"`) or over the chosen style's cartoon of the whole photo (`background="cartoon"`); the faces
left alone are in `StudioResult.skipped`, with why. "auto": portrait when the largest face (`facecrop.Face.size`,
its box's shorter side) is at least AUTO_PORTRAIT_FACE_FRACTION of the image's shorter side, else scene; scene too
when face detection is unavailable.

Faces get the chosen style when it is a portrait style, else the Studio's portrait style (`portrait_style`, by
default the registry's DEFAULT_PORTRAIT_STYLE) when its weights are there, else the chosen style.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from .engine import CartoonResult, Cartoonizer
from .errors import CartoonError
from .imageio import ImageInput, RGBImage, load_image
from .options import check_background, check_mode, check_strength, check_tile
from .registry import DEFAULT_PORTRAIT_STYLE, DEFAULT_STYLE, Style, available_styles, resolve_style

if TYPE_CHECKING:
    from .video import VideoResult

log = logging.getLogger("cartoon.studio")

# Auto mode goes portrait when the largest face's size (Face.size) is at least this fraction of the shorter side.
AUTO_PORTRAIT_FACE_FRACTION = 0.15
PORTRAIT_CROP_SIZE = 256  # px: the aligned face crops, the portrait style's input size
PORTRAIT_MIN_FACE = 48  # px: smaller faces are not cartoonized as portraits

StyleSpec = Union[str, os.PathLike, Style]  # a registered name, a weights folder, a Hub repo id, or a Style
Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)


@dataclasses.dataclass(eq=False)
class FaceResult:
    photo: np.ndarray  # (S, S, 3) uint8: the aligned crop on white, what the face style got
    cartoon: np.ndarray  # (S, S, 3) uint8: the face style's cartoon of it
    saliency: np.ndarray  # (S, S) uint8: the face style's saliency map of the crop
    box: tuple[float, float, float, float]  # the face in `StudioResult.photo`: x0, y0, x1, y1
    pasted: np.ndarray | None = None  # (S, S, 3) uint8: the cartoon as pasted back (the photo's colour and light)


@dataclasses.dataclass(eq=False)
class SkippedFace:
    box: tuple[float, float, float, float]  # the face in `StudioResult.photo`: x0, y0, x1, y1
    reason: str  # "too small", "profile" or "blurred" (facecrop.SKIP_REASONS)
    detail: str  # e.g. "31 px, under 48" (sizes in the photo as given)


@dataclasses.dataclass(eq=False)
class StudioResult:
    image: RGBImage  # the cartoon, the size of `photo`, the input's alpha kept
    photo: RGBImage  # the input as it was cartoonized (after max_side)
    saliency: np.ndarray | None  # (H, W) uint8 whole-image saliency; None in portrait mode over the photo
    mode: str  # what ran: "scene" or "portrait"
    requested_mode: str  # what was asked for: "auto", "scene" or "portrait"
    reason: str  # auto mode: why it chose `mode` ("" otherwise)
    style: str  # display name of the chosen style
    face_style: str | None = None  # portrait mode: display name of the style the faces got
    face_style_name: str | None = None  # portrait mode: that style's name (registered, or its folder / repo id)
    background: str | None = None  # portrait mode: "photo" or "cartoon"
    faces: list[FaceResult] = dataclasses.field(default_factory=list)
    skipped: list[SkippedFace] = dataclasses.field(default_factory=list)  # portrait mode: faces left as they are
    strength: float = 1.0
    device: str = ""
    precision: str = ""
    seconds: float = 0.0

    def to_pil(self):
        return self.image.to_pil()

    def saliency_pil(self):
        """The saliency map as a grayscale PIL image; None when there is none (portrait mode over the photo)."""
        from PIL import Image

        return None if self.saliency is None else Image.fromarray(self.saliency, "L")

    @property
    def summary(self) -> str:
        """One line saying what was done, e.g. "Ghibli (Hayao) · scene mode · strength 1 · 640×480 px · cpu, fp32
        · 0.52 s"."""
        if self.mode == "portrait":
            n = len(self.faces)
            around = f"{self.style} cartoon" if self.background == "cartoon" else "the photo"
            skipped = ""
            if self.skipped:
                why = {}
                for f in self.skipped:
                    why[f.reason] = why.get(f.reason, 0) + 1
                skipped = f"; {len(self.skipped)} left as they are: " + ", ".join(f"{k} {r}" for r, k in why.items())
            used = f"faces: {self.face_style}, background: {around} ({n} face{'s' if n != 1 else ''}{skipped})"
        else:
            used = self.style
        mode = f"{self.mode} mode (auto: {self.reason})" if self.requested_mode == "auto" else f"{self.mode} mode"
        w, h = self.photo.size
        dev = f"{self.device}, {self.precision}" if self.precision else self.device
        return f"{used} · {mode} · strength {self.strength:g} · {w}×{h} px · {dev} · {self.seconds:.2f} s"


class Studio:
    """Styles (each loaded once per device, on first use), the face pipeline, and `run`, which applies the mode
    policy, and `video`. Safe to share between threads: each loaded style runs its generator under its own lock
    (`Cartoonizer.lock`, taken by the engine itself).

    device: the default device of `run` and `video` ("auto", "cpu", "cuda", "cuda:N"). backend / precision /
      threads / compile / overlap: how styles are loaded (see `Cartoonizer`). portrait_style: what faces get when
      the chosen style is not a portrait style (None: the chosen style). faces: a face pipeline
      (`facecrop.FacePipeline`, or anything with its `detect` / `run` / `min_face`) to use instead of the default
      one, which is built on first need.
    """

    def __init__(self, *, device: str = "auto", backend: str = "torch", precision: str = "auto",
                 threads: int | None = None, compile: bool = False, overlap: int = 64,
                 portrait_style: StyleSpec | None = DEFAULT_PORTRAIT_STYLE, faces: Any = None):
        self.device = device
        self._options = dict(backend=backend, precision=precision, threads=threads, compile=compile, overlap=overlap)
        self.portrait_style = portrait_style
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, str], Cartoonizer] = {}
        self.errors: dict[str, str] = {}  # style -> why its weights could not be loaded (preload, face styles)
        self._faces = faces
        self._faces_lock = threading.Lock()
        self._faces_error: str | None = None

    # ---- styles -------------------------------------------------------------------------------------------------

    def engine(self, style: StyleSpec, device: str | None = None) -> tuple[Cartoonizer, threading.RLock]:
        """The loaded style on `device` (default: the Studio's) and its lock (`Cartoonizer.lock`: the engine takes
        it for each pass; hold it only to keep several calls back to back)."""
        style = resolve_style(style)
        key = (style.name, device or self.device)
        with self._lock:
            if key not in self._engines:
                if key[0] in self.errors:
                    raise CartoonError(f"style {key[0]!r} cannot be used: {self.errors[key[0]]}")
                t0 = time.perf_counter()
                engine = Cartoonizer(style, device=key[1], **self._options)
                self._engines[key] = engine
                log.info("loaded style %s on %s (%s) in %.1f s", key[0], engine.device, engine.precision,
                         time.perf_counter() - t0)
            engine = self._engines[key]
        return engine, engine.lock

    def preload(self, warm: bool = True) -> None:
        """Load every registered style whose weights are there (and, on CPU, run it once: the first call is slow);
        a style that fails is recorded in `errors` and left out of `styles()`, the others still load."""
        for style in available_styles():
            try:
                engine, _ = self.engine(style)
                if warm and engine.device == "cpu":  # (ZeroGPU allows no CUDA work outside a request)
                    engine(np.full((64, 64, 3), 128, np.uint8))
            except Exception as e:  # noqa: BLE001 - one broken style must not keep the others off
                msg = str(e) if isinstance(e, CartoonError) else f"{type(e).__name__}: {e}"
                self.errors[style.name] = msg
                log.warning("style %s not loaded: %s", style.name, msg)
        if self.faces_error():
            log.warning("portrait mode unavailable: %s", self.faces_error())

    def styles(self, mode: str | None = None) -> list[Style]:
        """Registered styles whose weights are there and did not fail to load, optionally only those for `mode`."""
        return [s for s in available_styles(mode) if s.name not in self.errors]

    def default_tile(self) -> int:
        """The tile size a style loaded on the default device uses when `run` is given none."""
        for (_, device), engine in self._engines.items():
            if device == self.device:
                return engine.tile
        return 512

    def face_style(self, style: StyleSpec, device: str | None = None) -> Style:
        """What faces get: `style` if it is a portrait style, else the portrait style if it loads (on `device`),
        else `style` (and why not is logged and kept in `errors`)."""
        style = resolve_style(style)
        if style.mode == "portrait" or self.portrait_style is None:
            return style
        try:
            portrait = resolve_style(self.portrait_style)
            if portrait.path is None and not portrait.is_available():
                return style
            self.engine(portrait, device)
        except CartoonError as e:
            spec = self.portrait_style
            key = spec.name if isinstance(spec, Style) else os.fspath(spec)
            if key not in self.errors:
                self.errors[key] = str(e)
                log.warning("portrait style %s not used: %s", key, e)
            return style
        return portrait

    # ---- faces --------------------------------------------------------------------------------------------------

    def faces(self):
        """The face pipeline, built once; CartoonError saying why when it cannot be."""
        with self._faces_lock:
            if self._faces is None and self._faces_error is None:
                try:
                    from facecrop import FacePipeline
                except ImportError as e:
                    log.warning("facecrop not importable: %s", e)
                    self._faces_error = "portrait mode needs the facecrop package, which is not installed here"
                else:
                    try:
                        self._faces = FacePipeline(detector="retinaface", crop_size=PORTRAIT_CROP_SIZE,
                                                   segmenter=None, min_face=PORTRAIT_MIN_FACE)
                    except CartoonError as e:  # e.g. its models are missing: scene mode still works
                        self._faces_error = f"the face pipeline could not be loaded: {e}"
                    except Exception as e:  # noqa: BLE001 - same, but unexpected: the log gets the traceback
                        log.exception("face pipeline not loaded")
                        self._faces_error = f"the face pipeline could not be loaded ({type(e).__name__}: {e})"
            if self._faces is None:
                raise CartoonError(self._faces_error)
            return self._faces

    def faces_error(self) -> str | None:
        """None when portrait mode can run, else why not."""
        try:
            self.faces()
            return None
        except CartoonError as e:
            return str(e)

    def detect(self, image: ImageInput | RGBImage) -> list:
        """The usable faces (at least the pipeline's `min_face`, not in profile, in focus), largest first
        (`facecrop.Face`), in the pixels of `image` as given."""
        pipe = self.faces()
        with self._faces_lock:
            return pipe.detect(image)

    # ---- the work -----------------------------------------------------------------------------------------------

    def _cartoonize(self, style: Style, image: ImageInput | RGBImage, strength: float, tile: int | None,
                    device: str | None, progress: Callable[[int, int], None] | None = None
                    ) -> tuple[CartoonResult, Cartoonizer]:
        """One style on one image (scene mode, no policy; options already checked); returns the engine too."""
        engine, _ = self.engine(style, device)
        img = load_image(image)
        (cartoon, saliency), = engine.stylize([img.rgb], tile=tile, progress=progress)
        return engine.finish(img, cartoon, saliency, strength), engine

    def run(self, image: ImageInput | RGBImage, style: StyleSpec = DEFAULT_STYLE, mode: str = "auto",
            strength: float = 1.0, background: str = "photo", tile: int | None = None, *,
            max_side: int | None = None, device: str | None = None,
            progress: Progress | None = None) -> StudioResult:
        """Cartoonize one image: `mode` "auto", "scene" or "portrait" (see the module docstring); `strength` in
        [0, 1]; `background` "photo" or "cartoon" (portrait mode); `tile` the tile size for this call (default:
        the style's, 512 on CPU, 1024 on GPU); `max_side` downscales the input first; `progress(fraction, text)`.
        Raises CartoonError with a message for the user (facecrop.NoFaceError in portrait mode without a face)."""
        t0 = time.perf_counter()
        check_mode(mode)
        check_background(background)
        strength = check_strength(strength)
        tile = None if tile is None else check_tile(tile)
        style = resolve_style(style)
        report = progress or (lambda fraction, text: None)
        report(0.0, "Reading the photo")
        full = load_image(image)
        # faces are found and cropped in `full`, pasted into `img` (the same object when max_side changes nothing)
        img = load_image(full, name=str(image) if isinstance(image, (str, os.PathLike)) else None, max_side=max_side)

        resolved, reason, faces = mode, "", None
        if mode == "auto":
            if self.faces_error():
                resolved, reason = "scene", "face detection is not available here"
            else:
                report(0.05, "Looking for faces")
                faces = self.detect(full)
                if faces:
                    fraction = faces[0].size / min(full.rgb.shape[:2])
                    big = fraction >= AUTO_PORTRAIT_FACE_FRACTION
                    resolved = "portrait" if big else "scene"
                    reason = (f"largest face is {fraction:.0%} of the shorter side, "
                              f"{'≥' if big else '<'} {AUTO_PORTRAIT_FACE_FRACTION:.0%}")
                else:
                    resolved, reason = "scene", f"no face of at least {self.faces().min_face:g} px found"

        def tiles(done: int, total: int) -> None:
            report(0.1 + 0.8 * done / total, f"Cartoonizing tile {done}/{total}")

        out = StudioResult(image=img, photo=img, saliency=None, mode=resolved, requested_mode=mode, reason=reason,
                           style=style.display_name, strength=strength)
        if resolved == "scene":
            report(0.1, "Cartoonizing")
            result, engine = self._cartoonize(style, img, strength, tile, device, tiles)
            out.image, out.saliency = result.image, result.saliency
        else:
            pipe = self.faces()
            face_style = self.face_style(style, device)
            crop_saliency: list[np.ndarray] = []
            scene_saliency: list[np.ndarray] = []
            engine = None

            def stylize(crop: np.ndarray) -> np.ndarray:
                nonlocal engine
                r, engine = self._cartoonize(face_style, crop, strength, tile, device)
                crop_saliency.append(r.saliency)
                return r.image.rgb

            def scene(photo: np.ndarray) -> np.ndarray:
                r, _ = self._cartoonize(style, photo, strength, tile, device, tiles)
                scene_saliency.append(r.saliency)
                return r.image.rgb

            report(0.1, "Aligning and cartoonizing faces")
            with self._faces_lock:
                # (`source` only when there is one: a pipeline of the caller's may not take it)
                pr = pipe.run(img, stylize, background=background,
                              scene=scene if background == "cartoon" else None, faces=faces,
                              **({} if full is img else {"source": full}))
            out.image = RGBImage(np.ascontiguousarray(pr.image), img.alpha)
            out.saliency = scene_saliency[0] if scene_saliency else None
            out.face_style, out.face_style_name = face_style.display_name, face_style.name
            out.background = background
            scale = getattr(pr, "scale", 1.0)
            pasted = getattr(pr, "pasted", None) or pr.stylized
            out.faces = [FaceResult(c.image, styl, sal, c.face.scaled(scale).box if scale != 1 else c.face.box, p)
                         for c, styl, sal, p in zip(pr.crops, pr.stylized, crop_saliency, pasted)]
            out.skipped = [SkippedFace(s.face.scaled(scale).box if scale != 1 else s.face.box, s.reason, s.detail)
                           for s in getattr(pr, "skipped", [])]
        if engine is not None:
            out.device, out.precision = engine.device, engine.precision
        else:
            out.device = device or self.device
        out.seconds = time.perf_counter() - t0
        return out

    def video(self, src: str | os.PathLike, dst: str | os.PathLike, style: StyleSpec = DEFAULT_STYLE,
              strength: float = 1.0, tile: int | None = None, *, max_side: int | None = None,
              device: str | None = None, **options) -> VideoResult:
        """Cartoonize the video `src` into `dst` with a loaded style, in scene mode (`cartoon.video.cartoonize_video`:
        its sound, its timing and no flicker). `strength`, `tile`, `max_side` as in `run`; `options`: the other
        arguments of `cartoonize_video` (fps, start, duration, codec, crf, smoothing, blend, max_seconds,
        copy_audio, progress, name). Frames share the generator with stills, a batch of frames at a time."""
        from .video import cartoonize_video

        engine, _ = self.engine(style, device)
        return cartoonize_video(engine, src, dst, strength=strength, tile=tile, max_side=max_side, **options)


_SHARED: Studio | None = None
_SHARED_LOCK = threading.Lock()


def shared_studio() -> Studio:
    """The Studio `cartoonize` uses: made on first use, its styles kept loaded for later calls."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = Studio()
        return _SHARED


def cartoonize(image: ImageInput | RGBImage, style: StyleSpec = DEFAULT_STYLE, mode: str = "auto",
               strength: float = 1.0, background: str = "photo", tile: int | None = None, *,
               max_side: int | None = None, device: str | None = None) -> StudioResult:
    """One call for scripts: `cartoonize("photo.jpg", style="ghibli", mode="auto").to_pil()`. Arguments as in
    `Studio.run`; models are loaded once and reused by later calls."""
    return shared_studio().run(image, style, mode, strength, background, tile, max_side=max_side, device=device)
