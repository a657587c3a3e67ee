"""Reading any image a user may hand us into RGB (+ alpha) uint8, and writing results atomically.

This is the one decoding path for the CLI, the app, the face pipeline and the training data.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import uuid
import warnings
from pathlib import Path
from typing import Iterator, Union

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import ImageError

ImageInput = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]

MIN_SIDE = 16
# 8192 x 8192. Larger inputs are refused before they are decoded (decompression bombs).
MAX_PIXELS = 8192 * 8192
_ANIMATED_FORMATS = {"GIF", "PNG", "WEBP", "FLI", "APNG"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".mpo", ".jfif"}


@dataclasses.dataclass
class RGBImage:
    """An 8-bit RGB image with an optional 8-bit alpha channel (kept aside: the network sees RGB only)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None = None  # (H, W) uint8

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL says it."""
        return self.rgb.shape[1], self.rgb.shape[0]

    def to_pil(self) -> Image.Image:
        if self.alpha is None:
            return Image.fromarray(self.rgb, "RGB")
        return Image.fromarray(np.dstack([self.rgb, self.alpha]), "RGBA")


def file_problem(path: Path, what: str) -> str | None:
    """Why `path` cannot be read as `what` ("an image", "a video") before decoding it, or None."""
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return f"is a folder, not {what}"
    if path.stat().st_size == 0:
        return "empty file"
    return None


def load_image(src: ImageInput | RGBImage, max_pixels: int = MAX_PIXELS, name: str | None = None,
               max_side: int | None = None) -> RGBImage:
    """Decode `src` (a path, encoded bytes, a PIL image or a numpy array) into an `RGBImage`, downscaled so that its
    longer side is at most `max_side` (`resize_max_side`).

    EXIF orientation is applied, embedded colour profiles are converted to sRGB, grayscale / palette / CMYK / 16-bit
    inputs are converted, and alpha is kept aside.  Anything unusable raises `ImageError` with a message for the user
    that starts with `name` (default: the path, or what `src` is).
    """
    if isinstance(src, RGBImage):
        label = name or "image"
        img = _check_size(src, label, max_pixels)
    elif isinstance(src, np.ndarray):
        label = name or "array"
        img = _check_size(_from_array(src), label, max_pixels)
    elif isinstance(src, Image.Image):
        label = name or "image"
        img = _check_size(_from_pil(src, label, max_pixels), label, max_pixels)
    elif isinstance(src, (bytes, bytearray, memoryview)):
        label = name or "uploaded data"
        if len(src) == 0:
            raise ImageError(f"{label}: empty file")
        img = _open_and_decode(io.BytesIO(bytes(src)), label, max_pixels)
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        label = name or str(path)
        problem = file_problem(path, "an image")
        if problem:
            raise ImageError(f"{label}: {problem}")
        with open(path, "rb") as f:
            img = _open_and_decode(f, label, max_pixels)
    else:
        raise ImageError(f"cannot read an image from a {type(src).__name__}; give a path, bytes, a PIL image or an "
                         "array")
    return resize_max_side(img, max_side, label)


def _open_and_decode(fp, label: str, max_pixels: int) -> RGBImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fp)
    except Image.DecompressionBombError as e:
        raise ImageError(f"{label}: image is far too large ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image (or a format we cannot read); use JPEG, PNG, WebP, BMP or TIFF") from None
    except OSError as e:
        raise ImageError(f"{label}: cannot be read ({e})") from None
    with im:
        return _check_size(_from_pil(im, label, max_pixels), label, max_pixels)


def _from_pil(im: Image.Image, label: str, max_pixels: int) -> RGBImage:
    w, h = im.size
    # Refuse before decoding: the header is all we have read so far.
    if w * h > max_pixels:
        raise ImageError(
            f"{label}: {w}x{h} is {w * h / 1e6:.0f} megapixels, more than the {max_pixels / 1e6:.0f} MP limit; "
            "downscale it first"
        )
    if im.format in _ANIMATED_FORMATS and getattr(im, "is_animated", False):
        raise ImageError(
            f"{label}: animated image ({getattr(im, 'n_frames', '?')} frames) is not supported; save one frame as PNG"
        )
    try:
        im.load()
        im = ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{label}: the file is truncated or corrupt ({e})") from None
    im = _to_srgb(im)
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _from_array(np.asarray(im))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"))
        return RGBImage(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]))
    try:
        return RGBImage(np.asarray(im.convert("RGB")).copy())
    except (ValueError, OSError) as e:
        raise ImageError(f"{label}: unsupported image mode {mode!r} ({e})") from None


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert an embedded ICC profile (e.g. Display P3 from phones) to sRGB; leave images without one alone."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return im
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(src).lower():
            return im
        out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im  # a broken profile is not worth refusing the photo over


def _from_array(a: np.ndarray) -> RGBImage:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"array of shape {a.shape} is not an image; expected (H, W), (H, W, 3) or (H, W, 4)")
    a = _to_uint8(a)
    if a.ndim == 2:
        return RGBImage(np.repeat(a[..., None], 3, axis=2))
    if a.shape[2] == 4:
        return RGBImage(np.ascontiguousarray(a[..., :3]), np.ascontiguousarray(a[..., 3]))
    return RGBImage(np.ascontiguousarray(a))


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype in (np.uint16, np.int32, np.uint32, np.int64):
        # 16-bit data (PIL gives 16-bit PNGs as int32): scale 0..65535 to 0..255 with rounding
        return np.clip((a.astype(np.float64) + 128.5) / 257.0, 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError("array contains NaN or infinite values")
        scale = 255.0 if a.size and float(a.max()) <= 1.0 else 1.0  # floats in [0, 1], else already 0..255
        return np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    raise ImageError(f"unsupported array dtype {a.dtype}")


def _check_size(img: RGBImage, label: str, max_pixels: int) -> RGBImage:
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{label}: {w}x{h} is too small; both sides must be at least {MIN_SIDE} pixels")
    if w * h > max_pixels:
        raise ImageError(f"{label}: {w}x{h} is more than the {max_pixels / 1e6:.0f} MP limit; downscale it first")
    return img


def smallest_max_side(size: tuple[int, int]) -> int:
    """The smallest `max_side` that leaves both sides of an image of `size` (either order) at least MIN_SIDE."""
    return math.ceil(MIN_SIDE * max(size) / min(size))


def resize_max_side(img: RGBImage, max_side: int | None, name: str = "image") -> RGBImage:
    """Downscale (never upscale) so that the longer side is at most `max_side`; alpha follows. An image so long and
    thin that its short side would end up under MIN_SIDE raises `ImageError` naming `name`, its size and what to do."""
    w, h = img.size
    if not max_side or max(w, h) <= max_side:
        return img
    s = max_side / max(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    need = smallest_max_side(img.size)
    if max_side < need:
        raise ImageError(f"{name}: {w}x{h} would be {size[0]}x{size[1]} at a longest side of {max_side} px, under "
                         f"the {MIN_SIDE} px minimum; crop it to a less extreme shape, or allow a longest side of at "
                         f"least {need} px")
    rgb = np.asarray(Image.fromarray(img.rgb).resize(size, Image.Resampling.LANCZOS))
    alpha = None if img.alpha is None else np.asarray(Image.fromarray(img.alpha).resize(size, Image.Resampling.LANCZOS))
    return RGBImage(rgb, alpha)


# ---------------------------------------------------------------------------------------------------------------
# Atomic writes: never a half-written file under the final name.


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success it is renamed over `path`, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    # created as open() creates files (0666 less the umask), not private as mkstemp's: the output keeps this mode
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_image(img: RGBImage | Image.Image, path: str | os.PathLike) -> Path:
    """Write atomically; the format follows the suffix (PNG is lossless; JPEG gets alpha flattened onto white)."""
    path = Path(path)
    pil = img.to_pil() if isinstance(img, RGBImage) else img
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown output format {path.suffix!r}; use .png, .jpg or .webp")
    kwargs = {}
    if fmt == "JPEG":
        if pil.mode == "RGBA":
            bg = Image.new("RGB", pil.size, (255, 255, 255))
            bg.paste(pil, mask=pil.getchannel("A"))
            pil = bg
        kwargs = dict(quality=95, subsampling=0)
    elif fmt == "WEBP":
        kwargs = dict(lossless=True)
    with atomic_path(path) as tmp:
        pil.save(tmp, format=fmt, **kwargs)
    return path
