"""The styles shipped in weights/: each loads through the registry, is a trained generator (not the identity it
starts as, not noise), and carries a model card that says how it was made and how good it is."""
import json

import numpy as np
import pytest
from safetensors import safe_open

from cartoon import Cartoonizer
from cartoon.network import GeneratorConfig, get_config
from cartoon.registry import DEFAULT_STYLE, STYLES
from cartoon.weights import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME
from train.metrics import ssim_gray

SHIPPED = [name for name, s in STYLES.items() if s.has_local_weights()]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_default_style_is_shipped():
    assert DEFAULT_STYLE in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_style_changes_the_photo_and_keeps_the_scene(name, astronaut_small):
    engine = Cartoonizer(name, device="cpu")
    out = engine(astronaut_small).image.rgb
    assert out.shape == astronaut_small.shape
    moved = np.abs(out.astype(np.float32) - astronaut_small.astype(np.float32)).mean()
    assert moved > 2.0  # an untrained residual generator returns its input (moved == 0)
    assert ssim_gray(astronaut_small, out) > 0.3  # noise or a flat colour would be near 0


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_style_has_safetensors_config_and_a_measured_model_card(name):
    folder = STYLES[name].local_dir
    with safe_open(str(folder / WEIGHTS_NAME), "pt") as f:  # safetensors, not a pickle
        assert len(list(f.keys())) > 10
    config = json.loads((folder / CONFIG_NAME).read_text())
    # the architecture the registry says the style is trained with
    # (fields added since the weights were saved take their defaults, as from_pretrained reads them)
    assert GeneratorConfig.from_dict(config) == get_config(STYLES[name].config)
    card = (folder / CARD_NAME).read_text()
    for needed in ("python -m train", "steps", "minutes", "KID", "SSIM", "contact_sheet"):
        assert needed in card, f"{name} model card does not mention {needed!r}"
    sheet = folder / "contact_sheet.jpg"
    assert sheet.is_file() and sheet.stat().st_size < 600_000
