"""Edge-aware inverse depth smoothness (as kornia.losses.inverse_depth_smoothness_loss)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from depthsense_jax import _checks
from depthsense_jax._reduce import masked_mean
from depthsense_jax._xla import unfused


def _edge_weights(image: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """exp(-mean_c |dI|) along x and y: (B, H, W-1), (B, H-1, W) from (B, H, W, C).

    Pixels outside `mask` count as 0 (so that NaN there stays out of the gradient).
    """
    # Channels as separate (B, H, W) planes: a mean (or a where) over a minor axis of size 3
    # runs several times slower on XLA:CPU than these adds.
    planes = [jnp.where(mask, image[..., c], 0.0) for c in range(image.shape[-1])]
    grad_x = sum(jnp.abs(p[:, :, :-1] - p[:, :, 1:]) for p in planes) / len(planes)
    grad_y = sum(jnp.abs(p[:, :-1] - p[:, 1:]) for p in planes) / len(planes)
    return jnp.exp(-grad_x), jnp.exp(-grad_y)


@jax.jit
def inverse_depth_smoothness_loss(
    inv_depth: jax.Array, image: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
    """mean |dx d| exp(-mean_c |dx I|) + the same in y: () float32 (forward differences).

    inv_depth: (B, H, W) inverse depth; image: (B, H, W, C) or (B, H, W) in [0, 1]; mask:
    optional (B, H, W) bool, a difference counts where both of its pixels are valid. Each
    direction is averaged per image over its counted differences (0 where none, so an image
    one pixel high or wide gives 0 in that direction), then over images; without a mask this
    equals kornia's loss.
    """
    _checks.check_rank("inv_depth", inv_depth, 3, "(B, H, W)")
    _checks.check_rank("image", image, (3, 4), "(B, H, W, C) or (B, H, W)")
    if tuple(image.shape[:3]) != tuple(inv_depth.shape):
        raise ValueError(
            f"`image` must be (B, H, W[, C]) with (B, H, W) = {tuple(inv_depth.shape)} of "
            f"`inv_depth`, got {tuple(image.shape)}"
        )
    _checks.check_mask(mask, "inv_depth", inv_depth.shape)
    d = jnp.asarray(inv_depth, jnp.float32)
    img = jnp.asarray(image, jnp.float32)
    img = img if img.ndim == 4 else img[..., None]
    m = jnp.ones(d.shape, bool) if mask is None else jnp.asarray(mask, bool)
    if mask is not None:
        # Values outside the mask are never part of a counted difference; zeroing them keeps
        # NaN there out of the gradient (a where() alone would still multiply NaN by 0).
        d = jnp.where(m, d, 0.0)
    # The weights depend on the image alone: computed unfused, they are not recomputed inside
    # the gradient's fusions.
    weight_x, weight_y = unfused(_edge_weights, img, m)
    smooth_x = jnp.abs((d[:, :, :-1] - d[:, :, 1:]) * weight_x)
    smooth_y = jnp.abs((d[:, :-1] - d[:, 1:]) * weight_y)
    valid_x = m[:, :, :-1] & m[:, :, 1:]
    valid_y = m[:, :-1] & m[:, 1:]
    return jnp.mean(masked_mean(smooth_x, valid_x)[0] + masked_mean(smooth_y, valid_y)[0])
