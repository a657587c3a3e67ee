"""Saliency references for the photos: the mean of an RBD map and an MBD map, each in [0, 1].

RBD (Zhu et al. 2014, "Saliency optimization from robust background detection"): SLIC superpixels; each
superpixel's boundary connectivity (how much of its geodesic neighbourhood touches the image border) gives a
background probability; background-weighted contrast gives a foreground cue; a least-squares optimisation over the
superpixel graph combines both.

MBD (Zhang et al. 2015, "Minimum barrier salient object detection at 80 fps", MB+): the minimum barrier distance
from the image border, by the fast raster-scan transform, on each Lab channel, plus the border-contrast map, then
MB+'s centre bias and contrast stretch.  The raster scans run one anti-diagonal at a time: a pixel's scan neighbours
(above and left, or below and right) lie on the previous anti-diagonal, so each diagonal is one vectorised step with
exactly the sequential scan's result.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path
from skimage.color import rgb2lab
from skimage.segmentation import slic

# RBD constants from the paper
SIGMA_CLR = 10.0  # Lab distance scale of the geodesic area and the smoothness weights
SIGMA_BND = 1.0  # boundary connectivity -> background probability
SIGMA_SPA = 0.25  # spatial scale of the contrast, in image-size units
MU = 0.1  # smoothness floor between neighbours
GEO_CLIP = 3.0  # Lab differences below this are free to cross (homogeneous regions)


def saliency_reference(rgb: np.ndarray, segments: int = 200, compactness: float = 10.0, mbd_passes: int = 3) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float32 in [0, 1]: mean of the RBD and MBD maps."""
    lab = rgb2lab(rgb).astype(np.float32)
    return (0.5 * (rbd_saliency(rgb, lab, segments, compactness) + mbd_saliency(lab, mbd_passes))).astype(np.float32)


def _normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.zeros_like(x, np.float32) if hi - lo < 1e-12 else ((x - lo) / (hi - lo)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# RBD


def rbd_saliency(rgb: np.ndarray, lab: np.ndarray, segments: int = 200, compactness: float = 10.0) -> np.ndarray:
    h, w = lab.shape[:2]
    labels = slic(rgb, n_segments=segments, compactness=compactness, start_label=0)
    _, labels = np.unique(labels, return_inverse=True)  # consecutive ids
    labels = labels.reshape(h, w)
    n = int(labels.max()) + 1
    if n < 2:
        return np.zeros((h, w), np.float32)
    counts = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    colour = np.stack([np.bincount(labels.ravel(), lab[..., c].ravel(), n) for c in range(3)], 1) / counts[:, None]
    yy, xx = np.mgrid[0:h, 0:w]
    centre = np.stack([np.bincount(labels.ravel(), (yy / h).ravel(), n), np.bincount(labels.ravel(), (xx / w).ravel(), n)],
                      1) / counts[:, None]

    # adjacency from horizontally / vertically neighbouring pixels of different superpixels
    pairs = np.concatenate([
        np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
        np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1),
    ])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.sort(pairs, 1), axis=0)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))

    app = np.linalg.norm(colour[:, None] - colour[None], axis=2)  # (n, n) Lab distances
    # geodesic distances: neighbours joined by their clipped colour distance, border superpixels linked to each other
    geo_pairs = np.concatenate([pairs, np.array([(a, b) for a in border for b in border if a < b], int).reshape(-1, 2)])
    weights = app[geo_pairs[:, 0], geo_pairs[:, 1]].copy()
    weights[weights < GEO_CLIP] = 0.0
    weights[len(pairs):] = 0.0
    # csgraph treats explicit zeros as missing edges; a tiny epsilon keeps them as free edges
    graph = coo_matrix((weights + 1e-9, (geo_pairs[:, 0], geo_pairs[:, 1])), shape=(n, n)).tocsr()
    geo = shortest_path(graph, method="D", directed=False)
    geo[~np.isfinite(geo)] = geo[np.isfinite(geo)].max()

    span = np.exp(-geo ** 2 / (2 * SIGMA_CLR ** 2))
    area = span.sum(1)
    len_bnd = span[:, border].sum(1)
    bnd_con = len_bnd / np.sqrt(area)
    w_bg = 1.0 - np.exp(-bnd_con ** 2 / (2 * SIGMA_BND ** 2))

    spa = np.exp(-np.sum((centre[:, None] - centre[None]) ** 2, axis=2) / (2 * SIGMA_SPA ** 2))
    w_fg = _normalise((app * spa * w_bg[None]).sum(1)).astype(np.float64)

    # minimise sum w_bg s^2 + sum w_fg (s - 1)^2 + sum_{neighbours} w_ij (s_i - s_j)^2
    w_ij = np.exp(-app[pairs[:, 0], pairs[:, 1]] ** 2 / (2 * SIGMA_CLR ** 2)) + MU
    smooth = np.zeros((n, n))
    smooth[pairs[:, 0], pairs[:, 1]] = w_ij
    smooth[pairs[:, 1], pairs[:, 0]] = w_ij
    laplacian = np.diag(smooth.sum(1)) - smooth
    s = np.linalg.solve(np.diag(w_bg + w_fg) + laplacian, w_fg)
    return _normalise(s[labels])


