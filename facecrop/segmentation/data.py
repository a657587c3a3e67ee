"""Person / background composites for training the segmenter, generated deterministically from a seed.

The aligned portraits of `face_photo` stand on a white background, so their person mask is the part of the image
that is not white-connected-to-the-border.  Each sample pastes one portrait (scaled, shifted, rotated, recoloured)
onto a crop of a `scene_photo` landscape, sometimes with a second portrait behind it off to the side as a distractor
(labelled background: the pipeline wants only the person the crop is aligned on), sometimes with a white band where
a crop would reach past the photo's edge, then blurs, relights, adds noise and JPEG-compresses the whole.

Everything a sample depends on comes from `np.random.default_rng((seed, epoch, index))`, so a sample is the same
whatever order it is drawn in, and `split_files` fixes which people and backgrounds are held out.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from cartoon.imageio import IMAGE_SUFFIXES, load_image

SIZE = 256
# Held-out samples use an epoch number that training never reaches.
HELD_OUT_EPOCH = 1_000_000
# The split the shipped model was trained with: the same people and scenes are held out for evaluation and tests.
SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.1


def default_shared_dir() -> Path:
    """`../shared` relative to the repository root."""
    return Path(__file__).resolve().parents[3] / "shared"


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if (folder / "train").is_dir():  # the documented layout is face_photo/train; some checkouts are flat
        folder = folder / "train"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{folder}: no images")
    return files


def split_files(files: list[Path], held_out: float, seed: int) -> tuple[list[Path], list[Path]]:
    """A seeded (train, held-out) partition of `files`; the held-out part is the same for the same seed."""
    order = np.random.default_rng(seed).permutation(len(files))
    n_held = int(round(len(files) * held_out))
    held = sorted(files[i] for i in order[:n_held])
    train = sorted(files[i] for i in order[n_held:])
    return train, held


@dataclasses.dataclass
class Split:
    train_people: list[Path]
    held_out_people: list[Path]
    train_backgrounds: list[Path]
    held_out_backgrounds: list[Path]


def make_split(faces_dir: str | Path | None = None, scenes_dir: str | Path | None = None, seed: int = SPLIT_SEED,
               held_out: float = HELD_OUT_FRACTION) -> Split:
    """People (`face_photo`) and backgrounds (`scene_photo/train`) split independently: held-out composites show
    unseen people on unseen scenes."""
    shared = default_shared_dir()
    faces = list_images(faces_dir or shared / "data" / "face_photo")
    scenes = list_images(scenes_dir or shared / "data" / "scene_photo")
    return Split(*split_files(faces, held_out, seed), *split_files(scenes, held_out, seed + 1))


# ----------------------------------------------------------------------------------------------------------------
# Masks of people on white


def white_background_mask(rgb: np.ndarray, white_min: int = 238, max_chroma: int = 14) -> np.ndarray:
    """(H, W) uint8 {0, 255} person mask of a portrait on white: near-white pixels connected to the image border are
    background; everything else, with small specks removed and holes filled, is the person."""
    lo, hi = rgb.min(axis=2).astype(np.int16), rgb.max(axis=2).astype(np.int16)
    near_white = ((lo >= white_min) & (hi - lo <= max_chroma)).astype(np.uint8)
    _, labels = cv2.connectedComponents(near_white, connectivity=4)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    border_labels = np.unique(border[border > 0])
    background = np.isin(labels, border_labels)
    person = (~background).astype(np.uint8)
    # JPEG ringing leaves thin grey lines and dots in the white: an opening removes them, a closing seals hair gaps.
    person = cv2.morphologyEx(person, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    person = cv2.morphologyEx(person, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(person, connectivity=8)
    if n > 1:
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        person = (labels == largest).astype(np.uint8)
    return _fill_holes(person) * 255


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Background regions not connected to the border are holes (bright skin, white clothing): fill them."""
    _, labels = cv2.connectedComponents((mask == 0).astype(np.uint8), connectivity=4)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return (~np.isin(labels, np.unique(border[border > 0]))).astype(np.uint8)


