"""Relative-depth metrics against float64 NumPy references and hand-computed cases."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depthsense_jax import metrics, sampling

STD = (2, 16, 16)

# ---------------------------------------------------------------------------------------------
# float64 NumPy references
# ---------------------------------------------------------------------------------------------


def ref_label(a: float, b: float, sigma: float) -> int:
    """Ordinal label of two positive values by the ratio rule (equal values are "equal",
    also at sigma 0)."""
    if a == b:
        return 0
    if a / b >= 1.0 + sigma:
        return 1
    if a / b <= 1.0 / (1.0 + sigma):
        return -1
    return 0


def ref_align_for_whdr(pred, target, fit_mask) -> np.ndarray:
    """One image's prediction aligned to the target by least squares over `fit_mask`, the
    scale clamped at 0 (a constant map when it would be negative)."""
    p, g = pred[fit_mask], target[fit_mask]
    if p.size < 2 or np.var(p) <= 1e-10 * np.mean(p * p):
        return np.full_like(pred, g.mean() if g.size else 0.0)
    (s, t), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], axis=1), g, rcond=None)
    return np.full_like(pred, g.mean()) if s <= 0 else s * pred + t


def ref_label_any(a: float, b: float, sigma: float) -> int:
    """The ratio rule written for any sign (an aligned prediction may be <= 0)."""
    if a > b and a - b >= sigma * abs(b):
        return 1
    if b > a and b - a >= sigma * abs(a):
        return -1
    return 0


def ref_whdr(pred, target, idx_a, idx_b, valid, sigma, mask=None) -> np.ndarray:
    out = []
    for i in range(pred.shape[0]):
        fit = np.ones(pred.shape[1:], bool) if mask is None else mask[i]
        p = ref_align_for_whdr(pred[i], target[i], fit).ravel()
        g = target[i].ravel()
        m = None if mask is None else mask[i].ravel()
        wrong = counted = 0
        for a, b, v in zip(idx_a[i], idx_b[i], valid[i], strict=True):
            if not v or (m is not None and not (m[a] and m[b])):
                continue
            counted += 1
            wrong += ref_label_any(p[a], p[b], sigma) != ref_label(g[a], g[b], sigma)
        out.append(wrong / counted if counted else 0.0)
    return np.asarray(out)


def ref_align_one(pred, target, fit_mask) -> np.ndarray:
    """s pred + t everywhere, (s, t) by least squares over `fit_mask`."""
    p, g = pred[fit_mask], target[fit_mask]
    (s, t), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], axis=1), g, rcond=None)
    return s * pred + t


def ref_abs_rel_delta1(pred, target, mask) -> tuple[np.ndarray, np.ndarray]:
    abs_rel, delta1 = [], []
    for p, g, m in zip(pred, target, mask, strict=True):
        valid = m & (np.nan_to_num(g, nan=-1.0) > 0)
        if not valid.any():
            abs_rel.append(0.0)
            delta1.append(0.0)
            continue
        a = ref_align_one(p, np.where(valid, g, 0.0), valid)[valid]
        gv = g[valid]
        abs_rel.append(np.mean(np.abs(a - gv) / gv))
        with np.errstate(divide="ignore"):
            hit = (a > 0) & (np.maximum(a / gv, gv / a) < 1.25)
        delta1.append(np.mean(hit))
    return np.asarray(abs_rel), np.asarray(delta1)


def ref_mse(pred, target, mask=None) -> np.ndarray:
    out = []
    for i in range(pred.shape[0]):
        m = np.ones(pred.shape[1:], bool) if mask is None else mask[i]
        out.append(np.mean((pred[i][m] - target[i][m]) ** 2) if m.any() else 0.0)
    return np.asarray(out)


def _gaussian(window_size: int, sigma: float) -> np.ndarray:
    x = np.arange(window_size) - window_size // 2
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _blur_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Valid separable correlation of a 2-D map with the 1-D taps g."""
    n = len(g)
    h, w = x.shape
    rows = sum(g[i] * x[i : h - n + 1 + i, :] for i in range(n))
    return sum(g[j] * rows[:, j : w - n + 1 + j] for j in range(n))


