"""train/data.py, edges.py, saliency_ref.py, cache.py: splits, maps, caches, crops."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cartoon.tiling import to_network
from train.cache import MapCache, file_digest, read_png
from train.config import ConfigError, DataConfig
from train.data import (EpochSampler, UnpairedDataset, edge_cache, make_splits, prepare_image, saliency_cache,
                        split_files, steps_per_epoch)
from train.edges import smooth_edges
from train.saliency_ref import mbd_transform, saliency_reference


def _write(folder: Path, name: str, rgb: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(folder / name)
    return folder / name


def _scene(rng, h=40, w=44) -> np.ndarray:
    """A photo-like image: smooth gradient background, a textured blob, noise."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([90 + 80 * yy, 120 + 60 * xx, 160 - 50 * yy], -1)
    cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, rng.uniform(0.15, 0.3) * min(h, w)
    blob = (np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r * r
    img[blob] = rng.uniform(0, 255, 3)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


# ---- splits ---------------------------------------------------------------------------------------------------

def test_split_is_seeded_grouped_and_sized():
    files = [Path(f"frame{f:03d}_{c}.jpg") for f in range(40) for c in range(3)]
    train, val = split_files(files, 0.1, r"^(.*)_\d+$", seed=0)
    assert len(val) == 12 and len(train) == 108 and not set(train) & set(val)
    groups = lambda fs: {f.stem.rsplit("_", 1)[0] for f in fs}  # noqa: E731
    assert not groups(train) & groups(val)  # crops of a frame never straddle the split
    assert split_files(files, 0.1, r"^(.*)_\d+$", seed=0) == (train, val)
    assert split_files(files, 0.1, r"^(.*)_\d+$", seed=1)[1] != val
    # without grouping, crops of one frame do land on both sides for some frame
    _, val_ungrouped = split_files(files, 0.1, None, seed=0)
    assert len(groups(val_ungrouped)) > len(groups(val))
    listed = split_files(files, 0.5, None, val_names={"frame001_2.jpg", "frame007_0.jpg"})[1]
    assert [f.name for f in listed] == ["frame001_2.jpg", "frame007_0.jpg"]


def test_make_splits_pairs_photo_and_cartoon_groups(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(10):
        _write(tmp_path / "a", f"A_{i:05d}.png", _scene(rng))
        _write(tmp_path / "b", f"B_{i:05d}.png", _scene(rng))
    cfg = DataConfig(photos=str(tmp_path / "a"), cartoons=str(tmp_path / "b"), val_fraction=0.3, val_group=r"^[AB]_(\d+)$")
    s = make_splits(cfg)
    assert len(s.val_photos) == 3 and [p.name[1:] for p in s.val_photos] == [p.name[1:] for p in s.val_cartoons]
    with pytest.raises(ConfigError, match="no such folder"):
        make_splits(DataConfig(photos=str(tmp_path / "none"), cartoons=str(tmp_path / "b")))
    # data.cartoon_exclude drops listed frames from training only: validation is the same set
    (tmp_path / "exclude.txt").write_text("# rain\n00001\n00004  # snow\n\n")
    cut = make_splits(dataclasses.replace(cfg, cartoon_exclude=str(tmp_path / "exclude.txt")))
    assert [p.name for p in s.cartoons if p.name not in {"B_00001.png", "B_00004.png"}] == [p.name for p in cut.cartoons]
    assert len(cut.cartoons) < len(s.cartoons) and cut.val_cartoons == s.val_cartoons and cut.photos == s.photos
    with pytest.raises(ConfigError, match="data.cartoon_exclude: .*no such file"):
        make_splits(dataclasses.replace(cfg, cartoon_exclude=str(tmp_path / "none.txt")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        make_splits(DataConfig(photos=str(tmp_path / "empty"), cartoons=str(tmp_path / "b")))


# ---- edge smoothing -------------------------------------------------------------------------------------------

def test_smooth_edges_blurs_only_near_edges():
    img = np.full((40, 40, 3), 30, np.uint8)
    img[:, 20:] = 220  # one vertical edge at x = 20
    out = smooth_edges(img, 100, 200, 5)
    changed = np.any(out != img, axis=2)
    cols = np.flatnonzero(changed.any(axis=0))
    assert cols.size and cols.min() >= 20 - 4 and cols.max() <= 20 + 3  # only inside the dilated band
    assert 30 < out[20, 19, 0] < 220 or 30 < out[20, 20, 0] < 220  # the step became a ramp
    flat = np.full((32, 32, 3), 128, np.uint8)
    assert np.array_equal(smooth_edges(flat), flat)


# ---- saliency -------------------------------------------------------------------------------------------------

def _mbd_reference(img: np.ndarray, passes: int) -> np.ndarray:
    """The sequential raster-scan MBD (MB+ / pyimgsaliency form), pixel by pixel."""
    h, w = img.shape
    U, L, D = img.copy(), img.copy(), np.full(img.shape, np.inf)
    D[0, :] = D[-1, :] = D[:, 0] = D[:, -1] = 0
    for p in range(passes):
        inverse = p % 2 == 0
        rows = range(h - 2, 0, -1) if inverse else range(1, h - 1)
        s = 1 if inverse else -1
        for i in rows:
            for j in (range(w - 2, 0, -1) if inverse else range(1, w - 1)):
                x, d = img[i, j], D[i, j]
                b1 = max(U[i + s, j], x) - min(L[i + s, j], x)
                b2 = max(U[i, j + s], x) - min(L[i, j + s], x)
                if d <= b1 and d <= b2:
                    continue
                if b1 < d and b1 <= b2:
                    D[i, j], U[i, j], L[i, j] = b1, max(U[i + s, j], x), min(L[i + s, j], x)
                else:
                    D[i, j], U[i, j], L[i, j] = b2, max(U[i, j + s], x), min(L[i, j + s], x)
    return D


def test_mbd_wavefront_equals_sequential_raster_scan():
    img = np.random.default_rng(1).uniform(0, 100, (13, 17))
    for passes in (1, 2, 3):
        np.testing.assert_array_equal(mbd_transform(img[None], passes)[0], _mbd_reference(img, passes))


def test_saliency_reference_finds_the_object():
    rng = np.random.default_rng(2)
    img = np.clip(rng.normal(110, 8, (64, 64, 3)), 0, 255).astype(np.uint8)  # textured grey background
    yy, xx = np.mgrid[0:64, 0:64]
    obj = (yy - 30) ** 2 + (xx - 34) ** 2 < 12 ** 2
    img[obj] = (220, 40, 30)
    sal = saliency_reference(img, segments=80)
    assert sal.shape == (64, 64) and sal.dtype == np.float32 and 0 <= sal.min() and sal.max() <= 1
    assert sal[obj].mean() > 0.6 and sal[~obj].mean() < 0.25


# ---- caches ---------------------------------------------------------------------------------------------------

def _count_calls(path):  # module level: picklable for the process pool
    return np.full((8, 8), 7, np.uint8)


def test_map_cache_is_keyed_by_content_and_params(tmp_path):
    rng = np.random.default_rng(3)
    files = [_write(tmp_path / "img", f"{i}.png", _scene(rng)) for i in range(3)]
    cfg = DataConfig(photos="", cartoons="", size=32, cache_dir=str(tmp_path / "cache"))
    cache = edge_cache(cfg)
    paths = cache.build(files, [file_digest(f) for f in files], workers=2, progress=False)
    assert all(p.is_file() for p in paths)
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    expected = smooth_edges(prepare_image(files[0], None, 32))
    assert np.array_equal(read_png(paths[0]), expected)
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert cache.build(files, [file_digest(f) for f in files], progress=False) == paths  # nothing recomputed
    assert [p.stat().st_mtime_ns for p in paths] == mtimes
    # an edited image gets a new map; other parameters get their own folder
    _write(tmp_path / "img", "0.png", _scene(rng))
    assert cache.build(files[:1], [file_digest(files[0])], progress=False)[0] != paths[0]
    cfg.canny_low = 50
    assert edge_cache(cfg).dir != cache.dir and saliency_cache(cfg).dir != edge_cache(cfg).dir
    # a cache shared by ranks: each computes its share
    shared = MapCache(tmp_path / "c2", "test", {"v": 1}, _count_calls)
    digests = [file_digest(f) for f in files]
    p0 = shared.build(files, digests, rank=0, world_size=2, progress=False)
    assert [p.exists() for p in p0] == [True, False, True]


# ---- dataset --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    rng = np.random.default_rng(4)
    photos = [_write(root / "p", f"{i}.png", _scene(rng, 40, 44)) for i in range(5)]
    cartoons = [_write(root / "c", f"{i}.png", _scene(rng, 36, 48)) for i in range(4)]
    cfg = DataConfig(photos=str(root / "p"), cartoons=str(root / "c"), size=32, cache_dir=str(root / "cache"),
                     sal_segments=30)
    sal = saliency_cache(cfg).build(photos, [file_digest(p) for p in photos], progress=False)
    edges = edge_cache(cfg).build(cartoons, [file_digest(p) for p in cartoons], progress=False)
    return UnpairedDataset(cfg, photos, sal, cartoons, edges, seed=0)


def _locate(crop: np.ndarray, full: np.ndarray):
    s = crop.shape[0]
    for flip in (False, True):
        src = full[:, ::-1] if flip else full
        for y in range(full.shape[0] - s + 1):
            for x in range(full.shape[1] - s + 1):
                if np.array_equal(src[y:y + s, x:x + s], crop):
                    return y, x, flip
    return None


def test_dataset_items_are_deterministic_and_aligned(dataset):
    a, b = dataset[7], dataset[7]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["photo"].shape == (3, 32, 32) and a["saliency"].shape == (1, 32, 32)
    assert -1 <= float(a["photo"].min()) and float(a["photo"].max()) <= 1
    assert any(not np.array_equal(dataset[2][k], dataset[7][k]) for k in a)  # item 2 of epochs 0 and 1
    # photo and saliency cropped / flipped alike; cartoon and its smoothed copy too
    photo = prepare_image(dataset.photos[2], None, 32)
    sal_full = read_png(dataset.saliency[2])
    flips = set()
    for key in (2, 7, 12, 17, 22, 27):
        item = dataset[key]
        rgb = np.round((item["photo"].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
        y, x, flip = _locate(rgb, photo)
        flips.add(flip)
        ref = sal_full[:, ::-1] if flip else sal_full
        assert np.allclose(item["saliency"][0].numpy() * 255, ref[y:y + 32, x:x + 32])
        for j, c in enumerate(dataset.cartoons):
            cart = prepare_image(c, None, 32)
            loc = _locate(np.round((item["cartoon"].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8), cart)
            if loc:
                cy, cx, cflip = loc
                sm = read_png(dataset.smoothed[j])
                sm = sm[:, ::-1] if cflip else sm
                assert np.allclose(item["smoothed"].numpy(), to_network(np.ascontiguousarray(sm[cy:cy + 32, cx:cx + 32]))[0])
                break
        else:
            pytest.fail("cartoon crop not found in any cartoon")
    assert flips == {False, True}


def test_epoch_sampler_shards_resumes_and_tags_epochs(dataset):
    n = len(dataset)
    s0, s1 = EpochSampler(dataset, 2, 0, seed=0), EpochSampler(dataset, 2, 1, seed=0)
    for s in (s0, s1):
        s.set_position(3)
    a, b = list(s0), list(s1)
    assert all(k // n == 3 for k in a + b)
    assert set(k % n for k in a + b) == set(range(n))  # the two ranks cover the epoch (one index padded)
    s0.set_position(3, start=1)
    assert list(s0) == a[1:] and len(s0) == len(a) - 1
    single = EpochSampler(dataset, 1, 0, seed=0)
    single.set_position(3)
    assert sorted(single) == sorted(set(a + b))
    assert steps_per_epoch(10, 2, 2) == 2
    with pytest.raises(ConfigError, match="cannot fill one batch"):
        steps_per_epoch(3, 4, 1)