@dataclasses.dataclass
class Cutout:
    """A person with its mask and the image sides the person runs off (those must stay off-frame when pasted)."""

    rgb: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) uint8 {0, 255}
    touches: tuple[bool, bool, bool, bool]  # top, bottom, left, right

    @classmethod
    def from_portrait(cls, rgb: np.ndarray) -> "Cutout":
        mask = white_background_mask(rgb)
        m = mask > 0
        side = m.shape[0]
        min_run = side // 16  # a few stray pixels on a side do not make the person run off it
        touches = (int(m[0].sum()) > min_run, int(m[-1].sum()) > min_run,
                   int(m[:, 0].sum()) > min_run, int(m[:, -1].sum()) > min_run)
        return cls(rgb, mask, touches)


def load_cutouts(files: list[Path]) -> list[Cutout]:
    return [Cutout.from_portrait(_load_square(f)) for f in files]


def load_backgrounds(files: list[Path]) -> list[np.ndarray]:
    return [_load_square(f) for f in files]


def _load_square(path: Path) -> np.ndarray:
    rgb = load_image(path).rgb
    if rgb.shape[:2] != (SIZE, SIZE):
        rgb = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return rgb


# ----------------------------------------------------------------------------------------------------------------
# Composites


@dataclasses.dataclass(frozen=True)
class Augment:
    """Ranges of the random changes; the defaults are the ones the shipped model was trained with."""

    scale: tuple[float, float] = (0.7, 1.3)  # person size relative to the aligned portrait
    shift: float = 0.12  # of the image side, in each direction (where the person's cut edges allow)
    rotate: float = 12.0  # degrees
    hue: float = 12.0  # person hue shift, in 1/256 turns
    distractor_p: float = 0.25
    white_band_p: float = 0.15  # a crop reaching past the photo's edge is white there
    background_blur_p: float = 0.35  # depth of field
    match_colour_p: float = 0.0  # background recoloured to the person's mean colour: shape must decide, not colour
    blur_p: float = 0.2  # the whole image out of focus
    low_res_p: float = 0.0  # a small face blown up to the crop size
    grayscale_p: float = 0.05
    noise_p: float = 0.3
    jpeg_p: float = 0.5


# The second training stage (fine-tuning) against what the first model got wrong on real photos: blond hair and
# bright skin on light walls, grey-scale photos, small faces blown up.
HARD = Augment(hue=25.0, match_colour_p=0.3, low_res_p=0.2, grayscale_p=0.15)
AUGMENTS = {"base": Augment(), "hard": HARD}


class CompositeDataset:
    """`dataset[i]` -> (image (size, size, 3) uint8, mask (size, size) float32 in [0, 1]).

    Index i is sample i % P of round `epoch + i // P` (P people): every round shows each person once, in an order
    and with augmentations drawn from (seed, round), so consecutive indices make a shuffled training stream.
    """

    def __init__(self, people: list[Cutout], backgrounds: list[np.ndarray], seed: int, epoch: int = 0,
                 length: int | None = None, size: int = SIZE, augment: Augment = Augment()):
        if not people or not backgrounds:
            raise ValueError("need at least one person and one background")
        self.people, self.backgrounds, self.seed, self.epoch = people, backgrounds, seed, epoch
        self.length = len(people) if length is None else length
        self.size = size
        self.augment = augment

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        round_, pos = divmod(index, len(self.people))
        epoch = self.epoch + round_
        person = int(np.random.default_rng((self.seed, epoch)).permutation(len(self.people))[pos])
        rng = np.random.default_rng((self.seed, epoch, person))
        image, mask = composite(self.people[person], self.people, self.backgrounds, rng, self.augment)
        if self.size != SIZE:
            image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return image, mask


