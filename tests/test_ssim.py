"""Tests for losses.ssim / ssim_loss / ssim_map.

References (float64):
- `_np_ssim_map`: direct 2-D windowed weighted sums (121 taps, not separable) over `np.pad`
  (constant / reflect) or no padding ("valid");
- `depthsense_jax.speed.torch_losses.pytorch_ssim_map`: the pytorch-ssim formula (2-D Gaussian
  window, `F.conv2d` with zero padding window_size // 2, groups=channels), for
  padding="zeros";
- `kornia.metrics.ssim(..., eps=0.0)` (reflect padding), for padding="reflect".
The package computes in float32; per-image means must agree to 1e-5 absolute.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from numpy.lib.stride_tricks import sliding_window_view

from depthsense_jax import losses

PADDINGS = ("zeros", "reflect", "valid")
C1 = 0.01**2
C2 = 0.03**2
ATOL = 1e-5

SHAPES = [(1, 16, 16), (3, 40, 50), (2, 33, 47, 3)]
# Small shapes shared by most tests, so that each jit specialisation compiles once per session.
S3 = (2, 14, 13)
S4 = (2, 14, 13, 2)
KINDS = ["random", "correlated", "gradient", "checkerboard", "constant", "step"]


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def make_pair(kind: str, shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 images of `shape` ((B, H, W) or (B, H, W, C)) in [0, 1]."""
    rng = np.random.default_rng(seed)
    b, h, w = shape[:3]
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")

    def tile(img2d: np.ndarray) -> np.ndarray:
        # Same pattern in every image, a different contrast per image and channel.
        out = np.broadcast_to(img2d[None], (b, h, w)).astype(np.float64)
        gain = 0.6 + 0.4 * np.arange(b)[:, None, None] / max(b, 1)
        out = 0.5 + (out - 0.5) * gain
        if len(shape) == 4:
            cgain = 0.7 + 0.3 * np.arange(shape[3]) / shape[3]
            out = 0.5 + (out[..., None] - 0.5) * cgain
        return out

    if kind == "random":
        x, y = rng.random(shape), rng.random(shape)
    elif kind == "correlated":
        x = rng.random(shape)
        y = np.clip(x + 0.1 * rng.standard_normal(shape), 0.0, 1.0)
    elif kind == "gradient":
        x = tile(0.1 + 0.8 * ii / (h - 1))
        y = tile(0.9 - 0.7 * jj / (w - 1))
    elif kind == "checkerboard":
        board = ((ii // 2 + jj // 2) % 2).astype(np.float64)
        x = tile(0.1 + 0.8 * board)
        y = 1.0 - x  # anti-correlated: negative SSIM inside
    elif kind == "constant":
        x, y = np.full(shape, 0.25), np.full(shape, 0.75)
    elif kind == "step":
        x = tile(np.where(jj < w // 2, 0.2, 0.9))
        y = tile(np.where(jj < w // 2 + 2, 0.1, 0.7))
    else:
        raise AssertionError(kind)
    return x.astype(np.float32), y.astype(np.float32)


def make_mask(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    """(B, H, W) mask: a random hole pattern, one image with a valid rectangle only."""
    rng = np.random.default_rng(seed)
    b, h, w = shape[:3]
    mask = rng.random((b, h, w)) > 0.3
    if b > 1:
        mask[-1] = False
        mask[-1, h // 4 : h - h // 4, w // 5 : w - w // 5] = True
    return mask


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


def _gauss_1d(window_size: int, sigma: float) -> np.ndarray:
    offsets = np.arange(window_size, dtype=np.float64) - window_size // 2
    g = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return g / g.sum()


def _to_nchw(a) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a[:, None] if a.ndim == 3 else np.moveaxis(a, -1, 1)


def _np_ssim_map(x, y, *, window_size=11, sigma=1.5, c1=C1, c2=C2, padding="zeros"):
    """Float64 SSIM map (B, C, H', W') with a direct (non-separable) 2-D window."""
    x, y = _to_nchw(x), _to_nchw(y)
    r = window_size // 2
    if padding != "valid":
        mode = {"zeros": "constant", "reflect": "reflect"}[padding]
        widths = ((0, 0), (0, 0), (r, r), (r, r))
        x, y = np.pad(x, widths, mode=mode), np.pad(y, widths, mode=mode)
    g = _gauss_1d(window_size, sigma)
    window = g[:, None] * g[None, :]

    def blur(a):
        patches = sliding_window_view(a, window.shape, axis=(-2, -1))  # (B, C, H', W', k, k)
        return np.einsum("bchwij,ij->bchw", patches, window)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den


def _apply_mask(x, y, mask):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if mask is None:
        return x, y
    valid = np.asarray(mask, bool)
    valid = valid[..., None] if x.ndim == 4 else valid
    return np.where(valid, x, 0.0), np.where(valid, y, 0.0)


def _effective_mask(mask, padding, window_size):
    """(B, 1, H', W') weights over the map: the mask, cropped by the radius for 'valid'."""
    m = np.asarray(mask, bool)[:, None]
    r = window_size // 2
    if padding == "valid" and r:
        m = m[:, :, r:-r, r:-r]
    return m


def _reduce(smap, mask, padding, window_size):
    """Mean SSIM per image over valid pixels and channels; 0 where nothing is valid."""
    smap = np.asarray(smap, np.float64)
    if mask is None:
        return smap.mean(axis=(1, 2, 3))
    weight = np.broadcast_to(_effective_mask(mask, padding, window_size), smap.shape)
    count = weight.sum(axis=(1, 2, 3))
    total = np.where(weight, smap, 0.0).sum(axis=(1, 2, 3))
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def np_ssim(x, y, *, mask=None, padding="zeros", window_size=11, **kw):
    xm, ym = _apply_mask(x, y, mask)
    smap = _np_ssim_map(xm, ym, padding=padding, window_size=window_size, **kw)
    return _reduce(smap, mask, padding, window_size)


def np_ssim_loss(pred, target, *, mask=None, padding="zeros", window_size=11, **kw):
    per_image = np_ssim(pred, target, mask=mask, padding=padding, window_size=window_size, **kw)
    if mask is None:
        return float(np.mean(1.0 - per_image))
    counted = _effective_mask(mask, padding, window_size).any(axis=(1, 2, 3))
    return float(np.mean(np.where(counted, 1.0 - per_image, 0.0)))


def pytorch_ssim_map(*args, **kwargs):
    """The pytorch-ssim reference; imported here so that torch stays optional."""
    from depthsense_jax.speed.torch_losses import pytorch_ssim_map as reference

    return reference(*args, **kwargs)


def _torch_nchw(a, requires_grad=False):
    import torch

    t = torch.from_numpy(_to_nchw(a).copy())
    return t.requires_grad_(requires_grad)


# --------------------------------------------------------------------------------------------
# Agreement with the references
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("padding", PADDINGS)
def test_matches_numpy_reference(padding, kind, shape):
    x, y = make_pair(kind, shape)
    got = losses.ssim(x, y, padding=padding)
    np.testing.assert_allclose(got, np_ssim(x, y, padding=padding), rtol=0, atol=ATOL)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", ["random", "step"])
@pytest.mark.parametrize("padding", PADDINGS)
def test_masked_matches_numpy_reference(padding, kind, shape):
    x, y = make_pair(kind, shape, seed=3)
    mask = make_mask(shape)
    got = losses.ssim(x, y, padding=padding, mask=mask)
    want = np_ssim(x, y, padding=padding, mask=mask)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("padding", PADDINGS)
def test_masked_loss_matches_numpy_reference(padding):
    x, y = make_pair("correlated", S3, seed=4)
    mask = make_mask(S3)
    got = losses.ssim_loss(x, y, padding=padding, mask=mask)
    want = np_ssim_loss(x, y, padding=padding, mask=mask)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    got = losses.ssim_loss(x, y, padding=padding)
    np.testing.assert_allclose(got, np_ssim_loss(x, y, padding=padding), rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "window_size, sigma, c1, c2",
    [(7, 1.0, C1, C2), (1, 2.5, 1e-3, 1e-2)],
)
@pytest.mark.parametrize("padding", PADDINGS)
def test_non_default_window_matches_numpy(padding, window_size, sigma, c1, c2):
    x, y = make_pair("correlated", S3, seed=5)
    kw = dict(window_size=window_size, sigma=sigma, c1=c1, c2=c2, padding=padding)
    mask = make_mask(S3)
    np.testing.assert_allclose(
        losses.ssim(x, y, mask=mask, **kw), np_ssim(x, y, mask=mask, **kw), rtol=0, atol=ATOL
    )


@pytest.mark.parametrize("padding", PADDINGS)
def test_ssim_map_matches_numpy_map(padding):
    x, y = make_pair("random", S4, seed=7)
    got = jax.jit(losses.ssim_map, static_argnames="padding")(x, y, padding=padding)
    want = _np_ssim_map(x, y, padding=padding)
    h, w = S4[1:3]
    h_out, w_out = (h - 10, w - 10) if padding == "valid" else (h, w)
    assert got.shape == (2, 2, h_out, w_out)
    assert got.dtype == jnp.float32
    # Per pixel, float32 cancellation in E[x^2] - mu^2 allows a little more than the mean.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        np.mean(np.asarray(got), axis=(1, 2, 3)), losses.ssim(x, y, padding=padding), atol=1e-6
    )


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_zeros_matches_pytorch_ssim(kind, shape, masked):
    pytest.importorskip("torch")
    x, y = make_pair(kind, shape, seed=11)
    mask = make_mask(shape) if masked else None
    xm, ym = _apply_mask(x, y, mask)
    smap = pytorch_ssim_map(_torch_nchw(xm), _torch_nchw(ym)).numpy()
    want = _reduce(smap, mask, "zeros", 11)
    got = losses.ssim(x, y, padding="zeros", mask=mask)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_reflect_matches_kornia(kind, shape, masked):
    pytest.importorskip("torch")
    kornia = pytest.importorskip("kornia")
    x, y = make_pair(kind, shape, seed=13)
    mask = make_mask(shape) if masked else None
    xm, ym = _apply_mask(x, y, mask)
    smap = kornia.metrics.ssim(_torch_nchw(xm), _torch_nchw(ym), 11, eps=0.0).numpy()
    want = _reduce(smap, mask, "reflect", 11)
    got = losses.ssim(x, y, padding="reflect", mask=mask)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("window_size", [5, 7])
def test_reflect_matches_kornia_other_window(window_size):
    pytest.importorskip("torch")
    kornia = pytest.importorskip("kornia")
    x, y = make_pair("correlated", S4, seed=17)
    smap = kornia.metrics.ssim(_torch_nchw(x), _torch_nchw(y), window_size, eps=0.0).numpy()
    got = losses.ssim(x, y, padding="reflect", window_size=window_size)
    np.testing.assert_allclose(got, smap.mean(axis=(1, 2, 3)), rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind, atol", [("random", ATOL), ("correlated", ATOL),
                                         ("gradient", ATOL), ("step", 5e-4)])
@pytest.mark.parametrize("shape", [(3, 40, 50), (2, 33, 47, 3)], ids=str)
def test_valid_matches_tf_image_ssim(kind, atol, shape):
    """padding="valid" is tf.image.ssim's (and dm-pix's) SSIM: window 11, sigma 1.5, no
    padding, per-image mean over positions and channels. tf.image.ssim computes in float32
    as E[x^2] - E[x]^2, which cancels in the flat regions of "step" (an error of about 2e-4
    there); the float64 reference above agrees with ours to 1e-5 on the same images."""
    import tensorflow as tf

    x, y = make_pair(kind, shape, seed=23)
    x4, y4 = (a[..., None] if a.ndim == 3 else a for a in (x, y))
    want = tf.image.ssim(tf.constant(x4, tf.float64), tf.constant(y4, tf.float64), max_val=1.0,
                         filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03).numpy()
    got = np.asarray(losses.ssim(x, y, padding="valid"))
    assert want.shape == got.shape == (shape[0],)
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


def test_references_agree_with_each_other():
    """The three references are independent; check they agree before trusting them."""
    pytest.importorskip("torch")
    kornia = pytest.importorskip("kornia")
    x, y = make_pair("random", S4, seed=19)
    np.testing.assert_allclose(
        pytorch_ssim_map(_torch_nchw(x), _torch_nchw(y)).numpy(),
        _np_ssim_map(x, y, padding="zeros"),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        kornia.metrics.ssim(_torch_nchw(x), _torch_nchw(y), 11, eps=0.0).numpy(),
        _np_ssim_map(x, y, padding="reflect"),
        atol=1e-12,
    )


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


@functools.cache
def _value_and_grads(padding: str, masked: bool):
    """jit(value_and_grad(ssim_loss)) w.r.t. both images, built once per (padding, masked)."""
    if masked:
        fn = lambda a, b, m: losses.ssim_loss(a, b, padding=padding, mask=m)
    else:
        fn = lambda a, b: losses.ssim_loss(a, b, padding=padding)
    return jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))


@pytest.mark.parametrize("padding", PADDINGS)
def test_check_grads(padding):
    x, y = make_pair("correlated", S3, seed=23)
    # With and without a mask, and once with only the prediction differentiated (the blur's VJP
    # then sees only the maps that depend on x).
    mask = None if padding == "reflect" else make_mask(S3)
    if padding == "valid":
        fn, args = (lambda a: losses.ssim_loss(a, y, padding=padding, mask=mask)), (x,)
    else:
        fn, args = (lambda a, b: losses.ssim_loss(a, b, padding=padding, mask=mask)), (x, y)
    check_grads(fn, args, order=1, modes=("rev",), atol=1e-2, rtol=1e-2, eps=1e-2)


@pytest.mark.parametrize("shape", [S3, S4], ids=str)
def test_grad_matches_torch_autograd(shape):
    torch = pytest.importorskip("torch")
    pred, target = make_pair("correlated", shape, seed=29)

    def torch_loss(p, t):
        per_image = pytorch_ssim_map(p, t).mean(dim=(1, 2, 3))
        return (1.0 - per_image).mean()

    tp, tt = _torch_nchw(pred, True), _torch_nchw(target, True)
    value = torch_loss(tp, tt)
    value.backward()
    assert torch.isfinite(tp.grad).all()

    def back(g):  # NCHW -> input layout
        g = g.detach().numpy()
        return g[:, 0] if len(shape) == 3 else np.moveaxis(g, 1, -1)

    got_value, (g_pred, g_target) = _value_and_grads("zeros", False)(pred, target)
    np.testing.assert_allclose(got_value, value.item(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(g_pred, back(tp.grad), rtol=0, atol=1e-5)
    np.testing.assert_allclose(g_target, back(tt.grad), rtol=0, atol=1e-5)


def _finite_cases():
    rng = np.random.default_rng(31)
    r1, r2 = rng.random(S3).astype(np.float32), rng.random(S3).astype(np.float32)
    const = lambda v: np.full(S3, v, np.float32)
    empty = np.zeros(S3, bool)
    one_empty = np.ones(S3, bool)
    one_empty[1] = False
    return {
        "equal_constants": (const(0.5), const(0.5), None),
        "different_constants": (const(0.2), const(0.8), None),
        "all_zero": (const(0.0), const(0.0), None),
        "one_zero": (r1, const(0.0), None),
        "tiny": (r1 * 1e-6, r2 * 1e-6, None),
        "huge": (r1 * 1e6, r2 * 1e6, None),
        "huge_equal": (r1 * 1e6, r1 * 1e6, None),
        "empty_mask": (r1, r2, empty),
        "one_empty_mask": (r1, r2, one_empty),
        "constants_masked": (const(0.3), const(0.6), ~one_empty),
    }


FINITE_CASES = _finite_cases()


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", list(FINITE_CASES))
def test_finite_value_and_grads(case, padding):
    x, y, mask = FINITE_CASES[case]
    # Always through the masked path (an all-true mask for the unmasked cases), which shares
    # one compilation per padding; the mask=None path has the same arithmetic.
    full = np.ones(S3, bool)
    value, grads = _value_and_grads(padding, True)(x, y, full if mask is None else mask)
    assert np.isfinite(value)
    assert -1e-6 <= float(value) <= 2.0 + 1e-6
    for g in grads:
        assert np.all(np.isfinite(g))
    assert np.all(np.isfinite(losses.ssim(x, y, padding=padding, mask=mask)))
    if mask is None:
        np.testing.assert_allclose(losses.ssim_loss(x, y, padding=padding), value, atol=ATOL)
    if case in ("equal_constants", "all_zero", "huge_equal"):
        np.testing.assert_allclose(value, 0.0, atol=ATOL)
    if case == "empty_mask":
        assert float(value) == 0.0
        np.testing.assert_array_equal(losses.ssim(x, y, padding=padding, mask=mask), 0.0)
        for g in grads:
            np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize("padding", PADDINGS)
def test_nan_outside_mask_is_ignored(padding):
    x, y = make_pair("correlated", S3, seed=37)
    mask = make_mask(S3)
    outside = ~mask
    y_nan = np.where(outside, np.nan, y).astype(np.float32)
    y_zero = np.where(outside, 0.0, y).astype(np.float32)
    x_garbage = np.where(outside, 123.0, x).astype(np.float32)

    fn = _value_and_grads(padding, True)
    v_nan, (gx_nan, gy_nan) = fn(x_garbage, y_nan, mask)
    v_zero, (gx_zero, gy_zero) = fn(x, y_zero, mask)
    assert np.isfinite(v_nan)
    assert np.all(np.isfinite(gx_nan)) and np.all(np.isfinite(gy_nan))
    np.testing.assert_allclose(v_nan, v_zero, rtol=0, atol=1e-7)
    np.testing.assert_allclose(gx_nan, gx_zero, rtol=0, atol=1e-9)
    np.testing.assert_allclose(gy_nan, gy_zero, rtol=0, atol=1e-9)
    # Nothing flows to pixels outside the mask.
    np.testing.assert_array_equal(np.where(outside, gx_nan, 0.0), 0.0)
    np.testing.assert_array_equal(np.where(outside, gy_nan, 0.0), 0.0)
    np.testing.assert_allclose(v_nan, np_ssim_loss(x, y, padding=padding, mask=mask), atol=ATOL)


def test_nan_outside_mask_with_channels():
    x, y = make_pair("correlated", S4, seed=39)
    mask = make_mask(S4)
    outside = np.broadcast_to(~mask[..., None], S4)
    y_nan = np.where(outside, np.nan, y).astype(np.float32)
    got = losses.ssim(x, y_nan, padding="zeros", mask=mask)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np_ssim(x, y, padding="zeros", mask=mask), atol=ATOL)


# --------------------------------------------------------------------------------------------
# Mask edge cases
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", PADDINGS)
def test_full_mask_equals_no_mask_and_any_dtype(padding):
    x, y = make_pair("random", S4, seed=41)
    base = losses.ssim(x, y, padding=padding)
    full = np.ones(S4[:3], bool)
    np.testing.assert_allclose(losses.ssim(x, y, padding=padding, mask=full), base, atol=1e-7)
    if padding == "zeros":  # the dtype of the mask does not depend on the padding
        mask = make_mask(S4)
        as_bool = losses.ssim(x, y, padding=padding, mask=mask)
        for dtype in (np.float32, np.uint8):
            np.testing.assert_allclose(
                losses.ssim(x, y, padding=padding, mask=mask.astype(dtype)), as_bool, atol=0
            )


@pytest.mark.parametrize("padding", PADDINGS)
def test_empty_mask_images_contribute_zero_to_loss(padding):
    x, y = make_pair("random", S3, seed=43)
    mask = make_mask(S3)
    mask[1] = False
    per_image = np.asarray(losses.ssim(x, y, padding=padding, mask=mask))
    assert per_image[1] == 0.0
    want = (1 - per_image[0]) / 2
    np.testing.assert_allclose(losses.ssim_loss(x, y, padding=padding, mask=mask), want,
                               atol=1e-7)


def test_valid_mask_only_in_border_counts_as_empty():
    """For 'valid' the mask is cropped by window_size // 2: an image whose valid pixels all lie
    in that border has no SSIM value left (ssim gives 0) and, like any image with an empty
    mask, must add 0 to ssim_loss, not 1 - 0."""
    x, y = make_pair("random", S3, seed=47)
    mask = np.zeros(S3, bool)
    mask[0] = True
    mask[1, :3, :] = True  # rows 0..2 only: all inside the 5-pixel border
    per_image = np.asarray(losses.ssim(x, y, padding="valid", mask=mask))
    assert per_image[1] == 0.0
    want = np_ssim_loss(x, y, padding="valid", mask=mask)
    np.testing.assert_allclose(want, (1 - per_image[0]) / 2, atol=1e-6)
    np.testing.assert_allclose(losses.ssim_loss(x, y, padding="valid", mask=mask), want,
                               atol=1e-6)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [SHAPES[0], S4], ids=str)
@pytest.mark.parametrize("kind", ["random", "gradient", "checkerboard", "step"])
@pytest.mark.parametrize("padding", PADDINGS)
def test_identity_is_one(padding, kind, shape):
    x, _ = make_pair(kind, shape, seed=53)
    np.testing.assert_allclose(losses.ssim(x, x, padding=padding), 1.0, atol=ATOL)


@pytest.mark.parametrize("padding", ["reflect"])
def test_single_channel_layouts_agree(padding):
    x, y = make_pair("random", S3, seed=59)
    np.testing.assert_allclose(
        losses.ssim(x[..., None], y[..., None], padding=padding),
        losses.ssim(x, y, padding=padding),
        atol=1e-7,
    )


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    mix=st.floats(-1.0, 1.0),
    padding=st.sampled_from(PADDINGS),
    masked=st.booleans(),
)
def test_bounds_and_symmetry(seed, mix, padding, masked):
    """ssim in [-1, 1], symmetric; ssim_loss in [0, 2]; from anti- to fully correlated pairs."""
    rng = np.random.default_rng(seed)
    x = rng.random(S3).astype(np.float32)
    noise = rng.random(S3)
    base = x if mix >= 0 else 1.0 - x
    y = (abs(mix) * base + (1 - abs(mix)) * noise).astype(np.float32)
    mask = rng.random(S3) > 0.4 if masked else None
    s_xy = np.asarray(losses.ssim(x, y, padding=padding, mask=mask))
    s_yx = np.asarray(losses.ssim(y, x, padding=padding, mask=mask))
    np.testing.assert_allclose(s_xy, s_yx, rtol=0, atol=1e-6)
    assert np.all(s_xy >= -1.0 - 1e-6) and np.all(s_xy <= 1.0 + 1e-6)
    loss = float(losses.ssim_loss(x, y, padding=padding, mask=mask))
    assert -1e-6 <= loss <= 2.0 + 1e-6


@pytest.mark.parametrize("padding", PADDINGS)
def test_anticorrelated_loss_above_one(padding):
    x, y = make_pair("checkerboard", S3)
    loss = float(losses.ssim_loss(x, y, padding=padding))
    assert 1.0 < loss <= 2.0


@pytest.mark.parametrize("shape", [S3, S4], ids=str)
@pytest.mark.parametrize("padding", PADDINGS)
def test_output_shapes_and_dtypes(padding, shape):
    x, y = make_pair("random", shape)
    mask = make_mask(shape)
    for xx, yy in [(x, y), (x.astype(np.float64), y.astype(np.float64))]:
        for m in (None, mask):
            s = losses.ssim(xx, yy, padding=padding, mask=m)
            assert s.shape == (shape[0],) and s.dtype == jnp.float32
            if len(shape) == 3:
                loss = losses.ssim_loss(xx, yy, padding=padding, mask=m)
                assert loss.shape == () and loss.dtype == jnp.float32


@pytest.mark.parametrize("padding", ["valid"])
def test_jit_with_traced_mask(padding):
    x, y = make_pair("random", S3, seed=61)
    mask = make_mask(S3)

    @jax.jit
    def f(a, b, m):
        return losses.ssim_loss(a, b, padding=padding, mask=m), losses.ssim(a, b, padding=padding)

    loss, per_image = f(x, y, mask)
    np.testing.assert_allclose(loss, np_ssim_loss(x, y, padding=padding, mask=mask), atol=ATOL)
    np.testing.assert_allclose(per_image, np_ssim(x, y, padding=padding), atol=ATOL)


@pytest.mark.parametrize("padding", ["zeros", "valid"])
def test_vmap_over_extra_axis(padding):
    rng = np.random.default_rng(67)
    x = rng.random((3, *S3)).astype(np.float32)
    y = rng.random((3, *S3)).astype(np.float32)
    mask = rng.random((3, *S3)) > 0.3
    fn = functools.partial(losses.ssim, padding=padding)
    batched = jax.vmap(lambda a, b, m: fn(a, b, mask=m))(x, y, mask)
    assert batched.shape == (3, S3[0])
    looped = np.stack([np.asarray(fn(x[i], y[i], mask=mask[i])) for i in range(3)])
    np.testing.assert_allclose(batched, looped, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------------

_X = np.zeros((1, 16, 16), np.float32)
_XC = np.zeros((1, 16, 16, 3), np.float32)

BAD_ARGS = {
    "x_2d": (np.zeros((16, 16), np.float32), np.zeros((16, 16), np.float32), {}, "`x`"),
    "x_5d": (np.zeros((1, 16, 16, 3, 1), np.float32), np.zeros((1, 16, 16, 3, 1), np.float32),
             {}, "`x`"),
    "y_width": (_X, np.zeros((1, 16, 17), np.float32), {}, "`y`"),
    "y_channels": (_X, _XC, {}, "`y`"),
    "y_batch": (_XC, np.zeros((2, 16, 16, 3), np.float32), {}, "`y`"),
    "padding_unknown": (_X, _X, {"padding": "same"}, "`padding`"),
    "window_even": (_X, _X, {"window_size": 10}, "`window_size`"),
    "window_zero": (_X, _X, {"window_size": 0}, "`window_size`"),
    "sigma_zero": (_X, _X, {"sigma": 0.0}, "`sigma`"),
    "too_small_valid": (np.zeros((1, 10, 16), np.float32), np.zeros((1, 10, 16), np.float32),
                        {"padding": "valid"}, "padding='valid'"),
    "too_small_valid_w": (np.zeros((1, 16, 6, 3), np.float32),
                          np.zeros((1, 16, 6, 3), np.float32),
                          {"padding": "valid", "window_size": 7}, "padding='valid'"),
    "too_small_reflect": (np.zeros((1, 5, 16), np.float32), np.zeros((1, 5, 16), np.float32),
                          {"padding": "reflect"}, "padding='reflect'"),
}

BAD_MASKS = {
    "mask_width": (_X, np.ones((1, 16, 15), bool)),
    "mask_batch": (_X, np.ones((2, 16, 16), bool)),
    "mask_with_channels": (_XC, np.ones((1, 16, 16, 3), bool)),
    "mask_2d": (_X, np.ones((16, 16), bool)),
}


@pytest.mark.parametrize("fn_name", ["ssim", "ssim_loss", "ssim_map"])
@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments_raise_at_trace_time(case, fn_name):
    x, y, kw, match = BAD_ARGS[case]
    fn = functools.partial(getattr(losses, fn_name), **kw)
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(fn, x, y)  # abstract evaluation only: the error comes from tracing
    with pytest.raises(ValueError, match=match):
        fn(x, y)


@pytest.mark.parametrize("fn_name", ["ssim", "ssim_loss"])
@pytest.mark.parametrize("case", list(BAD_MASKS))
def test_bad_mask_raises(case, fn_name):
    x, mask = BAD_MASKS[case]
    fn = getattr(losses, fn_name)
    with pytest.raises(ValueError, match="`mask`"):
        jax.eval_shape(lambda a, b, m: fn(a, b, mask=m), x, x, mask)
