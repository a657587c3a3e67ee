"""Portrait mode on real photos: does each cartoon face keep its photo's colour and light, is it pasted back without
a seam, is every face found, is the person still recognisable?

    python benchmarks/bench_portrait.py                                     # ../shared/data/people + held-out faces
    python benchmarks/bench_portrait.py --out /tmp/after --sheet /tmp/sheet.png --before /tmp/before
    python benchmarks/bench_portrait.py --photos my_photos/ --aligned 0     # other photos, no aligned faces

Real photos (`--photos`, each at full size, portrait mode over the photo, the shipped `portrait` style):
- **colour ΔE**: CIELAB ΔE (1976) between the output's and the photo's mean colour over each face's inner region
  (the middle half of its box's width, 35-85 % of its height), for every face of at least `--min-size` px (boxes from
  a reference detection on the full-size photo, RetinaFace at up to 2048 px), averaged over all faces.
- **seam**: where the output stops differing from the photo (|out - photo| > 10 grey levels, holes filled), the
  mean gradient magnitude of the output along that boundary over the photo's own there. 1: the paste adds no edge
  of its own; a rectangle pasted hard shows as 2 or more.
- **white**: pixels the paste turned near white (all channels >= 235) where the photo was not (luminance < 200):
  the crop's white background reaching the photo.
- **sharpness**: each face's high-frequency energy (std of the Laplacian of its box resized to 96 px) in the output
  over the photo's; faces whose photo is out of focus (that energy over the box's contrast under
  `BLURRED_SHARPNESS`) should stay <= about 1.
- **found**: faces cartoonized at the app's default size (`--app-side`, 1024) and at full size, against the faces
  of at least `--min-size` px that are there (`PRESENT`, counted by eye for the shipped photos; otherwise the
  reference detection's count).
- **identity**: dlib's ResNet descriptor distance of each face (its reference box) between photo and output.

Held-out aligned faces (`--aligned N`: the first N of the portrait style's validation split, train/configs/
portrait.yaml, 68 in all): the generator alone (what the model card's 0.28 measures) and portrait mode through
the pipeline, each with the dlib identity distance to the photo and the colour ΔE of the face.

`--out DIR` writes every output; `--sheet PNG --before DIR` draws, for each face, photo | before | this run, the
face and its surroundings enlarged (the `--before` outputs come from an earlier `--out`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# Faces of at least 64 px (box's shorter side, full-size photo) in the shipped photos, counted by eye.
PRESENT = {"insightface_t1.jpg": 6, "whitebox_party5.jpg": 1, "whitebox_party7.jpg": 5, "whitebox_person1.jpg": 8}
BLURRED_SHARPNESS = 0.2  # a face whose photo sharpness (see `sharpness`) is below this counts as out of focus


def inner_region(box, shape) -> tuple[slice, slice]:
    """The face's inner region: the middle half of the box's width, 35-85 % of its height."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    xa, xb = int(round(x0 + 0.25 * w)), int(round(x0 + 0.75 * w))
    ya, yb = int(round(y0 + 0.35 * h)), int(round(y0 + 0.85 * h))
    xa, ya = max(0, xa), max(0, ya)
    xb, yb = min(shape[1], max(xb, xa + 1)), min(shape[0], max(yb, ya + 1))
    return slice(ya, yb), slice(xa, xb)


def mean_lab(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    mean = rgb.reshape(-1, 3).astype(np.float64).mean(0) / 255
    return rgb2lab(mean[None, None])[0, 0]


def delta_e(photo: np.ndarray, out: np.ndarray, box) -> float:
    """CIELAB ΔE (1976) between the mean colours of the face's inner region."""
    sl = inner_region(box, photo.shape)
    return float(np.linalg.norm(mean_lab(out[sl]) - mean_lab(photo[sl])))


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _grad(gray: np.ndarray) -> np.ndarray:
    return np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))


def changed_region(photo: np.ndarray, out: np.ndarray, threshold: float = 10) -> np.ndarray:
    diff = np.abs(out.astype(np.float32) - photo.astype(np.float32)).max(2)
    changed = (cv2.GaussianBlur(diff, (0, 0), 1.0) > threshold).astype(np.uint8)
    # holes (where the cartoon happens to match the photo) are inside the paste, not its boundary
    _, gaps = cv2.connectedComponents(1 - changed, connectivity=4)
    border = np.unique(np.concatenate([gaps[0], gaps[-1], gaps[:, 0], gaps[:, -1]]))
    return (changed > 0) | ((gaps > 0) & ~np.isin(gaps, border))