def held_out_composites(people: list[Cutout], backgrounds: list[np.ndarray], seed: int, n: int | None = None,
                        augment: Augment = Augment()) -> CompositeDataset:
    """The evaluation set: held-out people on held-out backgrounds, fixed by `seed`."""
    return CompositeDataset(people, backgrounds, seed, epoch=HELD_OUT_EPOCH, length=n, augment=augment)


def composite(person: Cutout, others: list[Cutout], backgrounds: list[np.ndarray], rng: np.random.Generator,
              aug: Augment = Augment()) -> tuple[np.ndarray, np.ndarray]:
    """One (image, mask) sample: `person` in front of a scene, maybe with one of `others` behind it."""
    background = _background(backgrounds[int(rng.integers(len(backgrounds)))], rng)
    canvas = background.astype(np.float32)
    if rng.random() < aug.background_blur_p:
        canvas = cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(1.0, 4.0)))
    if rng.random() < aug.distractor_p:
        other = others[int(rng.integers(len(others)))]
        _paste(canvas, _jitter_colour(other, rng, aug.hue), rng, aug, distractor=True)
    target = _jitter_colour(person, rng, aug.hue)
    if rng.random() < aug.match_colour_p:
        person_mean = target.rgb[target.mask > 0].reshape(-1, 3).mean(axis=0)
        gain = (person_mean + 1) / (canvas.reshape(-1, 3).mean(axis=0) + 1)
        canvas = np.clip(canvas * (1 + rng.uniform(0.6, 1.0) * (gain - 1)), 0, 255)
    mask = _paste(canvas, target, rng, aug, distractor=False)
    image, mask = _white_band(canvas, mask, rng, aug.white_band_p)
    image = _degrade(image, rng, aug)
    return image, mask