def ref_ssim(x, y, *, window_size=11, sigma=1.5, c1=0.01**2, c2=0.03**2, padding="zeros",
             mask=None) -> np.ndarray:
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim == 3:
        x, y = x[..., None], y[..., None]
    g = _gaussian(window_size, sigma)
    r = window_size // 2
    floor = float(np.finfo(np.float32).eps) ** 2
    out = []
    for i in range(x.shape[0]):
        m = np.ones(x.shape[1:3], bool) if mask is None else mask[i]
        maps = []
        for c in range(x.shape[-1]):
            a = np.where(m, x[i, ..., c], 0.0)
            b = np.where(m, y[i, ..., c], 0.0)
            if padding == "zeros":
                a, b = np.pad(a, r), np.pad(b, r)
            elif padding == "reflect":
                a, b = np.pad(a, r, mode="reflect"), np.pad(b, r, mode="reflect")
            mu_a, mu_b = _blur_valid(a, g), _blur_valid(b, g)
            var_a = np.maximum(_blur_valid(a * a, g) - mu_a**2, floor)
            var_b = np.maximum(_blur_valid(b * b, g) - mu_b**2, floor)
            cov = _blur_valid(a * b, g) - mu_a * mu_b
            cov = np.sign(cov) * np.minimum(np.sqrt(var_a * var_b), np.abs(cov))
            maps.append(
                (2 * mu_a * mu_b + c1) * (2 * cov + c2)
                / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
            )
        weight = m[r:-r, r:-r] if padding == "valid" else m
        values = np.concatenate([s[weight] for s in maps])
        out.append(values.mean() if values.size else 0.0)
    return np.asarray(out)


def f64(x) -> np.ndarray:
    return np.asarray(x, np.float32).astype(np.float64)


def make_pairs(rng, shape, num_pairs: int, invalid_fraction: float = 0.2):
    b, h, w = shape
    idx_a = rng.integers(0, h * w, (b, num_pairs))
    idx_b = rng.integers(0, h * w, (b, num_pairs))
    valid = rng.random((b, num_pairs)) >= invalid_fraction
    return idx_a, idx_b, valid


def as_pairs(idx_a, idx_b, valid) -> sampling.Pairs:
    return sampling.Pairs(
        jnp.asarray(idx_a, jnp.int32), jnp.asarray(idx_b, jnp.int32), jnp.asarray(valid, bool)
    )


def positive_depth(rng, shape=STD) -> np.ndarray:
    return rng.uniform(0.1, 1.0, shape).astype(np.float32)


def noisy_pred(rng, target, noise=0.3) -> np.ndarray:
    """Monotone-ish, not affine: some orders flip."""
    return (np.sqrt(target) * np.exp(noise * rng.normal(size=target.shape))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# WHDR
# ---------------------------------------------------------------------------------------------


def test_whdr_hand_computed():
    """Flat target g = [1, 2, 3, 4], pred p = [1, 2, 4, 3] (the last two swapped).

    Alignment over all pixels: mean p = mean g = 2.5, cov(p, g) = 1, var(p) = 1.25, so
    s = 0.8, t = 0.5 and the aligned prediction is [1.3, 2.1, 3.7, 2.9].

    sigma 0.02:
    pair (a, b)  target label  aligned label
    (0, 1)       -1            -1
    (2, 3)       -1            +1  wrong
    (0, 3)       -1            -1
    (1, 2)       -1            -1             -> 1/4
    sigma 0.6 (1/1.6 = 0.625):
    (0, 1)       -1 (0.5)      -1 (0.619)
    (2, 3)        0 (0.75)      0 (1.276)
    (0, 3)       -1            -1
    (1, 2)        0 (0.667)    -1 (0.568) wrong -> 1/4
    """
    target = np.array([[[1.0, 2.0], [3.0, 4.0]]], np.float32)
    pred = np.array([[[1.0, 2.0], [4.0, 3.0]]], np.float32)
    idx_a, idx_b = np.array([[0, 2, 0, 1]]), np.array([[1, 3, 3, 2]])
    all_valid = np.ones((1, 4), bool)
    pairs = as_pairs(idx_a, idx_b, all_valid)
    got = metrics.whdr(pred, target, pairs)
    assert got.shape == (1,) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), [0.25])
    np.testing.assert_allclose(np.asarray(metrics.whdr(pred, target, pairs, sigma=0.6)), [0.25])
    # an invalid pair does not count
    np.testing.assert_allclose(
        np.asarray(metrics.whdr(pred, target, as_pairs(idx_a, idx_b, [[1, 0, 1, 1]]))), [0.0]
    )
    # The raw ratio rule would call all four pairs of pred + 100 "equal" (WHDR 1); aligned,
    # it is the same prediction.
    np.testing.assert_allclose(np.asarray(metrics.whdr(pred + 100.0, target, pairs)), [0.25])
    # mask: pixel 3 out (alignment over [0, 1, 2]: p = g there, so exact): only pairs (0, 1)
    # and (1, 2) count, both right.
    no_3 = np.array([[[True, True], [True, False]]])
    np.testing.assert_allclose(np.asarray(metrics.whdr(pred, target, pairs, mask=no_3)), [0.0])


