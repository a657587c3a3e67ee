import json
import shutil

import pytest
import torch

from cartoon import Generator, GeneratorConfig, WeightsError, from_pretrained, save_pretrained
from cartoon.registry import STYLES, Style, get_style
from cartoon.errors import StyleError

SMALL = GeneratorConfig(channels=(8, 16, 16), saliency_channels=(4, 8, 8), num_res_blocks=1, block="dwsep",
                        upsample="resize", cbam_reduction=4)


def _outputs(g, seed=1):
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        return g.eval()(x)


def test_round_trip_keeps_outputs_and_config(tmp_path):
    torch.manual_seed(0)
    g = Generator(SMALL)
    save_pretrained(g, tmp_path / "w", card="# card\n")
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((tmp_path / "w" / "config.json").read_text()) == SMALL.to_dict()
    loaded = from_pretrained(tmp_path / "w")
    assert loaded.config == SMALL
    for a, b in zip(_outputs(g), _outputs(loaded)):
        assert torch.equal(a, b)


def test_fp16_storage_halves_the_file_and_loads_as_fp32(tmp_path):
    torch.manual_seed(0)
    g = Generator(SMALL)
    save_pretrained(g, tmp_path / "a")
    save_pretrained(g, tmp_path / "b", dtype=torch.float16)
    sa, sb = ((tmp_path / d / "model.safetensors").stat().st_size for d in "ab")
    assert sb < 0.7 * sa  # half the tensor bytes; the JSON header stays
    loaded = from_pretrained(tmp_path / "b")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert (_outputs(g)[0] - _outputs(loaded)[0]).abs().max() < 2e-2


def test_missing_folder_and_files_name_what_is_missing(tmp_path):
    with pytest.raises(WeightsError, match="no such weights folder"):
        from_pretrained(tmp_path / "nope")
    save_pretrained(Generator(SMALL), tmp_path / "w")
    (tmp_path / "w" / "config.json").unlink()
    with pytest.raises(WeightsError, match="config.json: file missing"):
        from_pretrained(tmp_path / "w")
    with pytest.raises(WeightsError, match="folder"):
        from_pretrained(tmp_path / "w" / "model.safetensors")


def test_corrupt_safetensors_is_reported(tmp_path):
    save_pretrained(Generator(SMALL), tmp_path / "w")
    f = tmp_path / "w" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(WeightsError, match="model.safetensors: corrupt"):
        from_pretrained(tmp_path / "w")


def test_invalid_config_json_is_reported(tmp_path):
    save_pretrained(Generator(SMALL), tmp_path / "w")
    (tmp_path / "w" / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="config.json: not valid JSON"):
        from_pretrained(tmp_path / "w")
    (tmp_path / "w" / "config.json").write_text(json.dumps({"channels": [8, 16, 16], "wings": 3}))
    with pytest.raises(WeightsError, match="not a generator config"):
        from_pretrained(tmp_path / "w")


def test_config_and_weights_from_different_models(tmp_path):
    save_pretrained(Generator(SMALL), tmp_path / "w")
    (tmp_path / "w" / "config.json").write_text(json.dumps(Generator("lite").config.to_dict()))
    with pytest.raises(WeightsError, match="does not match config.json"):
        from_pretrained(tmp_path / "w")


def test_pickles_are_not_loaded(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    torch.save(Generator(SMALL).state_dict(), folder / "model.pth")
    (folder / "config.json").write_text(json.dumps(SMALL.to_dict()))
    with pytest.raises(WeightsError, match="pickle"):
        from_pretrained(folder)


def _fake_hub_cache(cache, repo_id, files, commit="0123456789abcdef0123456789abcdef01234567"):
    """The Hugging Face cache layout (models--owner--name/{refs,snapshots}), as hf_hub_download leaves it."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in files:
        shutil.copy(f, snap / f.name)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


def test_hub_repo_id_loads_from_the_cache_offline(tmp_path, monkeypatch):
    torch.manual_seed(0)
    g = Generator(SMALL)
    save_pretrained(g, tmp_path / "w")
    cache = tmp_path / "hf"
    _fake_hub_cache(cache, "studio/cartoon-test", [tmp_path / "w" / "model.safetensors", tmp_path / "w" / "config.json"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = from_pretrained("studio/cartoon-test", cache_dir=cache)
    assert torch.equal(_outputs(g)[0], _outputs(loaded)[0])
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE"):
        from_pretrained("studio/not-downloaded", cache_dir=cache)


def test_registry_lists_styles_with_modes_and_sources(tmp_path):
    assert {"ghibli", "shinkai", "portrait"} <= set(STYLES)
    assert get_style("portrait").mode == "portrait" and get_style("ghibli").mode == "scene"
    with pytest.raises(StyleError, match="known styles"):
        get_style("van-gogh")
    hub = Style("x", "X", "", "scene", "lite", folder="does-not-exist", hub_repo="o/n", hub_revision="v1")
    assert hub.is_available() and hub.source() == ("o/n", "v1", "model.safetensors")
    local = Style("y", "Y", "", "scene", "lite", folder="does-not-exist")
    assert not local.is_available()