def _background(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random zoomed, possibly flipped view of a scene."""
    zoom = rng.uniform(1.0, 1.6)
    side = int(round(SIZE / zoom))
    x0, y0 = (int(rng.integers(0, SIZE - side + 1)) for _ in range(2))
    view = cv2.resize(bg[y0:y0 + side, x0:x0 + side], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    return view[:, ::-1] if rng.random() < 0.5 else view


def _jitter_colour(person: Cutout, rng: np.random.Generator, hue: float) -> Cutout:
    """Hue, saturation and brightness of the person alone, so colour does not tell person from background."""
    hsv = cv2.cvtColor(person.rgb, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-hue, hue)) % 256
    hsv[..., 1] *= rng.uniform(0.6, 1.4)
    hsv[..., 2] *= rng.uniform(0.65, 1.2)
    rgb = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)
    return Cutout(rgb, person.mask, person.touches)


def _paste(canvas: np.ndarray, person: Cutout, rng: np.random.Generator, aug: Augment, distractor: bool) -> np.ndarray:
    """Warp `person` onto `canvas` in place; return its (S, S) float32 coverage on the canvas."""
    flip = rng.random() < 0.5
    scale = float(rng.uniform(*aug.scale))
    angle = float(rng.uniform(-aug.rotate, aug.rotate))
    top, bottom, left, right = person.touches
    if flip:
        left, right = right, left
    if (top and bottom) or (left and right):
        scale = max(scale, 1.0)
    if distractor:
        # Beside the main person, half out of the frame; its body still runs off the bottom.
        scale *= rng.uniform(0.75, 1.0)
        dx = float(rng.choice([-1, 1]) * rng.uniform(0.45, 0.75) * SIZE)
        dy = _shift(rng, 0.2, scale, top, bottom)
    else:
        # The person's cut edges (hair at the top, the body at the bottom) must stay outside the frame.
        dx, dy = (_shift(rng, aug.shift, scale, lo, hi) for lo, hi in ((left, right), (top, bottom)))
    centre = SIZE / 2
    m = cv2.getRotationMatrix2D((centre, centre), angle, scale)
    m[:, 2] += (dx, dy)
    rgb = person.rgb[:, ::-1] if flip else person.rgb
    mask = person.mask[:, ::-1] if flip else person.mask
    # Rotation must not reveal the main person's cut edges either: replicating the border continues the body
    # off-frame.  A distractor is moved far sideways, where replication would smear its edge across the frame.
    border = cv2.BORDER_CONSTANT if distractor else cv2.BORDER_REPLICATE
    warped = cv2.warpAffine(np.ascontiguousarray(rgb), m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=border)
    alpha = cv2.warpAffine(np.ascontiguousarray(mask), m, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                           borderMode=border).astype(np.float32) / 255
    # The cutout's rim mixes the person with white (JPEG, anti-aliasing): pull the matte in by a pixel and soften
    # it so that no light halo marks the boundary for the network to latch on to.
    soft = cv2.GaussianBlur(cv2.erode(alpha, np.ones((3, 3), np.uint8)), (0, 0), 0.8)
    canvas *= 1 - soft[..., None]
    canvas += soft[..., None] * warped.astype(np.float32)
    return np.zeros_like(alpha) if distractor else (alpha >= 0.5).astype(np.float32)


def _shift(rng: np.random.Generator, max_shift: float, scale: float, runs_off_low: bool, runs_off_high: bool) -> float:
    """An offset along one axis that keeps the sides the person runs off outside the frame.

    The warped portrait spans [c - s*S/2 + d, c + s*S/2 + d]: running off the low side needs its start <= 0, so
    d <= (s - 1) * S / 2; running off the high side needs d >= -(s - 1) * S / 2.
    """
    room = (scale - 1) * SIZE / 2
    lo, hi = -max_shift * SIZE, max_shift * SIZE
    if runs_off_low:
        hi = min(hi, room)
    if runs_off_high:
        lo = max(lo, -room)
    return float(rng.uniform(lo, hi)) if lo < hi else (lo + hi) / 2


def _white_band(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator, p: float
                ) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() >= p:
        return canvas, mask
    width = int(rng.integers(SIZE // 16, SIZE // 3))
    side = int(rng.integers(4))
    canvas, mask = canvas.copy(), mask.copy()
    region = [(slice(0, width), slice(None)), (slice(SIZE - width, None), slice(None)),
              (slice(None), slice(0, width)), (slice(None), slice(SIZE - width, None))][side]
    canvas[region] = 255
    mask[region] = 0
    return canvas, mask


def _degrade(image: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """Lighting, contrast, blur, noise and JPEG over the whole composite, as a camera and a phone app would."""
    img = image
    if rng.random() < 0.5:  # a light gradient across the frame
        ramp = np.linspace(-0.5, 0.5, SIZE, dtype=np.float32)
        theta = rng.uniform(0, 2 * np.pi)
        light = 1 + np.float32(rng.uniform(0.1, 0.5)) * (np.float32(np.cos(theta)) * ramp[None, :]
                                                          + np.float32(np.sin(theta)) * ramp[:, None])
        img = img * light[..., None]
    out = np.clip(img, 0, 255).astype(np.uint8)
    # Contrast, brightness, gamma and white balance as one lookup table per channel.
    levels = np.arange(256, dtype=np.float64) / 255
    curve = np.clip((levels - 0.5) * rng.uniform(0.75, 1.25) + 0.5 + rng.uniform(-0.12, 0.12), 0, 1)
    curve = curve ** rng.uniform(0.75, 1.35)
    table = np.clip(np.rint(curve[:, None] * rng.uniform(0.9, 1.1, size=3) * 255), 0, 255).astype(np.uint8)
    out = cv2.LUT(out, table[:, None, :])
    if rng.random() < aug.grayscale_p:
        out = np.repeat(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if rng.random() < aug.blur_p:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.6, 1.8)))
    if rng.random() < aug.low_res_p:
        side = int(rng.integers(40, 128))
        small = cv2.resize(out, (side, side), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    if rng.random() < aug.noise_p:
        noise = rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(2, 8))
        out = np.clip(out + noise, 0, 255).astype(np.uint8)
    if rng.random() < aug.jpeg_p:
        quality = int(rng.integers(35, 95))
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(out)
