"""The zero-shot protocol of MiDaS (Ranftl et al., TPAMI 2020) and its successors, per image:
crop and cap the ground truth, align the prediction to it by least squares, clamp, invert,
and measure errors with `metrics.depth_errors` (the training evaluation's own errors).

Alignment (`align`):
  "disparity"  scale and shift fitted in disparity space (1 / ground-truth depth) to a
               disparity-like prediction (relative inverse depth: MiDaS, Depth Anything,
               ours); the aligned disparity is clamped to [1/max_depth, 1/min_depth] and
               inverted to depth. The default, as MiDaS.
  "depth"      scale and shift fitted in depth space to a depth-like prediction (Marigold's
               choice); clamped to [min_depth, max_depth].
  "scale"      a scale only, in the prediction's own space (for predictions whose shift is
               known to be 0).
The scale and shift are fitted (`fit`) by least squares ("lstsq", MiDaS's; the default) or
by its Cauchy-reweighted form ("robust", `losses.scale_shift.robust_fit_scale_shift`, the
fit of metric depth from known points), which a few grossly wrong pixels barely move.
Errors are then measured on depth (`space="depth"`, MiDaS) or on disparity
(`space="disparity"`: Depth Anything reports its AbsRel and delta1 there, LiheYoung/
Depth-Anything#174).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from depthsense_jax import metrics
from depthsense_jax.losses.scale_shift import (
    align_scale_shift,
    apply_scale_shift,
    robust_fit_scale_shift,
)

ALIGNS = ("disparity", "depth", "scale")
SPACES = ("depth", "disparity")
PREDICTION_KINDS = ("disparity", "depth")
FITS = ("lstsq", "robust")
# Evaluation crops as (top, bottom, left, right) fractions of the ground truth's size.
CROP_FRACTIONS = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),  # Garg et al. 2016, KITTI
    "eigen_kitti": (0.3324324, 0.91351351, 0.0359477, 0.96405229),  # Eigen et al. 2014
}
EIGEN_NYU = (45, 471, 41, 601)  # rows 45..470, cols 41..600 of 480 x 640 (Eigen et al.)


def crop_mask(name: str | None, height: int, width: int) -> np.ndarray:
    """(H, W) bool, True inside the named evaluation crop (everywhere for None)."""
    mask = np.zeros((height, width), bool)
    if name is None:
        mask[:] = True
    elif name == "eigen_nyu":
        if (height, width) != (480, 640):
            raise ValueError(f"the Eigen NYU crop is defined on 480x640, got {height}x{width}")
        top, bottom, left, right = EIGEN_NYU
        mask[top:bottom, left:right] = True
    elif name in CROP_FRACTIONS:
        top, bottom, left, right = CROP_FRACTIONS[name]
        mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
    else:
        raise ValueError(f"unknown crop {name!r}; crops: eigen_nyu, {', '.join(CROP_FRACTIONS)}")
    return mask


def check_alignment(align: str, prediction_kind: str, space: str, fit: str = "lstsq") -> None:
    if align not in ALIGNS:
        raise ValueError(f"--align must be one of {ALIGNS}, got {align!r}")
    if fit not in FITS:
        raise ValueError(f"--fit must be one of {FITS}, got {fit!r}")
    if fit == "robust" and align == "scale":
        raise ValueError("--fit robust fits a scale and a shift; --align scale fits a scale "
                         "only (use --fit lstsq with it)")
    if prediction_kind not in PREDICTION_KINDS:
        raise ValueError(f"--prediction-kind must be one of {PREDICTION_KINDS}, got "
                         f"{prediction_kind!r}")
    if space not in SPACES:
        raise ValueError(f"--space must be one of {SPACES}, got {space!r}")
    if align in ("disparity", "depth") and align != prediction_kind:
        raise ValueError(
            f"--align {align} fits a scale and shift in {align} space, which needs "
            f"{align}-like predictions, but --prediction-kind is {prediction_kind}: a relative "
            "map has no counterpart in the other space until its shift is known; use --align "
            f"{prediction_kind} (or --align scale)")


def _scale_only(pred, target, valid):
    pred = jnp.where(valid, pred, 0.0)
    target = jnp.where(valid, target, 0.0)
    num = jnp.sum(pred * target, axis=(1, 2))
    den = jnp.sum(pred * pred, axis=(1, 2))
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


@functools.partial(jax.jit, static_argnames=("align", "prediction_kind", "space", "fit"))
def score_depth(pred: jax.Array, truth: jax.Array, valid: jax.Array, low: jax.Array,
                high: jax.Array, *, align: str = "disparity", prediction_kind: str = "disparity",
                space: str = "depth", fit: str = "lstsq") -> dict[str, jax.Array]:
    """Errors of each image's aligned prediction: {name: (B,) float32} (`metrics.DEPTH_ERRORS`).

    pred: (B, H, W) at the ground truth's size, `prediction_kind`-like (relative). truth:
    (B, H, W) depth, positive where `valid`. valid: (B, H, W) bool, the pixels scored (mask,
    crop and cap applied). low, high: (B,) the depth range the aligned estimate is clamped to.
    fit: "lstsq" or "robust" (see the module's docstring; not with align "scale").
    """
    if fit not in FITS or (fit == "robust" and align == "scale"):
        raise ValueError(f"fit={fit!r} with align={align!r}: fit is one of {FITS}, and "
                         "align 'scale' takes 'lstsq' only")
    pred = jnp.asarray(pred, jnp.float32)
    truth = jnp.asarray(truth, jnp.float32)
    valid = jnp.asarray(valid, bool) & (truth > 0)
    low = jnp.asarray(low, jnp.float32)[:, None, None]
    high = jnp.asarray(high, jnp.float32)[:, None, None]
    truth_disp = jnp.where(valid, 1.0 / jnp.where(valid, truth, 1.0), 0.0)
    fit_in = prediction_kind if align == "scale" else align
    target = truth_disp if fit_in == "disparity" else truth
    if align == "scale":
        scale = _scale_only(pred, target, valid)
        aligned = apply_scale_shift(pred, scale, jnp.zeros_like(scale))
    elif fit == "robust":
        aligned = apply_scale_shift(pred, *robust_fit_scale_shift(pred, target, valid))
    else:
        aligned = align_scale_shift(pred, target, valid)
    if fit_in == "disparity":
        disparity = jnp.clip(aligned, 1.0 / high, 1.0 / low)
        depth = 1.0 / disparity
    else:
        depth = jnp.clip(aligned, low, high)
        disparity = 1.0 / depth
    if space == "disparity":
        return metrics.depth_errors(disparity, truth_disp, valid)
    return metrics.depth_errors(depth, truth, valid)


def ordinal_correct(pred: np.ndarray, pair: tuple[int, int, int, int, int],
                    prediction_kind: str = "disparity") -> bool:
    """Whether a prediction orders a DIW pair as the annotator did (relation +1: point a is
    farther). Order only, so no alignment: any a*pred + b with a > 0 orders alike. Equal
    values are wrong (DIW pairs are never equal)."""
    ya, xa, yb, xb, relation = pair
    a, b = float(pred[ya, xa]), float(pred[yb, xb])
    if prediction_kind == "disparity":  # larger = nearer
        a, b = -a, -b
    return (a > b) if relation > 0 else (a < b)
