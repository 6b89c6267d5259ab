"""Relative-depth metrics, each per image ((B,) float32) and mask-aware.

An image with nothing to measure (fewer than two valid pixels, no counted pair) scores 0;
weight such images 0 when averaging over images (see `counted_pairs`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from depthsense_jax import _checks, sampling
from depthsense_jax._reduce import masked_mean
from depthsense_jax.losses import scale_shift
from depthsense_jax.losses.ssim import ssim

__all__ = ["DEPTH_ERRORS", "abs_rel", "align_scale_shift", "aligned_errors", "counted_pairs",
           "delta1", "depth_errors", "mse", "ssim", "whdr"]


def _counted(pairs: sampling.Pairs, mask: jax.Array | None) -> jax.Array:
    """(B, P) bool: the pair is valid and both its points are in `mask`."""
    if mask is None:
        return pairs.valid
    in_a, in_b = sampling.gather_pairs(jnp.asarray(mask, bool), pairs)
    return pairs.valid & in_a & in_b


def counted_pairs(pairs: sampling.Pairs, mask: jax.Array | None = None) -> jax.Array:
    """Pairs that count per image: valid, with both points in `mask`: (B,) int32.

    An image with none has no WHDR; give it weight 0 when averaging over images.
    """
    return jnp.sum(_counted(pairs, mask), axis=1, dtype=jnp.int32)


@functools.partial(jax.jit, static_argnames=("sigma",))
def whdr(
    pred: jax.Array,
    target: jax.Array,
    pairs: sampling.Pairs,
    *,
    sigma: float = 0.02,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Weighted human disagreement rate (Chen et al. 2016), unweighted: (B,) in [0, 1].

    The fraction of counted pairs (valid, both points in `mask`) whose ordinal label from the
    prediction differs from the label from `target`, both by `sampling.ordinal_labels`'s
    ratio rule with the same sigma (so "equal" pairs count too). pred, target: (B, H, W),
    larger = nearer.

    A relative prediction has a free scale and shift, and the ratio rule is not invariant
    to a shift, so the prediction is labelled after per-image least-squares scale-and-shift
    alignment to the target over `mask` (all pixels when None), as AbsRel and delta1 are.
    The scale is clamped at 0, so WHDR(a * pred + b) == WHDR(pred) for every a > 0 and b,
    while a prediction anti-correlated with the target counts as constant (every ordered
    pair wrong) instead of being flipped into a good one. An image with no counted pair
    scores 0: weight it 0 (`counted_pairs`) when averaging.
    """
    _checks.check_rank("pred", pred, 3, "(B, H, W)")
    _checks.check_same_shape("target", target, "pred", pred.shape)
    _checks.check_mask(mask, "pred", pred.shape)
    sampling.check_pairs(pairs, pred.shape[0])
    counted = _counted(pairs, mask)
    fit_mask = jnp.ones(pred.shape, bool) if mask is None else jnp.asarray(mask, bool)
    target = jnp.asarray(target, jnp.float32)
    # With the scale clamped to 0 the aligned map is a constant whatever the shift: every
    # pair is labelled "equal".
    aligned = scale_shift.align_scale_shift(pred, target, fit_mask, nonnegative=True)
    truth = sampling.ordinal_labels(target, pairs, sigma)
    p_a, p_b = sampling.gather_pairs(aligned, pairs)
    guess = sampling.labels_from_values(p_a, p_b, sigma)
    wrong = jnp.sum(counted & (guess != truth), axis=1)
    count = jnp.sum(counted, axis=1)
    return jnp.where(count > 0, wrong / jnp.maximum(count, 1), 0.0).astype(jnp.float32)


def _check(pred, target, mask) -> None:
    _checks.check_rank("pred", pred, 3, "(B, H, W)")
    _checks.check_same_shape("target", target, "pred", pred.shape)
    _checks.check_mask(mask, "pred", pred.shape)


@jax.jit
def align_scale_shift(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """s pred + t with per-image least-squares (s, t) over the mask: (B, H, W) float32."""
    _check(pred, target, mask)
    return scale_shift.align_scale_shift(pred, target, mask)


def _per_image_mean(values, valid):
    return masked_mean(values.astype(jnp.float32), valid)[0]


DEPTH_ERRORS = ("abs_rel", "delta1", "delta2", "delta3", "rmse")


def depth_errors(estimate: jax.Array, truth: jax.Array, valid: jax.Array) -> dict[str, jax.Array]:
    """Per-image errors of an estimate against a positive ground truth: each (B,) float32.

    abs_rel: mean |e - g| / g; delta1..3: the share of pixels with max(e/g, g/e) < 1.25,
    1.25^2, 1.25^3 (an estimate <= 0 is a miss); rmse: sqrt of the mean (e - g)^2. Over the
    pixels of `valid` with truth > 0; an image with none scores 0 (weight it 0). The
    training evaluation (after its alignment) and the zero-shot benchmarks (after theirs)
    both compute their errors here.
    """
    _check(estimate, truth, valid)
    truth = jnp.asarray(truth, jnp.float32)
    estimate = jnp.asarray(estimate, jnp.float32)
    valid = jnp.asarray(valid, bool) & (truth > 0)
    g = jnp.where(valid, truth, 1.0)
    e = jnp.where(estimate > 0, estimate, 1.0)
    ratio = jnp.where(estimate > 0, jnp.maximum(e / g, g / e), jnp.inf)
    diff = estimate - g
    out = {"abs_rel": _per_image_mean(jnp.abs(diff) / g, valid),
           "rmse": jnp.sqrt(_per_image_mean(diff * diff, valid))}
    for n in (1, 2, 3):
        out[f"delta{n}"] = _per_image_mean((ratio < 1.25**n).astype(jnp.float32), valid)
    return out


@jax.jit
def aligned_errors(pred: jax.Array, target: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """`depth_errors` of pred after per-image scale-and-shift alignment to the target over
    the mask (pixels with target > 0): the training evaluation's AbsRel and delta1."""
    _check(pred, target, mask)
    valid = jnp.asarray(mask, bool) & (jnp.asarray(target) > 0)
    return depth_errors(align_scale_shift(pred, target, valid), target, valid)


@jax.jit
def abs_rel(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean |a - g| / g after scale-and-shift alignment a of pred to g: (B,).

    Only pixels in `mask` with target > 0 count (the ratio needs a positive target).
    """
    return aligned_errors(pred, target, mask)["abs_rel"]


@jax.jit
def delta1(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Fraction of pixels with max(a/g, g/a) < 1.25 after alignment: (B,).

    Pixels in `mask` with target > 0 count; an aligned value <= 0 is a miss.
    """
    return aligned_errors(pred, target, mask)["delta1"]


@jax.jit
def mse(pred: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean squared error over the mask (all pixels if None): (B,). No alignment."""
    _check(pred, target, mask)
    valid = jnp.ones(pred.shape, bool) if mask is None else jnp.asarray(mask, bool)
    diff = jnp.asarray(pred, jnp.float32) - jnp.asarray(target, jnp.float32)
    return _per_image_mean(diff * diff, valid)
