"""Unpaired photo / cartoon data: file lists, the validation split, cached maps, random crops and flips.

Every random choice of a sample (crop, flip, which cartoon it is paired with) is a function of (seed, epoch, index),
drawn in whichever process loads it: the data order is the same with any number of workers or GPUs, and a resumed
run sees exactly the batches the interrupted one would have.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler

from cartoon.errors import ImageError
from cartoon.imageio import IMAGE_SUFFIXES, load_image
from cartoon.tiling import to_network

from .cache import MapCache, file_digest, read_png
from .config import ConfigError, DataConfig
from .edges import smooth_edges
from .saliency_ref import saliency_reference

# Bump when a map's algorithm changes: the cache keys include it.
EDGE_VERSION = 1
SALIENCY_VERSION = 1


def list_images(folder: str | os.PathLike, limit: int | None = None) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        where = "" if folder.is_absolute() else f" (relative to {Path.cwd()})"
        raise ConfigError(f"{folder}{where}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files[:limit] if limit else files


def split_group(name: str, pattern: str | None) -> str:
    """The name that decides a file's split: the regex's first group, or the file's stem."""
    stem = Path(name).stem
    if pattern:
        m = re.search(pattern, stem)
        if m:
            return m.group(1) if m.groups() else m.group(0)
    return stem


def split_files(files: list[Path], fraction: float, group_pattern: str | None = None, seed: int = 0,
                val_names: set[str] | None = None) -> tuple[list[Path], list[Path]]:
    """(train, val). With `val_names` the listed files (by name) are the validation set; otherwise whole groups,
    ranked by a seeded hash of their name, go to validation until `fraction` of the files are there."""
    if val_names is not None:
        val = [f for f in files if f.name in val_names]
    else:
        groups: dict[str, list[Path]] = {}
        for f in files:
            groups.setdefault(split_group(f.name, group_pattern), []).append(f)
        ranked = sorted(groups, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())
        target = round(fraction * len(files))
        val = []
        for g in ranked:
            if len(val) >= target:
                break
            val.extend(groups[g])
    val_set = set(val)
    return [f for f in files if f not in val_set], sorted(val)


def prepare_image(path: Path, short_side: int | None, size: int) -> np.ndarray:
    """Decode (through cartoon.imageio) and resize: to `short_side`, or up to `size` when smaller."""
    rgb = load_image(path).rgb
    h, w = rgb.shape[:2]
    target = short_side or max(size, min(h, w))
    if min(h, w) != target:
        s = target / min(h, w)
        rgb = np.asarray(Image.fromarray(rgb).resize((max(target, round(w * s)), max(target, round(h * s))),
                                                     Image.Resampling.LANCZOS))
    return rgb


def _edge_map(path: Path, short_side, size, low, high, kernel) -> np.ndarray:
    return smooth_edges(prepare_image(path, short_side, size), low, high, kernel)


def _saliency_map(path: Path, short_side, size, segments, compactness, passes) -> np.ndarray:
    sal = saliency_reference(prepare_image(path, short_side, size), segments, compactness, passes)
    return np.round(sal * 255).astype(np.uint8)


@dataclasses.dataclass
class Splits:
    photos: list[Path]
    cartoons: list[Path]
    val_photos: list[Path]
    val_cartoons: list[Path]


