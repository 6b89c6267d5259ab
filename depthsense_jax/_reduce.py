"""Per-image masked means, reduced in a computation of their own (see `_xla.unfused`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from depthsense_jax._xla import unfused


def _sum_and_count(values: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    axes = tuple(range(1, values.ndim))
    valid = jnp.broadcast_to(valid, values.shape)
    return (
        jnp.sum(jnp.where(valid, values, 0.0), axis=axes),
        jnp.sum(valid, axis=axes, dtype=jnp.int32),
    )


def masked_sum(values: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sum of `values` over `valid` per leading index, and the count: two (B,) arrays.

    values: (B, ...) float; valid: bool, broadcastable to values. The reduction runs
    unfused: XLA:CPU otherwise pulls shifted slices into its reduction fusion and
    materialises each one (measured: SSIM 53 -> 7 ms, smoothness 38 -> 4 ms, 8x384x384).
    """
    return unfused(_sum_and_count, values, valid)


def masked_mean(values: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean of `values` over `valid` per leading index, and the count: two (B,) arrays.

    A row with nothing valid has mean 0, never NaN. See `masked_sum`.
    """
    total, count = masked_sum(values, valid)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0), count
