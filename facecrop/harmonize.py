"""Making a cartoon face belong to its photo: the photo's skin tone and light, its focus and grain, and a paste-back
without seams.

The portrait style was trained on pale faces on white and paints every face nearly white (on its own held-out
portraits the face's mean colour moves by ΔE 24 in CIELAB; on real photos by 25).  `match_tone` keeps the
cartoon's structure and line work (everything finer than `sigma`) and takes its large-scale colour and luminance
from the photo: in CIELAB, cartoon − lowpass(cartoon) + lowpass(photo), the low-pass a normalised convolution over
the person mask only (the crop's white background never enters it).

The grey blotch some faces got (a flat grey patch on a forehead) is the generator's: it paints skin whose colour
has been blown out to near-white, low-chroma highlight (a film scan's forehead at Lab (86, -1, 4) on a face whose
skin is (76, 10, 26)) as a grey patch, bigger when the photo is darker, whatever the segmenter's mask or the
blend, and unchanged by noise, blur or a 512 px crop.  `prepare` gives such highlights the face's own skin chroma
before the generator sees them (inside the face, away from the eyes and the mouth, only where brighter than the
skin); `match_tone` then puts the photo's real colour back at large scale.

`paste` blends in the photo's geometry: the person mask is warped into the photo and the weight ramps up inside
it (a distance ramp whose width is a fraction of the face's size in photo pixels: never outside the mask, so none
of the crop's white background reaches the photo), times a soft oval around the head in the crop (so the crop's
square never shows as a line across the neck, the shirt or the hair).  There the cartoon is blurred to the photo's
focus at that place (an out-of-focus face is not pasted back sharp) and, over the photo, given its grain.
"""
from __future__ import annotations

import math
import zlib

import cv2
import numpy as np

from . import align

TONE_SIGMA = 1 / 16  # low-pass of match_tone, as a fraction of the crop side (16 px of a 256 crop)
HEAD = (0.5, 0.5, 0.35, 0.38, 1.3)  # crop fractions: centre x, y, semi-axes x, y; weight 0 at this multiple
EDGE = 0.03  # the weight is 0 within this fraction of the crop's border whatever the oval says
FEATHER = 0.04  # width of the weight's ramp inside the person mask, fraction of the crop side in photo pixels
OUT_OF_FOCUS = (1.2, 0.01)  # a face whose edges are blurred (Gaussian sigma) by more than this many pixels and this
# fraction of its size is out of focus (`blur_sigma` of faces in focus: 0-0.75 px at ~100 px; out of focus: 1.7-1.9)
FACE_SHARE = 0.43  # a face's box side as a fraction of its aligned crop's side
HALO = 3.0  # crop pixels (of 256) along the mask's outline that are never pasted: the generator's outline there
# is drawn against the white background


# ---- colour ------------------------------------------------------------------------------------------------------

def to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.asarray(rgb, np.float32) / 255, cv2.COLOR_RGB2Lab)


def to_rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB) * 255), 0, 255).astype(np.uint8)


