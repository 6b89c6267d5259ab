"""Resampling inside the models, written to match the PyTorch code their weights come from.

- `resize_align_corners`: bilinear with align_corners=True (ReDWeb's and DPT's decoders;
  `jax.image.resize` aligns pixel centres instead).
- `bicubic_matrix`: PyTorch's bicubic (a = -0.75, half-pixel centres, borders clamped) as an
  (out, in) matrix, with the source-to-output ratio given, as the ViT position embeddings
  are interpolated (the ratio differs between DINOv2's code and transformers').

All of them are written with array arithmetic on the sizes, so they also trace with symbolic
sizes (jax.export with polymorphic H and W).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _align_corners_weights(size_in, size_out) -> jax.Array:
    """(size_out, size_in) linear-interpolation weights, corner to corner.

    Output row o samples input position o (in - 1) / (out - 1); a single input row is
    replicated.
    """
    n_in = jnp.asarray(size_in, jnp.float32)
    n_out = jnp.asarray(size_out, jnp.float32)
    source = jnp.arange(size_out, dtype=jnp.float32) * ((n_in - 1) / jnp.maximum(n_out - 1, 1))
    grid = jnp.arange(size_in, dtype=jnp.float32)
    return jnp.maximum(0.0, 1.0 - jnp.abs(source[:, None] - grid[None, :]))


def _resize_matmul(x: jax.Array, height, width) -> jax.Array:
    """resize_align_corners as a separable product with the interpolation matrices (float32
    accumulation); its transpose is the backward of `resize_align_corners`."""
    _, h, w, _ = x.shape
    highest = jax.lax.Precision.HIGHEST  # TPUs would otherwise interpolate f32 in bf16
    rows = _align_corners_weights(h, height).astype(x.dtype)
    cols = _align_corners_weights(w, width).astype(x.dtype)
    y = jnp.einsum("bhwc,oh->bowc", x, rows, precision=highest,
                   preferred_element_type=jnp.float32).astype(x.dtype)
    return jnp.einsum("bowc,pw->bopc", y, cols, precision=highest,
                      preferred_element_type=jnp.float32).astype(x.dtype)


def _upsample_matmul(x: jax.Array, factor: int) -> jax.Array:
    _, h, w, _ = x.shape
    return _resize_matmul(x, h * factor, w * factor)


def _lerp_axis(x: jax.Array, axis: int, size_out) -> jax.Array:
    """Linear interpolation of `x` along `axis` to `size_out` samples, corner to corner: the
    two neighbours of each output position, gathered and blended (float32 weights)."""
    n_in = jnp.asarray(x.shape[axis], jnp.float32)
    n_out = jnp.asarray(size_out, jnp.float32)
    source = jnp.arange(size_out, dtype=jnp.float32) * ((n_in - 1) / jnp.maximum(n_out - 1, 1))
    low = jnp.clip(jnp.floor(source).astype(jnp.int32), 0, x.shape[axis] - 1)
    high = jnp.minimum(low + 1, x.shape[axis] - 1)
    shape = [1] * x.ndim
    shape[axis] = size_out
    frac = (source - low).reshape(shape)
    blended = (jnp.take(x, low, axis=axis).astype(jnp.float32) * (1.0 - frac)
               + jnp.take(x, high, axis=axis).astype(jnp.float32) * frac)
    return blended.astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def resize_align_corners(x: jax.Array, height, width) -> jax.Array:
    """Bilinear resize of (B, H, W, C) to (B, height, width, C), align_corners=True.

    The forward gathers and blends each output's two neighbours per axis; the backward is
    the transpose of the same map written with the interpolation matrices. On CPU both are
    3-4x faster than the matrix form's forward (docs/benchmarks.md, "Convolutions on CPU").
    """
    return _lerp_axis(_lerp_axis(x, 1, height), 2, width)


def _resize_fwd(x, height, width):
    return resize_align_corners(x, height, width), x


def _resize_bwd(height, width, x, cotangent):
    _, transpose = jax.vjp(lambda v: _resize_matmul(v, height, width), x)
    return transpose(cotangent)


resize_align_corners.defvjp(_resize_fwd, _resize_bwd)


def upsample_align_corners(x: jax.Array, factor: int = 2) -> jax.Array:
    """`resize_align_corners` of (B, H, W, C) to (B, factor H, factor W, C)."""
    _, h, w, _ = x.shape
    return resize_align_corners(x, h * factor, w * factor)


def cubic_kernel(t: jax.Array, a: float = -0.75) -> jax.Array:
    """Keys' cubic convolution kernel (PyTorch's bicubic uses a = -0.75)."""
    t = jnp.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((t - 5) * t + 8) * t * a - 4 * a
    return jnp.where(t <= 1, near, jnp.where(t < 2, far, 0.0))


def bicubic_matrix(size_in: int, size_out, ratio) -> jax.Array:
    """(size_out, size_in) float32 weights of PyTorch's bicubic interpolation
    (align_corners=False, no antialiasing): output o samples input position
    (o + 0.5) ratio - 0.5 from its four neighbours, indices clamped at the borders.

    ratio: input samples per output sample; F.interpolate uses in / out for a `size` and
    1 / scale_factor for a `scale_factor`.
    """
    source = (jnp.arange(size_out, dtype=jnp.float32) + 0.5) * ratio - 0.5
    base = jnp.floor(source)
    frac = source - base
    grid = jnp.arange(size_in)
    weights = jnp.zeros((size_out, size_in), jnp.float32)
    for tap in (-1, 0, 1, 2):
        index = jnp.clip(base.astype(jnp.int32) + tap, 0, size_in - 1)
        weights = weights + (cubic_kernel(frac - tap)[:, None]
                             * (index[:, None] == grid[None, :]))
    return weights
