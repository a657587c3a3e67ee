"""The scene objective's parts (White-box's surface / texture / structure representations), the objective's
discriminator heads, the scenery-matched data and the measures a scene style is judged by."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from train import losses as L
from train.config import load_config
from train.data import make_splits
from train.loop import Trainer, train
from train.metrics import FrameProbe, flat_share, line_placement, look_numbers

from test_train_loop import _overrides, folders, straight_and_resumed  # noqa: F401  (the shared fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def _two_regions(rng, noise: float) -> np.ndarray:
    img = np.zeros((64, 64, 3), np.float64)
    img[:, :32] = (200, 60, 40)
    img[:, 32:] = (40, 90, 210)
    return np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)


def _net(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_box_mean_is_the_border_cut_window_mean():
    import torch.nn.functional as F
    x = torch.randn(2, 3, 40, 37)
    for r in (1, 5):
        assert torch.allclose(L.box_mean(x, r), F.avg_pool2d(x, 2 * r + 1, 1, r, count_include_pad=False), atol=1e-5)


def test_guided_filter_removes_noise_and_keeps_edges():
    rng = np.random.default_rng(0)
    x = _net(_two_regions(rng, 25))
    y = L.guided_filter(x, x, 5, 0.2)
    clean = _net(_two_regions(rng, 0))
    inside = (slice(None), slice(None), slice(8, 56), slice(4, 26))
    assert (y[inside].std(dim=(2, 3)) < 0.4 * x[inside].std(dim=(2, 3))).all()
    # the edge between the halves stays a step, not a ramp over the filter's 11 px
    assert (y[0, :, 32, 27] - y[0, :, 32, 36]).abs().sum() > 0.7 * (clean[0, :, 32, 27] - clean[0, :, 32, 36]).abs().sum()
    assert torch.allclose(L.guided_filter(clean[:, :, :, :30], clean[:, :, :, :30], 5, 0.2), clean[:, :, :, :30], atol=1e-4)


def test_random_grayscale_draws_one_weighting_for_all_images():
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    ga, gb = L.random_grayscale(a, b)
    assert ga.shape == (2, 1, 8, 8)
    # a gray image stays its gray value (the weights sum to 1) ...
    g = torch.rand(1, 1, 8, 8).expand(1, 3, 8, 8)
    assert torch.allclose(L.random_grayscale(g)[0], g[:, :1], atol=1e-6)
    # ... and one call weights the channels of all its images alike: solve a's weights, they reproduce b's gray
    w = torch.linalg.lstsq(a.permute(0, 2, 3, 1).reshape(-1, 3), ga.reshape(-1, 1)).solution
    assert torch.allclose((b.permute(0, 2, 3, 1).reshape(-1, 3) @ w).reshape(-1), gb.reshape(-1), atol=1e-4)
    assert not torch.allclose(w.reshape(-1), torch.tensor([0.299, 0.587, 0.114]), atol=1e-3)


def test_superpixel_painting_flattens_regions_and_the_structure_loss_is_zero_on_a_painting():
    rng = np.random.default_rng(1)
    noisy = _two_regions(rng, 20)
    painted = L.superpixel_colour(noisy, 20)
    truth = _two_regions(rng, 0).astype(np.float32)
    def close(im):  # share of pixels within 8 grey levels (every channel) of the region's true colour
        return float((np.abs(im.astype(np.float32) - truth).max(-1) < 8).mean())
    assert close(painted) > 0.85 and close(noisy) < 0.4
    vgg = L.VGGFeatures("block2_conv2")
    flat = _net(_two_regions(rng, 0))  # already a painting: only the pixels along the boundary move
    def structure(x):
        return float(L.structure_loss(vgg, x, None, L.superpixel_painting(x, 80)))
    assert structure(_net(noisy)) > 4 * structure(flat)


def test_the_painting_s_outlines_follow_boundaries_between_unlike_regions_only():
    rng = np.random.default_rng(2)
    noisy = _two_regions(rng, 6)
    plain, lined = L.superpixel_colour(noisy, 20), L.superpixel_colour(noisy, 20, outline=60)
    dark = lined.sum(-1) < 0.6 * plain.sum(-1)  # where a line darkened the painting
    cols = np.flatnonzero(dark.mean(0) > 0.5)
    assert cols.size and np.all(np.abs(cols - 31.5) < 3)  # one line down the red / blue boundary ...
    assert dark.mean() < 0.06  # ... and no line between the like-coloured segments within each region
    never = L.superpixel_colour(noisy, 20, outline=1000)
    assert np.array_equal(never, plain)


def test_surface_and_texture_discriminators_learn_checkpoint_and_resume_only_into_their_heads(folders, tmp_path):
    cfg = load_config(None, _overrides(folders, tmp_path / "fixed", "train.init_epochs=0", "loss.w_adv=0",
                                       "loss.w_adv_surface=1", "loss.w_adv_texture=1", "loss.w_structure=1",
                                       "loss.superpixels=40", "model.d_channels=8", "optim.lr_g=0", "optim.lr_s=0",
                                       "optim.lr_d=2e-3", "train.batch_size=4"))
    trainer = Trainer(cfg, progress=False)
    assert [h.name for h in trainer.objective.heads] == ["surface", "texture"]
    assert trainer.objective.heads[1].net.net[0].in_channels == 1
    trainer.sampler.set_position(0)
    batch = next(iter(trainer.loader))
    logs = [trainer.train_step(batch) for _ in range(30)]
    assert "loss/structure" in logs[0] and "loss/d_pixel" not in logs[0]
    for name in ("surface", "texture"):
        d = [float(x[f"loss/d_{name}"]) for x in logs]
        assert np.mean(d[-3:]) < 0.3 * np.mean(d[:3]), (name, d)
    card = "\n".join(trainer.objective.describe())
    assert "guided-filtered" in card and "random grayscale" in card and "superpixel" in card

    common = ("train.init_epochs=0", "loss.w_adv=0", "loss.w_adv_surface=1", "loss.w_adv_texture=1",
              "model.d_channels=8", "log.ckpt_every=2", "log.eval_every=100")
    a, b = straight_and_resumed(folders, tmp_path, common)
    assert any(k.startswith("texture_discriminator.") for k in a) and any(k.startswith("optim.d_surface.") for k in a)
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    with pytest.raises(ValueError, match="surface .Discriminator., texture .Discriminator.; this config has pixel"):
        Trainer(load_config(None, _overrides(folders, tmp_path / "b", "train.init_epochs=0", "train.max_steps=6")),
                resume=True, progress=False)


def test_cartoon_include_keeps_listed_frames_in_both_splits(tmp_path):
    root = tmp_path / "cartoons"
    root.mkdir()
    for frame in range(20):
        for crop in range(2):
            Image.new("RGB", (8, 8)).save(root / f"f{frame:02d}_{crop}.png")
    keep = tmp_path / "keep.txt"
    keep.write_text("# scenery\n" + "".join(f"f{i:02d}  # {i}\n" for i in range(0, 20, 2)))
    cfg = load_config(None, [f"data.photos={root}", f"data.cartoons={root}", r"data.val_group=^(.*)_\d+$",
                             f"data.cartoon_include={keep}", "data.cartoon_val_fraction=0.2", "data.val_fraction=0.1"])
    s = make_splits(cfg.data)
    frames = {p.name.split("_")[0] for p in s.cartoons + s.val_cartoons}
    assert frames == {f"f{i:02d}" for i in range(0, 20, 2)}
    assert len(s.val_cartoons) == 4 and not {p.name[:3] for p in s.val_cartoons} & {p.name[:3] for p in s.cartoons}
    assert len(s.val_photos) == 4  # the photos keep data.val_fraction


def test_look_measures_tell_flat_outlined_pictures_from_photos():
    rng = np.random.default_rng(2)
    photo = _two_regions(rng, 40)
    cartoon = _two_regions(rng, 0)
    cartoon[:, 31:33] = 10  # an outline on the boundary
    assert flat_share(cartoon) > 0.9 and flat_share(photo) < 0.3
    sharp = np.zeros((64, 64, 3), np.uint8)  # a boundary Canny sees: luma 200 against 40
    sharp[:, :32], sharp[:, 32:] = 200, 40
    outlined = sharp.copy()
    outlined[:, 31:33] = 0
    on_boundary, on_texture = line_placement(sharp, outlined)
    assert on_boundary > 0.3 and on_texture is None and line_placement(sharp, sharp)[0] == 0
    numbers = look_numbers([cartoon, photo])
    assert len(numbers["gradient_histogram"]) == 8 and abs(sum(numbers["gradient_histogram"]) - 1) < 1e-3


def test_frame_probe_tells_frames_from_photos():
    rng = np.random.default_rng(3)
    photos, frames = rng.normal(0, 1, (200, 16)), rng.normal(0, 1, (200, 16)) + np.eye(16)[0] * 5
    probe = FrameProbe(photos[:150], frames[:150])
    assert probe.frame_share(frames[150:]) > 0.9 and probe.frame_share(photos[150:]) < 0.1
    # frames further along the frame direction have higher log-odds
    assert np.all(np.diff(probe.logit(np.outer(np.linspace(-3, 3, 7), np.eye(16)[0]))) > 0)


def test_scenery_cli_writes_a_key_list_that_cartoon_include_reads(folders, tmp_path):
    """python -m train.scenery: the N frames (split keys, one per source frame) a photo-vs-frame probe finds most
    photo-like, with a header saying how they were chosen, in a file data.cartoon_include takes."""
    from train.scenery import main as scenery_main

    frames = tmp_path / "frames"
    frames.mkdir()
    for f in sorted((folders / "cartoons").glob("*.png"))[:6]:
        for crop in range(2):
            Image.open(f).save(frames / f"{f.stem}_{crop}.png")
    out = tmp_path / "scenery.txt"
    args = ["--config", str(Path(__file__).parent.parent / "train" / "configs" / "tiny.yaml"),
            f"data.photos={folders / 'photos'}", f"data.cartoons={frames}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.limit=null", "--count", "3", "--out", str(out), "--photos-sample", "8", "--size", "64"]
    assert scenery_main(args) == 0
    text = out.read_text()
    keys = [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]
    assert text.startswith("# Scenery frames") and "python -m train.scenery" in text
    assert len(keys) == 3 and set(keys) <= {f"c{i:02d}" for i in range(6)}
    cfg = load_config(None, [f"data.photos={folders / 'photos'}", f"data.cartoons={frames}", r"data.val_group=^(.*)_\d+$",
                             f"data.cartoon_include={out}", "data.cartoon_val_fraction=0.3"])
    s = make_splits(cfg.data)
    assert {p.name.rsplit("_", 1)[0] for p in s.cartoons + s.val_cartoons} == set(keys)


def test_the_training_and_inference_guided_filters_agree():
    from cartoon.filters import guided_filter

    torch.manual_seed(0)
    x = torch.rand(2, 3, 40, 44) * 2 - 1
    for r, eps in [(1, 0.01), (2, 0.02), (5, 0.2)]:
        assert torch.allclose(L.guided_filter(x, x, r, eps), guided_filter(x, x, r, eps), atol=1e-5)


def test_the_chroma_term_keeps_each_region_s_hue_and_leaves_luma_and_detail_free():
    torch.manual_seed(0)
    photo = torch.rand(2, 3, 32, 32) * 1.6 - 0.8
    textured = photo + 0.3 * (torch.rand(1, 1, 32, 32) - 0.5)  # grey texture finer than a block: the same hue
    assert float(L.chroma_loss(photo, photo)) == 0.0
    assert float(L.chroma_loss(textured.clamp(-1, 1), photo)) < 0.01
    assert float(L.chroma_loss(photo + 0.2, photo)) < 1e-6  # brighter: luma is free
    green = photo + torch.tensor([-0.15, 0.15, -0.15]).view(1, 3, 1, 1)  # a green cast over the whole picture
    assert float(L.chroma_loss(green, photo)) > 0.04


def test_the_luma_term_keeps_light_and_shade_and_leaves_detail_and_hue_free():
    torch.manual_seed(0)
    photo = torch.rand(2, 3, 32, 32) * 1.6 - 0.8
    assert float(L.luma_loss(photo, photo)) == 0.0
    textured = photo + 0.3 * (torch.rand(1, 1, 16, 16) - 0.5).repeat(1, 1, 2, 2)  # zero-mean texture within a block
    assert float(L.luma_loss(textured, photo)) < 0.01
    hue = photo + torch.tensor([0.1, -0.0704, 0.1]).view(1, 3, 1, 1)  # another hue, the same luma
    assert float(L.luma_loss(hue, photo)) < 1e-3
    hazy = 0.5 * photo + 0.3  # darks lifted, lights dimmed
    assert float(L.luma_loss(hazy, photo)) > 0.05