@pytest.mark.parametrize("offset", [1.0, 10.0, 100.0, -3.0])
@pytest.mark.parametrize("scale", [1.0, 0.01, 37.0])
def test_whdr_ignores_the_predictions_scale_and_shift(scale, offset, rng):
    """The ranking loss leaves the prediction's offset free; so must WHDR (the raw ratio rule
    gave 4% -> 6%, 39%, 98% for offsets 1, 10, 100)."""
    target = positive_depth(rng, (2, 32, 32))
    pred = noisy_pred(rng, target, noise=0.1)
    mask = rng.random((2, 32, 32)) < 0.8
    pairs = sampling.random_pairs(jax.random.key(1), mask, 2000)
    base = np.asarray(metrics.whdr(pred, target, pairs, mask=mask))
    moved = np.asarray(metrics.whdr(scale * pred + offset, target, pairs, mask=mask))
    assert 0.02 < base.min() and base.max() < 0.5
    np.testing.assert_allclose(moved, base, atol=1.5 / 2000)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), log_a=st.floats(-3, 3), c=st.floats(-50, 50))
def test_whdr_affine_invariance_property(seed, log_a, c):
    """WHDR(a * pred + b) == WHDR(pred) for a > 0, with the shift b = a * c up to 50 times
    the prediction's scale. (Much larger shifts quantise the float32 input itself: at
    a = 1e-3, b = 26 the map keeps only ~250 distinct levels, and ties change labels.)"""
    rng = np.random.default_rng(seed)
    target = positive_depth(rng, (1, 12, 12))
    pred = noisy_pred(rng, target, noise=0.2)
    pairs = as_pairs(*make_pairs(rng, (1, 12, 12), 300))
    a = 10.0**log_a
    base = np.asarray(metrics.whdr(pred, target, pairs))
    moved = np.asarray(metrics.whdr((a * pred + a * c).astype(np.float32), target, pairs))
    # Float32 rounding can move a pair that sits exactly on the sigma boundary: at most one.
    assert abs(float(moved[0]) - float(base[0])) <= 1 / 200 + 1e-6


def test_counted_pairs():
    idx_a, idx_b = np.array([[0, 0, 1, 3]] * 2), np.array([[1, 2, 3, 0]] * 2)
    valid = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    mask = np.array([[[True, True], [True, True]], [[True, False], [True, True]]])
    got = metrics.counted_pairs(as_pairs(idx_a, idx_b, valid), mask)
    np.testing.assert_array_equal(np.asarray(got), [3, 2])


