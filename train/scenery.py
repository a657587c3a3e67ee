"""Scenery-matched style data: the film frames whose content is closest to the photos.

A film's frames are mostly characters and interiors; the photos are landscapes and streets.  A discriminator (and a
KID) fed with all frames rewards painting characters' content; fed with the frames that show what the photos show,
it can only reward the look.  The selection is repeatable: a linear photo-vs-frame probe (`metrics.FrameProbe`,
strongly regularised) is fitted on the Inception pool features of a seeded sample of training photos and of every
source frame (one crop each, `data.val_group`'s first group), and the frames it finds most photo-like are kept:
skies, fields, mountains, water, streets and houses; characters, faces and interiors score lowest.  (Nearest photos
in Inception space alone ranked many character frames among the first few hundred: looked at on the sheets.)  The
list is committed under train/configs/ and named by `data.cartoon_include`; the validation split is then made
within it, so validation frames are scenery too.  The config's own `data.cartoon_include` is ignored (every frame
is a candidate), so a config that names the list can make it again; other `key=value` overrides apply.

    python -m train.scenery --config train/configs/ghibli-scene.yaml --count 250 \\
        --out train/configs/ghibli-scenery.txt --sheet /tmp/ghibli-scenery.jpg
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .config import ConfigError, load_config
from .data import list_images, split_files, split_group
from .metrics import FrameProbe
from .reference import inception_features, one_crop_per_frame, seeded_sample


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.scenery", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="a training config: its cartoons folder, photos and val split")
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    p.add_argument("--count", type=int, required=True, help="source frames to keep")
    p.add_argument("--out", required=True, help="the key list to write (one source frame a line)")
    p.add_argument("--photos-sample", type=int, default=600, help="training photos that define the content")
    p.add_argument("--l2", type=float, default=1.0, help="the probe's L2 penalty")
    p.add_argument("--size", type=int, default=256, help="short side and centre crop")
    p.add_argument("--sheet", default=None, help="a contact sheet of the kept frames, closest first")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, [*args.overrides, "data.cartoon_include=null"])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .fid import FIDEvaluator

    d = cfg.data
    # the photos' validation split stays unseen: the content is defined by training photos only
    photos, _ = split_files(list_images(d.photos, d.limit), d.val_fraction, d.val_group, d.split_seed)
    photos = seeded_sample(photos, args.photos_sample)
    frames = one_crop_per_frame(list_images(d.cartoons, d.limit), d.val_group)
    fid = FIDEvaluator("cpu", batch_size=32)
    photo_feats, _ = inception_features(fid, photos, args.size, d.cache_dir)
    frame_feats, frame_rgb = inception_features(fid, frames, args.size, d.cache_dir)
    photo_likeness = -FrameProbe(photo_feats, frame_feats, l2=args.l2).logit(frame_feats)
    order = np.argsort(-photo_likeness)[:args.count]
    keys = [split_group(frames[i].name, d.val_group) for i in order]
    header = (f"# Scenery frames of {d.cartoons}: the {len(keys)} of {len(frames)} source frames that a linear "
              f"photo-vs-frame probe on\n# Inception features ({len(photos)} training photos of {d.photos} against "
              f"every frame) finds most photo-like, the most first.\n# Made by: python -m train.scenery --config "
              f"{args.config} --count {args.count} --out {args.out}\n")
    Path(args.out).write_text(header + "".join(f"{k}  # {photo_likeness[i]:.2f}\n" for k, i in zip(keys, order)))
    print(f"{len(keys)} of {len(frames)} frames kept (photo-likeness {photo_likeness[order[0]]:.2f}.."
          f"{photo_likeness[order[-1]]:.2f}; all frames' median {np.median(photo_likeness):.2f}): {args.out}")
    if args.sheet:
        from PIL import Image

        from cartoon.imageio import save_image
        from .metrics import contact_sheet
        rows = [tuple(frame_rgb[i] for i in order[r:r + 12]) for r in range(0, len(order), 12)]
        save_image(Image.fromarray(contact_sheet(rows, thumb=64, gap=2)), args.sheet)
        print(f"contact sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
