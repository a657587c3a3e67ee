"""Quality numbers of a generator: KID (with its spread over subsets), grayscale SSIM to the input, the thin lines
it adds over texture, and the contact sheet.  FID is in `fid.py`; both take the Inception features that
`FIDEvaluator.features` computes.

KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged
over random subsets; reported x10^3.  Unlike FID it is unbiased for small sets, so a few hundred validation images
give comparable numbers, and its subset spread says how far to trust a difference.
"""
from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity


def kid(feats1: np.ndarray, feats2: np.ndarray, subsets: int = 50, subset_size: int = 100,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of MMD^2 over `subsets` random subsets of min(subset_size, n1, n2) images from each side."""
    a = np.asarray(feats1, np.float64)
    b = np.asarray(feats2, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least two images on each side")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 or float in 0..255 -> float64 luma (BT.601)."""
    x = np.asarray(rgb, np.float64)
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def ssim_gray(a: np.ndarray, b: np.ndarray) -> float:
    """Grayscale SSIM (skimage defaults: 7x7 uniform window) between two RGB images in 0..255."""
    return float(structural_similarity(gray(a), gray(b), data_range=255.0))


def edge_density(edges: np.ndarray, window: int = 31) -> np.ndarray:
    """(H, W) float32: the fraction of edge pixels (non-zero in `edges`) in the `window`-px square round each pixel."""
    return cv2.boxFilter((edges > 0).astype(np.float32), -1, (window, window))


def texture_mask(rgb: np.ndarray, low: int = 80, high: int = 180, max_density: float = 0.2, window: int = 31) -> np.ndarray:
    """(H, W) bool: where the photo is texture (grass, surf, snowy slopes) rather than regions and their outlines:
    where more than `max_density` of the `window`-px square is Canny edges.  A skyline or a figure is one or two
    lines through the window (~0.03-0.07 at 31 px), a meadow's edges 0.3 and more."""
    return edge_density(cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high), window) > max_density


def texture_lines(photo: np.ndarray, output: np.ndarray) -> float | None:
    """Thin lines, dark or light, that the output adds over the photo's texture, in grey levels (0: none): the mean,
    over the photo's texture (`texture_mask`: grass, surf, snow), of the output's luma closing less opening
    (black-hat plus top-hat, 7-px disc) less the photo's.  A style that learned to outline every Canny chain draws
    a crackle there that SSIM barely sees.  None when the photo has no texture."""
    mask = texture_mask(np.asarray(photo, np.uint8))
    if not mask.any():
        return None
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    def lines(rgb):
        y = gray(rgb).astype(np.float32)
        return cv2.morphologyEx(y, cv2.MORPH_CLOSE, disc) - cv2.morphologyEx(y, cv2.MORPH_OPEN, disc)
    return float(np.maximum(lines(output) - lines(photo), 0)[mask].mean())


