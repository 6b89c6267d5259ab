"""Tests for losses.inverse_depth_smoothness_loss.

References: kornia.losses.inverse_depth_smoothness_loss (no mask) and a float64 NumPy
implementation of the masked definition written here: a forward difference counts where both of
its pixels are valid; each direction is averaged per image over its counted differences (0 where
none), x and y are summed, then averaged over images.
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

from depthsense_jax import losses

loss_fn = losses.inverse_depth_smoothness_loss

SHAPES = [(1, 5, 7, 1), (2, 16, 20, 3), (3, 9, 4, 3), (2, 6, 8, None)]  # None: (B, H, W) image
SMALL = (2, 5, 6, 3)


def _inputs(shape, seed=0):
    """inv_depth (B, H, W) and image (B, H, W, C) or (B, H, W) if C is None, float32."""
    rng = np.random.default_rng(seed)
    b, h, w, c = shape
    d = rng.random((b, h, w)).astype(np.float32)
    img_shape = (b, h, w) if c is None else (b, h, w, c)
    return d, rng.random(img_shape).astype(np.float32)


def _mask(shape, seed=1, density=0.7):
    return np.random.default_rng(seed).random(shape[:3]) < density


def _masked_mean(values, valid):
    count = valid.sum(axis=(1, 2))
    total = np.where(valid, values, 0.0).sum(axis=(1, 2))
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def np_smoothness(inv_depth, image, mask=None) -> float:
    d = np.asarray(inv_depth, np.float64)
    img = np.asarray(image, np.float64)
    img = img[..., None] if img.ndim == 3 else img
    m = np.ones(d.shape, bool) if mask is None else np.asarray(mask, bool)
    with np.errstate(invalid="ignore"):  # NaN outside the mask is dropped by np.where
        w_x = np.exp(-np.mean(np.abs(img[:, :, :-1] - img[:, :, 1:]), axis=-1))
        w_y = np.exp(-np.mean(np.abs(img[:, :-1] - img[:, 1:]), axis=-1))
        s_x = np.abs(d[:, :, :-1] - d[:, :, 1:]) * w_x
        s_y = np.abs(d[:, :-1] - d[:, 1:]) * w_y
    v_x = m[:, :, :-1] & m[:, :, 1:]
    v_y = m[:, :-1] & m[:, 1:]
    return float(np.mean(_masked_mean(s_x, v_x) + _masked_mean(s_y, v_y)))


# --------------------------------------------------------------------------------------------
# Agreement with the references
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_kornia(shape):
    torch = pytest.importorskip("torch")
    kornia = pytest.importorskip("kornia")
    d, img = _inputs(shape, seed=3)
    img4 = img[..., None] if img.ndim == 3 else img
    want = kornia.losses.inverse_depth_smoothness_loss(
        torch.from_numpy(d[:, None].astype(np.float64)),
        torch.from_numpy(np.moveaxis(img4, -1, 1).astype(np.float64)),
    ).item()
    got = loss_fn(d, img)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(want, np_smoothness(d, img), rtol=0, atol=1e-12)


@pytest.mark.parametrize("density", [0.3, 0.7, 1.0])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_masked_matches_numpy(shape, density):
    d, img = _inputs(shape, seed=5)
    mask = _mask(shape, density=density)
    np.testing.assert_allclose(
        loss_fn(d, img, mask), np_smoothness(d, img, mask), rtol=0, atol=1e-6
    )


def test_masked_special_images():
    """Per-image edge cases in one batch: full, empty, single pixel, one valid column."""
    shape = (4, 5, 6, 3)
    d, img = _inputs(shape, seed=7)
    mask = np.ones(shape[:3], bool)
    mask[1] = False
    mask[2] = False
    mask[2, 2, 3] = True  # a single valid pixel: no difference counts in either direction
    mask[3] = False
    mask[3, :, 4] = True  # one valid column: only y differences count
    want = np_smoothness(d, img, mask)
    np.testing.assert_allclose(loss_fn(d, img, mask), want, rtol=0, atol=1e-6)
    # Images 1 and 2 add 0; image 0 is the unmasked loss of that image.
    first = np_smoothness(d[:1], img[:1])
    col = np.abs(np.diff(d[3, :, 4].astype(np.float64)))
    col_w = np.exp(-np.mean(np.abs(np.diff(img[3, :, 4].astype(np.float64), axis=0)), axis=-1))
    np.testing.assert_allclose(want, (first + np.mean(col * col_w)) / 4, atol=1e-12)


# Hand-worked example, B=1, H=2, W=3.
#   inv_depth          image (C=1)
#   [[1, 2, 4],        [[0, 0, 1],
#    [1, 3, 3]]         [0, 0, 0]]
# x differences (d weight):  row 0: |1-2| e^0 = 1,   |2-4| e^-|0-1| = 2/e
#                            row 1: |1-3| e^0 = 2,   |3-3| e^0      = 0
#   mean_x = (3 + 2/e) / 4
# y differences:  col 0: |1-1| = 0;  col 1: |2-3| e^0 = 1;  col 2: |4-3| e^-|1-0| = 1/e
#   mean_y = (1 + 1/e) / 3
# loss = (3 + 2/e) / 4 + (1 + 1/e) / 3 = 13/12 + 5 / (6e)
# With pixel (1, 2) masked out, the differences touching it drop:
#   mean_x = (1 + 2/e + 2) / 3,  mean_y = (0 + 1) / 2,  loss = 3/2 + 2 / (3e)
# With three channels (1, 0.5, 1.5) at pixel (0, 2) and 0 elsewhere, mean_c |dI| = 1 on the
# edges touching it, so the weights and the loss are those of the grey image.
_HAND_DEPTH = np.array([[[1.0, 2.0, 4.0], [1.0, 3.0, 3.0]]], np.float32)
_HAND_GREY = np.array([[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]], np.float32)
_HAND_RGB = np.zeros((1, 2, 3, 3), np.float32)
_HAND_RGB[0, 0, 2] = (1.0, 0.5, 1.5)
_HAND_MASK = np.array([[[True, True, True], [True, True, False]]])


@pytest.mark.parametrize(
    "image", [_HAND_GREY, _HAND_GREY[..., None], _HAND_RGB], ids=["BHW", "BHW1", "rgb"]
)
def test_hand_computed(image):
    e = np.e
    np.testing.assert_allclose(loss_fn(_HAND_DEPTH, image), 13 / 12 + 5 / (6 * e), rtol=1e-6)
    np.testing.assert_allclose(
        loss_fn(_HAND_DEPTH, image, _HAND_MASK), 1.5 + 2 / (3 * e), rtol=1e-6
    )
    # A second image with an empty mask adds 0 to the batch mean.
    depth2 = np.concatenate([_HAND_DEPTH, _HAND_DEPTH])
    image2 = np.concatenate([image, image])
    mask2 = np.concatenate([_HAND_MASK, np.zeros_like(_HAND_MASK)])
    np.testing.assert_allclose(
        loss_fn(depth2, image2, mask2), (1.5 + 2 / (3 * e)) / 2, rtol=1e-6
    )


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------


def _smooth_inputs(seed=11):
    """Inputs whose differences all stay well away from 0, where |.| has its kink."""
    rng = np.random.default_rng(seed)
    b, h, w, c = SMALL
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    d = 0.3 * ii + 0.2 * jj + 0.02 * rng.standard_normal((b, h, w))
    slopes = np.array([1.0, -1.0, 0.5])[:c]
    img = 0.2 + (0.08 * ii + 0.06 * jj)[..., None] * slopes + 0.005 * rng.standard_normal(
        (b, h, w, c)
    )
    return d.astype(np.float32), img.astype(np.float32)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_check_grads(masked):
    d, img = _smooth_inputs()
    mask = _mask(SMALL, seed=13) if masked else None
    check_grads(
        lambda a, b: loss_fn(a, b, mask), (d, img), order=1, modes=("rev",),
        atol=1e-2, rtol=1e-2, eps=1e-3,
    )


def test_grad_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    kornia = pytest.importorskip("kornia")
    d, img = _smooth_inputs(seed=17)
    td = torch.from_numpy(d[:, None].astype(np.float64)).requires_grad_(True)
    ti = torch.from_numpy(np.moveaxis(img, -1, 1).astype(np.float64)).requires_grad_(True)
    kornia.losses.inverse_depth_smoothness_loss(td, ti).backward()
    g_d, g_img = jax.grad(loss_fn, argnums=(0, 1))(d, img)
    np.testing.assert_allclose(g_d, td.grad.numpy()[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(g_img, np.moveaxis(ti.grad.numpy(), 1, -1), rtol=0, atol=1e-6)


def _finite_cases():
    d, img = _inputs(SMALL, seed=19)
    const_d = np.full(SMALL[:3], 0.4, np.float32)
    const_img = np.full(SMALL, 0.6, np.float32)
    return {
        "constant_both": (const_d, const_img, None, 0.0),
        "constant_depth": (const_d, img, None, 0.0),
        "constant_depth_masked": (const_d, img, _mask(SMALL), 0.0),
        "constant_image": (d, const_img, None, None),
        "empty_mask": (d, img, np.zeros(SMALL[:3], bool), 0.0),
        "zeros": (np.zeros_like(d), np.zeros_like(img), None, 0.0),
        "huge_depth": (d * 1e6, img, None, None),
        "huge_image": (d, img * 1e6, None, None),
        "huge_both": (d * 1e6, img * 1e6, _mask(SMALL), None),
        "tiny": (d * 1e-6, img * 1e-6, None, None),
    }


FINITE_CASES = _finite_cases()


@functools.cache
def _value_and_grads(masked: bool):
    if masked:
        return jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
    return jax.jit(jax.value_and_grad(lambda a, b: loss_fn(a, b), argnums=(0, 1)))


@pytest.mark.parametrize("case", list(FINITE_CASES))
def test_finite_value_and_grads(case):
    d, img, mask, expected = FINITE_CASES[case]
    args = (d, img) if mask is None else (d, img, mask)
    value, grads = _value_and_grads(mask is not None)(*args)
    assert np.isfinite(value) and float(value) >= 0.0
    for g in grads:
        assert np.all(np.isfinite(g))
    if expected is not None:
        assert float(value) == expected
    if case == "empty_mask":
        for g in grads:
            np.testing.assert_array_equal(g, 0.0)
    np.testing.assert_allclose(value, np_smoothness(d, img, mask), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("where", ["inv_depth", "image"])
def test_nan_outside_mask_is_ignored(where):
    """Values at pixels outside the mask, NaN included, change neither value nor gradients."""
    d, img = _inputs(SMALL, seed=23)
    mask = _mask(SMALL, seed=29)
    d_bad, img_bad = d.copy(), img.copy()
    if where == "inv_depth":
        d_bad[~mask] = np.nan
    else:
        img_bad[~mask] = np.nan
    fn = _value_and_grads(True)
    v_bad, (gd_bad, _) = fn(d_bad, img_bad, mask)
    v_ref, (gd_ref, _) = fn(d, img, mask)
    assert np.isfinite(v_bad)
    np.testing.assert_allclose(v_bad, v_ref, rtol=0, atol=1e-7)
    assert np.all(np.isfinite(gd_bad))
    np.testing.assert_allclose(gd_bad, gd_ref, rtol=0, atol=1e-7)


@pytest.mark.parametrize("shape", [(2, 1, 6), (2, 6, 1)], ids=str)
def test_single_row_or_column(shape):
    """One direction has no differences at all: it must not make the loss NaN. The shape is
    accepted and scored like an all-true mask, whose empty direction adds 0 (the value is
    the other direction's term alone, which the NumPy reference computes)."""
    rng = np.random.default_rng(31)
    d = rng.random(shape).astype(np.float32)
    img = rng.random((*shape, 3)).astype(np.float32)
    value = loss_fn(d, img)
    assert np.isfinite(value) and value > 0
    np.testing.assert_allclose(value, np_smoothness(d, img), rtol=1e-6)
    np.testing.assert_allclose(value, loss_fn(d, img, np.ones(shape, bool)), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    shift=st.floats(-5.0, 5.0),
    scale=st.sampled_from([0.25, 0.5, 3.0, -1.0, -2.0]),
    masked=st.booleans(),
)
def test_shift_invariance_and_scale_linearity(seed, shift, scale, masked):
    d, img = _inputs(SMALL, seed=seed % 1000)
    mask = _mask(SMALL, seed=seed % 997) if masked else None
    base = float(loss_fn(d, img, mask))
    np.testing.assert_allclose(loss_fn(d + np.float32(shift), img, mask), base, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(loss_fn(d * np.float32(scale), img, mask), abs(scale) * base,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss_fn(np.full_like(d, shift), img, mask), 0.0, atol=0)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_flip_and_transpose_symmetry(masked):
    d, img = _inputs(SMALL, seed=37)
    mask = _mask(SMALL, seed=41) if masked else None
    base = loss_fn(d, img, mask)
    flip = lambda a, axis: None if a is None else np.ascontiguousarray(np.flip(a, axis))
    for axis in (1, 2):  # reversed differences have the same magnitude
        np.testing.assert_allclose(
            loss_fn(flip(d, axis), flip(img, axis), flip(mask, axis)), base, rtol=1e-6
        )
    # Swapping H and W swaps the two directions, whose sum is unchanged.
    tr = lambda a: None if a is None else np.ascontiguousarray(np.swapaxes(a, 1, 2))
    np.testing.assert_allclose(loss_fn(tr(d), tr(img), tr(mask)), base, rtol=1e-6)


def test_mask_semantics():
    d, img = _inputs(SMALL, seed=43)
    mask = _mask(SMALL, seed=47)
    # An all-true mask is no mask; the mask is read as bool whatever its dtype.
    np.testing.assert_allclose(loss_fn(d, img, np.ones(SMALL[:3], bool)), loss_fn(d, img),
                               rtol=1e-6)
    base = loss_fn(d, img, mask)
    np.testing.assert_allclose(loss_fn(d, img, mask.astype(np.float32)), base, atol=0)
    # Values at invalid pixels do not matter.
    rng = np.random.default_rng(53)
    d2 = np.where(mask, d, rng.random(d.shape) * 100).astype(np.float32)
    img2 = np.where(mask[..., None], img, rng.random(img.shape)).astype(np.float32)
    np.testing.assert_allclose(loss_fn(d2, img2, mask), base, rtol=0, atol=1e-7)
    # Edges of the image lower the weight: the same depth step costs less across an image edge.
    step = np.zeros((1, 4, 4), np.float32)
    step[..., 2:] = 1.0
    flat = np.zeros((1, 4, 4, 3), np.float32)
    edge = np.broadcast_to(step[..., None], (1, 4, 4, 3)).astype(np.float32)
    assert float(loss_fn(step, edge)) < float(loss_fn(step, flat))


def test_output_shape_dtype_jit_vmap():
    d, img = _inputs(SMALL, seed=59)
    mask = _mask(SMALL, seed=61)
    for dd, ii in [(d, img), (d.astype(np.float64), img.astype(np.float64))]:
        for m in (None, mask):
            out = loss_fn(dd, ii, m)
            assert out.shape == () and out.dtype == jnp.float32
    # Under an outer jit with a traced mask.
    jitted = jax.jit(lambda a, b, m: loss_fn(a, b, m))(d, img, mask)
    np.testing.assert_allclose(jitted, np_smoothness(d, img, mask), atol=1e-6)
    # vmap over a leading axis equals a loop.
    rng = np.random.default_rng(67)
    ds = rng.random((3, *SMALL[:3])).astype(np.float32)
    imgs = rng.random((3, *SMALL)).astype(np.float32)
    masks = rng.random((3, *SMALL[:3])) > 0.3
    batched = jax.vmap(loss_fn)(ds, imgs, masks)
    assert batched.shape == (3,)
    want = [np_smoothness(ds[i], imgs[i], masks[i]) for i in range(3)]
    np.testing.assert_allclose(batched, want, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------------

_D = np.zeros((2, 6, 7), np.float32)
_IMG = np.zeros((2, 6, 7, 3), np.float32)

BAD_ARGS = {
    "depth_2d": (np.zeros((6, 7), np.float32), np.zeros((6, 7), np.float32), None, "inv_depth"),
    "depth_nchw": (np.zeros((2, 1, 6, 7), np.float32), _IMG, None, "inv_depth"),
    "image_2d": (_D, np.zeros((6, 7), np.float32), None, "image"),
    "image_5d": (_D, np.zeros((2, 6, 7, 3, 1), np.float32), None, "image"),
    "image_nchw": (_D, np.zeros((2, 3, 6, 7), np.float32), None, "image"),
    "image_width": (_D, np.zeros((2, 6, 8, 3), np.float32), None, "image"),
    "image_batch": (_D, np.zeros((1, 6, 7, 3), np.float32), None, "image"),
    "image_grey_height": (_D, np.zeros((2, 5, 7), np.float32), None, "image"),
    "mask_width": (_D, _IMG, np.ones((2, 6, 6), bool), "mask"),
    "mask_channel": (_D, _IMG, np.ones((2, 6, 7, 1), bool), "mask"),
    "mask_batch": (_D, _IMG, np.ones((1, 6, 7), bool), "mask"),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments_raise_at_trace_time(case):
    d, img, mask, name = BAD_ARGS[case]
    with pytest.raises(ValueError, match=f"`{name}`"):
        jax.eval_shape(loss_fn, d, img, mask)
    with pytest.raises(ValueError, match=f"`{name}`"):
        loss_fn(d, img, mask)
