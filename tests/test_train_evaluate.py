"""python -m train.evaluate: FID / KID / SSIM of a weights folder on real photos and cartoons, and its contact sheet."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cartoon.network import Generator
from cartoon.weights import save_pretrained
from train.evaluate import main

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
pytestmark = [pytest.mark.skipif(not (SHARED / "style_ghibli").is_dir(), reason="needs ../shared/data"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    for name, src in (("photos", SHARED / "scene_photo" / "test"), ("cartoons", SHARED / "style_ghibli")):
        (root / name).mkdir()
        for f in sorted(src.iterdir())[:6]:
            shutil.copy(f, root / name / f.name)
    return root


def _run(weights, folders, tmp_path, *extra):
    out = tmp_path / "numbers.json"
    assert main([str(weights), "--photos", str(folders / "photos"), "--cartoons", str(folders / "cartoons"),
                 "--size", "64", "--subsets", "5", "--subset-size", "4", "--device", "cpu", "--json", str(out),
                 *extra]) == 0
    return json.loads(out.read_text())


def test_an_identity_generator_scores_as_the_photos_and_a_random_one_loses_the_scene(folders, tmp_path, capsys):
    torch.manual_seed(0)
    save_pretrained(Generator("lite-res"), tmp_path / "identity")  # untrained residual generator: returns its input
    save_pretrained(Generator("lite"), tmp_path / "random")
    same = _run(tmp_path / "identity", folders, tmp_path, "--sheet", str(tmp_path / "sheet.jpg"), "--sheet-rows", "3")
    assert same["n_photos"] == 6 and same["n_cartoons"] == 6
    assert same["ssim"] > 0.99 and same["kid_ratio"] == pytest.approx(1.0, abs=0.02)
    assert same["fid"] == pytest.approx(same["fid_photos"], rel=0.02)
    assert same["texture_lines"] in (None, pytest.approx(0.0, abs=0.5))  # the identity draws no lines
    printed = capsys.readouterr().out
    assert "KID ratio stylised / photos" in printed and "mean grayscale SSIM to the input" in printed
    sheet = np.asarray(Image.open(tmp_path / "sheet.jpg"))
    assert sheet.shape[0] > 2 * 160 and sheet.shape[1] > 2 * 160  # 3 rows of input | output thumbnails
    noise = _run(tmp_path / "random", folders, tmp_path)
    assert noise["ssim"] < 0.8 * same["ssim"]


def test_bad_arguments_are_reported(folders, tmp_path, capsys):
    assert main([str(tmp_path / "none"), "--photos", str(folders / "photos"), "--cartoons",
                 str(folders / "cartoons")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main([str(tmp_path / "none"), "--photos", str(tmp_path / "nowhere"), "--cartoons",
                 str(folders / "cartoons")]) == 2
    assert "no such folder" in capsys.readouterr().err
