"""python -m train.evaluate --paired: L1, perceptual distance and identity of each output to its photo's own cartoon,
on a few real face_photo / face_cartoon pairs."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from cartoon.network import Generator
from cartoon.weights import save_pretrained
from train.data import network_batch
from train.evaluate import PerceptualDistance, main

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
KEYS = ("00000", "00001", "00005", "00006", "00007", "00009")
pytestmark = [pytest.mark.skipif(not (SHARED / "face_photo").is_dir(), reason="needs ../shared/data"),
              pytest.mark.usefixtures("one_thread")]


def _face(name: str, size: int = 256) -> np.ndarray:
    return np.asarray(Image.open(SHARED / name).convert("RGB").resize((size, size), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """pairs/{photos,cartoons}: A_k / B_k as shipped; stems/{photos,cartoons}: both named k; a config whose split
    holds half the pairs out; and an identity generator (untrained lite-res returns its input)."""
    root = tmp_path_factory.mktemp("paired")
    for folder in ("pairs/photos", "pairs/cartoons", "stems/photos", "stems/cartoons"):
        (root / folder).mkdir(parents=True)
    for k in KEYS:
        for side, prefix, src in (("photos", "A", "face_photo"), ("cartoons", "B", "face_cartoon")):
            shutil.copy(SHARED / src / f"{prefix}_{k}.jpg", root / "pairs" / side / f"{prefix}_{k}.jpg")
            shutil.copy(SHARED / src / f"{prefix}_{k}.jpg", root / "stems" / side / f"{k}.jpg")
    (root / "split.yaml").write_text(f"data:\n  photos: {root / 'pairs/photos'}\n  cartoons: {root / 'pairs/cartoons'}\n"
                                     "  val_fraction: 0.5\n  val_group: '^[AB]_(\\d+)$'\n")
    save_pretrained(Generator("lite-res"), root / "identity")
    return root


def _run(pairs, tmp_path, *args):
    out = tmp_path / "numbers.json"
    assert main([str(pairs / "identity"), *args, "--paired", "--size", "64", "--subsets", "3", "--subset-size", "3",
                 "--device", "cpu", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_the_split_pairs_each_held_out_photo_with_its_cartoon(pairs, tmp_path, capsys):
    split = str(pairs / "split.yaml")
    n = _run(pairs, tmp_path, "--photos-split", split, "--cartoons-split", split, "--sheet", str(tmp_path / "s.jpg"))
    assert n["n_pairs"] == n["n_photos"] == n["n_cartoons"] == 3
    # the identity generator's outputs are its photos, so it is exactly the do-nothing baseline
    assert n["l1_output"] == n["l1_photos"] and 0.02 < n["l1_photos"] < 0.5
    assert n["perceptual_output"] == n["perceptual_photos"] > 0
    printed = capsys.readouterr().out
    assert "VGG perceptual distance (LPIPS-like, unweighted)" in printed and "| photos (do nothing) |" in printed
    if "identity_skipped" in n:  # dlib not installed: said so, not a traceback
        assert "identity: skipped" in printed and "dlib" in n["identity_skipped"]
    else:
        assert n["id_cos_output"] == pytest.approx(1.0) and n["id_dist_output"] == pytest.approx(0.0, abs=1e-6)
        assert n["id_cos_cartoon"] < 1.0 and n["id_dist_cartoon"] > 0.05
        assert 0 <= n["id_faces_photos"] <= 3 and "faces found by dlib's HOG detector" in printed
    sheet = np.asarray(Image.open(tmp_path / "s.jpg"))
    assert sheet.shape[0] > 2 * 160 and sheet.shape[1] > 3 * 160  # 3 rows of photo | output | paired cartoon


def test_folders_pair_by_file_stem_and_identity_can_be_turned_off(pairs, tmp_path, capsys):
    n = _run(pairs, tmp_path, "--photos", str(pairs / "stems/photos"), "--cartoons", str(pairs / "stems/cartoons"),
             "--no-identity")
    assert n["n_pairs"] == len(KEYS) and n["l1_output"] == n["l1_photos"]
    assert "identity: skipped (--no-identity)" in capsys.readouterr().out
    # A_k and B_k have different stems: without a config's val_group nothing pairs up
    assert main([str(pairs / "identity"), "--photos", str(pairs / "pairs/photos"), "--cartoons",
                 str(pairs / "pairs/cartoons"), "--paired"]) == 2
    assert "no cartoon shares the key" in capsys.readouterr().err


def test_perceptual_distance_is_zero_for_the_same_image_and_grows_with_blur():
    face = _face("face_photo/A_00000.jpg", 64)
    im = Image.fromarray(face)
    barely = np.clip(face.astype(np.int16) + 2, 0, 255).astype(np.uint8)
    blurred = np.asarray(im.filter(ImageFilter.GaussianBlur(2)))
    ref = network_batch(np.stack([face] * 3))
    (d,) = PerceptualDistance().to_reference(ref, network_batch(np.stack([face, barely, blurred])), batch=2)
    assert d[0] == 0 and 0 < d[1] < 0.05 and d[2] > 10 * d[1]


def test_identity_is_one_for_the_same_face_and_lower_for_another_person():
    pytest.importorskip("dlib")
    from skimage import data

    from train.identity import SAME_PERSON_DISTANCE, FaceDescriptors, cosine

    describe = FaceDescriptors()
    (a, found_a), (a2, _), (b, found_b) = (describe(im) for im in (
        _face("face_photo/A_00000.jpg"), _face("face_photo/A_00000.jpg"),
        np.asarray(Image.fromarray(data.astronaut()).resize((256, 256)))))
    assert found_a and found_b and a.shape == (128,)
    assert cosine(a, a2) == pytest.approx(1.0) and cosine(a, b) < 0.95
    assert np.linalg.norm(a - b) > SAME_PERSON_DISTANCE


def test_missing_dlib_is_a_clear_message(monkeypatch):
    from train.identity import FaceDescriptors, IdentityUnavailable

    monkeypatch.setitem(sys.modules, "dlib", None)  # as if not installed: `import dlib` raises ImportError
    with pytest.raises(IdentityUnavailable, match="dlib is not importable.*pip install dlib-bin"):
        FaceDescriptors()
