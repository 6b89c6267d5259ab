"""Tests for depthsense_jax.sampling: random and edge-guided point pairs, ordinal labels.

Every distinct shape / static argument costs a compilation, so most tests share a few
signatures: random pairs on (16, 7, 9) masks with 50 pairs, edge-guided sampling on
(2, 40, 44, 3) images with 100 anchors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from depthsense_jax import sampling
from depthsense_jax.sampling import Pairs

KEY = jax.random.key(0)
H, W = 40, 44  # edge-guided image size
K = 100  # anchors per image in the edge-guided tests
MH, MW = 7, 9  # random-pair mask size
NP = 50  # random pairs per image


# ----------------------------------------------------------------------------- helpers


def _mask(name: str, h: int = MH, w: int = MW) -> np.ndarray:
    """Odd (H, W) masks used to check that pairs land only on valid pixels."""
    m = np.zeros((h, w), bool)
    if name == "full":
        m[:] = True
    elif name == "ring":
        m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = True
    elif name == "row":
        m[3, :] = True
    elif name == "column":
        m[:, w - 1] = True
    elif name == "scattered":
        m = np.random.default_rng(1).random((h, w)) < 0.25
    elif name == "two":
        m[0, 0] = m[h - 1, w - 1] = True
    elif name == "checker":
        m = (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0
    elif name == "last_pixel":
        m[h - 1, w - 1] = True
    elif name == "first_pixel":
        m[0, 0] = True
    elif name == "empty":
        pass
    else:
        raise KeyError(name)
    return m


VALID_MASKS = ["full", "ring", "row", "column", "scattered", "two", "checker"]
TOO_FEW_MASKS = ["empty", "last_pixel", "first_pixel"]


def _batch(names: list[str], batch: int = 16) -> np.ndarray:
    """A (batch, MH, MW) stack cycling through the named masks."""
    return np.stack([_mask(names[i % len(names)]) for i in range(batch)])


def _np_pairs(pairs: Pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.asarray(pairs.idx_a), np.asarray(pairs.idx_b), np.asarray(pairs.valid)


def _check_pair_types(pairs: Pairs, shape: tuple[int, ...]) -> None:
    assert isinstance(pairs, Pairs)
    assert pairs.idx_a.shape == shape and pairs.idx_b.shape == shape
    assert pairs.valid.shape == shape
    assert pairs.idx_a.dtype == jnp.int32 and pairs.idx_b.dtype == jnp.int32
    assert pairs.valid.dtype == jnp.bool_


def _assert_pairs_equal(p: Pairs, q: Pairs) -> None:
    for x, y in zip(p, q, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# Bright side of each synthetic step, as a predicate on (row, col) that extends past the image.
STEPS = {
    "vertical": lambda r, c: c >= 20,  # dark left, bright right: edge pixels in columns 19, 20
    "vertical_flipped": lambda r, c: c < 20,  # bright left, dark right
    "horizontal": lambda r, c: r >= 20,  # edge pixels in rows 19, 20
    "diagonal": lambda r, c: r + c >= 40,
    "antidiagonal": lambda r, c: r - c >= -2,
    "near_left": lambda r, c: c >= 3,  # edges near the frame: many points need clipping
    "near_right": lambda r, c: c < 41,
}
# Unit normal (row, col) of each step, from dark to bright.
NORMALS = {
    "vertical": (0.0, 1.0),
    "vertical_flipped": (0.0, -1.0),
    "horizontal": (1.0, 0.0),
    "diagonal": (2**-0.5, 2**-0.5),
    "antidiagonal": (2**-0.5, -(2**-0.5)),
    "near_left": (0.0, 1.0),
    "near_right": (0.0, -1.0),
}


def _step_images(*kinds: str) -> np.ndarray:
    """(len(kinds), H, W, 3) float32 0/1 step images."""
    r, c = np.mgrid[0:H, 0:W]
    grey = np.stack([STEPS[k](r, c) for k in kinds]).astype(np.float32)
    return np.repeat(grey[..., None], 3, axis=-1)


def _check_step_points(kinds, pts, min_dist, max_dist):
    """For each image of step `kinds[i]`: a, b on the dark side, c, d on the bright side, at
    distances in [min_dist, max_dist] along the edge normal (before clipping)."""
    for i, kind in enumerate(kinds):
        side, normal = STEPS[kind], NORMALS[kind]
        anchor = np.asarray(pts.anchor)[i]
        rows, cols = np.asarray(pts.rows)[i], np.asarray(pts.cols)[i]  # (4, K)
        ar, ac = anchor // W, anchor % W
        bright = side(rows, cols)  # side of the (infinitely extended) step
        # a, b on one side, c, d on the other, for every anchor ...
        assert np.all(bright[0] == bright[1]) and np.all(bright[2] == bright[3])
        assert np.all(bright[1] != bright[2])
        # ... and along the gradient direction theta: a, b (negative side) dark, c, d bright.
        assert not bright[:2].any() and bright[2:].all()
        # Anchors are edge pixels: a pixel of their 3x3 neighbourhood is across the step.
        across_step = np.zeros_like(ar, bool)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                across_step |= side(ar + dr, ac + dc) != side(ar, ac)
        assert across_step.all()
        dr, dc = rows - ar, cols - ac
        along = dr * normal[0] + dc * normal[1]
        across = -dr * normal[1] + dc * normal[0]
        assert np.all(along[:2] < 0) and np.all(along[2:] > 0)
        if 0.0 in normal:
            # Axis-aligned normal: exact integer offsets.
            assert np.all(across == 0)
            assert np.all((np.abs(along) >= min_dist) & (np.abs(along) <= max_dist))
        else:
            # Rounding each coordinate to the grid moves a point by at most sqrt(0.5). Where
            # the edge meets the frame the replicate-padded Sobel direction bends away from
            # the true normal, so the direction is only checked away from the frame.
            tol = 0.5**0.5 + 1e-6
            dist = np.hypot(dr, dc)
            assert np.all((dist >= min_dist - tol) & (dist <= max_dist + tol))
            interior = (ar > 0) & (ar < H - 1) & (ac > 0) & (ac < W - 1)
            assert interior.mean() > 0.9
            assert np.all(np.abs(across[:, interior]) <= tol)


def _pairs_from_points(pts) -> list[list[tuple[int, int]]]:
    """Sorted (a, b), (b, c), (c, d) pairs of the clipped points, per image."""
    flat = np.clip(np.asarray(pts.rows), 0, H - 1) * W + np.clip(np.asarray(pts.cols), 0, W - 1)
    return [
        sorted(
            (int(flat[i, j, k]), int(flat[i, j + 1, k]))
            for j in range(3)
            for k in range(flat.shape[2])
        )
        for i in range(flat.shape[0])
    ]


# ----------------------------------------------------------------------------- random_pairs


def test_random_pairs_default_num_pairs_is_300():
    mask = np.ones((3, 4, 5), bool)
    pairs = sampling.random_pairs(KEY, mask)
    _check_pair_types(pairs, (3, 300))
    a, b, valid = _np_pairs(pairs)
    assert valid.all()
    assert a.min() >= 0 and b.min() >= 0 and a.max() < 20 and b.max() < 20
    assert np.all(a != b)


@pytest.mark.parametrize("name", VALID_MASKS)
def test_random_pairs_land_on_valid_pixels_and_differ(name):
    m = _mask(name)
    mask = _batch([name])
    flat = m.reshape(-1)
    seen = set()
    for seed in range(4):
        pairs = sampling.random_pairs(jax.random.key(seed), mask, NP)
        _check_pair_types(pairs, (16, NP))
        a, b, valid = _np_pairs(pairs)
        assert valid.all()
        assert flat[a].all() and flat[b].all()
        assert np.all(a != b)
        seen |= set(a.ravel().tolist()) | set(b.ravel().tolist())
    # Every valid pixel shows up (3200 draws of each point over at most 63 pixels).
    assert seen == set(np.flatnonzero(flat).tolist())


def test_random_pairs_mixed_batch_of_masks():
    names = VALID_MASKS + TOO_FEW_MASKS
    mask = _batch(names)
    a, b, valid = _np_pairs(sampling.random_pairs(jax.random.key(3), mask, NP))
    for i in range(16):
        name = names[i % len(names)]
        flat = mask[i].reshape(-1)
        if name in TOO_FEW_MASKS:
            # Fewer than two valid pixels: no valid pair, but indices still in range.
            assert not valid[i].any()
            assert a[i].min() >= 0 and b[i].min() >= 0
            assert a[i].max() < MH * MW and b[i].max() < MH * MW
        else:
            assert valid[i].all() and flat[a[i]].all() and flat[b[i]].all()
            assert np.all(a[i] != b[i])


@pytest.mark.parametrize("name", TOO_FEW_MASKS)
def test_random_pairs_too_few_valid_pixels_are_invalid(name):
    a, b, valid = _np_pairs(sampling.random_pairs(jax.random.key(1), _batch([name]), NP))
    assert not valid.any()
    assert a.min() >= 0 and b.min() >= 0 and a.max() < MH * MW and b.max() < MH * MW


def test_random_pairs_one_pixel_image():
    a, b, valid = _np_pairs(sampling.random_pairs(KEY, np.ones((2, 1, 1), bool), 5))
    assert not valid.any() and np.all(a == 0) and np.all(b == 0)


def test_random_pairs_deterministic_and_key_dependent():
    mask = _batch(["full"])
    p1 = sampling.random_pairs(jax.random.key(5), mask, NP)
    _assert_pairs_equal(p1, sampling.random_pairs(jax.random.key(5), mask, NP))
    p3 = sampling.random_pairs(jax.random.key(6), mask, NP)
    assert not np.array_equal(np.asarray(p1.idx_a), np.asarray(p3.idx_a))
    # The images of a batch get different pairs.
    assert not np.array_equal(np.asarray(p1.idx_a)[0], np.asarray(p1.idx_a)[1])


def test_random_pairs_uniform_chi_square():
    m = _mask("scattered")
    flat = m.reshape(-1)
    valid_idx = np.flatnonzero(flat)
    n = valid_idx.size
    assert 8 <= n <= 25
    mask = np.broadcast_to(m, (64, MH, MW))
    a, b, valid = _np_pairs(sampling.random_pairs(jax.random.key(42), mask, 3000))
    assert valid.all()
    # Marginal frequency of each point over the valid pixels: uniform, never outside.
    for idx in (a, b):
        counts = np.bincount(idx.reshape(-1), minlength=flat.size)
        assert counts[~flat].sum() == 0
        assert scipy.stats.chisquare(counts[valid_idx]).pvalue > 1e-3
    # Ordered pairs (a, b), a != b, are uniform over the n (n - 1) possibilities.
    pos = np.full(flat.size, -1)
    pos[valid_idx] = np.arange(n)
    joint = np.bincount((pos[a] * n + pos[b]).reshape(-1), minlength=n * n).reshape(n, n)
    assert np.all(np.diag(joint) == 0)
    assert scipy.stats.chisquare(joint[~np.eye(n, dtype=bool)]).pvalue > 1e-3


def test_random_pairs_jit_and_vmap():
    # One compilation for both: an outer jit around a vmap over keys and mask stacks.
    mask = _batch(VALID_MASKS + TOO_FEW_MASKS)
    keys = jax.random.split(KEY, 3)
    vm = jax.jit(jax.vmap(lambda k, m: sampling.random_pairs(k, m, NP)))(
        keys, np.stack([mask] * 3)
    )
    _check_pair_types(vm, (3, 16, NP))
    for i in range(3):
        single = sampling.random_pairs(keys[i], mask, NP)
        for x, y in zip(single, vm, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y)[i])


# ----------------------------------------------------------------------------- edge-guided


@pytest.mark.parametrize(
    "kinds",
    [("vertical", "horizontal"), ("vertical_flipped", "diagonal"), ("antidiagonal", "vertical")],
)
def test_edge_points_straddle_step(kinds):
    image = _step_images(*kinds)
    mask = np.ones((2, H, W), bool)
    pts = sampling.edge_guided_points(jax.random.key(7), image, mask, K)
    assert pts.anchor.shape == (2, K) and pts.anchor.dtype == jnp.int32
    assert pts.rows.shape == (2, 4, K) and pts.cols.shape == (2, 4, K)
    assert pts.rows.dtype == jnp.int32 and pts.cols.dtype == jnp.int32
    assert pts.has_edges.shape == (2,) and np.asarray(pts.has_edges).all()
    _check_step_points(kinds, pts, 2, 30)
    for i, kind in enumerate(kinds):
        ar, ac = np.asarray(pts.anchor)[i] // W, np.asarray(pts.anchor)[i] % W
        if kind in ("vertical", "vertical_flipped", "horizontal"):
            # Anchors hug the step (rows / columns 19, 20) and spread along it.
            normal_coord, edge_coord = (ar, ac) if kind == "horizontal" else (ac, ar)
            assert set(np.unique(normal_coord).tolist()) <= {19, 20}
            assert np.unique(edge_coord).size > 20
            # Integer distances uniform in [2, 30]: all 29 values show up in 400 draws.
            moved = np.asarray(pts.rows if kind == "horizontal" else pts.cols)[i]
            assert set(np.unique(np.abs(moved - normal_coord)).tolist()) == set(range(2, 31))


def test_edge_points_grey_image_matches_rgb():
    kinds = ("vertical", "diagonal")
    rgb = _step_images(*kinds)
    mask = np.ones((2, H, W), bool)
    pts = sampling.edge_guided_points(jax.random.key(2), rgb[..., 0], mask, K)
    _check_step_points(kinds, pts, 2, 30)
    for x, y in zip(pts, sampling.edge_guided_points(jax.random.key(2), rgb, mask, K),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_edge_points_custom_distances():
    min_dist, max_dist = 5, 7  # as in test_edge_pairs_custom_distances: one compilation
    kinds = ("vertical", "horizontal")
    image = _step_images(*kinds)
    mask = np.ones((2, H, W), bool)
    pts = sampling.edge_guided_points(
        jax.random.key(9), image, mask, K, min_dist=min_dist, max_dist=max_dist
    )
    _check_step_points(kinds, pts, min_dist, max_dist)
    dist = np.abs(np.asarray(pts.cols)[0] - np.asarray(pts.anchor)[0] % W)
    assert set(np.unique(dist).tolist()) == set(range(min_dist, max_dist + 1))


def test_edge_pairs_custom_distances():
    image = _step_images("vertical", "vertical_flipped")
    mask = np.ones((2, H, W), bool)
    pairs = sampling.edge_guided_pairs(jax.random.key(9), image, mask, K, min_dist=5, max_dist=7)
    _check_pair_types(pairs, (2, 3 * K))
    pts = sampling.edge_guided_points(jax.random.key(9), image, mask, K, min_dist=5, max_dist=7)
    a, b, _ = _np_pairs(pairs)
    for i, expected in enumerate(_pairs_from_points(pts)):
        assert sorted(zip(a[i].tolist(), b[i].tolist(), strict=True)) == expected
    # Consecutive points are 5..7 apart (a, b same side) or 10..14 (b, c across the step).
    gap = np.abs(a % W - b % W)
    assert np.all(((gap >= 0) & (gap <= 2)) | ((gap >= 10) & (gap <= 14)))
    np.testing.assert_array_equal(a // W, b // W)


@pytest.mark.parametrize("kinds", [("near_left", "near_right"), ("vertical", "horizontal")])
def test_edge_pairs_clipped_and_consistent_with_points(kinds):
    image = _step_images(*kinds)
    mask = np.ones((2, H, W), bool)
    key = jax.random.key(11)
    pts = sampling.edge_guided_points(key, image, mask, K)
    pairs = sampling.edge_guided_pairs(key, image, mask, K)
    _check_pair_types(pairs, (2, 3 * K))
    _check_step_points(kinds, pts, 2, 30)
    a, b, valid = _np_pairs(pairs)
    assert a.min() >= 0 and b.min() >= 0 and a.max() < H * W and b.max() < H * W
    rows, cols = np.asarray(pts.rows), np.asarray(pts.cols)
    outside = (rows < 0) | (rows >= H) | (cols < 0) | (cols >= W)
    assert outside[0].any() and outside[1].any()  # clipping really happens
    # The pairs are (a, b), (b, c), (c, d) of the clipped points.
    for i, expected in enumerate(_pairs_from_points(pts)):
        assert sorted(zip(a[i].tolist(), b[i].tolist(), strict=True)) == expected
    # Full mask, images with edges: a pair is valid exactly when its points differ.
    np.testing.assert_array_equal(valid, a != b)
    assert valid.mean() > 0.5


def test_edge_pairs_land_on_valid_pixels():
    image = _step_images("diagonal", "vertical")
    rng = np.random.default_rng(2)
    masks = np.stack([rng.random((H, W)) < 0.6, _mask("ring", H, W)])
    flat = masks.reshape(2, -1)
    for seed in range(3):
        key = jax.random.key(seed)
        a, b, valid = _np_pairs(sampling.edge_guided_pairs(key, image, masks, K))
        va = np.take_along_axis(flat, a, axis=1)
        vb = np.take_along_axis(flat, b, axis=1)
        np.testing.assert_array_equal(valid, va & vb & (a != b))
        assert valid.any(axis=1).all()
        # Anchors are drawn among the edge pixels inside the mask.
        anchor = np.asarray(sampling.edge_guided_points(key, image, masks, K).anchor)
        assert np.take_along_axis(flat, anchor, axis=1).all()


def test_no_edges_constant_image():
    image = np.full((2, H, W, 3), 0.4, np.float32)
    image[1] = 0.9
    mask = np.ones((2, H, W), bool)
    pts = sampling.edge_guided_points(KEY, image, mask, K)
    assert not np.asarray(pts.has_edges).any()
    grey = sampling.edge_guided_points(KEY, image[..., 0], mask, K)
    assert not np.asarray(grey.has_edges).any()
    pairs = sampling.edge_guided_pairs(KEY, image, mask, K)
    _check_pair_types(pairs, (2, 3 * K))
    a, b, valid = _np_pairs(pairs)
    assert not valid.any()
    assert a.min() >= 0 and b.min() >= 0 and a.max() < H * W and b.max() < H * W


def test_no_edges_inside_mask():
    image = _step_images("vertical", "horizontal")  # edges at columns / rows 19 and 20
    mask = np.zeros((2, H, W), bool)
    mask[0, :, :17] = True
    mask[1, 23:, :] = True
    assert not np.asarray(sampling.edge_guided_points(KEY, image, mask, K).has_edges).any()
    for m in (mask, np.zeros_like(mask)):
        pairs = sampling.edge_guided_pairs(KEY, image, m, K)
        assert not np.asarray(pairs.valid).any()
        assert np.asarray(pairs.idx_a).max() < H * W and np.asarray(pairs.idx_b).max() < H * W
    # One image with edges inside its mask, one without: only the first gets valid pairs.
    mask[1, 15:25] = True
    pairs = sampling.edge_guided_pairs(KEY, image[::-1], mask[::-1], K)
    has = np.asarray(sampling.edge_guided_points(KEY, image[::-1], mask[::-1], K).has_edges)
    np.testing.assert_array_equal(has, [True, False])
    valid = np.asarray(pairs.valid)
    assert valid[0].any() and not valid[1].any()


def test_image_frame_is_not_an_edge():
    image = np.full((2, H, W, 3), 0.3, np.float32)
    image[0, 20, 22] = 1.0  # a bright pixel far from the border
    image[1, 33, 5] = 0.0  # a dark one
    mask = np.ones((2, H, W), bool)
    pts = sampling.edge_guided_points(jax.random.key(4), image, mask, K)
    assert np.asarray(pts.has_edges).all()
    anchor = np.asarray(pts.anchor)
    ar, ac = anchor // W, anchor % W
    # Anchors only in the Sobel support of the odd pixel: nowhere near the frame.
    assert np.all(np.abs(ar[0] - 20) <= 1) and np.all(np.abs(ac[0] - 22) <= 1)
    assert np.all(np.abs(ar[1] - 33) <= 1) and np.all(np.abs(ac[1] - 5) <= 1)
    assert not np.any((ar == 0) | (ar == H - 1) | (ac == 0) | (ac == W - 1))


def test_image_frame_adds_no_gradient_to_a_ramp():
    # Horizontal ramps: zero padding would add vertical gradients in the top and bottom rows
    # (and a spurious peak at the frame); replicate padding keeps every point on its row.
    ramp = np.broadcast_to(np.linspace(0.2, 0.8, W, dtype=np.float32)[:, None], (2, H, W, 3))
    ramp = ramp.copy()
    mask = np.ones((2, H, W), bool)
    pts = sampling.edge_guided_points(jax.random.key(4), ramp, mask, K)
    assert np.asarray(pts.has_edges).all()
    ar = np.asarray(pts.anchor) // W
    np.testing.assert_array_equal(np.asarray(pts.rows), np.broadcast_to(ar[:, None], (2, 4, K)))


def test_edge_guided_deterministic_jit_and_vmap():
    image = _step_images("horizontal", "diagonal")
    mask = np.ones((2, H, W), bool)
    p1 = sampling.edge_guided_pairs(jax.random.key(1), image, mask, K)
    _assert_pairs_equal(p1, sampling.edge_guided_pairs(jax.random.key(1), image, mask, K))
    p2 = sampling.edge_guided_pairs(jax.random.key(2), image, mask, K)
    assert not np.array_equal(np.asarray(p1.idx_a), np.asarray(p2.idx_a))
    # One compilation for both: an outer jit around a vmap over keys.
    keys = jax.random.split(KEY, 2)
    vm = jax.jit(jax.vmap(lambda k: sampling.edge_guided_pairs(k, image, mask, K)))(keys)
    _check_pair_types(vm, (2, 2, 3 * K))
    for i in range(2):
        single = sampling.edge_guided_pairs(keys[i], image, mask, K)
        for x, y in zip(single, vm, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y)[i])


# ----------------------------------------------------------------------------- ordinal_labels


def _pairs(a, b, valid=None) -> Pairs:
    a = np.atleast_2d(np.asarray(a, np.int32))
    b = np.atleast_2d(np.asarray(b, np.int32))
    valid = np.ones(a.shape, bool) if valid is None else np.atleast_2d(np.asarray(valid, bool))
    return Pairs(jnp.asarray(a), jnp.asarray(b), jnp.asarray(valid))


def test_ordinal_labels_hand_computed():
    # target (1, 1, 8): flat indices 0..7.
    target = np.array([[[1.0, 1.5, 1.2, 0.0, 0.0, 2.0, 1.01, 4.0]]], np.float32)
    a = [1, 0, 0, 2, 0, 3, 0, 3, 0, 6, 0]
    b = [0, 1, 2, 0, 6, 0, 3, 4, 0, 0, 7]
    # ratios with sigma 0.02: 1.5 -> +1; 1/1.5 -> -1; 1/1.2 -> -1; 1.2 -> +1;
    # 1/1.01 (within 2%) -> 0; 0/1 -> -1; 1/0 -> +1; 0/0 -> 0; 1/1 -> 0; 1.01 -> 0; 1/4 -> -1.
    expected = [1, -1, -1, 1, 0, -1, 1, 0, 0, 0, -1]
    labels = sampling.ordinal_labels(target, _pairs(a, b), 0.02)
    assert labels.dtype == jnp.int8 and labels.shape == (1, 11)
    np.testing.assert_array_equal(np.asarray(labels)[0], expected)


@pytest.mark.parametrize(
    ("sigma", "cases"),
    [
        # (g_a, g_b, label of (a, b)); values exactly representable in float32, so the ratio
        # sits exactly on 1 + sigma or 1 / (1 + sigma) where the label is +-1.
        (0.5, [(1.5, 1.0, 1), (1.0, 1.5, -1), (1.49, 1.0, 0), (1.0, 1.49, 0), (3.0, 2.0, 1)]),
        (0.25, [(5.0, 4.0, 1), (4.0, 5.0, -1), (4.99, 4.0, 0), (4.0, 4.99, 0), (0.625, 0.5, 1)]),
        (1.0, [(2.0, 1.0, 1), (1.0, 2.0, -1), (1.99, 1.0, 0), (1.0, 1.99, 0), (0.0, 0.0, 0)]),
        # sigma = 0: any strict difference orders the pair; equality is 0.
        (0.0, [(1.001, 1.0, 1), (1.0, 1.001, -1), (3.0, 3.0, 0), (0.0, 0.0, 0), (0.0, 1.0, -1)]),
        # Zeros with the default sigma.
        (0.02, [(0.0, 0.0, 0), (0.0, 1e-3, -1), (1e-3, 0.0, 1), (1.0, 1.0, 0), (1.0, 0.0, 1)]),
    ],
)
def test_ordinal_labels_sigma_boundaries(sigma, cases):
    target = np.array([[g for ga, gb, _ in cases for g in (ga, gb)]], np.float32)[None]
    n = len(cases)
    a = np.arange(n) * 2
    b = a + 1
    expected = np.array([e for *_, e in cases])
    labels = np.asarray(sampling.ordinal_labels(target, _pairs(a, b), sigma))[0]
    np.testing.assert_array_equal(labels, expected)
    swapped = np.asarray(sampling.ordinal_labels(target, _pairs(b, a), sigma))[0]
    np.testing.assert_array_equal(swapped, -expected)


def test_ordinal_labels_default_sigma_is_002():
    target = np.array([[[1.0, 1.019, 1.021]]], np.float32)
    labels = sampling.ordinal_labels(target, _pairs([1, 2], [0, 0]))
    np.testing.assert_array_equal(np.asarray(labels)[0], [0, 1])


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    sigma=st.sampled_from([0.0, 0.02, 0.3]),
    scale=st.sampled_from([1e-3, 0.5, 3.7, 1e4]),
)
def test_ordinal_labels_antisymmetry_scaling_and_reference(seed, sigma, scale):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.1, 2.0, (2, 5, 6)).astype(np.float32)
    a = rng.integers(0, 30, (2, 40))
    b = rng.integers(0, 30, (2, 40))
    valid = rng.random((2, 40)) < 0.8
    labels = np.asarray(sampling.ordinal_labels(target, _pairs(a, b, valid), sigma))
    assert labels.dtype == np.int8 and labels.shape == (2, 40)
    swapped = np.asarray(sampling.ordinal_labels(target, _pairs(b, a, valid), sigma))
    np.testing.assert_array_equal(swapped, -labels)
    assert np.all(labels[~valid] == 0)
    # The ratio rule in float64, away from the sigma boundaries (float32 rounding only).
    flat = target.reshape(2, -1).astype(np.float64)
    ratio = np.take_along_axis(flat, a, 1) / np.take_along_axis(flat, b, 1)
    safe = (np.abs(ratio - (1 + sigma)) > 1e-4) & (np.abs(ratio - 1 / (1 + sigma)) > 1e-4)
    ref = np.where(ratio >= 1 + sigma, 1, np.where(ratio <= 1 / (1 + sigma), -1, 0))
    ref = np.where(valid, ref, 0)
    np.testing.assert_array_equal(labels[safe], ref[safe])
    # Invariance under positive scaling of the target.
    scaled = sampling.ordinal_labels(target * np.float32(scale), _pairs(a, b, valid), sigma)
    np.testing.assert_array_equal(np.asarray(scaled)[safe], labels[safe])


def test_ordinal_labels_invalid_pairs_and_nan():
    target = np.array([[[np.nan, 1.0, 2.0, 5.0]]], np.float32)
    pairs = _pairs([0, 2, 3, 1], [1, 1, 1, 0], [False, True, False, False])
    labels = np.asarray(sampling.ordinal_labels(target, pairs, 0.02))
    np.testing.assert_array_equal(labels, [[0, 1, 0, 0]])


def test_ordinal_labels_jit_and_vmap():
    rng = np.random.default_rng(0)
    target = rng.uniform(0.1, 2.0, (3, 2, 4, 4)).astype(np.float32)
    a = rng.integers(0, 16, (3, 2, 10)).astype(np.int32)
    b = rng.integers(0, 16, (3, 2, 10)).astype(np.int32)
    pairs = Pairs(jnp.asarray(a), jnp.asarray(b), jnp.ones((3, 2, 10), bool))
    out = jax.vmap(lambda t, p: sampling.ordinal_labels(t, p, 0.1))(target, pairs)
    assert out.shape == (3, 2, 10) and out.dtype == jnp.int8
    outer = jax.jit(lambda t, p: sampling.ordinal_labels(t, p, 0.1))
    for i in range(3):
        np.testing.assert_array_equal(
            np.asarray(out)[i], np.asarray(outer(target[i], _pairs(a[i], b[i])))
        )


# ----------------------------------------------------------------------------- bad arguments


MASK = np.ones((2, 6, 7), bool)
IMAGE = np.zeros((2, 6, 7, 3), np.float32)
TARGET = np.ones((2, 6, 7), np.float32)


def _zero_pairs(b: int, p: int = 4) -> Pairs:
    return _pairs(np.zeros((b, p)), np.zeros((b, p)))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: sampling.random_pairs(KEY, np.ones((6, 7), bool), 5), "mask"),
        (lambda: sampling.random_pairs(KEY, np.ones((1, 2, 6, 7), bool), 5), "mask"),
        (lambda: sampling.random_pairs(KEY, MASK, 0), "num_pairs"),
        (lambda: sampling.random_pairs(KEY, MASK, -3), "num_pairs"),
        (lambda: sampling.random_pairs(KEY, MASK, 2.5), "num_pairs"),
        (lambda: sampling.random_pairs(KEY, MASK, 3.0), "num_pairs"),
        (lambda: sampling.random_pairs(KEY, MASK, True), "num_pairs"),
        (lambda: sampling.random_pairs(KEY, MASK, "3"), "num_pairs"),
        (lambda: sampling.edge_guided_pairs(KEY, IMAGE, MASK, 0), "num_anchors"),
        (lambda: sampling.edge_guided_pairs(KEY, IMAGE, MASK, -1), "num_anchors"),
        (lambda: sampling.edge_guided_pairs(KEY, IMAGE, MASK, 1.5), "num_anchors"),
        (lambda: sampling.edge_guided_points(KEY, IMAGE, MASK, 0), "num_anchors"),
        (
            lambda: sampling.edge_guided_pairs(KEY, IMAGE, MASK, 4, min_dist=5, max_dist=4),
            "min_dist",
        ),
        (lambda: sampling.edge_guided_points(KEY, IMAGE, MASK, 4, min_dist=31), "min_dist"),
        (lambda: sampling.edge_guided_pairs(KEY, IMAGE, MASK[:, :5], 4), "mask"),
        (lambda: sampling.edge_guided_pairs(KEY, IMAGE, MASK[:1], 4), "mask"),
        (lambda: sampling.edge_guided_pairs(KEY, IMAGE[:, :, :5], MASK, 4), "mask"),
        (lambda: sampling.edge_guided_pairs(KEY, IMAGE[0, 0], MASK, 4), "image"),
        (lambda: sampling.ordinal_labels(TARGET, _zero_pairs(3), 0.02), "pairs"),
        (lambda: sampling.ordinal_labels(TARGET, _zero_pairs(1), 0.02), "pairs"),
        (lambda: sampling.ordinal_labels(TARGET[0], _zero_pairs(6), 0.02), "target"),
        (lambda: sampling.ordinal_labels(TARGET, _zero_pairs(2), -0.1), "sigma"),
    ],
)
def test_bad_arguments_raise_value_error(call, name):
    with pytest.raises(ValueError, match=f"`{name}"):
        call()


def test_pairs_with_mismatched_fields_raise():
    bad = Pairs(
        jnp.zeros((2, 4), jnp.int32), jnp.zeros((2, 5), jnp.int32), jnp.ones((2, 4), bool)
    )
    with pytest.raises(ValueError, match="pairs"):
        sampling.ordinal_labels(TARGET, bad, 0.02)