def read_key_list(path: str, option: str) -> set[str]:
    """One name a line; blank lines and '#' comments ignored."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{option}: {p}: no such file")
    return {k for k in (line.split("#", 1)[0].strip() for line in p.read_text().splitlines()) if k}


def make_splits(cfg: DataConfig) -> Splits:
    photos = list_images(cfg.photos, cfg.limit)
    cartoons = list_images(cfg.cartoons, cfg.limit)
    if cfg.cartoon_include:
        keep = read_key_list(cfg.cartoon_include, "data.cartoon_include")
        cartoons = [f for f in cartoons if split_group(f.name, cfg.val_group) in keep]
        if not cartoons:
            raise ConfigError(f"data.cartoon_include: none of {cfg.cartoons}'s files is listed in {cfg.cartoon_include}")
    val_names = None
    if cfg.val_list:
        p = Path(cfg.val_list)
        if not p.is_file():
            raise ConfigError(f"data.val_list: {p}: no such file")
        val_names = {Path(line.strip()).name for line in p.read_text().splitlines() if line.strip()}
    if cfg.val_group:
        try:
            re.compile(cfg.val_group)
        except re.error as e:
            raise ConfigError(f"data.val_group: not a regular expression ({e})") from None
    tp, vp = split_files(photos, cfg.val_fraction, cfg.val_group, cfg.split_seed, val_names)
    cartoon_fraction = cfg.val_fraction if cfg.cartoon_val_fraction is None else cfg.cartoon_val_fraction
    tc, vc = split_files(cartoons, cartoon_fraction, cfg.val_group, cfg.split_seed, val_names)
    if cfg.cartoon_exclude:
        excluded = read_key_list(cfg.cartoon_exclude, "data.cartoon_exclude")
        tc = [f for f in tc if split_group(f.name, cfg.val_group) not in excluded]
    for what, files in (("photos", tp), ("cartoons", tc)):
        if not files:
            raise ConfigError(f"data: no training {what} left after the validation split; lower data.val_fraction")
    return Splits(tp, tc, vp, vc)


def _prep_key(cfg: DataConfig) -> dict:
    """What `prepare_image` depends on: the crop size matters only when no short side is set."""
    return {"short_side": cfg.short_side} if cfg.short_side else {"min_side": cfg.size}


def edge_cache(cfg: DataConfig) -> MapCache:
    params = dict(version=EDGE_VERSION, **_prep_key(cfg), low=cfg.canny_low, high=cfg.canny_high, kernel=cfg.edge_kernel)
    fn = functools.partial(_edge_map, short_side=cfg.short_side, size=cfg.size, low=cfg.canny_low,
                           high=cfg.canny_high, kernel=cfg.edge_kernel)
    return MapCache(cfg.cache_dir, "edges", params, fn)


def saliency_cache(cfg: DataConfig) -> MapCache:
    params = dict(version=SALIENCY_VERSION, **_prep_key(cfg), segments=cfg.sal_segments,
                  compactness=cfg.sal_compactness, passes=cfg.mbd_passes)
    fn = functools.partial(_saliency_map, short_side=cfg.short_side, size=cfg.size, segments=cfg.sal_segments,
                           compactness=cfg.sal_compactness, passes=cfg.mbd_passes)
    return MapCache(cfg.cache_dir, "saliency", params, fn)


def paired_files(photos: list[Path], cartoons: list[Path], pattern: str | None) -> list[Path]:
    """data.target=paired: for each photo, the cartoon of the same split key (data.val_group's first group, else the
    file stem), e.g. A_00042.jpg -> B_00042.jpg."""
    by_key = {split_group(c.name, pattern): c for c in cartoons}
    missing = [p.name for p in photos if split_group(p.name, pattern) not in by_key]
    if missing:
        raise ConfigError(f"data.target=paired: no cartoon shares the key of {len(missing)} photo(s), e.g. {missing[0]} "
                          "(keys come from data.val_group's first group, or the file name)")
    return [by_key[split_group(p.name, pattern)] for p in photos]


def _chw(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(to_network(np.ascontiguousarray(rgb))[0])


class UnpairedDataset(Dataset):
    """Item `epoch * len + i`: photo i (with its saliency reference, and its target when `targets` is given: its
    paired cartoon, decoded like the photos) and a cartoon drawn for (epoch, i) (with its edge-smoothed copy unless
    `smoothed` is None), each group cropped and flipped alike."""

    def __init__(self, cfg: DataConfig, photos: list[Path], saliency: list[Path], cartoons: list[Path],
                 smoothed: list[Path] | None, seed: int, targets: list[Path] | None = None):
        self.cfg, self.seed = cfg, seed
        self.photos, self.saliency, self.cartoons, self.smoothed = photos, saliency, cartoons, smoothed
        self.targets = targets

    def __len__(self) -> int:
        return len(self.photos)

    def _load(self, path: Path) -> np.ndarray:
        try:
            return prepare_image(path, self.cfg.short_side, self.cfg.size)
        except ImageError as e:
            raise ConfigError(f"training data: {e}") from None

    def _crop_flip(self, rng: np.random.Generator, *images: np.ndarray) -> list[np.ndarray]:
        h, w = images[0].shape[:2]
        s = self.cfg.size
        y, x = int(rng.integers(h - s + 1)), int(rng.integers(w - s + 1))
        flip = self.cfg.flip and rng.random() < 0.5
        out = []
        for im in images:
            if im.shape[:2] != (h, w):
                raise ConfigError("training data: a cached map does not match its image; delete data.cache_dir")
            im = im[y:y + s, x:x + s]
            out.append(im[:, ::-1] if flip else im)
        return out

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(int(key), len(self.photos))
        rng = np.random.default_rng([self.seed, epoch, i])
        photo_images = [self._load(self.photos[i]), read_png(self.saliency[i])]
        if self.targets is not None:
            photo_images.append(self._load(self.targets[i]))
        photo, sal, *target = self._crop_flip(rng, *photo_images)
        j = int(rng.integers(len(self.cartoons)))
        cartoon_images = [self._load(self.cartoons[j])] + ([read_png(self.smoothed[j])] if self.smoothed else [])
        cartoon, *smooth = self._crop_flip(rng, *cartoon_images)
        item = {
            "photo": _chw(photo),
            "saliency": torch.from_numpy(np.ascontiguousarray(sal, np.float32) / 255.0)[None],
            "cartoon": _chw(cartoon),
        }
        if smooth:
            item["smoothed"] = _chw(smooth[0])
        if target:
            item["target"] = _chw(target[0])
        return item


class EpochSampler(DistributedSampler):
    """DistributedSampler (shuffled per epoch, sharded per rank) that tags indices with the epoch and can start
    part-way into an epoch (resume)."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        n = len(self.dataset)
        return iter([self.epoch * n + i for i in list(super().__iter__())[self.start:]])

    def __len__(self) -> int:
        return self.num_samples - self.start


def steps_per_epoch(n_photos: int, batch_size: int, world_size: int) -> int:
    """Full batches per rank per epoch (the loader drops the last partial batch)."""
    per_rank = math.ceil(n_photos / world_size)
    steps = per_rank // batch_size
    if steps < 1:
        raise ConfigError(f"data: {n_photos} training photos cannot fill one batch of {batch_size} on each of "
                          f"{world_size} processes; lower train.batch_size")
    return steps


def center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return rgb[y:y + size, x:x + size]


def center_crops(paths: list[Path], cfg: DataConfig) -> np.ndarray:
    """(N, size, size, 3) uint8: the validation images decoded, resized and centre-cropped."""
    return np.stack([center_crop(prepare_image(p, cfg.short_side, cfg.size), cfg.size) for p in paths])


def network_batch(rgb: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.concatenate([to_network(x) for x in rgb]))


def load_center_crops(paths: list[Path], cfg: DataConfig) -> torch.Tensor:
    """(N, 3, size, size) in [-1, 1]: the validation images as the generator and FID see them."""
    return network_batch(center_crops(paths, cfg))


def file_digests(paths: list[Path]) -> list[str]:
    return [file_digest(p) for p in paths]
