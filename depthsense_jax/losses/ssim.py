"""Structural similarity (Wang et al. 2004) with a fast separable blur."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from depthsense_jax import _checks
from depthsense_jax._reduce import masked_mean
from depthsense_jax.losses._blur import blurred_moments, gaussian_taps

PADDINGS = ("zeros", "reflect", "valid")

# dm-pix's clamp: variances at least float32 eps^2 so that the sqrt in the covariance clamp
# below has a finite derivative on constant images.
_VARIANCE_FLOOR = float(jnp.finfo(jnp.float32).eps) ** 2


def _to_nchw(x: jax.Array) -> jax.Array:
    """(B, H, W) -> (B, 1, H, W); (B, H, W, C) -> (B, C, H, W)."""
    return x[:, None] if x.ndim == 3 else jnp.moveaxis(x, -1, 1)


def _check_args(x, y, mask, window_size: int, padding: str) -> None:
    _checks.check_rank("x", x, (3, 4), "(B, H, W) or (B, H, W, C)")
    _checks.check_same_shape("y", y, "x", x.shape)
    _checks.check_mask(mask, "x", x.shape)
    if padding not in PADDINGS:
        raise ValueError(f"`padding` must be one of {PADDINGS}, got {padding!r}")
    h, w = x.shape[1:3]
    radius = window_size // 2
    if padding == "valid" and min(h, w) < window_size:
        raise ValueError(
            f"padding='valid' needs H and W >= window_size={window_size}, got x of shape {x.shape}"
        )
    if padding == "reflect" and min(h, w) <= radius:
        raise ValueError(
            f"padding='reflect' needs H and W > window_size // 2 = {radius}, got x of shape "
            f"{x.shape}"
        )


def ssim_map(
    x: jax.Array,
    y: jax.Array,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    c1: float = 0.01**2,
    c2: float = 0.03**2,
    padding: str = "zeros",
) -> jax.Array:
    """Per-pixel SSIM of `x` and `y`: (B, C, H', W') float32, H' = H - 2r for 'valid', else H.

    x, y: (B, H, W) or (B, H, W, C), values in [0, 1] (c1, c2 assume that range).
    """
    _check_args(x, y, None, window_size, padding)
    taps = gaussian_taps(window_size, sigma)
    x = _to_nchw(jnp.asarray(x, jnp.float32))
    y = _to_nchw(jnp.asarray(y, jnp.float32))
    mu_x, e_xx, e_xy, mu_y, e_yy = blurred_moments(x, y, taps, padding)
    var_x = jnp.maximum(e_xx - mu_x * mu_x, _VARIANCE_FLOOR)
    var_y = jnp.maximum(e_yy - mu_y * mu_y, _VARIANCE_FLOOR)
    cov = e_xy - mu_x * mu_y
    cov = jnp.sign(cov) * jnp.minimum(jnp.sqrt(var_x * var_y), jnp.abs(cov))
    numerator = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def _ssim_per_image(x, y, window_size, sigma, c1, c2, padding, mask):
    """(mean SSIM, number of valid pixels) per image, both (B,)."""
    _check_args(x, y, mask, window_size, padding)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        valid = mask[..., None] if x.ndim == 4 else mask
        x = jnp.where(valid, x, 0.0)
        y = jnp.where(valid, y, 0.0)
    smap = ssim_map(x, y, window_size=window_size, sigma=sigma, c1=c1, c2=c2, padding=padding)
    if mask is None:
        weight = jnp.ones((1, 1, 1, 1), bool)
    else:
        weight = mask[:, None]
        if padding == "valid":
            r = window_size // 2
            weight = weight[:, :, r:-r, r:-r] if r else weight
    return masked_mean(smap, weight)


@functools.partial(jax.jit, static_argnames=("window_size", "sigma", "c1", "c2", "padding"))
def ssim(
    x: jax.Array,
    y: jax.Array,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    c1: float = 0.01**2,
    c2: float = 0.03**2,
    padding: str = "zeros",
    mask: jax.Array | None = None,
) -> jax.Array:
    """Mean SSIM per image: (B,) float32.

    x, y: (B, H, W) or (B, H, W, C) float in [0, 1]. mask: optional (B, H, W), True where valid;
    the SSIM map is averaged over valid pixels (and channels), and pixels outside the mask are
    set to 0 in both inputs before blurring so that NaN or garbage there cannot leak in. An
    image with no valid pixel (after the crop of "valid") scores 0. padding: "zeros"
    (pytorch-ssim), "reflect" (kornia.metrics.ssim), "valid" (dm-pix, tf.image.ssim; the map
    shrinks by window_size - 1). Variances are clamped to >= eps^2 and |cov| to
    <= sqrt(var_x var_y) as dm-pix does, which keeps gradients finite on constant images.
    """
    return _ssim_per_image(x, y, window_size, sigma, c1, c2, padding, mask)[0]


@functools.partial(jax.jit, static_argnames=("window_size", "sigma", "c1", "c2", "padding"))
def ssim_loss(
    pred: jax.Array,
    target: jax.Array,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    c1: float = 0.01**2,
    c2: float = 0.03**2,
    padding: str = "zeros",
    mask: jax.Array | None = None,
) -> jax.Array:
    """1 - mean SSIM: () float32, averaged over images; an image with an empty mask adds 0.

    pred, target: (B, H, W) or (B, H, W, C) in [0, 1]; keywords as `ssim`.
    """
    per_image, count = _ssim_per_image(
        pred, target, window_size, sigma, c1, c2, padding, mask
    )
    return jnp.mean(jnp.where(count > 0, 1.0 - per_image, 0.0))
