"""The zero-shot protocol written again in float64 NumPy from its published descriptions, not
from the package, for the zero-shot tests to compare `depthsense zero-shot` with.

Alignment (MiDaS, Ranftl et al., TPAMI 2020, section 5 and their evaluation code): per image,
the prediction p is mapped to s p + t, with (s, t) minimising the squared error to the
ground truth's disparity 1 / d over the valid pixels (the normal equations of a line fit,
solved here as a 2 x 2 system); the aligned disparity is held inside the depth cap
[1 / d_max, 1 / d_min] and inverted. Marigold (Ke et al., CVPR 2024) fits in depth space
instead and clamps the depth to the cap. Errors (Eigen et al. 2014): AbsRel = mean |e - d|
/ d; delta_k = share of pixels with max(e / d, d / e) < 1.25^k; RMSE.

Crops, as the datasets' evaluations publish them in pixels (0-based, end exclusive):
- NYU Depth v2, Eigen crop of the 480 x 640 images: rows 45..470, columns 41..600
  (`mask[45:471, 41:601]` in the evaluation code of BTS and Marigold).
- KITTI, of the 375 x 1242 images (most of the Eigen split): the Garg crop (Garg et al.
  2016, as monodepth2 evaluates it) is rows 153..370, columns 44..1196; the Eigen crop rows
  124..341, columns 44..1196.
Other image sizes have no published box here: the tests use the published sizes.
"""

from __future__ import annotations

import numpy as np

PUBLISHED_CROPS = {
    ("eigen_nyu", 480, 640): (slice(45, 471), slice(41, 601)),
    ("garg", 375, 1242): (slice(153, 371), slice(44, 1197)),
    ("eigen_kitti", 375, 1242): (slice(124, 342), slice(44, 1197)),
}


def line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(s, t) minimising sum (s x + t - y)^2: the 2 x 2 normal equations."""
    a = np.array([[np.sum(x * x), np.sum(x)], [np.sum(x), float(x.size)]])
    b = np.array([np.sum(x * y), np.sum(y)])
    s, t = np.linalg.solve(a, b)
    return float(s), float(t)


def scale_fit(x: np.ndarray, y: np.ndarray) -> float:
    """s minimising sum (s x - y)^2."""
    return float(np.sum(x * y) / np.sum(x * x))


def errors(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Errors of paired 1-D arrays (truth > 0); an estimate <= 0 misses every delta."""
    out = {"abs_rel": float(np.mean(np.abs(estimate - truth) / truth)),
           "rmse": float(np.sqrt(np.mean((estimate - truth) ** 2)))}
    ratio = np.full(estimate.shape, np.inf)
    positive = estimate > 0
    ratio[positive] = np.maximum(estimate[positive] / truth[positive],
                                 truth[positive] / estimate[positive])
    for k in (1, 2, 3):
        out[f"delta{k}"] = float(np.mean(ratio < 1.25**k))
    return out


def score(pred: np.ndarray, depth: np.ndarray, valid: np.ndarray, low: float | None,
          high: float | None, align: str = "disparity", prediction_kind: str = "disparity",
          space: str = "depth") -> dict[str, float]:
    """One image: pred and depth (H, W), valid (H, W) bool (mask, crop and cap applied); the
    cap [low, high] in depth (None: the valid ground truth's own range)."""
    p = pred[valid].astype(np.float64)
    d = depth[valid].astype(np.float64)
    low = d.min() if low is None else low
    high = d.max() if high is None else high
    if align == "disparity":  # MiDaS
        s, t = line_fit(p, 1.0 / d)
        estimate = 1.0 / np.minimum(np.maximum(s * p + t, 1.0 / high), 1.0 / low)
    elif align == "depth":  # Marigold
        s, t = line_fit(p, d)
        estimate = np.minimum(np.maximum(s * p + t, low), high)
    elif prediction_kind == "disparity":  # a scale only, on a disparity-like map
        estimate = 1.0 / np.minimum(np.maximum(scale_fit(p, 1.0 / d) * p, 1.0 / high),
                                    1.0 / low)
    else:  # a scale only, on a depth-like map
        estimate = np.minimum(np.maximum(scale_fit(p, d) * p, low), high)
    if space == "disparity":  # Depth Anything's AbsRel and delta1
        return errors(1.0 / estimate, 1.0 / d)
    return errors(estimate, d)


def crop_box(name: str | None, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the published crop `name` (None: everything)."""
    mask = np.zeros((height, width), bool)
    if name is None:
        mask[:] = True
        return mask
    if (name, height, width) not in PUBLISHED_CROPS:
        raise KeyError(f"no published {name} crop for {height}x{width}; published: "
                       f"{sorted(PUBLISHED_CROPS)}")
    mask[PUBLISHED_CROPS[name, height, width]] = True
    return mask
