"""The paired-target plumbing of train/data.py (data.target=paired: each photo's own cartoon, e.g. portraits)."""
import numpy as np
import pytest
from PIL import Image

from train.cache import file_digest
from train.config import Config, ConfigError, DataConfig, LossConfig
from train.data import UnpairedDataset, edge_cache, paired_files, prepare_image, saliency_cache


def _photo(seed=0, size=64):
    """Two flat regions split by a diagonal, plus fine noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.where((yy > xx)[..., None], [220, 170, 120], [40, 70, 150]).astype(np.float64)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


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


def test_target_weights_need_a_target_and_only_paired_is_one():
    with pytest.raises(ConfigError, match="need data.target"):
        Config(data=DataConfig(photos="p", cartoons="c"), loss=LossConfig(w_target_pixel=1.0)).validate()
    for kind in ("sketch", "flat"):  # "flat": one of the per-photo scene targets, since removed
        with pytest.raises(ConfigError, match="data.target"):
            Config(data=DataConfig(photos="p", cartoons="c", target=kind)).validate()
    Config(data=DataConfig(photos="p", cartoons="c", target="paired"), loss=LossConfig(w_target_pixel=1.0)).validate()


def test_dataset_crops_the_paired_cartoon_with_its_photo(tmp_path):
    photos = [_write(tmp_path / "p", f"A_{i}.png", _photo(i, 40)) for i in range(3)]
    cartoons = [_write(tmp_path / "c", f"B_{i}.png", _photo(i + 5, 40)) for i in range(3)]
    cfg = DataConfig(photos=str(tmp_path / "p"), cartoons=str(tmp_path / "c"), size=24, cache_dir=str(tmp_path / "cache"),
                     sal_segments=20, target="paired", val_group=r"^[AB]_(\d+)$")
    sal = saliency_cache(cfg).build(photos, [file_digest(p) for p in photos], progress=False)
    edges = edge_cache(cfg).build(cartoons, [file_digest(c) for c in cartoons], progress=False)
    targets = paired_files(photos, cartoons, cfg.val_group)
    full = [prepare_image(t, None, 24) for t in targets]
    ds = UnpairedDataset(cfg, photos, sal, cartoons, edges, seed=0, targets=targets)
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