def test_whdr_per_image_and_no_counted_pair_is_zero():
    target = np.array([[[1.0, 2.0], [1.01, 0.5]]] * 3, np.float32)
    pred = np.array([[[3.0, 1.0], [3.0, 0.0]]] * 3, np.float32)
    idx_a = np.array([[0, 0, 1, 3]] * 3)
    idx_b = np.array([[1, 2, 3, 0]] * 3)
    valid = np.array([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]], bool)
    mask = np.ones((3, 2, 2), bool)
    mask[2] = False
    got = metrics.whdr(pred, target, as_pairs(idx_a, idx_b, valid), mask=mask)
    assert got.shape == (3,) and got.dtype == jnp.float32
    first = ref_whdr(f64(pred[:1]), f64(target[:1]), idx_a[:1], idx_b[:1], valid[:1], 0.02)
    assert 0 < first[0] < 1
    np.testing.assert_allclose(np.asarray(got), [first[0], 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("sigma", [0.0, 0.02, 0.1])
@pytest.mark.parametrize("use_mask", [False, True])
def test_whdr_matches_reference(sigma, use_mask, rng):
    target = positive_depth(rng)
    pred = noisy_pred(rng, target)
    mask = (rng.random(STD) < 0.7) if use_mask else None
    idx_a, idx_b, valid = make_pairs(rng, STD, 200)
    got = metrics.whdr(pred, target, as_pairs(idx_a, idx_b, valid), sigma=sigma, mask=mask)
    want = ref_whdr(f64(pred), f64(target), idx_a, idx_b, valid, sigma, mask)
    assert got.shape == (2,) and got.dtype == jnp.float32
    assert 0.05 < want.min() and want.max() < 0.95  # a meaningful mix of right and wrong
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-7)


def test_whdr_of_target_is_zero_and_of_reversed_order_is_one(rng):
    target = positive_depth(rng)
    idx_a, idx_b, valid = make_pairs(rng, STD, 300, invalid_fraction=0.0)
    pairs = as_pairs(idx_a, idx_b, valid)
    np.testing.assert_array_equal(np.asarray(metrics.whdr(target, target, pairs)), [0.0, 0.0])
    # An affine map with positive scale keeps the order (labels may change near sigma only
    # through the shift, so use a pure positive scale here).
    np.testing.assert_array_equal(np.asarray(metrics.whdr(7.0 * target, target, pairs)), [0, 0])
    labels = np.asarray(sampling.ordinal_labels(target, pairs, 0.02))
    ordered = as_pairs(idx_a, idx_b, labels != 0)
    assert (labels != 0).sum(axis=1).min() > 100
    np.testing.assert_array_equal(np.asarray(metrics.whdr(1.0 / target, target, ordered)), [1, 1])
    np.testing.assert_array_equal(np.asarray(metrics.whdr(-target, target, ordered)), [1, 1])


def test_whdr_pixels_outside_mask_have_no_effect(rng):
    target = positive_depth(rng)
    pred = noisy_pred(rng, target)
    mask = rng.random(STD) < 0.6
    pairs = as_pairs(*make_pairs(rng, STD, 200))
    want = np.asarray(metrics.whdr(pred, target, pairs, mask=mask))
    pred2 = np.where(mask, pred, rng.uniform(-5, 5, STD)).astype(np.float32)
    target2 = np.where(mask, target, np.nan).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(metrics.whdr(pred2, target2, pairs, mask=mask)), want)


