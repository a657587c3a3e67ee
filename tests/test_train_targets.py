"""train/targets.py and the target plumbing of train/data.py: flat targets (scene styles) and paired cartoons."""
import numpy as np
import pytest
from PIL import Image

from train.cache import file_digest, read_png
from train.config import Config, ConfigError, DataConfig, LossConfig
from train.data import (UnpairedDataset, edge_cache, lab_stats, paired_files, prepare_image, saliency_cache,
                        target_cache)
from train.targets import LabStats, flat_target, outlines, smooth, style_target, transfer_colour


def _photo(seed=0, size=64):
    """Two flat regions split by a diagonal, plus fine noise (texture that flattening should remove)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.where((yy > xx)[..., None], [220, 170, 120], [40, 70, 150]).astype(np.float64)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def test_smoothing_flattens_texture_and_keeps_the_edge():
    img = _photo()
    flat = smooth(img)
    inside = (slice(40, 60), slice(4, 20))  # well inside the lower-left region
    assert flat[inside].std(axis=(0, 1)).mean() < 0.5 * img[inside].std(axis=(0, 1)).mean()
    # the two colours either side of the diagonal survive
    assert abs(float(flat[50, 10, 0]) - float(flat[10, 50, 0])) > 100


def test_outlines_keep_long_edges_and_drop_specks():
    img = np.full((64, 64, 3), 200, np.uint8)
    img[:, 32:] = 40  # one long vertical edge
    img[8:10, 8:10] = 0  # a 2x2 speck: a short Canny contour
    lines = outlines(img)
    assert lines.shape == (64, 64) and lines.dtype == np.float32 and lines.max() <= 1
    assert lines[20:44, 30:34].max() >= 0.75  # a 1-px line, softened
    assert lines[4:14, 4:14].max() == 0


def test_outline_density_limit_drops_texture_and_keeps_the_skyline():
    """A meadow of strong-contrast specks (long connected Canny chains) under a plain sky with one skyline: the
    length filter alone outlines the meadow; the density limit of "flat-clean" leaves only the skyline."""
    rng = np.random.default_rng(0)
    img = np.full((96, 96, 3), 210, np.uint8)
    specks = np.where(rng.random((16, 32)) < 0.5, 30, 170).astype(np.uint8).repeat(3, 0).repeat(3, 1)
    img[48:] = specks[..., None]  # 3-px specks, light and dark
    img[30:48] = 90  # a dark hill: the skyline is the edge at row 30
    texture = (slice(60, 90), slice(10, 86))
    assert (outlines(img)[texture] > 0.5).mean() > 0.05
    clean = outlines(img, max_density=0.2)
    assert clean[texture].max() == 0
    assert clean[28:32, 20:76].max(axis=0).min() >= 0.75  # the skyline, all along
    src = LabStats.of([img])
    assert not np.array_equal(style_target(img, "flat-clean", src, src), style_target(img, "flat", src, src))


def test_colour_transfer_moves_set_statistics():
    img = _photo(1)
    src = LabStats.of([img])
    same = transfer_colour(img, src, src)
    assert np.abs(same.astype(int) - img).mean() < 1  # the 8-bit Lab round trip only
    warm = LabStats(src.mean[:2] + (src.mean[2] + 20,), src.std)  # +b* (yellower)
    out = LabStats.of([transfer_colour(img, src, warm)])
    assert out.mean[2] == pytest.approx(src.mean[2] + 20, abs=2)


def test_flat_target_is_darker_on_outlines():
    img = _photo(2)
    stats = LabStats.of([img])
    target = flat_target(img, stats, stats)
    assert target.shape == img.shape and target.dtype == np.uint8
    lines = outlines(smooth(img)) >= 0.75
    assert lines.any()
    assert target[lines].mean() < 0.7 * target[~lines].mean()


def test_colour_target_recolours_without_smoothing():
    img = _photo(3)
    src = LabStats.of([img])
    blue = LabStats(src.mean[:2] + (src.mean[2] - 15,), src.std)  # -b*: bluer
    target = style_target(img, "colour", src, blue)
    assert np.array_equal(target, transfer_colour(img, src, blue))
    assert LabStats.of([target]).mean[2] == pytest.approx(src.mean[2] - 15, abs=2)
    inside = (slice(40, 60), slice(4, 20))
    assert target[inside].std(axis=(0, 1)).mean() > 0.8 * img[inside].std(axis=(0, 1)).mean()  # texture kept
    assert not np.array_equal(style_target(img, "flat", src, blue), target)
    with pytest.raises(ValueError, match="no target of kind"):
        style_target(img, "sketch", src, blue)


def _write(folder, name, rgb):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(folder / name)
    return folder / name


def test_paired_files_match_by_key_and_report_the_missing(tmp_path):
    photos = [_write(tmp_path / "a", f"A_{i:05d}.png", _photo(i, 32)) for i in (3, 1, 7)]
    cartoons = [_write(tmp_path / "b", f"B_{i:05d}.png", _photo(i + 10, 32)) for i in (1, 3, 7)]
    pairs = paired_files(photos, cartoons, r"^[AB]_(\d+)$")
    assert [c.name for c in pairs] == ["B_00003.png", "B_00001.png", "B_00007.png"]
    with pytest.raises(ConfigError, match="no cartoon shares the key of 1 photo"):
        paired_files(photos + [_write(tmp_path / "a", "A_00009.png", _photo(9, 32))], cartoons, r"^[AB]_(\d+)$")


def test_target_weights_need_a_target():
    with pytest.raises(ConfigError, match="need data.target"):
        Config(data=DataConfig(photos="p", cartoons="c"), loss=LossConfig(w_target_pixel=1.0)).validate()
    with pytest.raises(ConfigError, match="data.target"):
        Config(data=DataConfig(photos="p", cartoons="c", target="sketch")).validate()


def test_each_target_kind_has_its_own_cache_entries(tmp_path):
    photos = [_write(tmp_path / "p", f"A_{i}.png", _photo(i, 32)) for i in range(2)]
    digests = [file_digest(p) for p in photos]
    built = {}
    for kind in ("flat", "colour", "flat-clean"):
        cfg = DataConfig(photos=str(tmp_path / "p"), cartoons="c", size=32, cache_dir=str(tmp_path / "cache"), target=kind)
        stats = lab_stats(photos, cfg)
        built[kind] = [read_png(t) for t in target_cache(cfg, stats, stats).build(photos, digests, progress=False)]
    assert not np.array_equal(built["flat"][0], built["colour"][0])
    assert np.abs(built["colour"][0].astype(int) - prepare_image(photos[0], None, 32)).mean() < 1  # same stats: the photo


@pytest.mark.parametrize("kind", ["flat", "colour", "paired"])
def test_dataset_crops_the_target_with_its_photo(tmp_path, kind):
    photos = [_write(tmp_path / "p", f"A_{i}.png", _photo(i, 40)) for i in range(3)]
    cartoons = [_write(tmp_path / "c", f"B_{i}.png", _photo(i + 5, 40)) for i in range(3)]
    cfg = DataConfig(photos=str(tmp_path / "p"), cartoons=str(tmp_path / "c"), size=24, cache_dir=str(tmp_path / "cache"),
                     sal_segments=20, target=kind, val_group=r"^[AB]_(\d+)$")
    digests = [file_digest(p) for p in photos]
    sal = saliency_cache(cfg).build(photos, digests, progress=False)
    edges = edge_cache(cfg).build(cartoons, [file_digest(c) for c in cartoons], progress=False)
    if kind != "paired":
        stats = lab_stats(photos, cfg), lab_stats(cartoons, cfg)
        targets = target_cache(cfg, *stats).build(photos, digests, progress=False)
        full = [read_png(t) for t in targets]
        assert np.array_equal(full[0], style_target(prepare_image(photos[0], None, 24), kind, *stats))
    else:
        targets = paired_files(photos, cartoons, cfg.val_group)
        full = [prepare_image(t, None, 24) for t in targets]
    ds = UnpairedDataset(cfg, photos, sal, cartoons, edges, seed=0, targets=targets, targets_are_maps=kind != "paired")
    for key in range(6):
        item = ds[key]
        i = key % 3
        photo = np.round((item["photo"].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
        target = np.round((item["target"].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
        src = prepare_image(photos[i], None, 24)
        found = [(y, x, f) for f in (False, True) for y in range(17) for x in range(17)
                 if np.array_equal((src[:, ::-1] if f else src)[y:y + 24, x:x + 24], photo)]
        assert found, "photo crop not found"
        y, x, f = found[0]
        ref = full[i][:, ::-1] if f else full[i]
        assert np.array_equal(ref[y:y + 24, x:x + 24], target)
