"""Separable Gaussian blur of the SSIM moments, with a hand-written VJP.

XLA's automatic backward of a blur (convolution or shifted slices) is many times slower than
its forward on CPU. A "valid" correlation with a symmetric kernel has as its transpose the same
correlation of the cotangent zero-padded by twice the radius, so the backward costs one forward.
Padding modes ("zeros", "reflect") are applied outside with `jnp.pad`, whose transpose XLA
derives cheaply.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from depthsense_jax._xla import unfused


def gaussian_taps(window_size: int, sigma: float) -> tuple[float, ...]:
    """Normalised 1-D Gaussian taps of odd length `window_size`, centred."""
    if not isinstance(window_size, int) or window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"`window_size` must be a positive odd integer, got {window_size!r}")
    if not sigma > 0:
        raise ValueError(f"`sigma` must be positive, got {sigma!r}")
    offsets = np.arange(window_size, dtype=np.float64) - window_size // 2
    taps = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return tuple(float(t) for t in taps / taps.sum())


def _correlate_axis(x: jax.Array, taps: tuple[float, ...], axis: int) -> jax.Array:
    """Valid correlation along `axis`; symmetric taps pair up so each pair costs one multiply."""
    radius = len(taps) // 2
    out_len = x.shape[axis] - 2 * radius

    def shifted(t: int) -> jax.Array:
        return lax.slice_in_dim(x, t, t + out_len, axis=axis)

    y = taps[radius] * shifted(radius)
    for t in range(radius):
        y = y + taps[t] * (shifted(t) + shifted(2 * radius - t))
    return y


def _blur(make_maps, operands, taps):
    """Valid 2-D blur of each map of `make_maps(*operands)`.

    The maps are formed and row-blurred in one unfused computation: fused with the column
    pass, XLA:CPU recomputes every row tap for each column tap (measured: SSIM forward at
    8x384x384, 69 ms -> 6 ms). The column pass stays fusible into the consumer.
    """
    rows = unfused(
        lambda *ops: tuple(_correlate_axis(m, taps, -2) for m in make_maps(*ops)), *operands
    )
    return tuple(_correlate_axis(r, taps, -1) for r in rows)


def _pad(x: jax.Array, width: int, mode: str) -> jax.Array:
    """Pad the last two axes of `x` by `width` with mode "zeros", "reflect" or "valid" (none)."""
    if mode == "valid" or width == 0:
        return x
    pad = [(0, 0)] * (x.ndim - 2) + [(width, width), (width, width)]
    return jnp.pad(x, pad, mode="constant" if mode == "zeros" else "reflect")


def _moment_maps(x, y):
    return x, x * x, x * y, y, y * y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def blurred_moments(x: jax.Array, y: jax.Array, taps: tuple[float, ...], padding: str):
    """Gaussian blurs of x, x^2, xy, y, y^2 for (..., H, W) maps: five (..., H', W') maps.

    padding: "zeros" or "reflect" keep H' = H, "valid" gives H' = H - 2r (r = len(taps) // 2).
    `taps` must be symmetric (a Gaussian is).
    """
    return _forward(x, y, taps, padding)


def _forward(x, y, taps, padding):
    # Padding inside the unfused row pass: a padded copy made outside it costs an extra
    # 10 ms at 8x384x384 on XLA:CPU, though a pad alone takes 0.5 ms.
    radius = len(taps) // 2
    return _blur(lambda a, b: _moment_maps(_pad(a, radius, padding), _pad(b, radius, padding)),
                 (x, y), taps)


def _moments_fwd(x, y, taps, padding):
    out = _forward(x.value, y.value, taps, padding)
    return out, (x.value, y.value, x.perturbed, y.perturbed)


def _moments_bwd(taps, padding, residuals, cotangents):
    x, y, x_perturbed, y_perturbed = residuals
    radius = len(taps) // 2
    ct = [
        jnp.zeros(c.shape, c.dtype) if isinstance(c, SymbolicZero) else c for c in cotangents
    ]
    ct_mx, ct_xx, ct_xy, ct_my, ct_yy = ct
    # Only the maps that reach a perturbed input are blurred (a loss on a prediction blurs 3).
    wanted = []
    if x_perturbed:
        wanted += [ct_mx, ct_xx]
    if x_perturbed or y_perturbed:
        wanted += [ct_xy]
    if y_perturbed:
        wanted += [ct_my, ct_yy]
    # The transpose of a valid blur: the same blur of the cotangent zero-padded by 2r.
    blurred = _blur(lambda *cs: tuple(_pad(c, 2 * radius, "zeros") for c in cs), wanted, taps)
    x_pad, pad_transpose = jax.vjp(lambda a: _pad(a, radius, padding), x)
    y_pad = _pad(y, radius, padding)
    grad_x = grad_y = None
    if x_perturbed:
        b_mx, b_xx, b_xy = blurred[:3]
        (grad_x,) = pad_transpose(b_mx + 2.0 * x_pad * b_xx + y_pad * b_xy)
    if y_perturbed:
        b_xy, b_my, b_yy = blurred[-3:]
        (grad_y,) = pad_transpose(b_my + 2.0 * y_pad * b_yy + x_pad * b_xy)
    return grad_x, grad_y


blurred_moments.defvjp(_moments_fwd, _moments_bwd, symbolic_zeros=True)
