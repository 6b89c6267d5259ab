"""A drop-in `lax.conv_general_dilated` for `nn.Conv(conv_general_dilated=...)` whose weight
gradient can be computed as one GEMM per kernel tap.

XLA:CPU with YNNPACK convolutions (its default in jaxlib 0.10-0.11) computes the weight
gradient of a 3x3 convolution over a large feature map (96x96 and up, per image) 4-7x
slower than its forward; the same gradient as a sum over the kernel's taps of (shifted
input)^T @ (output cotangent) runs at GEMM speed (docs/benchmarks.md, "Convolutions on
CPU"). depthsense_jax turns YNNPACK's convolutions off where it can (`_cpu_flags`), and then
XLA's own gradient is faster than this one everywhere. `conv_for(impl)` picks:

- "xla": `lax.conv_general_dilated` as it is;
- "gemm": the per-tap weight gradient for every spatial kernel (tests, measurements);
- "auto" (the default): the per-tap weight gradient only where XLA:CPU still hands
  convolutions to YNNPACK (a jaxlib the flag was not measured with, or the user's own
  XLA_FLAGS), for kernels larger than 1x1 with at least `MIN_INPUT_PIXELS` input pixels
  per image and Cin * Cout >= `MIN_CHANNEL_PRODUCT`; XLA's everywhere else, and on GPU and
  TPU (not measured faster there).

The forward and the input gradient are always XLA's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from depthsense_jax import _cpu_flags

IMPLS = ("auto", "xla", "gemm")
# Where "auto" uses the per-tap weight gradient on CPU with YNNPACK convolutions, measured
# at the model's shapes (docs/benchmarks.md, "Convolutions on CPU"): XLA's own is as
# fast up to 64x64 maps, and with few channels (the stem's 3, the head's 1, the encoder's
# 64-128 at 96x96) each tap is a thin GEMM, which XLA's own beats.
MIN_INPUT_PIXELS = 80 * 80
MIN_CHANNEL_PRODUCT = 256 * 128  # Cin * Cout

NHWC = ("NHWC", "HWIO", "NHWC")


def _is_nhwc(dimension_numbers) -> bool:
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        return dimension_numbers == lax.conv_dimension_numbers(
            (1, 1, 1, 1), (1, 1, 1, 1), NHWC)
    return tuple(dimension_numbers) == NHWC


def _explicit_padding(padding, in_hw, kernel_hw, strides) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str):
        return tuple(lax.padtype_to_pads(in_hw, kernel_hw, strides, padding))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def tap_gemm_weight_grad(x: jax.Array, dy: jax.Array, kernel_shape: Sequence[int],
                         strides: Sequence[int], padding) -> jax.Array:
    """The gradient of sum(conv(x, w) * dy) with respect to w, one GEMM per kernel tap:
    dw[i, j] = window(i, j)^T @ dy over all (b, h, w).

    x: (B, H, W, Cin) input; dy: (B, Ho, Wo, Cout) output cotangent; kernel_shape: (kh, kw,
    Cin, Cout); strides: (sh, sw); padding: explicit ((lo, hi), (lo, hi)). Accumulates in
    float32; returns (kh, kw, Cin, Cout) in dy's dtype.
    """
    kh, kw, cin, cout = kernel_shape
    (sh, sw), (b, ho, wo, _) = strides, dy.shape
    xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    # dy^T (Cout, N) on the left makes each tap a row-major GEMM, which XLA:CPU runs ~10%
    # faster than contracting both operands' first dimension.
    cotangent_t = dy.reshape(-1, cout).T
    taps = []
    for i in range(kh):
        for j in range(kw):
            window = lax.slice(xp, (0, i, j, 0),
                               (b, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, cin),
                               (1, sh, sw, 1))
            taps.append(lax.dot(cotangent_t, window.reshape(-1, cin),
                                preferred_element_type=jnp.float32))
    grad = jnp.stack(taps).reshape(kh, kw, cout, cin).transpose(0, 1, 3, 2)
    return grad.astype(dy.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_tap_gemm(x, w, strides, padding, precision):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC,
                                    precision=precision)


def _conv_tap_gemm_fwd(x, w, strides, padding, precision):
    return _conv_tap_gemm(x, w, strides, padding, precision), (x, w)


def _conv_tap_gemm_bwd(strides, padding, precision, residuals, dy):
    x, w = residuals
    _, input_vjp = jax.vjp(lambda v: lax.conv_general_dilated(
        v, w, strides, padding, dimension_numbers=NHWC, precision=precision), x)
    (dx,) = input_vjp(dy)
    dw = tap_gemm_weight_grad(x, dy, w.shape, strides, padding).astype(w.dtype)
    return dx, dw


_conv_tap_gemm.defvjp(_conv_tap_gemm_fwd, _conv_tap_gemm_bwd)


def _uses_tap_gemm(impl: str, lhs_shape, rhs_shape) -> bool:
    kh, kw, cin, cout = rhs_shape
    if impl == "gemm":
        return True
    return (impl == "auto" and kh * kw > 1 and jax.default_backend() == "cpu"
            and _cpu_flags.ynn_convolution_enabled()
            and lhs_shape[1] * lhs_shape[2] >= MIN_INPUT_PIXELS
            and cin * cout >= MIN_CHANNEL_PRODUCT)


def conv_for(impl: str) -> Callable:
    """A function with `lax.conv_general_dilated`'s signature (for `nn.Conv`'s
    `conv_general_dilated`) computing the weight gradient as `impl` says (module
    docstring). Dilated, grouped or non-NHWC convolutions always take XLA's."""
    if impl not in IMPLS:
        raise ValueError(f"model.conv_impl {impl!r}: expected one of {', '.join(IMPLS)}")
    if impl == "xla":
        return lax.conv_general_dilated

    def conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
             dimension_numbers=None, feature_group_count=1, batch_group_count=1,
             precision=None, preferred_element_type=None):
        plain = (all(d == 1 for d in (lhs_dilation or (1, 1)))
                 and all(d == 1 for d in (rhs_dilation or (1, 1)))
                 and feature_group_count == 1 and batch_group_count == 1
                 and preferred_element_type is None and _is_nhwc(dimension_numbers))
        strides = tuple(int(s) for s in window_strides)
        if plain and _uses_tap_gemm(impl, lhs.shape, rhs.shape):
            pads = _explicit_padding(padding, lhs.shape[1:3], rhs.shape[:2], strides)
            return _conv_tap_gemm(lhs, rhs, strides, pads, precision)
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count, batch_group_count=batch_group_count,
            precision=precision, preferred_element_type=preferred_element_type)

    return conv
