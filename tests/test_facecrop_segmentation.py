"""The person segmenter: training data (masks of people on white, composites), and the shipped model's quality."""
from pathlib import Path

import numpy as np
import pytest

from cartoon.errors import CartoonError, WeightsError
from facecrop import DEFAULT_SEGMENTER, OnnxSegmenter
from facecrop.segment import keep_person
from facecrop.segmentation import data
from facecrop.segmentation.evaluate import held_out_set, mask_iou, score

SHARED = Path(__file__).resolve().parents[2] / "shared"
needs_shared = pytest.mark.skipif(not (SHARED / "data" / "face_photo").is_dir(), reason="../shared/data is not here")
WEIGHTS = DEFAULT_SEGMENTER.parent


@pytest.fixture(scope="module")
def segmenter() -> OnnxSegmenter:
    return OnnxSegmenter(threads=2)


@pytest.fixture(scope="module")
def held_out() -> data.CompositeDataset:
    return held_out_set(96)


def test_white_background_mask_keeps_the_person_and_fills_holes():
    img = np.full((128, 128, 3), 254, np.uint8)
    yy, xx = np.mgrid[0:128, 0:128]
    person = (xx - 64) ** 2 + (yy - 110) ** 2 < 50 ** 2  # a head-and-shoulders blob running off the bottom
    img[person] = (180, 140, 120)
    img[(xx - 64) ** 2 + (yy - 100) ** 2 < 10 ** 2] = 255  # a white highlight inside: not background
    img[10:12, 10:12] = 200  # a JPEG speck in the background
    mask = data.white_background_mask(img) > 0
    assert mask_iou(mask, person) > 0.98
    assert not mask[10, 10] and mask[100, 64]
    cut = data.Cutout.from_portrait(img)
    assert cut.touches == (False, True, False, False)


def test_keep_person_makes_the_face_silhouette_solid():
    yy, xx = np.mgrid[0:128, 0:128]
    head = ((xx - 64) ** 2 + (yy - 80) ** 2 < 40 ** 2).astype(np.float32)
    mask = head * 0.97
    mask[70:80, 50:60] = 0.1  # a hole (a cheek the model missed)
    mask[90:100, 60:70] = 0.7  # unsure but person
    mask[5:15, 5:15] = 0.9  # an island of background
    out = keep_person(mask, np.array([[64.0, 80.0], [50.0, 70.0]]))
    assert out.dtype == np.float32 and out.shape == mask.shape
    inner = ((xx - 64) ** 2 + (yy - 80) ** 2 < 37 ** 2)
    assert (out[inner] == 1).all()  # hole filled, unsure part made solid
    assert (out[:20, :20] == 0).all()  # island gone
    rim = ((xx - 64) ** 2 + (yy - 80) ** 2 >= 38.5 ** 2) & ((xx - 64) ** 2 + (yy - 80) ** 2 < 40 ** 2)
    np.testing.assert_array_equal(out[rim], mask[rim])  # the model's own outline is kept
    np.testing.assert_array_equal(keep_person(mask, np.array([[2.0, 120.0]])), mask)  # no seed on the mask


@needs_shared
def test_split_is_disjoint_and_fixed():
    a, b = data.make_split(), data.make_split()
    assert a == b
    assert not set(a.train_people) & set(a.held_out_people)
    assert not set(a.train_backgrounds) & set(a.held_out_backgrounds)
    assert len(a.held_out_people) == round(0.1 * (len(a.train_people) + len(a.held_out_people)))
    assert all("scene_photo/train" in str(p) or "scene_photo\\train" in str(p) for p in a.train_backgrounds[:5])


@needs_shared
def test_composites_are_deterministic_and_varied(held_out):
    x1, m1 = held_out[3]
    x2, m2 = held_out[3]
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(m1, m2)
    y, n = held_out[4]
    assert not np.array_equal(x1, y)
    assert x1.shape == (256, 256, 3) and x1.dtype == np.uint8 and m1.shape == (256, 256) and m1.dtype == np.float32
    assert 0.15 < m1.mean() < 0.9  # a person, not everything or nothing
    # the training stream shows every person once per round
    stream = data.CompositeDataset(held_out.people, held_out.backgrounds, seed=1, size=128, length=len(held_out.people))
    assert stream[0][0].shape == (128, 128, 3)


@needs_shared
def test_shipped_segmenter_iou_on_held_out_composites(segmenter, held_out):
    result = score(segmenter, held_out)
    assert result["n"] == 96
    assert result["mean_iou"] > 0.9, result


@needs_shared
def test_onnx_graph_matches_the_shipped_safetensors(segmenter, held_out):
    import torch

    from facecrop.segmentation.export import load_segmenter

    model = load_segmenter(WEIGHTS / "model.safetensors")
    image = held_out[0][0]
    with torch.no_grad():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        want = torch.sigmoid(model(x))[0, 0].numpy()
    np.testing.assert_allclose(segmenter(image), want, atol=1e-4)


def test_shipped_model_is_small():
    assert (WEIGHTS / "segmenter.onnx").stat().st_size < 8e6
    assert (WEIGHTS / "model.safetensors").stat().st_size < 8e6
    assert "research use only" in (WEIGHTS / "README.md").read_text()


def test_segmenter_handles_any_crop_size(segmenter):
    rng = np.random.default_rng(0)
    for shape in [(256, 256, 3), (512, 512, 3), (100, 180, 3)]:
        m = segmenter(rng.integers(0, 256, shape, dtype=np.uint8))
        assert m.shape == shape[:2] and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    assert segmenter.batch([]) == []
    with pytest.raises(CartoonError):
        segmenter(np.zeros((64, 64), np.uint8))


def test_another_onnx_model_can_be_plugged_in(tmp_path):
    """A foreign model with a fixed input size and a (N, H, W) logit output: "person" = bright pixels."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1], keepdims=0),
             helper.make_node("Sub", ["mean", "half"], ["centred"]),
             helper.make_node("Mul", ["centred", "gain"], ["y"])]
    graph = helper.make_graph(
        nodes, "bright", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 64, 64])],
        initializer=[helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
                     helper.make_tensor("gain", TensorProto.FLOAT, [], [20.0])])
    path = tmp_path / "bright.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    seg = OnnxSegmenter(path, logits=True)
    assert seg.input_size == (64, 64)
    img = np.zeros((128, 96, 3), np.uint8)
    img[:, 48:] = 230
    m = seg(img)
    assert m.shape == (128, 96)
    assert m[:, :40].max() < 0.01 and m[:, 56:].min() > 0.99


def test_missing_or_broken_models_are_reported(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        OnnxSegmenter(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="cannot load"):
        OnnxSegmenter(bad)