def test_whdr_with_sampled_pairs(rng):
    """Works with the package's own samplers (Pairs from random_pairs)."""
    target = positive_depth(rng)
    mask = rng.random(STD) < 0.8
    pairs = sampling.random_pairs(jax.random.key(0), mask, 100)
    pred = noisy_pred(rng, target)
    got = np.asarray(metrics.whdr(pred, target, pairs, mask=mask))
    want = ref_whdr(f64(pred), f64(target), *(np.asarray(x) for x in pairs), 0.02, mask)
    np.testing.assert_allclose(got, want, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# alignment, AbsRel, delta1
# ---------------------------------------------------------------------------------------------


def test_align_abs_rel_delta1_hand_computed():
    """Valid pixels: first row (the second row has NaN outside the mask, 0 and -1 inside).

    pred [0, 1, 2], target [1, 2, 6]: s = 2.5, t = 0.5, aligned [0.5, 3, 5.5];
    AbsRel = (0.5/1 + 1/2 + 0.5/6) / 3 = 13/36; ratios 2, 1.5, 12/11: delta1 = 1/3.
    """
    pred = np.array([[[0.0, 1.0, 2.0], [5.0, 7.0, 3.0]]], np.float32)
    target = np.array([[[1.0, 2.0, 6.0], [np.nan, 0.0, -1.0]]], np.float32)
    mask = np.array([[[True, True, True], [False, True, True]]])
    np.testing.assert_allclose(np.asarray(metrics.abs_rel(pred, target, mask)), [13 / 36], 1e-6)
    np.testing.assert_allclose(np.asarray(metrics.delta1(pred, target, mask)), [1 / 3], 1e-6)
    first_row = np.array([[[True, True, True], [False, False, False]]])
    aligned = np.asarray(metrics.align_scale_shift(pred, target, first_row))
    np.testing.assert_allclose(aligned, 2.5 * pred + 0.5, rtol=1e-6)
    # target [1, 2, 4]: s = 1.5, t = 5/6, aligned [5/6, 7/3, 23/6]: AbsRel (1/6 + 1/6 + 1/24) / 3;
    # ratios 1.2, 7/6, 24/23 are all below 1.25.
    target = np.array([[[1.0, 2.0, 4.0], [np.nan, 0.0, -1.0]]], np.float32)
    np.testing.assert_allclose(np.asarray(metrics.abs_rel(pred, target, mask)), [0.125], 1e-6)
    np.testing.assert_allclose(np.asarray(metrics.delta1(pred, target, mask)), [1.0], 1e-6)


def test_delta1_counts_non_positive_aligned_values_as_misses():
    """pred [0, 1, 2, 3], target [1, 1.1, 10, 30]: s = 9.59, t = -3.86, aligned
    [-3.86, 5.73, 15.32, 24.91]; only the last pixel is within 1.25 (30 / 24.91 = 1.204)."""
    pred = np.array([[[0.0, 1.0], [2.0, 3.0]]], np.float32)
    target = np.array([[[1.0, 1.1], [10.0, 30.0]]], np.float32)
    mask = np.ones(pred.shape, bool)
    aligned = np.asarray(metrics.align_scale_shift(pred, target, mask))
    np.testing.assert_allclose(aligned.ravel(), 9.59 * np.arange(4) - 3.86, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(metrics.delta1(pred, target, mask)), [0.25], 1e-6)
    want = (4.86 / 1.0 + (5.73 - 1.1) / 1.1 + (15.32 - 10.0) / 10.0 + (30.0 - 24.91) / 30.0) / 4
    np.testing.assert_allclose(np.asarray(metrics.abs_rel(pred, target, mask)), [want], 1e-5)


@pytest.mark.parametrize("mask_kind", ["full", "random", "one_empty"])
def test_align_scale_shift_matches_reference(mask_kind, rng):
    target = positive_depth(rng)
    pred = noisy_pred(rng, target) - 0.5
    mask = np.ones(STD, bool) if mask_kind == "full" else rng.random(STD) < 0.6
    if mask_kind == "one_empty":
        mask[1] = False
    got = np.asarray(metrics.align_scale_shift(pred, target, mask))
    assert got.shape == STD and got.dtype == np.float32
    for i in range(2):
        if mask[i].any():
            want = ref_align_one(f64(pred[i]), f64(target[i]), mask[i])
            np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5)
        else:
            assert np.all(np.isfinite(got[i]))


@pytest.mark.parametrize("scale, shift", [(2.0, 0.5), (-0.3, 4.0), (1e-3, 1e-2), (50.0, -20.0)])
def test_align_scale_shift_recovers_affine_map(scale, shift, rng):
    pred = rng.normal(size=STD).astype(np.float32)
    mask = rng.random(STD) < 0.5
    exact = scale * f64(pred) + shift
    target = np.where(mask, exact, np.nan).astype(np.float32)  # NaN outside: never read
    got = np.asarray(metrics.align_scale_shift(pred, target, mask))
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5 * abs(shift) + 1e-6)


@pytest.mark.parametrize("mask_kind", ["full", "random", "with_nonpositive", "one_empty"])
def test_abs_rel_delta1_match_reference(mask_kind, rng):
    target = positive_depth(rng)
    pred = noisy_pred(rng, target, noise=0.4)
    mask = np.ones(STD, bool) if mask_kind == "full" else rng.random(STD) < 0.7
    if mask_kind == "with_nonpositive":  # target <= 0 inside the mask: those pixels don't count
        target = np.where(rng.random(STD) < 0.2, -rng.random(STD), target).astype(np.float32)
        target[0, 0, :4] = 0.0
    if mask_kind == "one_empty":
        mask[1] = False
    want_abs_rel, want_delta1 = ref_abs_rel_delta1(f64(pred), f64(target), mask)
    got_abs_rel = metrics.abs_rel(pred, target, mask)
    got_delta1 = metrics.delta1(pred, target, mask)
    for got in (got_abs_rel, got_delta1):
        assert got.shape == (2,) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got_abs_rel), want_abs_rel, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(got_delta1), want_delta1, rtol=1e-6, atol=1e-7)
    if mask_kind != "one_empty":
        assert 0.05 < want_delta1.min() and want_delta1.max() < 0.95


