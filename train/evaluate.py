"""Quality of a trained style on a folder (or a config's validation split) of photos, against a folder (or a
config's validation split) of cartoons.

    python -m train.evaluate weights/ghibli --photos ../shared/data/scene_photo/test \\
        --cartoons-split train/configs/ghibli.yaml --sheet weights/ghibli/contact_sheet.jpg
    python -m train.evaluate weights/ghibli --photos ../shared/data/scene_photo/test \\
        --cartoons-split train/configs/ghibli-scene.yaml     # against the validation frames that show scenery
    python -m train.evaluate runs/portrait/best --photos-split train/configs/portrait.yaml \\
        --cartoons-split train/configs/portrait.yaml --paired --sheet portrait_sheet.jpg

Prints FID and KID (x10^3, mean ± std over random subsets) of the cartoonized photos to the cartoons, the same for
the photos themselves (the do-nothing baseline: a style has to move the photos towards the cartoons), their ratio,
and the mean grayscale SSIM of each output to its input (the scene has to stay the scene).  Photos and cartoons are
resized to `--size` on their short side and centre-cropped; the photos go through `cartoon.Cartoonizer`, the path
users run.  `--sheet` writes a contact sheet (input | output) of the first `--sheet-rows` photos.

`--paired` (a style trained on pairs, e.g. portrait): each photo has its own cartoon, found by key (a config's
data.val_group when a split is given, else the file stem).  Adds, for the output and for the photo (baseline), the
mean pixel L1 and a VGG perceptual distance to the paired cartoon, and the identity kept (train/identity.py: dlib's
face descriptors, a network the training does not use).  The contact sheet becomes photo | output | paired cartoon.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cartoon.errors import CartoonError
from cartoon.imageio import atomic_path, save_image

from .config import ConfigError, DataConfig, load_config
from .data import center_crops, list_images, make_splits, network_batch, paired_files
from .metrics import contact_sheet, kid, ssim_gray, texture_lines

# LPIPS's five VGG stages (relu1_2 .. relu5_3 of VGG16), taken at the last conv of each VGG19 block.
PERCEPTUAL_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4")


def image_files(folder: str | None, split_config: str | None, side: str) -> list[Path]:
    """The images of `folder`, or the validation `side` ("photos" or "cartoons") of a training config's split."""
    if split_config:
        return getattr(make_splits(load_config(split_config).data), f"val_{side}")
    return list_images(folder)


class PerceptualDistance:
    """LPIPS (Zhang et al. 2018) without its learned channel weights, on the training's VGG19: at each layer the
    features after ReLU, each position's channel vector unit-normalised, squared difference summed over channels and
    averaged over space; summed over the layers.  0 for identical images; each layer adds at most 2."""

    def __init__(self, device: str | torch.device = "cpu", layers: tuple[str, ...] = PERCEPTUAL_LAYERS):
        from .losses import VGGFeatures

        self.device = torch.device(device)
        self.vgg = VGGFeatures(layers[-1]).to(self.device)
        self._taken: list[torch.Tensor] = []
        for name in layers:
            # the hook sees the conv's output before the (in-place) ReLU: take a rectified copy
            self.vgg.body.get_submodule(name).register_forward_hook(lambda m, i, out: self._taken.append(F.relu(out)))

    @torch.no_grad()
    def features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) in [-1, 1] -> per layer, (N, C, h, w) unit channel vectors."""
        self._taken = []
        self.vgg(rgb.to(self.device, torch.float32))
        return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) for f in self._taken]

    @staticmethod
    def between(fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
        return sum((a - b).pow(2).sum(1).mean((1, 2)) for a, b in zip(fa, fb))

    def to_reference(self, reference: torch.Tensor, *others: torch.Tensor, batch: int = 4) -> list[np.ndarray]:
        """Distance of each image of each of `others` to the same-index image of `reference` (features of each
        reference batch computed once): one (N,) array per entry of `others`."""
        out: list[list[torch.Tensor]] = [[] for _ in others]
        for s in range(0, len(reference), batch):
            ref = self.features(reference[s:s + batch])
            for k, other in enumerate(others):
                out[k].append(self.between(self.features(other[s:s + batch]), ref).cpu())
        return [torch.cat(d).numpy().astype(np.float64) for d in out]


def paired_numbers(in_rgb: np.ndarray, out_rgb: np.ndarray, pair_rgb: np.ndarray, device, identity: bool) -> dict:
    """Output and photo (the do-nothing baseline) against each photo's own cartoon: pixel L1 (0..1), the perceptual
    distance, and (with `identity`) the face descriptors' agreement with the photo."""
    def l1(a):
        return float(np.mean(np.abs(a.astype(np.float32) - pair_rgb.astype(np.float32))) / 255.0)

    d_out, d_in = PerceptualDistance(device).to_reference(network_batch(pair_rgb), network_batch(out_rgb), network_batch(in_rgb))
    numbers = {"n_pairs": len(pair_rgb), "l1_output": l1(out_rgb), "l1_photos": l1(in_rgb),
               "perceptual_output": float(d_out.mean()), "perceptual_photos": float(d_in.mean())}
    if identity:
        from .identity import IdentityUnavailable, identity_numbers
        try:
            numbers.update(identity_numbers(in_rgb, out_rgb, pair_rgb))
        except IdentityUnavailable as e:
            numbers["identity_skipped"] = str(e)
    else:
        numbers["identity_skipped"] = "--no-identity"
    return numbers