# ---------------------------------------------------------------------------------------------------------------
# MBD (MB+)


def _diagonals(h: int, w: int, reverse: bool):
    """Interior pixels grouped by anti-diagonal, in scan order: [(rows, cols), ...]."""
    ii, jj = np.mgrid[1:h - 1, 1:w - 1]
    ii, jj = ii.ravel(), jj.ravel()
    k = ii + jj
    order = np.argsort(k, kind="stable")
    ii, jj, k = ii[order], jj[order], k[order]
    bounds = np.flatnonzero(np.diff(k)) + 1
    groups = list(zip(np.split(ii, bounds), np.split(jj, bounds)))
    return groups[::-1] if reverse else groups


def mbd_transform(img: np.ndarray, passes: int = 3) -> np.ndarray:
    """Minimum barrier distance from the border of each (C, H, W) channel, by alternating raster scans.

    The first pass runs bottom-right to top-left, then they alternate; each pixel takes the better of its two scan
    neighbours' (max, min) barrier if it lowers its distance (ties go to the vertical neighbour).
    """
    img = np.asarray(img, np.float64)
    c, h, w = img.shape
    upper, lower = img.copy(), img.copy()
    dist = np.full(img.shape, np.inf)
    dist[:, 0, :] = dist[:, -1, :] = dist[:, :, 0] = dist[:, :, -1] = 0.0
    if h < 3 or w < 3:
        return np.zeros(img.shape)
    forward, backward = _diagonals(h, w, False), _diagonals(h, w, True)
    for p in range(passes):
        reverse = p % 2 == 0
        step = 1 if reverse else -1  # neighbours at +1 (below / right) when scanning backwards
        for rows, cols in (backward if reverse else forward):
            x = img[:, rows, cols]
            d = dist[:, rows, cols]
            u1 = np.maximum(upper[:, rows + step, cols], x)
            l1 = np.minimum(lower[:, rows + step, cols], x)
            u2 = np.maximum(upper[:, rows, cols + step], x)
            l2 = np.minimum(lower[:, rows, cols + step], x)
            b1, b2 = u1 - l1, u2 - l2
            take1 = (b1 < d) & (b1 <= b2)
            take2 = ~take1 & (b2 < d)
            dist[:, rows, cols] = np.where(take1, b1, np.where(take2, b2, d))
            upper[:, rows, cols] = np.where(take1, u1, np.where(take2, u2, upper[:, rows, cols]))
            lower[:, rows, cols] = np.where(take1, l1, np.where(take2, l2, lower[:, rows, cols]))
    return dist


def _border_contrast(lab: np.ndarray) -> np.ndarray:
    """MB+'s backgroundness cue: Mahalanobis distance of each pixel to each border strip's colours, summed over the
    four strips minus the largest (one strip may lie on the object)."""
    h, w = lab.shape[:2]
    t = max(1, int(0.1 * np.sqrt(h * w)))
    strips = [lab[:t], lab[-t:], lab[:, :t], lab[:, -t:]]
    pix = lab.reshape(-1, 3).astype(np.float64)
    maps = []
    for s in strips:
        s = s.reshape(-1, 3).astype(np.float64)
        inv = np.linalg.pinv(np.cov(s.T) + 1e-6 * np.eye(3))
        diff = pix - s.mean(0)
        maps.append(_normalise(np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, inv, diff), 0)).reshape(h, w)))
    maps = np.stack(maps)
    return maps.sum(0) - maps.max(0)


def mbd_saliency(lab: np.ndarray, passes: int = 3) -> np.ndarray:
    """MB+ saliency of an (H, W, 3) Lab image, in [0, 1]."""
    h, w = lab.shape[:2]
    sal = _normalise(mbd_transform(lab.transpose(2, 0, 1), passes).sum(0)) + _normalise(_border_contrast(lab))
    # centre bias, then a sigmoid that separates foreground from background (MB+ post-processing)
    yy, xx = np.mgrid[0:h, 0:w]
    centre = 1.0 - np.sqrt((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / np.sqrt((h / 2) ** 2 + (w / 2) ** 2)
    sal = _normalise(sal * centre)
    return _normalise(1.0 / (1.0 + np.exp(-10.0 * (sal - 0.5))))