def contact_sheet(pairs: list[tuple[np.ndarray, ...]], thumb: int = 160, gap: int = 4) -> np.ndarray:
    """Rows of (input | output [| more outputs]) thumbnails, `thumb` px high, on white: (H, W, 3) uint8."""
    from PIL import Image

    rows = []
    for images in pairs:
        cells = []
        for im in images:
            im = np.clip(np.asarray(im), 0, 255).astype(np.uint8)
            h, w = im.shape[:2]
            cells.append(np.asarray(Image.fromarray(im).resize((max(1, round(w * thumb / h)), thumb),
                                                               Image.Resampling.LANCZOS)))
            cells.append(np.full((thumb, gap, 3), 255, np.uint8))
        rows.append(np.concatenate(cells[:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    out = []
    for r in rows:
        out.append(np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(out, axis=0)[:-gap]


# ---- how much a picture reads as a cartoon: flat regions and outlines, against the frames' own --------------------

FLAT_GRADIENT = 8.0  # grey levels: a Sobel gradient below this is a flat (painted) pixel
GRADIENT_BINS = (0, 2, 4, 8, 16, 32, 64, 128, np.inf)


def gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32: the grayscale Sobel gradient magnitude, in grey levels per pixel (the 3x3 kernels / 8)."""
    y = gray(rgb).astype(np.float32)
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.sqrt(gx * gx + gy * gy)


def flat_share(rgb: np.ndarray) -> float:
    """The share of pixels whose gradient is below FLAT_GRADIENT: cartoons paint regions flat, photos are texture."""
    return float((gradient_magnitude(rgb) < FLAT_GRADIENT).mean())


def gradient_histogram(rgb: np.ndarray) -> np.ndarray:
    """The share of pixels in each GRADIENT_BINS interval of the gradient magnitude."""
    return np.histogram(gradient_magnitude(rgb), bins=np.array(GRADIENT_BINS))[0] / rgb.shape[0] / rgb.shape[1]


def dark_lines(rgb: np.ndarray, depth: float = 20.0) -> np.ndarray:
    """(H, W) bool: thin dark lines (black-hat of the luma with a 5-px disc deeper than `depth` grey levels)."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    y = gray(rgb).astype(np.float32)
    return cv2.morphologyEx(y, cv2.MORPH_BLACKHAT, disc) > depth


def line_placement(photo: np.ndarray, output: np.ndarray) -> tuple[float, float | None]:
    """(dark-line density of the output on the photo's object boundaries, on the photo's texture; None without
    texture).  Boundaries: the photo's Canny edges outside texture (`texture_mask`), widened 2 px; a cartoon
    outlines those and leaves texture clean."""
    lines = dark_lines(output)
    edges = cv2.Canny(cv2.cvtColor(np.asarray(photo, np.uint8), cv2.COLOR_RGB2GRAY), 80, 180) > 0
    texture = texture_mask(np.asarray(photo, np.uint8))
    boundary = cv2.dilate((edges & ~texture).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    on_boundary = float(lines[boundary].mean()) if boundary.any() else 0.0
    return on_boundary, (float(lines[texture].mean()) if texture.any() else None)


def look_numbers(images: list[np.ndarray]) -> dict:
    """Flatness and line statistics of a set of images (outputs, photos or frames), comparable across sets."""
    hist = np.mean([gradient_histogram(im) for im in images], axis=0)
    return {"flat_share": float(np.mean([flat_share(im) for im in images])),
            "line_density": float(np.mean([dark_lines(im).mean() for im in images])),
            "gradient_histogram": [round(float(v), 4) for v in hist]}


class FrameProbe:
    """A linear photo-vs-frame classifier on Inception pool features (logistic regression, L2, standardised
    features), trained on training photos and training scenery frames only.  The share of outputs it calls a
    frame says how far a style moved the photos into the film's domain, which KID, dominated by content, hides."""

    def __init__(self, photo_feats: np.ndarray, frame_feats: np.ndarray, l2: float = 1e-2, steps: int = 300):
        import torch

        x = np.concatenate([photo_feats, frame_feats]).astype(np.float64)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        xt = torch.from_numpy((x - self.mean) / self.std).float()
        yt = torch.cat([torch.zeros(len(photo_feats)), torch.ones(len(frame_feats))])
        # balanced classes: each side weighs half
        wt = torch.where(yt > 0, 0.5 / len(frame_feats), 0.5 / len(photo_feats))
        w = torch.zeros(x.shape[1], requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt, reduction="none") * wt).sum() \
                + l2 * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.w, self.b = w.detach().double().numpy(), float(b.detach())

    def logit(self, feats: np.ndarray) -> np.ndarray:
        """The log-odds that each of `feats` is a frame."""
        return ((np.asarray(feats, np.float64) - self.mean) / self.std) @ self.w + self.b

    def frame_share(self, feats: np.ndarray) -> float:
        """The share of `feats` the probe calls a frame."""
        return float((self.logit(feats) > 0).mean())