def seam(photo: np.ndarray, out: np.ndarray) -> tuple[float, int]:
    """(output / photo gradient magnitude along the boundary of the changed region, boundary pixels)."""
    changed = changed_region(photo, out).astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    band = (cv2.dilate(changed, k) - cv2.erode(changed, k)) > 0
    band[[0, -1]] = False
    band[:, [0, -1]] = False
    if band.sum() < 20:
        return 1.0, int(band.sum())
    g_out, g_photo = _grad(_gray(out))[band], _grad(_gray(photo))[band]
    return float(g_out.mean() / max(g_photo.mean(), 1e-3)), int(band.sum())


def new_white(photo: np.ndarray, out: np.ndarray) -> int:
    white = (out >= 235).all(2)
    dark = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) < 200
    return int((white & dark).sum())


def high_frequency(rgb: np.ndarray, box) -> tuple[float, float]:
    """(std of the Laplacian of the face's box resized to 96 px, std of its luminance)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0 = max(0, x0), max(0, y0)
    face = _gray(rgb[y0:y1, x0:x1])
    face = cv2.resize(face, (96, 96), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(face, cv2.CV_32F).std()), float(face.std())


def sharpness(rgb: np.ndarray, box) -> float:
    """How sharp a face of the photo is: its high-frequency energy over its contrast (so a face in shadow is not
    called blurred)."""
    lap, std = high_frequency(rgb, box)
    return lap / max(std, 1.0)


def sharpened(photo: np.ndarray, out: np.ndarray, box) -> float:
    """The output's high-frequency energy over the photo's, on the same face (> 1: sharper than the photo)."""
    return high_frequency(out, box)[0] / max(high_frequency(photo, box)[0], 1e-6)


class Identity:
    """dlib ResNet descriptors of a face given its box (train/identity.py's network, boxes from our detector)."""

    def __init__(self):
        from train.identity import FaceDescriptors

        self.d = FaceDescriptors()

    def __call__(self, rgb: np.ndarray, box=None) -> np.ndarray:
        if box is None:
            return self.d(rgb)[0]
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        rect = self.d.dlib.rectangle(max(0, x0), max(0, y0), min(img.shape[1] - 1, x1), min(img.shape[0] - 1, y1))
        shape = self.d.landmarks(img, rect)
        return np.asarray(self.d.recognizer.compute_face_descriptor(img, shape), np.float64)


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def matched(reference: list, faces: list, scale: float) -> int:
    """How many reference faces (full-size pixels) a run cartoonized: a face of its result (`FaceResult.box`, in
    its photo's pixels, `scale` full-size pixels each) overlapping the reference box by IoU >= 0.5, one to one."""
    boxes = [tuple(v * scale for v in f.box) for f in faces]
    pairs = sorted(((iou(r.box, b), i, j) for i, r in enumerate(reference) for j, b in enumerate(boxes)), reverse=True)
    used_r, used_b = set(), set()
    for overlap, i, j in pairs:
        if overlap >= 0.5 and i not in used_r and j not in used_b:
            used_r.add(i)
            used_b.add(j)
    return len(used_r)


def reference_faces(rgb: np.ndarray, min_size: float) -> list:
    from facecrop.detect import RetinaFaceDetector

    det = RetinaFaceDetector(max_side=min(2048, max(rgb.shape[:2])))
    faces = [f for f in det.detect(rgb) if f.size >= min_size]
    return sorted(faces, key=lambda f: (f.box[0], f.box[1]))


def run_photos(studio, args, identity) -> dict:
    from cartoon.imageio import load_image
    from facecrop import NoFaceError

    folder = Path(args.photos)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    rows, faces_all = [], []
    for path in files:
        photo = load_image(path).rgb
        t = time.perf_counter()
        r = studio.run(str(path), "portrait", mode="portrait", background="photo")
        seconds = time.perf_counter() - t
        out = r.image.rgb
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(Path(args.out) / (path.stem + ".png")), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        ref = reference_faces(photo, args.min_size)
        try:
            app = studio.run(str(path), "portrait", mode="portrait", max_side=args.app_side)
            at_app = matched(ref, app.faces, photo.shape[1] / app.photo.size[0])
        except NoFaceError as e:
            at_app = 0
            print(f"  {path.name} at {args.app_side} px: {e}")
        present = PRESENT.get(path.name, len(ref)) if folder.resolve() == (SHARED / "data" / "people").resolve() \
            else len(ref)
        found_full = matched(ref, r.faces, 1.0)
        s, band = seam(photo, out)
        white = new_white(photo, out)
        per_face = []
        for f in ref:
            de = delta_e(photo, out, f.box)
            sp, ratio = sharpness(photo, f.box), sharpened(photo, out, f.box)
            idd = float(np.linalg.norm(identity(photo, f.box) - identity(out, f.box))) if identity else float("nan")
            per_face.append(dict(box=[round(v, 1) for v in f.box], size=round(f.size), delta_e=de,
                                 sharp_photo=sp, sharp_ratio=ratio, identity=idd))
        faces_all += per_face
        row = dict(photo=path.name, size=list(photo.shape[1::-1]), seconds=seconds, seam=s, seam_px=band,
                   white_px=white, present=present, found_full=found_full, found_app=at_app,
                   faces_run=len(r.faces), delta_e=float(np.mean([f["delta_e"] for f in per_face] or [np.nan])),
                   faces=per_face, skipped=[(k.reason, k.detail) for k in getattr(r, "skipped", [])])
        rows.append(row)
        blurred = [f for f in per_face if f["sharp_photo"] < BLURRED_SHARPNESS]
        print(f"{path.name:<24} {photo.shape[1]}x{photo.shape[0]}  ΔE {row['delta_e']:5.1f}  seam {s:4.2f}  "
              f"white px {white:5d}  faces: present {present}, found full {found_full}, at {args.app_side} px "
              f"{at_app}  skipped {dict(Counter(why for why, _ in row['skipped']))}  "
              f"id {np.nanmean([f['identity'] for f in per_face]) if per_face else float('nan'):.3f}  "
              f"blurred faces' sharpness out/photo {[round(f['sharp_ratio'], 2) for f in blurred]}  "
              f"{seconds:.1f} s")
    summary = dict(
        faces=len(faces_all),
        delta_e=float(np.mean([f["delta_e"] for f in faces_all])),
        delta_e_max=float(np.max([f["delta_e"] for f in faces_all])),
        seam=float(np.mean([r["seam"] for r in rows])),
        white_px=int(sum(r["white_px"] for r in rows)),
        present=int(sum(r["present"] for r in rows)),
        found_full=int(sum(r["found_full"] for r in rows)),
        found_app=int(sum(r["found_app"] for r in rows)),
        identity=float(np.nanmean([f["identity"] for f in faces_all])),
        sharp_ratio_blurred=[round(f["sharp_ratio"], 2) for f in faces_all if f["sharp_photo"] < BLURRED_SHARPNESS],
        sharp_ratio_mean=float(np.mean([f["sharp_ratio"] for f in faces_all])),
    )
    return dict(photos=rows, summary=summary)


def run_aligned(studio, args, identity) -> dict:
    from cartoon.imageio import load_image
    from facecrop import NoFaceError
    from train.config import load_config
    from train.data import make_splits

    files = make_splits(load_config(str(REPO / "train" / "configs" / "portrait.yaml")).data).val_photos[:args.aligned]
    engine, _ = studio.engine("portrait")
    pipe = studio.faces()
    d_gen, d_pipe, de_gen, de_pipe, missed = [], [], [], [], 0
    for path in files:
        photo = load_image(path).rgb
        gen = engine(photo).image.rgb
        try:
            r = studio.run(photo, "portrait", mode="portrait", background="photo")
            out = r.image.rgb
        except NoFaceError:
            missed += 1
            out = photo
        faces = pipe.detect(photo)
        box = faces[0].box if faces else (0.2 * 256, 0.25 * 256, 0.8 * 256, 0.85 * 256)
        p = identity(photo)
        d_gen.append(float(np.linalg.norm(p - identity(gen))))
        d_pipe.append(float(np.linalg.norm(p - identity(out))))
        de_gen.append(delta_e(photo, gen, box))
        de_pipe.append(delta_e(photo, out, box))
    s = dict(n=len(files), identity_generator=float(np.mean(d_gen)), identity_portrait_mode=float(np.mean(d_pipe)),
             delta_e_generator=float(np.mean(de_gen)), delta_e_portrait_mode=float(np.mean(de_pipe)),
             no_face=missed)
    print(f"held-out aligned faces ({len(files)}): dlib identity distance: generator alone "
          f"{s['identity_generator']:.3f}, "
          f"portrait mode {s['identity_portrait_mode']:.3f}; colour ΔE: generator alone {s['delta_e_generator']:.1f}, "
          f"portrait mode {s['delta_e_portrait_mode']:.1f}; no face found: {missed}")
    return s


def contact_sheet(photos_dir: Path, before: Path | None, after: Path, path: Path, min_size: float,
                  tile: int = 200, per_row: int = 2) -> None:
    """Per face: photo | before | after, the box grown to 2.2x (neck, hair, shirt and the background around)."""
    from PIL import Image, ImageDraw

    from cartoon.imageio import load_image

    cells = []
    for p in sorted(photos_dir.iterdir()):
        if not (after / (p.stem + ".png")).is_file():
            continue
        photo = load_image(p).rgb
        versions = [photo] + [load_image(d / (p.stem + ".png")).rgb for d in (before, after) if d is not None]
        for f in reference_faces(photo, min_size):
            cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
            half = 1.1 * max(f.width, f.height)
            x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
            x1, y1 = int(min(photo.shape[1], cx + half)), int(min(photo.shape[0], cy + half * 1.2))
            cells.append([Image.fromarray(v[y0:y1, x0:x1]).resize((tile, round(tile * (y1 - y0) / (x1 - x0))))
                          for v in versions])
    if not cells:
        return
    k = len(cells[0])
    h = max(c[0].height for c in cells)
    cols = per_row
    rows = (len(cells) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (k * tile + 12), rows * (h + 4) + 18), "white")
    draw = ImageDraw.Draw(sheet)
    labels = ["photo"] + (["before"] if before is not None else []) + ["after"]
    for c in range(cols):
        for j, lab in enumerate(labels):
            draw.text((c * (k * tile + 12) + j * tile + 4, 3), lab, fill="black")
    for i, cell in enumerate(cells):
        r, c = divmod(i, cols)
        for j, im in enumerate(cell):
            sheet.paste(im, (c * (k * tile + 12) + j * tile, 18 + r * (h + 4)))
    sheet.save(path)
    print(f"contact sheet: {path} ({len(cells)} faces)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", default=str(SHARED / "data" / "people"), help="folder of real photos ('' to skip)")
    p.add_argument("--aligned", type=int, default=68, help="held-out aligned faces to measure (0 to skip)")
    p.add_argument("--min-size", type=float, default=64, help="faces measured: box's shorter side >= this (px)")
    p.add_argument("--app-side", type=int, default=1024, help="the app's default longest side")
    p.add_argument("--out", help="write each output here (PNG)")
    p.add_argument("--sheet", help="write a contact sheet (photo | before | after per face) here")
    p.add_argument("--before", help="a folder of earlier --out outputs for the sheet")
    p.add_argument("--json", help="write every number here")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-identity", action="store_true", help="skip dlib (not installed)")
    args = p.parse_args(argv)

    import torch

    sys.path.insert(0, str(REPO))
    from cartoon import Studio

    torch.set_num_threads(args.threads)
    studio = Studio(device="cpu", threads=args.threads)
    identity = None if args.no_identity else Identity()
    numbers = {}
    if args.photos:
        numbers["photos"] = run_photos(studio, args, identity)
        s = numbers["photos"]["summary"]
        print(f"\nreal photos: {s['faces']} faces >= {args.min_size:g} px: mean ΔE {s['delta_e']:.1f} "
              f"(max {s['delta_e_max']:.1f}); seam {s['seam']:.2f}; new white px {s['white_px']}; faces present "
              f"{s['present']}, found at full size {s['found_full']}, at {args.app_side} px {s['found_app']}; "
              f"dlib identity {s['identity']:.3f}; sharpness out/photo: mean {s['sharp_ratio_mean']:.2f}, "
              f"blurred faces {s['sharp_ratio_blurred']}")
    if args.aligned and identity is not None:
        numbers["aligned"] = run_aligned(studio, args, identity)
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1))
    if args.sheet and args.out and args.photos:
        contact_sheet(Path(args.photos), Path(args.before) if args.before else None, Path(args.out),
                      Path(args.sheet), args.min_size)


if __name__ == "__main__":
    main()
