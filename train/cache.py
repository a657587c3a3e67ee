"""Per-image maps computed once and kept on disk (edge-smoothed cartoons, saliency references).

A map lives at `<cache_dir>/<kind>/<params key>/<sha1 of the source file>.png`: editing an image or changing a
parameter (or the algorithm version) gives a new path, so stale maps are never read.  Every file is written
atomically, so a run killed while building the cache leaves only complete maps behind.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from cartoon.imageio import atomic_path


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


def params_key(kind: str, params: dict) -> str:
    return hashlib.sha1(json.dumps({"kind": kind, **params}, sort_keys=True).encode()).hexdigest()[:16]


def write_png(path: Path, image: np.ndarray) -> None:
    """uint8 (H, W) or (H, W, 3) RGB, atomically."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise OSError(f"{path}: unreadable cache file; delete it to have it recomputed")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def _compute_one(job: tuple[Callable[[Path], np.ndarray], Path, Path]) -> None:
    compute, source, target = job
    write_png(target, compute(source))


class MapCache:
    def __init__(self, cache_dir: str | os.PathLike, kind: str, params: dict, compute: Callable[[Path], np.ndarray]):
        """`compute(source path) -> uint8 map` must be picklable (a module-level function or a partial of one)."""
        self.dir = Path(cache_dir) / kind / params_key(kind, params)
        self.kind, self.params, self.compute = kind, params, compute

    def path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.png"

    def build(self, sources: Sequence[Path], digests: Sequence[str], workers: int = 0, rank: int = 0,
              world_size: int = 1, progress: bool = True) -> list[Path]:
        """Compute the missing maps (this rank's share of them) and return every source's map path."""
        self.dir.mkdir(parents=True, exist_ok=True)
        info = self.dir / "params.json"
        if not info.exists():
            with atomic_path(info) as tmp:
                tmp.write_text(json.dumps({"kind": self.kind, **self.params}, indent=2) + "\n")
        paths = [self.path(d) for d in digests]
        todo = sorted({(str(s), str(p)) for i, (s, p) in enumerate(zip(sources, paths))
                       if i % world_size == rank and not p.exists()})
        jobs = [(self.compute, Path(s), Path(p)) for s, p in todo]
        if not jobs:
            return paths
        bar = tqdm(total=len(jobs), desc=f"caching {self.kind} maps", unit="img", disable=not progress)
        if workers > 0 and len(jobs) > 1:
            # spawned workers with one BLAS thread each: no oversubscription, no forked torch state
            saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
            os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
            try:
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                    for _ in pool.map(_compute_one, jobs, chunksize=4):
                        bar.update()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        else:
            for job in jobs:
                _compute_one(job)
                bar.update()
        bar.close()
        return paths
