"""Quality of a trained style on a folder of photos, against a folder (or a config's validation split) of cartoons.

    python -m train.evaluate weights/ghibli --photos ../shared/data/scene_photo/test \\
        --cartoons-split train/configs/ghibli-cpu.yaml --sheet weights/ghibli/contact_sheet.jpg

Prints FID and KID (x10^3, mean ± std over random subsets) of the cartoonized photos to the cartoons, the same for
the photos themselves (the do-nothing baseline: a style has to move the photos towards the cartoons), their ratio,
and the mean grayscale SSIM of each output to its input (the scene has to stay the scene).  Photos and cartoons are
resized to `--size` on their short side and centre-cropped; the photos go through `cartoon.Cartoonizer`, the path
users run.  `--sheet` writes a contact sheet (input | output) of the first `--sheet-rows` photos.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from cartoon.errors import CartoonError
from cartoon.imageio import atomic_path, save_image
from cartoon.tiling import to_network

from .config import ConfigError, DataConfig, load_config
from .data import center_crop, list_images, load_center_crops, make_splits, prepare_image
from .metrics import contact_sheet, kid, ssim_gray


def cartoon_files(folder: str | None, split_config: str | None) -> list[Path]:
    if split_config:
        return make_splits(load_config(split_config).data).val_cartoons
    return list_images(folder)


def evaluate(weights: str, photos: list[Path], cartoons: list[Path], size: int = 256, device: str = "auto",
             subsets: int = 50, subset_size: int = 100) -> tuple[dict, np.ndarray, np.ndarray]:
    """(numbers, input crops (N, H, W, 3) uint8, outputs (N, H, W, 3) uint8)."""
    from cartoon.engine import Cartoonizer
    from .fid import FIDEvaluator, frechet_distance

    in_rgb = np.stack([center_crop(prepare_image(p, size, size), size) for p in photos])
    refs = load_center_crops(cartoons, DataConfig(short_side=size, size=size))
    engine = Cartoonizer(weights, device=device)
    out_rgb = np.stack([engine(rgb).image.rgb for rgb in in_rgb])
    inputs = torch.from_numpy(np.concatenate([to_network(x) for x in in_rgb]))
    outputs = torch.from_numpy(np.concatenate([to_network(o) for o in out_rgb]))
    fid = FIDEvaluator(engine.device, batch_size=16)
    f_ref = fid.features(refs.split(16))
    f_in = fid.features(inputs.split(16))
    f_out = fid.features(outputs.split(16))
    k_out = kid(f_out, f_ref, subsets, subset_size)
    k_in = kid(f_in, f_ref, subsets, subset_size)
    ssim = [ssim_gray(a, b) for a, b in zip(in_rgb, out_rgb)]
    numbers = {
        "weights": str(weights), "n_photos": len(photos), "n_cartoons": len(cartoons), "size": size,
        "fid": frechet_distance(f_out, f_ref), "fid_photos": frechet_distance(f_in, f_ref),
        "kid_x1e3": k_out[0] * 1e3, "kid_std_x1e3": k_out[1] * 1e3,
        "kid_photos_x1e3": k_in[0] * 1e3, "kid_photos_std_x1e3": k_in[1] * 1e3,
        "kid_ratio": k_out[0] / max(k_in[0], 1e-12),
        "ssim": float(np.mean(ssim)), "ssim_min": float(np.min(ssim)), "engine": f"{engine.device}, {engine.precision}",
    }
    return numbers, in_rgb, out_rgb


def format_numbers(n: dict) -> str:
    return "\n".join([
        f"{n['n_photos']} photos vs {n['n_cartoons']} cartoons at {n['size']}x{n['size']} ({n['engine']})",
        "| | FID | KID x10^3 |", "|---|---|---|",
        f"| stylised | {n['fid']:.2f} | {n['kid_x1e3']:.2f} ± {n['kid_std_x1e3']:.2f} |",
        f"| photos (do nothing) | {n['fid_photos']:.2f} | {n['kid_photos_x1e3']:.2f} ± {n['kid_photos_std_x1e3']:.2f} |",
        f"KID ratio stylised / photos: {n['kid_ratio']:.2f}",
        f"mean grayscale SSIM to the input: {n['ssim']:.3f} (lowest {n['ssim_min']:.3f})",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="a weights folder (model.safetensors + config.json) or a registered style")
    p.add_argument("--photos", required=True, help="folder of photos to cartoonize")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--cartoons", help="folder of reference cartoons")
    group.add_argument("--cartoons-split", metavar="CONFIG", help="a training config: its validation cartoons")
    p.add_argument("--size", type=int, default=256, help="short side and centre crop (default 256)")
    p.add_argument("--subsets", type=int, default=50, help="KID subsets (default 50)")
    p.add_argument("--subset-size", type=int, default=100, help="images per KID subset (default 100)")
    p.add_argument("--device", default="auto")
    p.add_argument("--sheet", default=None, help="write a contact sheet (input | output) here (.jpg or .png)")
    p.add_argument("--sheet-rows", type=int, default=8)
    p.add_argument("--json", default=None, help="also write the numbers as JSON here")
    args = p.parse_args(argv)
    try:
        photos = list_images(args.photos)
        cartoons = cartoon_files(args.cartoons, args.cartoons_split)
        if len(photos) < 2 or len(cartoons) < 2:
            raise ConfigError("need at least two photos and two cartoons")
        numbers, inputs, outputs = evaluate(args.weights, photos, cartoons, args.size, args.device, args.subsets,
                                            args.subset_size)
    except (ConfigError, CartoonError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_numbers(numbers))
    if args.sheet:
        rows = min(args.sheet_rows, len(inputs))
        from PIL import Image
        save_image(Image.fromarray(contact_sheet(list(zip(inputs[:rows], outputs[:rows])))), args.sheet)
        print(f"contact sheet: {args.sheet}")
    if args.json:
        with atomic_path(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(numbers, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
