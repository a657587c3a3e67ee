"""Cartoonizer: photo in (any size, any input type), cartoon + saliency map out.

Every image goes through `Cartoonizer.stylize`, the one pass from pixels to the cartoon (pad, run whole or tile by
tile, crop): stills (`__call__`, `batch`), `Studio` and video frames (`temporal.FrameStylizer`) alike; `finish`
applies the strength. torch is imported only by the torch backend.
"""
from __future__ import annotations

import dataclasses
import os
import threading
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from .errors import CartoonError
from .imageio import ImageInput, RGBImage, load_image
from .options import check_strength, check_tile
from .registry import DEFAULT_STYLE, Style, resolve_style
from .runners import OnnxRunner, Stats, TorchRunner
from .strength import apply_strength
from .tiling import from_network, pad_to_multiple, run_tiled, stats_copy, to_network

if TYPE_CHECKING:
    from .network import Generator

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
    """Load a style once, cartoonize many images. Safe to share between threads: the generator runs under the
    engine's `lock` (tiling records and replays statistics on it), held by `stylize` and `statistics` themselves.

    style: a registered style name, a weights folder / Hub repo id, a `Style`, or a `Generator` (for tests and
      training previews).  backend: "torch", "onnx" or "onnx-int8" (the ONNX files are looked for in
      `onnx_dir`, by default the weights folder; `python -m cartoon.export` writes them).
    tile / overlap: images with a side above `tile` run tile by tile (see tiling.py), with whole-image statistics
      from a copy of long side `tile`.
    """

    def __init__(self, style: str | os.PathLike | Style | Generator = DEFAULT_STYLE, *, backend: str = "torch",
                 device: str = "auto", precision: str = "auto", threads: int | None = None, compile: bool = False,
                 tile: int | None = None, overlap: int = 64, onnx_dir: str | os.PathLike | None = None):
        if backend not in BACKENDS:
            raise CartoonError(f"backend must be one of {BACKENDS}, got {backend!r}")
        named = isinstance(style, (str, os.PathLike, Style))
        self.style = resolve_style(style) if named else None  # None: a Generator
        if backend == "torch":
            if named:
                from .weights import from_pretrained

                source, revision, filename = self.style.source()
                generator = from_pretrained(source, revision=revision, filename=filename)
            else:
                generator = style
            self.runner = TorchRunner(generator, device=device, precision=precision, threads=threads, compile=compile)
        else:
            folder = onnx_dir or (self.style.local_dir if self.style else None)
            if folder is None:
                raise CartoonError("the onnx backend needs an exported folder (onnx_dir=...)")
            self.runner = OnnxRunner(folder, quantized=backend == "onnx-int8", threads=threads, device=device)
        self.backend = backend
        on_gpu = self.device == "cuda"
        self.tile = check_tile(tile) if tile else (1024 if on_gpu else 512)
        self.overlap = int(overlap)
        self.batch_size = 4 if on_gpu else 1  # images (or tiles) per forward pass
        self.lock = threading.RLock()

    @property
    def device(self) -> str:
        return self.runner.device_type

    @property
    def precision(self) -> str:
        return self.runner.precision

    # ---- the one pass -------------------------------------------------------------------------------------------

    def stylize(self, rgbs: Sequence[np.ndarray], stats: Sequence[Stats | None] | None = None, *,
                tile: int | None = None, batch_size: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(H, W, 3) uint8 images -> for each, (cartoon (H, W, 3) float32 in 0..255, saliency (H, W) float32 in
        0..1), before strength (`finish`). Each is padded to the generator's size multiple and cropped back; those
        of one padded size that fit in a tile go through the network together, `batch_size` (default: the
        engine's) at a time; larger ones run tile by tile (`tiling.run_tiled`, `progress(done, total)` in tiles).
        stats: per image, whole-image statistics to run it with instead of its own (video: smoothed over time;
        `statistics`), or None. tile: the tile size for this call (a checked one; default the engine's)."""
        tile = self.tile if tile is None else tile
        per_pass = max(1, batch_size or self.batch_size)
        stats = [None] * len(rgbs) if stats is None else list(stats)
        padded = [pad_to_multiple(rgb) for rgb in rgbs]
        out: list = [None] * len(rgbs)
        groups: dict[tuple, list[int]] = {}
        with self.lock:
            for i, p in enumerate(padded):
                if max(p.shape[:2]) <= tile:
                    groups.setdefault((p.shape, stats[i] is None), []).append(i)
                else:
                    out[i] = run_tiled(self.runner, p, tile, self.overlap, tile, batch_size=self.batch_size,
                                       progress=progress, stats=stats[i])
            for idx in groups.values():
                for k in range(0, len(idx), per_pass):
                    chunk = idx[k:k + per_pass]
                    x = np.concatenate([to_network(padded[i]) for i in chunk])
                    st = stats[chunk[0]]
                    if st is not None:  # (1, C, 1, 1) each -> (n, C, 1, 1)
                        st = [np.concatenate(s) for s in zip(*(stats[i] for i in chunk))]
                    y, sal, _ = self.runner(x, stats=st)
                    for i, yi, si in zip(chunk, y, sal):
                        out[i] = from_network(yi), si[0]
        return [(np.ascontiguousarray(c[:h, :w]), s[:h, :w])
                for (c, s), (h, w) in zip(out, (rgb.shape[:2] for rgb in rgbs))]

    def statistics(self, rgbs: Sequence[np.ndarray], side: int) -> list[Stats]:
        """Each image's whole-image statistics, recorded on its copy of long side `side` (`tiling.stats_copy`), in
        the form `stylize` takes them. Images of one size (a clip's frames), 4 x batch_size per forward pass."""
        per_pass = 4 * max(1, self.batch_size)
        out: list[Stats] = []
        with self.lock:
            for k in range(0, len(rgbs), per_pass):
                chunk = rgbs[k:k + per_pass]
                x = np.concatenate([to_network(stats_copy(pad_to_multiple(f), side)) for f in chunk])
                _, _, rec = self.runner(x, record=True)
                out += [[r[i:i + 1] for r in rec] for i in range(len(chunk))]
        return out

    @staticmethod
    def finish(img: RGBImage, cartoon: np.ndarray, saliency: np.ndarray, strength: float) -> CartoonResult:
        """A `stylize` output as a result: `strength` (checked, in [0, 1]; see strength.py) mixes the photo back
        in, the saliency map becomes 8-bit, the photo's alpha is put back."""
        rgb = apply_strength(img.rgb, cartoon, strength)
        return CartoonResult(RGBImage(rgb, img.alpha), np.clip(np.rint(saliency * 255), 0, 255).astype(np.uint8))

    # ---- images -------------------------------------------------------------------------------------------------

    def __call__(self, image: ImageInput | RGBImage, strength: float = 1.0, max_side: int | None = None,
                 progress: Callable[[int, int], None] | None = None, tile: int | None = None) -> CartoonResult:
        """Cartoonize one image. `strength` in [0, 1] (see strength.py); `max_side` downscales the input first;
        `tile` overrides the engine's tile size (and statistics side) for this call: one loaded model serves
        requests with different tile sizes."""
        strength = check_strength(strength)
        tile = None if tile is None else check_tile(tile)
        img = load_image(image, max_side=max_side)
        (cartoon, sal), = self.stylize([img.rgb], tile=tile, progress=progress)
        return self.finish(img, cartoon, sal, strength)

    def batch(self, images: Iterable[ImageInput | RGBImage], strength: float = 1.0, max_side: int | None = None,
              batch_size: int = 4) -> list[CartoonResult]:
        """Cartoonize many images; those of the same size that fit in one tile go through the network together."""
        strength = check_strength(strength)
        imgs = [load_image(i, max_side=max_side) for i in images]
        out = self.stylize([img.rgb for img in imgs], batch_size=batch_size)
        return [self.finish(img, cartoon, sal, strength) for img, (cartoon, sal) in zip(imgs, out)]