def evaluate(weights: str, photos: list[Path], cartoons: list[Path], size: int = 256, device: str = "auto",
             subsets: int = 50, subset_size: int = 100, paired: list[Path] | None = None,
             identity: bool = True, reference_config: str | None = None) -> tuple[dict, list[tuple[np.ndarray, ...]]]:
    """(numbers, per photo (input crop, output[, paired cartoon crop]) (H, W, 3) uint8).  `paired`: photo i's own
    cartoon, for the paired numbers.  `reference_config`: a training config whose split gives the KID floor, the
    photo-vs-frame probe and the frames' look statistics (`train.reference`)."""
    from cartoon.engine import Cartoonizer
    from .fid import FIDEvaluator, frechet_distance

    crop = DataConfig(short_side=size, size=size)
    in_rgb = center_crops(photos, crop)
    ref_rgb = center_crops(cartoons, crop)
    engine = Cartoonizer(weights, device=device)
    out_rgb = np.stack([engine(rgb).image.rgb for rgb in in_rgb])
    fid = FIDEvaluator(engine.device, batch_size=16)
    f_ref = fid.features(network_batch(ref_rgb).split(16))
    f_in = fid.features(network_batch(in_rgb).split(16))
    f_out = fid.features(network_batch(out_rgb).split(16))
    k_out = kid(f_out, f_ref, subsets, subset_size)
    k_in = kid(f_in, f_ref, subsets, subset_size)
    ssim = [ssim_gray(a, b) for a, b in zip(in_rgb, out_rgb)]
    lines = [v for v in (texture_lines(a, b) for a, b in zip(in_rgb, out_rgb)) if v is not None]
    numbers = {
        "weights": str(weights), "n_photos": len(photos), "n_cartoons": len(cartoons), "size": size,
        "fid": frechet_distance(f_out, f_ref), "fid_photos": frechet_distance(f_in, f_ref),
        "kid_x1e3": k_out[0] * 1e3, "kid_std_x1e3": k_out[1] * 1e3,
        "kid_photos_x1e3": k_in[0] * 1e3, "kid_photos_std_x1e3": k_in[1] * 1e3,
        "kid_ratio": k_out[0] / max(k_in[0], 1e-12),
        "ssim": float(np.mean(ssim)), "ssim_min": float(np.min(ssim)),
        "texture_lines": float(np.mean(lines)) if lines else None, "n_textured": len(lines),
        "engine": f"{engine.device}, {engine.precision}",
    }
    if reference_config:
        from .reference import StyleReference
        data = load_config(reference_config).data
        numbers |= StyleReference(fid, make_splits(data), data, size).numbers(in_rgb, out_rgb, f_in, f_out)
    if paired is None:
        return numbers, list(zip(in_rgb, out_rgb))
    index = {path: i for i, path in enumerate(cartoons)}  # the paired cartoons are among the references
    pair_rgb = ref_rgb[[index[path] for path in paired]]
    numbers.update(paired_numbers(in_rgb, out_rgb, pair_rgb, engine.device, identity))
    return numbers, list(zip(in_rgb, out_rgb, pair_rgb))


