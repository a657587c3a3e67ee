"""data.target=degraded: film frames made photo-like (train.degrade) as inputs, the frames themselves as targets."""
import cv2
import numpy as np
from PIL import Image

from train.cache import file_digest
from train.config import Config, DataConfig, LossConfig
from train.data import UnpairedDataset, prepare_image, saliency_cache
from train.degrade import photo_like


def _frame(seed=0, size=64):
    """A flat cartoon: two regions split by a diagonal, with a dark 2 px outline between them."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.where((yy > xx)[..., None], [90, 170, 60], [120, 190, 240]).astype(np.uint8)
    img[np.abs(yy - xx) <= 1] = 20
    return np.roll(img, seed, axis=1)


def _photo(seed=0, size=80):
    """Warm, textured: what a photo lends."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal([150, 110, 80], 35, (size, size, 3)), 0, 255).astype(np.uint8)


def _lab_mean(rgb):
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(0)


def test_photo_like_keeps_the_scene_and_takes_the_photos_colours_and_texture():
    frame, photo = _frame(), _photo()
    out = photo_like(frame, photo, np.random.default_rng(3))
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(out, photo_like(frame, photo, np.random.default_rng(3)))  # a function of the seed
    # colours part of the way to the photo's
    d_frame = np.linalg.norm(_lab_mean(frame) - _lab_mean(photo))
    assert np.linalg.norm(_lab_mean(out) - _lab_mean(photo)) < 0.9 * d_frame
    # texture where the frame is flat
    flat = frame[40:60, 2:20].astype(float)
    assert flat.std(axis=(0, 1)).max() < 1 and out[40:60, 2:20].astype(float).std(axis=(0, 1)).mean() > 2
    # the scene is still there: the two regions stay apart
    assert abs(out[50, 10].astype(int).sum() - out[10, 50].astype(int).sum()) > 60


def test_degraded_dataset_swaps_a_share_of_the_photos_for_synthetic_pairs(tmp_path):
    (tmp_path / "f").mkdir(), (tmp_path / "p").mkdir()
    for i in range(3):
        Image.fromarray(_frame(i * 5, 40)).save(tmp_path / "f" / f"frame_{i}.png")
        Image.fromarray(_photo(i, 40)).save(tmp_path / "p" / f"photo_{i}.png")
    frames, photos = sorted((tmp_path / "f").iterdir()), sorted((tmp_path / "p").iterdir())
    cfg = DataConfig(photos=str(tmp_path / "p"), cartoons=str(tmp_path / "f"), size=24, cache_dir=str(tmp_path / "c"),
                     sal_segments=20, target="degraded", degraded_share=0.5)
    Config(data=cfg, loss=LossConfig(w_target_pixel=1.0)).validate()
    sal = saliency_cache(cfg)
    photo_sal = sal.build(photos, [file_digest(f) for f in photos], progress=False)
    frame_sal = sal.build(frames, [file_digest(f) for f in frames], progress=False)
    ds = UnpairedDataset(cfg, photos, photo_sal, frames, None, seed=0, cartoon_saliency=frame_sal)
    crops = [(s[:, ::-1] if f else s)[y:y + 24, x:x + 24] for p in frames for s in [prepare_image(p, None, 24)]
             for f in (False, True) for y in range(17) for x in range(17)]
    masks = []
    for key in range(12):
        item = ds[key]
        masks.append(float(item["target_mask"]))
        target = np.round((item["target"].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
        if masks[-1]:  # a synthetic pair: the target is a crop of a frame, the input that crop made photo-like
            assert any(np.array_equal(c, target) for c in crops), "the target is not a crop of a frame"
            assert np.abs(item["photo"] - item["target"]).mean() > 0.02
        else:  # a photo: no target (the mask leaves it out of the target terms)
            assert not any(np.array_equal(c, target) for c in crops)
    assert 0 < sum(masks) < 12


def test_target_terms_average_only_the_items_with_a_target():
    import torch
    from train.losses import target_l1
    fake, target = torch.zeros(3, 3, 4, 4), torch.ones(3, 3, 4, 4)
    target[1] = 5.0
    assert target_l1(fake, target, torch.tensor([1.0, 0.0, 1.0])).item() == 1.0
    assert target_l1(fake, target, torch.tensor([0.0, 0.0, 0.0])).item() == 0.0
    assert abs(target_l1(fake, target, None).item() - 7 / 3) < 1e-6
