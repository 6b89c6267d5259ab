"""Scale-and-shift invariant loss and multi-scale gradient matching (Ranftl et al., MiDaS)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from depthsense_jax import _checks
from depthsense_jax._reduce import masked_mean

# A prediction whose masked variance is below this fraction of its mean square is treated as
# constant: its least-squares scale is undefined (and float32 rounding would make it huge).
_RELATIVE_VARIANCE_FLOOR = 1e-10
_TINY = 1e-30


def _check_dense(pred, target, mask, mask_required: bool = True) -> None:
    _checks.check_rank("pred", pred, 3, "(B, H, W)")
    _checks.check_same_shape("target", target, "pred", pred.shape)
    if mask is None and mask_required:
        raise ValueError("`mask` is required: a (B, H, W) bool array, True where valid")
    _checks.check_mask(mask, "pred", pred.shape)


def _mean(x: jax.Array, weights: jax.Array) -> jax.Array:
    return masked_mean(x, weights, separate=False)[0]


def _refined_mean(x: jax.Array, weights: jax.Array) -> jax.Array:
    """Masked mean with one correction pass: a float32 mean is off by a rounding error that a
    large least-squares scale would turn into a constant residual (an affine pred with an
    offset 500x its spread fitted 10x worse than in float64 without it)."""
    mean = _mean(x, weights)
    return mean + _mean(x - mean[:, None, None], weights)


def fit_scale_shift(
    pred: jax.Array, target: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Per-image least-squares (s, t) minimising sum over mask of w (s pred + t - target)^2:
    the one scale-and-shift fit of the package (losses, metrics, the zero-shot protocol,
    video stabilisation, metric depth from known points; `robust_fit_scale_shift` reweights
    it).

    pred, target: (B, H, W); mask: (B, H, W) bool (w = 1 inside), or float weights w >= 0.
    Returns s, t: (B,) float32. A constant prediction (or fewer than two pixels with weight)
    gets s = 0, t = the target's mean, not a huge or NaN scale. Values of `target` where the
    weight is 0 are never read (NaN there is fine).
    """
    weights = jnp.asarray(mask)
    valid = weights if weights.dtype == bool else weights > 0
    if weights.dtype != bool:
        weights = weights.astype(jnp.float32)
    pred = jnp.where(valid, jnp.asarray(pred, jnp.float32), 0.0)
    target = jnp.where(valid, jnp.asarray(target, jnp.float32), 0.0)
    count = jnp.sum(valid, axis=(1, 2))
    mean_p = _refined_mean(pred, weights)
    mean_t = _refined_mean(target, weights)
    dp = pred - mean_p[:, None, None]
    dt = target - mean_t[:, None, None]
    var_p = _mean(dp * dp, weights)
    cov = _mean(dp * dt, weights)
    ok = (count >= 2) & (var_p > _RELATIVE_VARIANCE_FLOOR * (mean_p * mean_p + var_p) + _TINY)
    scale = jnp.where(ok, cov / jnp.where(ok, var_p, 1.0), 0.0)
    return scale, mean_t - scale * mean_p


# Robust fit: Cauchy IRLS. 1.4826 turns a median absolute residual into a Gaussian's sigma;
# 2.385 sigma is the Cauchy constant with 95% efficiency at Gaussian noise. 10 reweightings:
# 5 shed 20% wrong targets; wrong predictions far outside the others' range (leverage
# points) take longer (10% of them, 6 random cases: 10 steps recovered 3, 5 steps none),
# and may keep the fit, started from least squares, in a wrong minimum.
ROBUST_STEPS = 10
_MAD_TO_SIGMA = 1.4826
_CAUCHY_C = 2.385


@functools.partial(jax.jit, static_argnames=("steps",))
def robust_fit_scale_shift(pred: jax.Array, target: jax.Array, mask: jax.Array,
                           steps: int = ROBUST_STEPS) -> tuple[jax.Array, jax.Array]:
    """Per-image robust (s, t) with s pred + t ~ target: `fit_scale_shift` reweighted `steps`
    times by Cauchy weights w / (1 + (r / (2.385 sigma))^2), r the previous fit's residuals
    and sigma = 1.4826 x their median |r| over the pixels with weight (a median, not a mean:
    a mean would be dragged by the very outliers the weights are to shed). steps=0 is
    `fit_scale_shift`.

    pred, target: (B, ...) any trailing shape (pixels, or (B, 1, N) sparse points); mask:
    the same shape, bool or float weights w >= 0 (values of `target` where w = 0 are never
    read). Returns s, t: (B,) float32, with fit_scale_shift's degenerate cases (s = 0 for a
    constant prediction); s >= 0 is not enforced.
    """
    pred = jnp.asarray(pred, jnp.float32)
    if pred.ndim != 3:
        batch = pred.shape[0]
        pred, target, mask = (jnp.reshape(jnp.asarray(x), (batch, 1, -1))
                              for x in (pred, target, mask))
    weights = jnp.asarray(mask)
    valid = weights if weights.dtype == bool else weights > 0
    weights = jnp.where(valid, weights.astype(jnp.float32), 0.0)
    target = jnp.where(valid, jnp.asarray(target, jnp.float32), 0.0)
    scale, shift = fit_scale_shift(pred, target, weights)
    for _ in range(steps):
        res = apply_scale_shift(pred, scale, shift) - target
        sigma = _MAD_TO_SIGMA * jnp.nanmedian(jnp.where(valid, jnp.abs(res), jnp.nan),
                                              axis=(1, 2))
        # An exact fit has sigma 0: a floor far below any float32 residual keeps it finite.
        sigma = jnp.nan_to_num(sigma) + 1e-12 * (jnp.abs(shift) + jnp.abs(scale) + 1.0)
        cauchy = 1.0 / (1.0 + (res / (_CAUCHY_C * sigma[:, None, None])) ** 2)
        scale, shift = fit_scale_shift(pred, target, jnp.where(valid, weights * cauchy, 0.0))
    return scale, shift


