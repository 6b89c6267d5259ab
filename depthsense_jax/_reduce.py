"""Per-image masked (or weighted) sums and means: the one masked mean of the package."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from depthsense_jax._xla import unfused


def _sum_and_weight(values: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    axes = tuple(range(1, values.ndim))
    weights = jnp.broadcast_to(weights, values.shape)
    if weights.dtype == bool:
        return (jnp.sum(jnp.where(weights, values, 0.0), axis=axes),
                jnp.sum(weights, axis=axes, dtype=jnp.int32))
    # where, not a product alone: values outside the weights may be NaN (never read).
    return (jnp.sum(jnp.where(weights > 0, weights * values, 0.0), axis=axes),
            jnp.sum(weights, axis=axes))


def masked_sum(values: jax.Array, weights: jax.Array,
               separate: bool = True) -> tuple[jax.Array, jax.Array]:
    """Sum of `values` (times `weights`) over each leading index, and the total weight: two
    (B,) arrays.

    values: (B, ...) float; weights: bool (a mask; the total weight is then an int32 count)
    or float >= 0, broadcastable to values. Values where the weight is 0 are never read.
    separate: reduce in a computation of its own (`_xla.unfused`): XLA:CPU otherwise pulls
    shifted slices into its reduction fusion and materialises each one (measured: SSIM
    53 -> 7 ms, smoothness 38 -> 4 ms, 8x384x384); a plain reduction for the losses whose
    inputs are no shifted slices.
    """
    if separate:
        return unfused(_sum_and_weight, values, weights)
    return _sum_and_weight(values, weights)


def masked_mean(values: jax.Array, weights: jax.Array,
                separate: bool = True) -> tuple[jax.Array, jax.Array]:
    """Mean of `values` over `weights` per leading index, and the total weight: two (B,)
    arrays (see `masked_sum`). A row with no weight has mean 0, never NaN."""
    total, weight = masked_sum(values, weights, separate)
    return jnp.where(weight > 0, total / jnp.where(weight > 0, weight, 1), 0.0), weight