@pytest.mark.parametrize("scale, shift", [(1.0, 0.0), (3.0, -0.2), (-2.0, 5.0), (1e-3, 1e-3)])
def test_abs_rel_zero_and_delta1_one_for_affine_pred(scale, shift, rng):
    target = positive_depth(rng)
    mask = rng.random(STD) < 0.7
    pred = ((f64(target) - shift) / scale).astype(np.float32)
    np.testing.assert_allclose(np.asarray(metrics.abs_rel(pred, target, mask)), 0.0, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(metrics.delta1(pred, target, mask)), [1.0, 1.0])


def test_abs_rel_delta1_mask_handling(rng):
    target = positive_depth(rng)
    pred = noisy_pred(rng, target)
    mask = rng.random(STD) < 0.5
    pred2 = np.where(mask, pred, rng.uniform(-9, 9, STD)).astype(np.float32)
    target2 = np.where(mask, target, np.nan).astype(np.float32)
    for metric in (metrics.abs_rel, metrics.delta1):
        want = np.asarray(metric(pred, target, mask))
        got = np.asarray(metric(pred2, target2, mask))
        np.testing.assert_allclose(got, want, rtol=1e-6)
    empty = np.zeros(STD, bool)
    for metric in (metrics.abs_rel, metrics.delta1, metrics.mse):
        np.testing.assert_array_equal(np.asarray(metric(pred, target, empty)), [0.0, 0.0])


# ---------------------------------------------------------------------------------------------
# MSE
# ---------------------------------------------------------------------------------------------


def test_mse_hand_computed():
    pred = np.array([[[1.0, 2.0], [3.0, 4.0]]], np.float32)
    target = np.array([[[0.0, 0.0], [3.0, np.nan]]], np.float32)
    mask = np.array([[[True, True], [True, False]]])
    np.testing.assert_allclose(np.asarray(metrics.mse(pred, target, mask)), [5 / 3], rtol=1e-6)
    zeros = np.zeros_like(target)
    np.testing.assert_allclose(np.asarray(metrics.mse(pred, zeros)), [7.5], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(metrics.mse(pred, zeros, ~np.ones_like(mask))), [0.0])


@pytest.mark.parametrize("use_mask", [False, True])
def test_mse_matches_reference(use_mask, rng):
    target = positive_depth(rng)
    pred = noisy_pred(rng, target)
    mask = (rng.random(STD) < 0.6) if use_mask else None
    got = metrics.mse(pred, target, mask)
    assert got.shape == (2,) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), ref_mse(f64(pred), f64(target), mask), rtol=1e-5)
    if use_mask:  # no alignment, and outside the mask nothing counts
        pred2 = np.where(mask, pred, np.nan).astype(np.float32)
        np.testing.assert_allclose(np.asarray(metrics.mse(pred2, target, mask)), np.asarray(got))


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------


def test_validation_ssim_and_mse_are_of_the_aligned_prediction(rng):
    """Training's validation scores SSIM and MSE of the prediction after per-image
    scale-and-shift alignment to the target over the mask (SSIM of the alignment clipped to
    [0, 1]): against the float64 references of both steps."""
    from depthsense_jax.train import steps

    target = rng.random(STD).astype(np.float32)
    mask = rng.random(STD) < 0.8
    pred = (3.0 * target + 2.0 + 0.3 * rng.normal(size=STD)).astype(np.float32)
    batch = {"image": np.zeros((*STD, 3), np.float32), "depth": target, "mask": mask}
    scores = steps.validation_scores(jax.random.PRNGKey(0), jnp.asarray(pred), batch,
                                     {"ranking": 1.0}, None, num_pairs=50)["metrics"]
    aligned = np.stack([ref_align_one(pred[i], target[i], mask[i]) for i in range(2)])
    np.testing.assert_allclose(np.asarray(scores["mse"]), ref_mse(aligned, target, mask),
                               rtol=1e-4)
    want = ref_ssim(np.clip(aligned, 0, 1), target, mask=mask)
    np.testing.assert_allclose(np.asarray(scores["ssim"]), want, rtol=1e-4, atol=1e-5)


