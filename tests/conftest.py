"""Shared fixtures: real generators with random weights, saved and loaded through the real weights format."""
from __future__ import annotations

import os
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