def format_numbers(n: dict) -> str:
    lines = [
        f"{n['n_photos']} photos vs {n['n_cartoons']} cartoons at {n['size']}x{n['size']} ({n['engine']})",
        "| | FID | KID x10^3 |", "|---|---|---|",
        f"| stylised | {n['fid']:.2f} | {n['kid_x1e3']:.2f} ± {n['kid_std_x1e3']:.2f} |",
        f"| photos (do nothing) | {n['fid_photos']:.2f} | {n['kid_photos_x1e3']:.2f} ± {n['kid_photos_std_x1e3']:.2f} |",
        f"KID ratio stylised / photos: {n['kid_ratio']:.2f}",
        f"mean grayscale SSIM to the input: {n['ssim']:.3f} (lowest {n['ssim_min']:.3f})",
    ]
    if "kid_floor" in n:
        from .reference import format_reference
        lines += format_reference(n)
    if n["texture_lines"] is not None:
        lines.append(f"thin lines added over texture (closing - opening, grey levels): {n['texture_lines']:.2f} "
                     f"({n['n_textured']} photos with texture)")
    if "n_pairs" not in n:
        return "\n".join(lines)
    lines += [
        "", f"to each photo's own cartoon ({n['n_pairs']} pairs), lower is closer:",
        "| | pixel L1 (0..1) | VGG perceptual distance (LPIPS-like, unweighted) |", "|---|---|---|",
        f"| stylised | {n['l1_output']:.4f} | {n['perceptual_output']:.4f} |",
        f"| photos (do nothing) | {n['l1_photos']:.4f} | {n['perceptual_photos']:.4f} |",
    ]
    if "identity_skipped" in n:
        return "\n".join(lines + ["", f"identity: skipped ({n['identity_skipped']})"])
    p = n["n_pairs"]
    return "\n".join(lines + [
        "", "identity to the photo, dlib ResNet face descriptors (not the training's face network):",
        "| | cosine | Euclidean (dlib: same person < 0.6) |", "|---|---|---|",
        f"| stylised | {n['id_cos_output']:.3f} | {n['id_dist_output']:.3f} |",
        f"| paired cartoon (reference) | {n['id_cos_cartoon']:.3f} | {n['id_dist_cartoon']:.3f} |",
        f"| another photo (reference: a different person) | {n['id_cos_other']:.3f} | {n['id_dist_other']:.3f} |",
        f"faces found by dlib's HOG detector: photos {n['id_faces_photos']}/{p}, stylised {n['id_faces_outputs']}/{p}, "
        f"cartoons {n['id_faces_cartoons']}/{p} (the others: the aligned-portrait face box)",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="a weights folder (model.safetensors + config.json) or a registered style")
    photos_group = p.add_mutually_exclusive_group(required=True)
    photos_group.add_argument("--photos", help="folder of photos to cartoonize")
    photos_group.add_argument("--photos-split", metavar="CONFIG", help="a training config: its validation photos")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--cartoons", help="folder of reference cartoons")
    group.add_argument("--cartoons-split", metavar="CONFIG", help="a training config: its validation cartoons (unpaired: "
                       "also the KID floor, the photo-vs-frame probe and the look statistics, train/reference.py)")
    p.add_argument("--paired", action="store_true",
                   help="each photo has its own cartoon (by data.val_group's key with a split, else the file stem): "
                        "add L1, perceptual and identity numbers against it")
    p.add_argument("--identity", action=argparse.BooleanOptionalAction, default=True,
                   help="with --paired: dlib face-descriptor identity numbers (default on; needs dlib-bin and "
                        "face_recognition_models)")
    p.add_argument("--size", type=int, default=256, help="short side and centre crop (default 256)")
    p.add_argument("--subsets", type=int, default=50, help="KID subsets (default 50)")
    p.add_argument("--subset-size", type=int, default=100, help="images per KID subset (default 100)")
    p.add_argument("--device", default="auto")
    p.add_argument("--sheet", default=None, help="write a contact sheet (input | output [| paired cartoon]) here "
                                                 "(.jpg or .png)")
    p.add_argument("--sheet-rows", type=int, default=8)
    p.add_argument("--json", default=None, help="also write the numbers as JSON here")
    args = p.parse_args(argv)
    try:
        photos = image_files(args.photos, args.photos_split, "photos")
        cartoons = image_files(args.cartoons, args.cartoons_split, "cartoons")
        if len(photos) < 2 or len(cartoons) < 2:
            raise ConfigError("need at least two photos and two cartoons")
        paired = None
        if args.paired:
            split = args.photos_split or args.cartoons_split
            paired = paired_files(photos, cartoons, load_config(split).data.val_group if split else None)
        numbers, rows = evaluate(args.weights, photos, cartoons, args.size, args.device, args.subsets,
                                 args.subset_size, paired, args.identity, None if args.paired else args.cartoons_split)
    except (ConfigError, CartoonError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_numbers(numbers))
    if args.sheet:
        from PIL import Image
        save_image(Image.fromarray(contact_sheet(rows[:args.sheet_rows])), args.sheet)
        print(f"contact sheet: {args.sheet}")
    if args.json:
        with atomic_path(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(numbers, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