def _smooth_images(rng, shape):
    """Images in [0, 1] with structure at several scales, and a distorted copy."""
    x = rng.random(shape)
    x = 0.5 * x + 0.5 * np.cumsum(rng.random(shape), axis=2) / shape[2]
    y = np.clip(0.8 * x + 0.1 + 0.1 * rng.normal(size=shape), 0.0, 1.0)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize(
    "channels, padding, use_mask, window",
    [
        (None, "zeros", False, (11, 1.5)),
        (None, "zeros", True, (11, 1.5)),
        (None, "reflect", True, (11, 1.5)),
        (None, "valid", False, (11, 1.5)),
        (None, "valid", True, (11, 1.5)),
        (3, "zeros", True, (11, 1.5)),
        (3, "reflect", False, (11, 1.5)),
        (None, "zeros", True, (7, 1.0)),
    ],
)
def test_ssim_matches_reference(channels, padding, use_mask, window, rng):
    shape = STD if channels is None else (*STD, channels)
    x, y = _smooth_images(rng, shape)
    mask = (rng.random(STD) < 0.7) if use_mask else None
    window_size, sigma = window
    got = metrics.ssim(x, y, window_size=window_size, sigma=sigma, padding=padding, mask=mask)
    want = ref_ssim(x, y, window_size=window_size, sigma=sigma, padding=padding, mask=mask)
    assert got.shape == (2,) and got.dtype == jnp.float32
    assert 0.2 < want.min() and want.max() < 0.95
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_ssim_identity_empty_mask_and_mask_handling(rng):
    x, y = _smooth_images(rng, STD)
    mask = rng.random(STD) < 0.7
    np.testing.assert_allclose(np.asarray(metrics.ssim(x, x, mask=mask)), [1.0, 1.0], atol=1e-5)
    empty = np.zeros(STD, bool)
    np.testing.assert_array_equal(np.asarray(metrics.ssim(x, y, mask=empty)), [0.0, 0.0])
    want = np.asarray(metrics.ssim(x, y, mask=mask))
    x2 = np.where(mask, x, np.nan).astype(np.float32)
    y2 = np.where(mask, y, 7.0).astype(np.float32)
    np.testing.assert_allclose(np.asarray(metrics.ssim(x2, y2, mask=mask)), want, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------

_G = np.ones(STD, np.float32)
_M = np.ones(STD, bool)


@pytest.mark.parametrize("metric", [metrics.align_scale_shift, metrics.abs_rel, metrics.delta1,
                                    metrics.mse])
@pytest.mark.parametrize(
    "pred, target, mask, name",
    [
        (np.ones((16, 16), np.float32), np.ones((16, 16), np.float32), _M[0], "pred"),
        (_G, np.ones((2, 16, 15), np.float32), _M, "target"),
        (_G, _G, np.ones((2, 15, 16), bool), "mask"),
    ],
    ids=["pred_rank", "target_shape", "mask_shape"],
)
def test_dense_metrics_bad_arguments(metric, pred, target, mask, name):
    with pytest.raises(ValueError, match=f"`{name}"):
        metric(pred, target, mask)


def test_whdr_bad_arguments(rng):
    pairs = as_pairs(*make_pairs(rng, STD, 10))
    with pytest.raises(ValueError, match="`pred`"):
        metrics.whdr(_G[0], _G[0], pairs)
    with pytest.raises(ValueError, match="`target`"):
        metrics.whdr(_G, _G[:1], pairs)
    with pytest.raises(ValueError, match="`mask`"):
        metrics.whdr(_G, _G, pairs, mask=_M[:, :4])
    with pytest.raises(ValueError, match="`pairs"):
        metrics.whdr(_G, _G, tuple(pairs))
    with pytest.raises(ValueError, match="`pairs"):
        metrics.whdr(_G[:1], _G[:1], pairs)
