"""The CLI as users run it: a subprocess, real files, exit codes and messages."""
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO


def run_cli(*args, cwd=None, umask=-1):
    return subprocess.run([sys.executable, "-m", "cartoon", *map(str, args)], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=300, umask=umask)


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


def test_panorama_and_a_strip_too_thin_for_max_side(tmp_path, lite_weights):
    """A 37:1 strip of a real photo is cartoonized (it used to end in a RuntimeError traceback); a 10000x20 one that
    --max-side would shrink to 1024x2 is skipped with one line naming it once, its size and what to do."""
    from skimage import data

    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(data.astronaut()).resize((600, 16), Image.Resampling.LANCZOS, box=(0, 256, 512, 270)).save(
        d / "wide.png")
    Image.new("RGB", (10000, 20), "gray").save(d / "thin.png")
    r = run_cli("-i", d, "-o", tmp_path / "out", "--style", lite_weights, "--max-side", "1024")
    assert r.returncode == 1, r.stderr
    assert Image.open(tmp_path / "out" / "wide.png").size == (600, 16)
    assert not (tmp_path / "out" / "thin.png").exists()
    skipped = [line for line in r.stderr.splitlines() if line.startswith("skipped")]
    assert skipped == [f"skipped {d / 'thin.png'}: 10000x20 would be 1024x2 at a longest side of 1024 px, under "
                       "the 16 px minimum; crop it to a less extreme shape, or allow a longest side of at least 8000 "
                       "px"]
    assert "1 of 2 written to" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("-i", d / "thin.png", "-o", tmp_path / "thin.png", "--style", lite_weights, "--max-side", "1024")
    assert r.returncode == 1 and f"nothing written to {tmp_path / 'thin.png'} (" in r.stderr, r.stderr
    assert "0 of 1" not in r.stderr and not (tmp_path / "thin.png").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_the_usual_file_mode(photos, tmp_path, lite_weights, umask):
    """What the umask leaves of 0666, as for any file a program creates, not the temporary file's private 0600."""
    r = run_cli("-i", photos / "b.png", "-o", tmp_path / "b.png", "--style", lite_weights, "--saliency", umask=umask)
    assert r.returncode == 0, r.stderr
    for name in ("b.png", "b_saliency.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


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


# ---------------------------------------------------------------------------------------------------------------
# --mode and --background (cartoon.Studio): portrait faces get the registry's portrait style


@pytest.fixture(scope="module")
def portrait_env(tmp_path_factory):
    """A weights folder with a random `portrait` style (registry name) and the shipped face segmenter."""
    import os

    import torch

    import cartoon

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(1)
    cartoon.save_pretrained(cartoon.Generator("lite"), d / "portrait")
    (d / "segmenter").symlink_to(REPO / "weights" / "segmenter", target_is_directory=True)
    return dict(os.environ, CARTOON_WEIGHTS_DIR=str(d), HF_HUB_OFFLINE="1")


@pytest.fixture(scope="module")
def face_jpg(tmp_path_factory):
    from skimage import data

    p = tmp_path_factory.mktemp("faces") / "astronaut.png"
    Image.fromarray(data.astronaut()[:320, 96:416]).save(p)  # her face is about a third of the side
    return p


def run_env(env, *args):
    return subprocess.run([sys.executable, "-m", "cartoon", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to float rounding (the subprocess may use another thread count)."""
    d = np.abs(a.astype(int) - b.astype(int))
    return a.shape == b.shape and d.max() <= 2 and d.mean() < 0.05


def test_portrait_mode_over_the_photo_and_over_the_cartoon(portrait_env, face_jpg, tmp_path, lite_weights):
    import cartoon

    photo = np.asarray(Image.open(face_jpg).convert("RGB"))
    scene = cartoon.Cartoonizer(lite_weights, device="cpu")(photo)
    corner = np.s_[270:, 270:]  # far from her face
    for background in ("photo", "cartoon"):
        out = tmp_path / f"{background}.png"
        r = run_env(portrait_env, "-i", face_jpg, "-o", out, "--style", lite_weights, "--mode", "portrait",
                    "--background", background, "--saliency")
        assert r.returncode == 0, r.stderr
        assert "portrait mode, faces: Portrait" in r.stderr  # the registry's portrait style, not --style
        got = np.asarray(Image.open(out))
        assert np.abs(got[60:180, 80:200].astype(int) - photo[60:180, 80:200]).mean() > 10  # the face changed
        if background == "photo":
            assert np.array_equal(got[corner], photo[corner])
            assert not (tmp_path / "photo_saliency.png").exists() and "no saliency map for astronaut.png" in r.stderr
        else:
            assert close(got[corner], scene.image.rgb[corner])
            assert close(np.asarray(Image.open(tmp_path / "cartoon_saliency.png")), scene.saliency)


def test_auto_mode_over_a_folder(portrait_env, face_jpg, tmp_path, lite_weights):
    import cartoon

    d = tmp_path / "in"
    d.mkdir()
    (d / "face.png").write_bytes(face_jpg.read_bytes())
    landscape = np.asarray(Image.open(face_jpg).convert("RGB"))[250:, :]  # below her face: no face
    Image.fromarray(landscape).save(d / "suit.png")
    r = run_env(portrait_env, "-i", d, "-o", tmp_path / "out", "--style", lite_weights, "--mode", "auto")
    assert r.returncode == 0, r.stderr
    assert "auto mode: 1 portrait + 1 scene" in r.stderr
    assert "face.png: portrait mode (auto: largest face is " in r.stderr  # what it chose for each, and why
    assert "suit.png: scene mode (auto: no face of at least 48 px found)" in r.stderr
    expected = cartoon.Cartoonizer(lite_weights, device="cpu")(landscape).image.rgb
    assert close(np.asarray(Image.open(tmp_path / "out" / "suit.png")), expected)  # no face: the scene cartoon


def test_portrait_mode_without_a_face_skips_the_image(portrait_env, photos, tmp_path, lite_weights):
    Image.new("RGB", (96, 64), (90, 140, 200)).save(tmp_path / "sky.png")
    r = run_env(portrait_env, "-i", tmp_path / "sky.png", "-o", tmp_path / "o.png", "--style", lite_weights,
                "--mode", "portrait")
    assert r.returncode == 1 and "no face found" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.png").exists()


def test_without_a_face_pipeline_auto_is_scene_and_portrait_says_why(photos, tmp_path, lite_weights):
    """No segmenter in the weights folder: the face pipeline cannot load."""
    import os

    empty = tmp_path / "no-weights"
    empty.mkdir()
    env = dict(os.environ, CARTOON_WEIGHTS_DIR=str(empty), HF_HUB_OFFLINE="1")
    r = run_env(env, "-i", photos / "a.jpg", "-o", tmp_path / "a.png", "--style", lite_weights, "--mode", "auto")
    assert r.returncode == 0, r.stderr
    assert "face pipeline could not be loaded" in r.stderr and "auto mode: 1 scene" in r.stderr
    r = run_env(env, "-i", photos / "a.jpg", "-o", tmp_path / "b.png", "--style", lite_weights, "--mode", "portrait")
    assert r.returncode == 2 and "error: portrait mode: the face pipeline could not be loaded" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args,match", [
    (["--mode", "cubist"], "argument --mode: invalid choice: 'cubist'"),
    (["--background", "sky"], "argument --background: invalid choice: 'sky'"),
    (["--tile", "0"], "--tile must be a whole number of pixels"),
    (["--device", "gpu"], "device must be auto, cpu, cuda or cuda:N"),
])
def test_bad_mode_background_tile_device_exit_2(photos, tmp_path, lite_weights, args, match):
    r = run_cli("-i", photos / "a.jpg", "-o", tmp_path / "o.png", "--style", lite_weights, *args)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr
