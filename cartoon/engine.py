"""Cartoonizer: photo in (any size, any input type), cartoon + saliency map out."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from .errors import CartoonError
from .imageio import ImageInput, RGBImage, load_image
from .network import Generator
from .registry import DEFAULT_STYLE, STYLES, Style, get_style
from .runners import OnnxRunner, TorchRunner
from .strength import apply_strength
from .tiling import MIN_TILE, from_network, pad_to_multiple, padded_shape, run_tiled, to_network
from .weights import from_pretrained

BACKENDS = ("torch", "onnx", "onnx-int8")


@dataclasses.dataclass
class CartoonResult:
    image: RGBImage  # the cartoon, same size as the (possibly --max-side reduced) input, alpha put back
    saliency: np.ndarray  # (H, W) uint8: what the generator's saliency network found salient

    def to_pil(self) -> Image.Image:
        return self.image.to_pil()

    def saliency_pil(self) -> Image.Image:
        return Image.fromarray(self.saliency, "L")


class Cartoonizer:
    """Load a style once, cartoonize many images.

    style: a registered style name, a weights folder / Hub repo id, a `Style`, or a `Generator` (for tests and
      training previews).  backend: "torch", "onnx" or "onnx-int8" (the ONNX files are looked for in
      `onnx_dir`, by default the weights folder; `python -m cartoon.export` writes them).
    tile / overlap: images with a side above `tile` run tile by tile (see tiling.py); `stats_side` is the long side
      of the downscaled copy that gives the whole-image statistics.
    """

    def __init__(self, style: str | os.PathLike | Style | Generator = DEFAULT_STYLE, *, backend: str = "torch",
                 device: str = "auto", precision: str = "auto", threads: int | None = None, compile: bool = False,
                 tile: int | None = None, overlap: int = 64, stats_side: int | None = None,
                 onnx_dir: str | os.PathLike | None = None):
        if backend not in BACKENDS:
            raise CartoonError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.style = style if isinstance(style, Style) else STYLES.get(style) if isinstance(style, str) else None
        if backend == "torch":
            if isinstance(style, Generator):
                generator = style
            elif self.style is not None:
                source, revision, filename = self.style.source()
                generator = from_pretrained(source, revision=revision, filename=filename)
            else:
                if isinstance(style, str) and "/" not in style and not Path(style).exists():
                    get_style(style)  # raises with the list of known styles
                generator = from_pretrained(style)
            self.runner = TorchRunner(generator, device=device, precision=precision, threads=threads, compile=compile)
        else:
            folder = onnx_dir or (self.style.local_dir if self.style else style)
            if isinstance(folder, Generator) or folder is None:
                raise CartoonError("the onnx backend needs an exported folder (onnx_dir=...)")
            self.runner = OnnxRunner(folder, quantized=backend == "onnx-int8", threads=threads, device=device)
        self.backend = backend
        on_gpu = self.runner.device.type == "cuda"
        self.tile = check_tile(tile) if tile else (1024 if on_gpu else 512)
        self.overlap = int(overlap)
        self.stats_side = int(stats_side or self.tile)
        self.batch_size = 4 if on_gpu else 1

    @property
    def device(self) -> str:
        return self.runner.device.type

    @property
    def precision(self) -> str:
        return self.runner.precision

    def __call__(self, image: ImageInput | RGBImage, strength: float = 1.0, max_side: int | None = None,
                 progress: Callable[[int, int], None] | None = None, tile: int | None = None) -> CartoonResult:
        """Cartoonize one image. `strength` in [0, 1] (see strength.py); `max_side` downscales the input first;
        `tile` overrides the engine's tile size (and statistics side) for this call: one loaded model serves
        requests with different tile sizes."""
        strength = check_strength(strength)
        tile, stats_side = (self.tile, self.stats_side) if tile is None else (check_tile(tile),) * 2
        img = load_image(image, max_side=max_side)
        h, w = img.rgb.shape[:2]
        padded = pad_to_multiple(img.rgb)
        cartoon, sal = run_tiled(self.runner, padded, tile, self.overlap, stats_side,
                                 batch_size=self.batch_size, progress=progress)
        return self._finish(img, cartoon[:h, :w], sal[:h, :w], strength)

    cartoonize = __call__

    def batch(self, images: Iterable[ImageInput | RGBImage], strength: float = 1.0, max_side: int | None = None,
              batch_size: int = 4) -> list[CartoonResult]:
        """Cartoonize many images; those of the same size that fit in one tile go through the network together."""
        strength = check_strength(strength)
        imgs = [load_image(i, max_side=max_side) for i in images]
        results: list[CartoonResult | None] = [None] * len(imgs)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(imgs):
            hp, wp = padded_shape(*img.rgb.shape[:2])
            if max(hp, wp) <= self.tile:
                groups.setdefault((hp, wp), []).append(i)
            else:
                results[i] = self(img, strength)
        for idx in groups.values():
            for k in range(0, len(idx), batch_size):
                chunk = idx[k:k + batch_size]
                x = np.concatenate([to_network(pad_to_multiple(imgs[i].rgb)) for i in chunk])
                y, sal, _ = self.runner(x)
                for i, yi, si in zip(chunk, y, sal):
                    h, w = imgs[i].rgb.shape[:2]
                    results[i] = self._finish(imgs[i], from_network(yi)[:h, :w], si[0, :h, :w], strength)
        return results  # type: ignore[return-value]

    @staticmethod
    def _finish(img: RGBImage, cartoon: np.ndarray, sal: np.ndarray, strength: float) -> CartoonResult:
        rgb = apply_strength(img.rgb, np.ascontiguousarray(cartoon), strength)
        saliency = np.clip(np.rint(sal * 255), 0, 255).astype(np.uint8)
        return CartoonResult(RGBImage(rgb, img.alpha), saliency)


def check_strength(strength: float, what: str = "strength") -> float:
    """`strength` as a float in [0, 1]; CartoonError naming `what` (e.g. "--strength") otherwise."""
    try:
        s = float(strength)
    except (TypeError, ValueError):
        raise CartoonError(f"{what} must be a number in [0, 1], got {strength!r}") from None
    if not 0.0 <= s <= 1.0:  # (NaN fails this too)
        raise CartoonError(f"{what} must be in [0, 1], got {s:g}")
    return s


def check_tile(tile: int, what: str = "tile size") -> int:
    """A tile size: a whole number of pixels, at least MIN_TILE."""
    try:
        t = int(tile)
        ok = t == tile and t >= MIN_TILE
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise CartoonError(f"{what} must be a whole number of pixels, at least {MIN_TILE}; got {tile!r}")
    return t