def apply_scale_shift(pred: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    """scale * pred + shift per image: pred (B, H, W), scale and shift (B,) -> (B, H, W)
    float32."""
    return scale[:, None, None] * jnp.asarray(pred, jnp.float32) + shift[:, None, None]


def align_scale_shift(pred: jax.Array, target: jax.Array, mask: jax.Array,
                      nonnegative: bool = False) -> jax.Array:
    """pred aligned to target by `fit_scale_shift` over the mask: (B, H, W) float32.
    nonnegative: clamp the scale at 0, so that an anti-correlated prediction becomes a
    constant (the fitted shift is then unused) instead of being flipped."""
    scale, shift = fit_scale_shift(pred, target, mask)
    if nonnegative:
        scale = jnp.maximum(scale, 0.0)
    return apply_scale_shift(pred, scale, shift)


def normalize_target(target: jax.Array, mask: jax.Array) -> jax.Array:
    """Per image, (target - mean) / mean absolute deviation over the mask; 0 outside it.

    A constant target (deviation below 1e-6 of its magnitude) maps to 0. Removes the
    target's unknown scale and shift, as MiDaS does before its loss (MiDaS uses the median).
    """
    mask = jnp.asarray(mask, bool)
    target = jnp.where(mask, jnp.asarray(target, jnp.float32), 0.0)
    mean = _refined_mean(target, mask)[:, None, None]
    centred = jnp.where(mask, target - mean, 0.0)
    deviation = _mean(jnp.abs(centred), mask)[:, None, None]
    ok = deviation > 1e-6 * (jnp.abs(mean) + deviation) + _TINY
    return jnp.where(ok, centred / jnp.where(ok, deviation, 1.0), 0.0)


def _aligned_residual(pred, target, mask):
    """s pred + t - normalised target, with (s, t) fitted per image; 0 outside the mask."""
    mask = jnp.asarray(mask, bool)
    target_n = normalize_target(target, mask)
    aligned = align_scale_shift(pred, target_n, mask)
    return jnp.where(mask, aligned - target_n, 0.0), mask


@jax.jit
def scale_shift_invariant_loss(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Scale-and-shift invariant L1 (MiDaS): () float32.

    pred: (B, H, W) relative inverse depth; target: (B, H, W); mask: (B, H, W) bool. The target
    is normalised per image (`normalize_target`), the prediction aligned to it by least squares
    (`fit_scale_shift`), then the mean |residual| over the mask; 0 for an empty mask; mean over
    images. Invariant to positive scale and any shift of either argument.
    """
    _check_dense(pred, target, mask)
    residual, mask = _aligned_residual(pred, target, mask)
    return jnp.mean(_mean(jnp.abs(residual), mask))


@functools.partial(jax.jit, static_argnames=("scales",))
def gradient_matching_loss(
    pred: jax.Array, target: jax.Array, mask: jax.Array, *, scales: int = 4
) -> jax.Array:
    """Multi-scale gradient matching (MiDaS): () float32.

    On the aligned residual R of `scale_shift_invariant_loss`, at each scale k < `scales`
    (every 2^k-th pixel), sum |dR/dx| + |dR/dy| over differences whose two pixels are valid,
    divided by the valid pixels at that scale; summed over scales, mean over images.
    """
    _check_dense(pred, target, mask)
    _checks.check_positive_int("scales", scales)
    residual, mask = _aligned_residual(pred, target, mask)
    total = jnp.zeros(pred.shape[0], jnp.float32)
    for k in range(scales):
        step = 2**k
        r = residual[:, ::step, ::step]
        m = mask[:, ::step, ::step]
        mx = m[:, :, 1:] & m[:, :, :-1]
        my = m[:, 1:, :] & m[:, :-1, :]
        grad_x = jnp.where(mx, jnp.abs(r[:, :, 1:] - r[:, :, :-1]), 0.0)
        grad_y = jnp.where(my, jnp.abs(r[:, 1:, :] - r[:, :-1, :]), 0.0)
        count = jnp.sum(m, axis=(1, 2)).astype(jnp.float32)
        summed = jnp.sum(grad_x, axis=(1, 2)) + jnp.sum(grad_y, axis=(1, 2))
        total = total + jnp.where(count > 0, summed / jnp.maximum(count, 1.0), 0.0)
    return jnp.mean(total)