def _lowpass(x: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: the weighted Gaussian mean of `x` (H, W, C) around each pixel, and the weight there."""
    den = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    num = cv2.GaussianBlur(x * weight[..., None], (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    num = num.reshape(x.shape)
    return num / np.maximum(den, 1e-4)[..., None], den


def _ellipse(side: int, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Normalised radius ((x - cx) / ax)^2 + ((y - cy) / ay)^2, square-rooted, over a side x side crop."""
    t = (np.arange(side, dtype=np.float32) + 0.5) / side
    return np.sqrt(((t[None, :] - cx) / ax) ** 2 + ((t[:, None] - cy) / ay) ** 2)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def skin_region(side: int, landmarks: np.ndarray) -> np.ndarray:
    """(S, S) float weight: the face's skin in an aligned crop (forehead to chin), 0 on the eyes and the mouth."""
    lm = np.asarray(landmarks, np.float64)
    eye = np.hypot(*(lm[1] - lm[0]))
    oval = 1 - _smoothstep((_ellipse(side, 0.5, 0.52, 0.25, 0.37) - 0.85) / 0.3)
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    away = np.ones((side, side), np.float32)
    mouth = (lm[3] + lm[4]) / 2
    mouth_w = max(np.hypot(*(lm[4] - lm[3])), 0.3 * eye)
    for (x, y), rx, ry in ((lm[0], 0.32 * eye, 0.22 * eye), (lm[1], 0.32 * eye, 0.22 * eye),
                           (mouth, 0.75 * mouth_w, 0.4 * mouth_w)):
        r = np.sqrt(((xs - x) / rx) ** 2 + ((ys - y) / ry) ** 2)
        away = np.minimum(away, _smoothstep((r - 1) / 0.3))
    return (oval * away).astype(np.float32)


def prepare(crop: np.ndarray, mask: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The crop as the generator should see it: blown-out, colourless highlights on the skin (brighter than the
    skin's median and less chromatic) get the skin's median chroma, fully at 40 % of it or less.
    `landmarks`: the face's five points in the crop. Everything else is unchanged."""
    side = crop.shape[0]
    lab = to_lab(crop)
    skin = skin_region(side, landmarks) * (mask >= 0.5)
    core = skin > 0.5
    if core.sum() < 50:
        return crop
    med = np.median(lab[core], axis=0)
    med_chroma = float(np.hypot(med[1], med[2]))
    if med_chroma < 4:  # a grey (or black and white) photo: nothing to restore
        return crop
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    lack = np.clip((1 - chroma / med_chroma) / 0.6, 0, 1)
    bright = np.clip((lab[..., 0] - med[0]) / 8, 0, 1)
    k = (skin * lack * bright)[..., None]
    if k.max() < 0.05:
        return crop
    lab[..., 1:] += k * (med[1:] - lab[..., 1:])
    out = to_rgb(lab)
    return np.where(k > 0.01, out, crop)


def match_tone(cartoon: np.ndarray, photo: np.ndarray, mask: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """The cartoon with the photo's large-scale colour and luminance (CIELAB, scales above `sigma` pixels, default
    TONE_SIGMA of the side) over the person; its finer structure (line work, flat shading) kept. `photo`: the
    crop the cartoon was made from; `mask`: its person mask. Outside the mask the cartoon is returned as it is."""
    side = cartoon.shape[0]
    sigma = sigma or TONE_SIGMA * side
    w = (mask >= 0.5).astype(np.float32)
    if w.sum() < 16:
        return cartoon
    c, p = to_lab(cartoon), to_lab(photo)
    low_c, den = _lowpass(c, w, sigma)
    low_p, _ = _lowpass(p, w, sigma)
    out = c + (low_p - low_c)
    inside = (den > 0.02)[..., None] & (mask[..., None] > 0.01)
    return np.where(inside, to_rgb(out), cartoon)


# ---- focus and grain ------------------------------------------------------------------------------------------

SOBEL_BLUR = 0.8  # px: what the 3x3 Sobel kernel adds to every edge's measured blur


def _gradient(gray: np.ndarray) -> np.ndarray:
    return np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))


def _edge_centres(gray: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Where the gradient magnitude is a maximum across the edge (along the gradient's direction, in 4 steps)."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    sector = np.rint(np.mod(np.degrees(np.arctan2(gy, gx)), 180) / 45).astype(int) % 4
    m = np.pad(magnitude, 1, mode="edge")
    h, w = magnitude.shape
    out = np.zeros((h, w), bool)
    for k, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = m[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        behind = m[1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        out |= (sector == k) & (magnitude >= ahead) & (magnitude >= behind)
    return out


def blur_sigma(gray: np.ndarray, where: np.ndarray | None = None, probe: float = 1.0) -> float | None:
    """The Gaussian blur (sigma, pixels) of the strongest edges of `gray` (within `where`): re-blurring an edge of
    blur s0 by `probe` lowers its gradient by s0 / sqrt(s0^2 + probe^2) (Zhuo and Sim's defocus estimate); the median
    over the edge centres among the top tenth of the gradients. None when there are too few edges to tell."""
    g = np.asarray(gray, np.float32)
    g0 = _gradient(g)
    g1 = _gradient(cv2.GaussianBlur(g, (0, 0), probe))
    sel = np.ones(g.shape, bool) if where is None else where
    if sel.sum() < 50:
        return None
    strong = max(float(np.percentile(g0[sel], 90)), 8.0)  # Sobel units: 8 is 1 grey level per pixel
    # edge centres only (the gradient's local maxima): on an edge's flanks re-blurring does not lower the gradient
    edge = sel & (g0 >= strong) & _edge_centres(g, g0)
    if edge.sum() < 12:
        return None
    ratio = np.clip(g0[edge] / np.maximum(g1[edge], 1e-3), 1.005, None)
    total = float(np.median(probe / np.sqrt(ratio ** 2 - 1)))  # the edge's blur and the Sobel kernel's own
    return math.sqrt(max(total ** 2 - SOBEL_BLUR ** 2, 0.0))


def noise_sigma(gray: np.ndarray, where: np.ndarray | None = None) -> float:
    """White noise (grey levels) of `gray` within `where`: Immerkaer's Laplacian-difference residual over the
    flattest 30 % of the pixels, through its median (skin texture, hair and JPEG edges would inflate a mean)."""
    g = np.asarray(gray, np.float32)
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)  # white noise of sigma s: std 6 s
    r = np.abs(cv2.filter2D(g, -1, k, borderType=cv2.BORDER_REFLECT))
    sel = np.ones(g.shape, bool) if where is None else where.copy()
    sel[[0, -1]] = False
    sel[:, [0, -1]] = False
    if sel.sum() < 50:
        return 0.0
    grad = _gradient(g)
    flat = sel & (grad <= np.percentile(grad[sel], 30))
    if flat.sum() < 25:
        return 0.0
    return float(np.median(r[flat]) / (0.6745 * 6))


# ---- pasting -----------------------------------------------------------------------------------------------------

def head_weight(side: int) -> np.ndarray:
    """(S, S) float32: 1 over the head of an aligned crop, fading smoothly to 0 before the crop's border."""
    cx, cy, ax, ay, out = HEAD
    oval = 1 - _smoothstep((_ellipse(side, cx, cy, ax, ay) - 1) / (out - 1))
    t = (np.arange(side, dtype=np.float32) + 0.5) / side
    edge = _smoothstep(np.minimum(t, 1 - t) / EDGE)
    return (oval * np.minimum(edge[:, None], edge[None, :])).astype(np.float32)


def footprint(inverse: np.ndarray, side: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The (x0, y0, x1, y1) pixels of an image of `shape` that a crop of `side` covers through `inverse`."""
    corners = align.apply(inverse, np.array([[0, 0], [side, 0], [0, side], [side, side]], np.float64))
    x0 = max(0, int(math.floor(corners[:, 0].min())) - 1)
    y0 = max(0, int(math.floor(corners[:, 1].min())) - 1)
    x1 = min(shape[1], int(math.ceil(corners[:, 0].max())) + 2)
    y1 = min(shape[0], int(math.ceil(corners[:, 1].max())) + 2)
    return None if x0 >= x1 or y0 >= y1 else (x0, y0, x1, y1)


def paste_weight(mask: np.ndarray, inverse: np.ndarray, size: tuple[int, int], soften: float = 0.0) -> np.ndarray:
    """The weight (H, W) float32 a crop is pasted with into an image region of `size` (w, h), `inverse` mapping the
    crop to the region: 0 outside the person mask and on its outline (`HALO` crop pixels), ramping up to 1 over
    `FEATHER` of the crop's side measured in the region's pixels (at least `soften` pixels: an out-of-focus face's
    outline is as soft as the photo's), times the head oval (`head_weight`)."""
    side = mask.shape[0]
    scale = math.sqrt(abs(np.linalg.det(np.asarray(inverse, np.float64)[:, :2])))  # region px per crop px
    person = align.warp(np.asarray(mask, np.float32), inverse, size, border_value=0)
    head = align.warp(head_weight(side), inverse, size, border_value=0)
    solid = (person >= 0.5).astype(np.uint8)
    if not solid.any():
        return np.zeros(size[::-1], np.float32)
    dist = cv2.distanceTransform(np.pad(solid, 1, constant_values=0), cv2.DIST_L2, 5)[1:-1, 1:-1]
    halo = max(1.0, HALO * side / 256 * scale)
    ramp = max(1.5, FEATHER * side * scale, soften)
    return (_smoothstep((dist - halo) / ramp) * head).astype(np.float32)


def paste(canvas: np.ndarray, cartoon: np.ndarray, mask: np.ndarray, inverse: np.ndarray,
          photo: np.ndarray | None = None, grain: bool = False) -> np.ndarray | None:
    """Blend `cartoon` (an (S, S, 3) crop) into `canvas` ((H, W, 3) float32, in place) through `inverse` (crop ->
    canvas), weighted by `paste_weight`. With `photo` (the photo at the canvas's size): the cartoon is first blurred
    to the photo's focus under the face, and with `grain` given the photo's noise there. Returns the weight over the
    whole canvas's region it touched (None when the crop lies outside), for callers that want to show it."""
    side = cartoon.shape[0]
    box = footprint(inverse, side, canvas.shape[:2])
    if box is None:
        return None
    x0, y0, x1, y1 = box
    m = np.asarray(inverse, np.float64).copy()
    m[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    colour = align.warp(np.asarray(cartoon, np.float32), m, size, border_value=0)
    weight = paste_weight(mask, m, size)
    if photo is not None:
        face = FACE_SHARE * side * math.sqrt(abs(np.linalg.det(m[:, :2])))
        person = (align.warp(np.asarray(mask, np.float32), m, size, border_value=0) >= 0.5).astype(np.float32)
        colour, blur = _match_focus_and_grain(colour, photo[y0:y1, x0:x1], weight, person, grain, face,
                                              seed=(x0, y0, x1, y1))
        if blur > 0:
            weight = paste_weight(mask, m, size, soften=2.5 * blur)
    region = canvas[y0:y1, x0:x1]
    region += weight[..., None] * (colour - region)
    return weight


def detail(gray: np.ndarray, where: np.ndarray) -> float:
    """Fine detail within `where`: the spread of the Laplacian at half resolution (where a JPEG's 8 px blocks and
    pixel noise, which an out-of-focus photo still has, count little next to drawn lines)."""
    h, w = gray.shape
    size = (max(1, w // 2), max(1, h // 2))
    small = cv2.resize(np.asarray(gray, np.float32), size, interpolation=cv2.INTER_AREA)
    sel = cv2.resize(where.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if sel.sum() < 16:
        return 0.0
    return float(cv2.Laplacian(small, cv2.CV_32F)[sel].std())


def _blur_inside(colour: np.ndarray, person: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of the person only (a normalised convolution): the crop's white around it does not bleed in."""
    num = cv2.GaussianBlur(colour * person[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(person, (0, 0), sigma)[..., None]
    return np.where(den > 0.05, num / np.maximum(den, 1e-4), colour)


def _match_focus_and_grain(colour: np.ndarray, photo: np.ndarray, weight: np.ndarray, person: np.ndarray,
                           grain: bool, face: float, seed: tuple) -> tuple[np.ndarray, float]:
    """(the cartoon blurred to the photo's focus and with its grain, the blur sigma applied)."""
    core = weight > 0.9
    if core.sum() < 100:
        return colour, 0.0
    g_photo = cv2.cvtColor(np.asarray(photo, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    g_cartoon = cv2.cvtColor(np.clip(colour, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    s_photo, s_cartoon = blur_sigma(g_photo, core), blur_sigma(g_cartoon, core)
    applied = 0.0
    if s_photo is not None and s_cartoon is not None and s_photo > s_cartoon + 0.1:
        extra = math.sqrt(s_photo ** 2 - s_cartoon ** 2)
        if extra > 0.3:
            blurred = _blur_inside(colour, person, extra)
            if s_photo >= max(OUT_OF_FOCUS[0], OUT_OF_FOCUS[1] * face):
                # Out of focus: the cartoon's line work is crisper than any photo edge at the same blur, so blur on
                # until it has no more fine detail than the photo there.
                pasted = weight > 0.05
                target = detail(g_photo, pasted)
                for _ in range(5):
                    g = cv2.cvtColor(np.clip(blurred, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
                    if detail(g.astype(np.float32), pasted) <= target:
                        break
                    extra *= 1.25
                    blurred = _blur_inside(colour, person, extra)
            colour, applied = blurred, extra
            g_cartoon = cv2.GaussianBlur(g_cartoon, (0, 0), extra)
    if grain:
        n_photo, n_cartoon = noise_sigma(g_photo, core), noise_sigma(g_cartoon, core)
        add = math.sqrt(max(0.0, n_photo ** 2 - n_cartoon ** 2))
        if add > 0.5:
            rng = np.random.default_rng(zlib.crc32(repr(seed).encode()))
            colour = colour + rng.normal(0, add, colour.shape[:2] + (1,)).astype(np.float32)
    return colour, applied
