"""The CLI as users run it: a subprocess, real files, exit codes and messages."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cartoon", *map(str, args)], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def photos(tmp_path, astronaut_small):
    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(astronaut_small).save(d / "a.jpg", quality=95)
    Image.fromarray(astronaut_small[:100, :80]).save(d / "b.png")
    (d / "notes.txt").write_text("not an image, and not named like one: ignored")
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    data = (d / "a.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return d


def test_folder_writes_good_images_and_reports_bad_ones(photos, tmp_path, lite_weights):
    out = tmp_path / "out"
    r = run_cli("-i", photos, "-o", out, "--style", lite_weights, "--saliency")
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_saliency.png", "b.png", "b_saliency.png"]
    assert Image.open(out / "b.png").size == (80, 100)
    assert "broken.jpg" in r.stderr and "truncated.jpg" in r.stderr and "2 failed" in r.stderr
    assert "Traceback" not in r.stderr


def test_single_file_to_file_with_options(photos, tmp_path, lite_weights):
    r = run_cli("-i", photos / "a.jpg", "-o", tmp_path / "x.png", "--style", lite_weights, "--strength", "0.5",
                "--max-side", "64", "--tile", "32", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "x.png").size == (64, 64)


def test_output_never_overwrites_an_input(photos, lite_weights):
    before = (photos / "b.png").read_bytes()
    r = run_cli("-i", photos, "-o", photos, "--style", lite_weights)
    assert r.returncode == 2 and "overwrite an input" in r.stderr
    assert (photos / "b.png").read_bytes() == before


@pytest.mark.parametrize("args,match", [
    (["--style", "van-gogh"], "unknown style"),
    (["--strength", "3"], "--strength"),
    (["--backend", "onnx"], "export it"),
])
def test_configuration_errors_exit_2_without_traceback(photos, tmp_path, lite_weights, args, match):
    argv = ["-i", photos / "a.jpg", "-o", tmp_path / "o.png"] + args
    if "--style" not in args:
        argv += ["--style", lite_weights]
    r = run_cli(*argv)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr


def test_missing_input(tmp_path, lite_weights):
    r = run_cli("-i", tmp_path / "nope.jpg", "--style", lite_weights)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_jpeg_output_of_an_image_with_alpha(tmp_path, lite_weights):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    r = run_cli("-i", tmp_path / "in.png", "-o", tmp_path / "o.jpg", "--style", lite_weights)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "o.jpg").mode == "RGB"
