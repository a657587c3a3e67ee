"""How far can KID to a style's validation cartoons fall for a style that keeps the photo's scene?

The validation cartoons of a film style are mostly characters and interiors; the photos are landscapes.  KID compares
Inception features, which encode content as much as look, so part of the photos' own KID is content that no
scene-preserving style removes.  This script scores real cartoon frames whose content is closest to the photos
(their Inception features' mean distance to the k nearest photos of a selection set; training frames only, one crop
per frame) exactly as `python -m train.evaluate` scores a generator's outputs: KID x10^3 to the validation cartoons,
and its ratio to the photos' own.  A real frame of open scenery is what a perfect scene-preserving style would
output; its ratio is the floor such a style can reach.  Random training frames (the style itself, any content) give the floor with content.

    python benchmarks/kid_ceiling.py train/configs/ghibli-scene.yaml data.cartoon_include=null \\
        data.cartoon_val_fraction=null --photos ../shared/data/scene_photo/test \\
        --select-photos ../shared/data/scene_photo/train --sheet kid_ceiling.png

(The overrides give the split of every frame, as the shipped styles were scored; without them the reference is the
scene recipe's validation split of scenery frames.)

`--shot-gap 30 300` also scores random training frames kept at least that many frame numbers from every validation
frame of the same source (names end in a frame number): whether a low floor only means neighbouring frames of the
same shots.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.config import load_config  # noqa: E402
from train.data import list_images, make_splits, split_group  # noqa: E402
from train.fid import FIDEvaluator  # noqa: E402
from train.metrics import contact_sheet, kid  # noqa: E402
from train.reference import inception_features as features  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="a training config: its validation cartoons are the reference, its training "
                                  "cartoons the candidates")
    p.add_argument("overrides", nargs="*", help="config overrides, key=value (e.g. data.cartoon_exclude=null)")
    p.add_argument("--photos", required=True, help="the photos whose own KID is the baseline (e.g. scene_photo/test)")
    p.add_argument("--select-photos", required=True, help="photos that define 'closest content' (not the baseline's)")
    p.add_argument("--candidates", type=int, default=1500, help="training cartoons scored (a seeded random sample)")
    p.add_argument("--select-sample", type=int, default=500, help="selection photos used (a seeded random sample)")
    p.add_argument("--pick", type=int, nargs="+", default=[50, 150, 400], help="sizes of the closest-content sets")
    p.add_argument("--k", type=int, default=5, help="nearest photos per frame")
    p.add_argument("--size", type=int, default=256, help="short side and centre crop, as train.evaluate")
    p.add_argument("--shot-gap", type=int, nargs="*", default=[], help="also random frames this many frame numbers "
                                                                        "or more from every validation frame")
    p.add_argument("--sheet", default=None, help="write the closest frames, in order, as a contact sheet")
    p.add_argument("--sheet-count", type=int, default=None, help="frames on the sheet (default: the smallest --pick)")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    data = load_config(args.config, args.overrides).data
    splits = make_splits(data)
    train = [splits.cartoons[i] for i in sorted(rng.choice(len(splits.cartoons), min(args.candidates, len(splits.cartoons)), replace=False))]
    select = list_images(args.select_photos)
    select = [select[i] for i in sorted(rng.choice(len(select), min(args.select_sample, len(select)), replace=False))]
    fid = FIDEvaluator("cpu", batch_size=32)
    cache = data.cache_dir
    ref, _ = features(fid, splits.val_cartoons, args.size, cache)
    photos, _ = features(fid, list_images(args.photos), args.size, cache)
    chosen, _ = features(fid, select, args.size, cache)
    cand, cand_rgb = features(fid, train, args.size, cache)

    baseline = kid(photos, ref)[0]
    print(f"{len(splits.val_cartoons)} validation cartoons; {len(photos)} photos' own KID x10^3 {baseline * 1e3:.2f}")
    # distance of each candidate frame to its k nearest selection photos
    d2 = (cand ** 2).sum(1)[:, None] + (chosen ** 2).sum(1)[None] - 2 * cand @ chosen.T
    closeness = np.sort(np.sqrt(np.maximum(d2, 0)), axis=1)[:, :args.k].mean(1)
    # one crop per source frame (data.val_group), the closest: crops of one frame would make a set look less varied
    # than the photos are, and KID would count that against it
    frame_of = [split_group(f.name, data.val_group) for f in train]
    seen, order = set(), []
    for i in np.argsort(closeness):
        if frame_of[i] not in seen:
            seen.add(frame_of[i])
            order.append(i)
    order = np.array(order)
    print(f"{len(cand)} training crops of {len(order)} frames scored")
    print("| cartoon frames | n | KID x10^3 | ratio to the photos' |")
    print("|---|---|---|---|")
    for n in args.pick:
        if n > len(order):
            continue
        for name, idx in (("closest to the photos", order[:n]), ("random frames", rng.choice(order, n, replace=False))):
            k, s = kid(cand[idx], ref)
            print(f"| {name} | {n} | {k * 1e3:.2f} ± {s * 1e3:.2f} | {k / baseline:.3f} |")
    val_frames = [_source_and_number(split_group(f.name, data.val_group)) for f in splits.val_cartoons]
    numbered = {i: _source_and_number(frame_of[i]) for i in order}
    for gap in args.shot_gap:
        far = [i for i in order if _far_from(numbered[i], val_frames, gap)]
        k, s = kid(cand[far], ref)
        print(f"| random frames {gap}+ frame numbers from any validation frame | {len(far)} | {k * 1e3:.2f} ± {s * 1e3:.2f} "
              f"| {k / baseline:.3f} |")
    if args.sheet:
        from PIL import Image
        from cartoon.imageio import save_image
        n = args.sheet_count or min(args.pick)
        thumbs = [tuple(cand_rgb[i] for i in order[r:r + 10]) for r in range(0, n, 10)]
        save_image(Image.fromarray(contact_sheet(thumbs, thumb=96, gap=2)), args.sheet)
        print(f"contact sheet: {args.sheet}")
    return 0


def _source_and_number(frame: str) -> tuple[str, int] | None:
    m = re.match(r"(.*?)_?(\d+)$", frame)
    return (m.group(1), int(m.group(2))) if m else None


def _far_from(frame: tuple[str, int] | None, others: list, gap: int) -> bool:
    return frame is not None and all(o is None or o[0] != frame[0] or abs(o[1] - frame[1]) >= gap for o in others)


if __name__ == "__main__":
    sys.exit(main())
