"""train/config.py and the CLI's handling of user mistakes."""
from pathlib import Path

import pytest

from train.__main__ import main
from cartoon.network import get_config
from cartoon.registry import STYLES
from train.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "train" / "configs"


@pytest.mark.parametrize("name", ["ghibli", "shinkai", "tiny"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.name == name
    assert cfg.generator_config == STYLES[cfg.style].config  # from cartoon.registry
    # the paper's defaults (the tiny CI config keeps them too)
    assert (cfg.loss.w_ori, cfg.loss.decay, cfg.loss.w_sali) == (0.25, 0.96, 1.0)
    assert (cfg.optim.lr_g, cfg.optim.beta1, cfg.optim.beta2) == (2e-4, 0.5, 0.999)
    assert cfg.loss.w_gram == cfg.loss.w_color == cfg.loss.w_tv == 0.0
    assert cfg.loss.w_face == 0
    if name != "tiny":
        assert cfg.train.init_epochs == 10


def test_portrait_trains_paired_with_the_face_id_loss():
    cfg = load_config(CONFIGS / "portrait.yaml")
    assert cfg.name == cfg.style == "portrait" and cfg.generator_config == STYLES["portrait"].config
    assert cfg.data.target == "paired" and cfg.loss.w_target_pixel > 0 and cfg.loss.w_target_vgg > 0
    assert cfg.loss.w_face > 0 and Path(cfg.loss.face_id_weights).name == "mobilefacenet_casia.safetensors"
    assert get_config(cfg.generator_config).residual and cfg.train.init_epochs == 0


def test_scene_recipe_starts_at_the_identity_and_trains_without_a_target():
    cfg = load_config(CONFIGS / "ghibli-scene.yaml")
    assert cfg.name == "ghibli-scene" and cfg.style == "ghibli"
    assert get_config(cfg.generator_config).residual and cfg.train.init_epochs == 0
    assert cfg.data.size == 128 and cfg.log.eval_size == 256 and cfg.model.diffaug
    # no per-photo target: the look comes from the discriminators and the output's own structure
    assert cfg.data.target == "" and cfg.loss.w_target_pixel == cfg.loss.w_target_vgg == 0
    assert cfg.loss.w_adv_surface > 0 and cfg.loss.w_structure > 0
    assert (REPO / cfg.data.cartoon_include).is_file()  # relative to the repository root
    assert cfg.train.budget_minutes <= 120


def test_the_shinkai_scene_recipe_is_ghibli_s_with_its_own_frames_and_start():
    """shinkai-scene.yaml names ghibli-scene.yaml as its base: everything but the style, its frames and the weights
    it starts from is inherited (the name never is)."""
    cfg = load_config(CONFIGS / "shinkai-scene.yaml")
    ghibli = load_config(CONFIGS / "ghibli-scene.yaml")
    assert cfg.name == "shinkai-scene" and cfg.style == "shinkai"
    assert (cfg.optim, cfg.model, cfg.loss, cfg.log) == (ghibli.optim, ghibli.model, ghibli.loss, ghibli.log)
    assert cfg.data.cartoons.endswith("style_shinkai") and (REPO / cfg.data.cartoon_include).is_file()
    changed = {f"{section}.{k}" for section, values in cfg.to_dict().items() if isinstance(values, dict)
               for k, v in values.items() if ghibli.to_dict()[section][k] != v}
    assert changed == {"data.cartoons", "data.cartoon_include", "train.init_weights"}
    assert cfg.train.init_weights == "weights/shinkai"


def test_overrides_win_over_a_config_and_its_base():
    cfg = load_config(CONFIGS / "shinkai-scene.yaml", ["data.cartoon_include=null", "loss.w_structure=1",
                                                        "d_channels=8", "train.init_weights=null"])
    ghibli = load_config(CONFIGS / "ghibli-scene.yaml")
    assert cfg.data.cartoon_include is None and cfg.train.init_weights is None
    assert cfg.loss.w_structure == 1.0 and cfg.model.d_channels == 8
    assert cfg.data.cartoons.endswith("style_shinkai") and cfg.loss.w_adv_surface == ghibli.loss.w_adv_surface
    assert cfg.run_dir == Path("runs/shinkai-scene")


def test_overrides_dotted_and_short_with_type_coercion():
    cfg = load_config(CONFIGS / "ghibli.yaml", ["loss.w_ori=0.5", "batch_size=4", "budget_minutes=25",
                                                 "lr_d=1e-4", "flip=false", "model.generator=paper", "face_box=[0,1,0,1]"])
    assert cfg.loss.w_ori == 0.5 and cfg.train.batch_size == 4 and cfg.train.budget_minutes == 25.0
    assert cfg.optim.lr_d == 1e-4 and cfg.data.flip is False and cfg.generator_config == "paper"
    assert cfg.loss.face_box == [0.0, 1.0, 0.0, 1.0]
    assert cfg.run_dir == Path("runs/ghibli")


@pytest.mark.parametrize("override, message", [
    ("batch_sise=4", "did you mean"),
    ("train.batch_size=four", "expected int"),
    ("data.size=30", "multiple of 4"),
    ("data.cartoon_val_fraction=1.5", "cartoon_val_fraction"),
    ("precision=fp8", "precision"),
    ("style=watercolour", "'watercolour' is not a registered style"),
    ("model.generator=huge", "model.generator"),
    ("loss.surface_radius=0", "surface_radius"),
    ("w_ori=-1", "must not be negative"),
    ("size", "key=value"),
])
def test_bad_overrides_are_explained(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS / "ghibli.yaml", [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    flat = tmp_path / "flat.yaml"
    flat.write_text("batch_size: 4\n")
    with pytest.raises(ConfigError, match="under its section"):
        load_config(flat)


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  photos: {tmp_path / 'no_photos'}\n  cartoons: {tmp_path}\n")
    assert main(["--config", str(cfg), f"log.run_dir={tmp_path / 'run'}"]) == 2
    assert "no_photos: no such folder" in capsys.readouterr().err

    assert main(["--config", str(CONFIGS / "tiny.yaml"), "--print-config", "batch_size=3"]) == 0
    assert "batch_size: 3" in capsys.readouterr().out


@pytest.mark.skipif(not (REPO.parent / "shared" / "data").is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("name", ["ghibli", "shinkai", "portrait"])
def test_shipped_configs_find_their_data_and_split_it(name, monkeypatch):
    from train.data import make_splits, split_group

    monkeypatch.chdir(REPO)  # the configs' data paths are relative to the repository root
    cfg = load_config(CONFIGS / f"{name}.yaml")
    s = make_splits(cfg.data)
    for train, val in ((s.photos, s.val_photos), (s.cartoons, s.val_cartoons)):
        assert len(train) > 500 and 0.04 < len(val) / (len(train) + len(val)) < 0.07
        groups = lambda files: {split_group(f.name, cfg.data.val_group) for f in files}  # noqa: E731
        assert not groups(train) & groups(val)
    if name == "portrait":  # photo N and its rendering N share a split
        assert {f.name[1:] for f in s.val_photos} == {f.name[1:] for f in s.val_cartoons}


def test_a_config_names_a_base_and_only_what_differs(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base-run\ndata:\n  photos: p\n  cartoons: c\n  size: 96\n  short_side: 192\n"
                                      "optim:\n  lr_g: 1.0e-3\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ndata:\n  size: 64\n")
    cfg = load_config(tmp_path / "child.yaml", ["optim.lr_g=3e-4"])
    assert cfg.name == "child"  # never inherited
    assert (cfg.data.size, cfg.data.short_side, cfg.optim.lr_g) == (64, 192, 3e-4)
    (tmp_path / "base.yaml").write_text("base: child.yaml\n")
    with pytest.raises(ConfigError, match="includes this file again"):
        load_config(tmp_path / "child.yaml")
    (tmp_path / "child.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml: no such config file"):
        load_config(tmp_path / "child.yaml")
