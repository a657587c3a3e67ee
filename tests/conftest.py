"""Shared fixtures: real generators with random weights, saved and loaded through the real weights format."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def lite_weights(tmp_path_factory) -> Path:
    """A weights folder holding a `lite` generator with seeded random weights (no trained weights exist yet)."""
    from cartoon import Generator, save_pretrained

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights") / "lite-random"
    save_pretrained(Generator("lite"), folder, card="# random lite generator for tests\n")
    return folder


@pytest.fixture(scope="session")
def astronaut_small() -> np.ndarray:
    """A real photo that scikit-image ships, reduced to 128x128 to keep tests fast."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((128, 128), Image.Resampling.LANCZOS))


@pytest.fixture()
def one_thread():
    """Small training ops on a shared 2-core CPU: one thread avoids OpenMP waits on descheduled siblings."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_clip(path: Path, frames: list[np.ndarray], *, fps: int = 24, audio: str | None = "aac",
               rotation: int = 0, pts: list[int] | None = None, time_base: Fraction | None = None,
               codec: str = "libx264") -> Path:
    """A real video file: `frames` (H, W, 3) uint8, optional explicit timestamps, and a 440 Hz tone as long as
    the video in codec `audio`."""
    import av

    with av.open(str(path), "w") as c:
        c.metadata["title"] = "a walk"
        v = c.add_stream(codec, rate=fps)
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = "yuv420p" if codec != "png" else "rgb24"
        if time_base is not None:
            v.codec_context.time_base = time_base
        if rotation:
            v.set_display_rotation(rotation)
        a = c.add_stream(audio, rate=16000, layout="mono") if audio else None
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = pts[i] if pts is not None else i
            for p in v.encode(vf):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            seconds = (pts[-1] * time_base + Fraction(1, fps)) if pts else Fraction(len(frames), fps)
            n = int(16000 * seconds)
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)
            fmt = a.codec_context.format.name
            size = a.codec_context.frame_size or 1024
            for k in range(0, n, size):
                chunk = tone[None, k:k + size]
                chunk = (chunk * 32767).astype(np.int16) if fmt == "s16" else chunk.astype(np.float32)
                af = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
                af.sample_rate, af.pts = 16000, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path
