"""What a scene style's outputs are measured against, beyond KID to the validation frames (which content can
dominate): the KID that held-apart real frames reach (the floor), a photo-vs-frame probe, and the frames' own
flatness and line statistics.  Used by the training's evaluations and by `python -m train.evaluate`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import DataConfig
from .data import Splits, center_crops, file_digests, network_batch
from .metrics import FrameProbe, kid, line_placement, look_numbers


def seeded_sample(files: list[Path], n: int, seed: int = 0) -> list[Path]:
    """Up to n of `files`, a seeded random choice kept in order (the same files every time: cached features)."""
    rng = np.random.default_rng(seed)
    return [files[i] for i in sorted(rng.choice(len(files), min(n, len(files)), replace=False))]


def inception_features(fid, files: list[Path], size: int, cache_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Inception features of the files' centre crops at `size` (cached by content) and the crops."""
    rgb = center_crops(files, DataConfig(short_side=size, size=size))
    key = {"files": file_digests(files), "size": size, "short_side": size}
    return fid.reference_features(network_batch(rgb), Path(cache_dir), key), rgb


def one_crop_per_frame(files: list[Path], pattern: str | None) -> list[Path]:
    """The first crop (by name) of each source frame (`data.val_group`'s first group)."""
    from .data import split_group

    seen: dict[str, Path] = {}
    for f in sorted(files):
        seen.setdefault(split_group(f.name, pattern), f)
    return list(seen.values())


class StyleReference:
    def __init__(self, fid, splits: Splits, data: DataConfig, size: int, n_probe: int = 600, n_floor: int = 200):
        cache = data.cache_dir
        self.val_feats, val_rgb = inception_features(fid, splits.val_cartoons, size, cache)
        # held apart: training frames, one crop each, that validation never shows
        frames = one_crop_per_frame(splits.cartoons, data.val_group)
        held_feats, _ = inception_features(fid, seeded_sample(frames, n_floor), size, cache)
        self.floor = kid(held_feats, self.val_feats)
        photo_feats, _ = inception_features(fid, seeded_sample(splits.photos, n_probe), size, cache)
        frame_feats, _ = inception_features(fid, seeded_sample(frames, n_probe, seed=1), size, cache)
        self.probe = FrameProbe(photo_feats, frame_feats)
        self.frames = look_numbers(list(val_rgb)) | {"frame_share": self.probe.frame_share(self.val_feats)}
        self.n_val, self.n_held = len(self.val_feats), len(held_feats)

    def numbers(self, in_rgb: np.ndarray, out_rgb: np.ndarray, in_feats: np.ndarray, out_feats: np.ndarray) -> dict:
        """KID floor, probe shares and look statistics of the outputs, the photos and the validation frames."""
        placement = [line_placement(a, b) for a, b in zip(in_rgb, out_rgb)]
        textured = [t for _, t in placement if t is not None]
        return {
            "kid_floor": self.floor[0], "n_floor_frames": self.n_held,
            "frame_share": self.probe.frame_share(out_feats), "frame_share_photos": self.probe.frame_share(in_feats),
            "frame_share_frames": self.frames["frame_share"],
            "look": look_numbers(list(out_rgb)), "look_photos": look_numbers(list(in_rgb)),
            "look_frames": {k: v for k, v in self.frames.items() if k != "frame_share"},
            "lines_on_boundaries": float(np.mean([b for b, _ in placement])),
            "lines_on_texture": float(np.mean(textured)) if textured else None,
        }


def format_reference(n: dict) -> list[str]:
    """Markdown lines of `StyleReference.numbers` (merged into a numbers dict)."""
    look, photos, frames = n["look"], n["look_photos"], n["look_frames"]
    return [
        f"KID floor (held-apart real frames, {n['n_floor_frames']}, to the same reference): "
        f"{n['kid_floor'] * 1e3:.2f} x10^3",
        f"called a frame by the photo-vs-frame probe: stylised {n['frame_share']:.2f}, photos "
        f"{n['frame_share_photos']:.2f}, validation frames {n['frame_share_frames']:.2f}",
        "| | flat share (Sobel < 8) | dark-line density | gradient histogram (0-2-4-8-16-32-64-128-) |",
        "|---|---|---|---|",
        *(f"| {name} | {x['flat_share']:.3f} | {x['line_density']:.4f} | {' '.join(f'{v:.2f}' for v in x['gradient_histogram'])} |"
          for name, x in (("stylised", look), ("photos", photos), ("validation frames", frames))),
        f"dark lines of the output on the photo's object boundaries {n['lines_on_boundaries']:.3f}, on its texture "
        + (f"{n['lines_on_texture']:.3f}" if n["lines_on_texture"] is not None else "n/a"),
    ]
