"""The zero-shot protocol written once more, in float64 NumPy, from its description (MiDaS:
least squares in disparity space, clamp to the cap, invert, errors in depth), for the
benchmark tests to compare `depthsense benchmark` with."""

from __future__ import annotations

import numpy as np


def fit(pred: np.ndarray, target: np.ndarray, shift: bool = True) -> tuple[float, float]:
    """Least-squares (s, t) with s * pred + t ~ target (t = 0 without shift)."""
    if shift:
        design = np.stack([pred, np.ones_like(pred)], axis=1)
        (s, t), *_ = np.linalg.lstsq(design, target, rcond=None)
        return float(s), float(t)
    return float(pred @ target / (pred @ pred)), 0.0


def errors(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Errors over paired 1-D arrays (truth > 0)."""
    ratio = np.where(estimate > 0, np.maximum(estimate / truth, truth / np.where(
        estimate > 0, estimate, 1.0)), np.inf)
    return {"abs_rel": float(np.mean(np.abs(estimate - truth) / truth)),
            "delta1": float(np.mean(ratio < 1.25)),
            "delta2": float(np.mean(ratio < 1.25**2)),
            "delta3": float(np.mean(ratio < 1.25**3)),
            "rmse": float(np.sqrt(np.mean((estimate - truth) ** 2)))}


def score(pred: np.ndarray, depth: np.ndarray, valid: np.ndarray, low: float | None,
          high: float | None, align: str = "disparity", prediction_kind: str = "disparity",
          space: str = "depth") -> dict[str, float]:
    """One image: pred and depth (H, W), valid (H, W) bool (mask, crop and cap applied)."""
    p = pred[valid].astype(np.float64)
    g = depth[valid].astype(np.float64)
    low = g.min() if low is None else low
    high = g.max() if high is None else high
    fit_in = prediction_kind if align == "scale" else align
    target = 1.0 / g if fit_in == "disparity" else g
    s, t = fit(p, target, shift=align != "scale")
    aligned = s * p + t
    if fit_in == "disparity":
        disparity = np.clip(aligned, 1.0 / high, 1.0 / low)
        estimate = 1.0 / disparity
    else:
        estimate = np.clip(aligned, low, high)
        disparity = 1.0 / estimate
    if space == "disparity":
        return errors(disparity, 1.0 / g)
    return errors(estimate, g)


def crop_box(name: str | None, height: int, width: int) -> np.ndarray:
    """The evaluation crops, from their published definitions."""
    mask = np.zeros((height, width), bool)
    if name is None:
        mask[:] = True
    elif name == "eigen_nyu":
        mask[45:471, 41:601] = True
    elif name == "garg":
        mask[int(0.40810811 * height):int(0.99189189 * height),
             int(0.03594771 * width):int(0.96405229 * width)] = True
    elif name == "eigen_kitti":
        mask[int(0.3324324 * height):int(0.91351351 * height),
             int(0.0359477 * width):int(0.96405229 * width)] = True
    return mask
