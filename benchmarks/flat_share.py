"""How flat a scene style paints large, textured photos: the issue's private check, on photos of our own.

Each photo is read at `--size` px on its long side (`max_side`, the app's path), cartoonized with `cartoon.Cartoonizer`,
and measured against its input: the flat share (pixels whose grayscale Sobel gradient is below 8 grey levels; a
cartoon paints regions flat, a photo is texture), the dark-line density and the grayscale SSIM to the input.  The
scene_photo sets are 256 px crops, too small for this: use photos that are not in ../shared, e.g. examples/.

    python benchmarks/flat_share.py ghibli shinkai --photos examples ../shared/data/people --size 512 \\
        --sheet flat_share.jpg
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cartoon import Cartoonizer  # noqa: E402
from cartoon.imageio import load_image, save_image  # noqa: E402
from train.data import list_images  # noqa: E402
from train.metrics import contact_sheet, dark_lines, flat_share, ssim_gray  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("styles", nargs="+", help="style names or weights folders")
    p.add_argument("--photos", nargs="+", required=True, help="folders of photos")
    p.add_argument("--size", type=int, default=512, help="long side the photos are read at")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sheet", help="write a contact sheet: photo | each style")
    args = p.parse_args(argv)
    photos = [load_image(f, max_side=args.size).rgb for d in args.photos for f in list_images(d)]
    rows = [("photos", photos, None)]
    for style in args.styles:
        engine = Cartoonizer(style, threads=args.threads)
        rows.append((style, [engine(rgb).image.rgb for rgb in photos], photos))
    print(f"{len(photos)} photos at {args.size} px (long side)")
    print("| | flat share (Sobel < 8) | dark-line density | SSIM to the input |")
    print("|---|---|---|---|")
    for name, images, inputs in rows:
        ssim = np.mean([ssim_gray(a, b) for a, b in zip(inputs, images)]) if inputs else 1.0
        print(f"| {name} | {np.mean([flat_share(im) for im in images]):.3f} | "
              f"{np.mean([dark_lines(im).mean() for im in images]):.4f} | {ssim:.3f} |")
    if args.sheet:
        sheet = contact_sheet(list(zip(*[images for _, images, _ in rows])), thumb=256)
        save_image(Image.fromarray(sheet), args.sheet)
        print(f"contact sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
