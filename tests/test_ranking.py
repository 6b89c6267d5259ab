"""Tests for the ordinal ranking losses: losses.ranking_loss and losses.edge_guided_ranking_loss.

The reference below is an independent float64 NumPy loop over pairs, written from the
papers' description (Chen et al. 2016, Xian et al. 2018; docs/architecture.md,
"Algorithms and their sources"), not from the implementation.
"""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from depthsense_jax import losses, sampling
from depthsense_jax.sampling import Pairs

LOG2 = math.log(2.0)


# ----------------------------------------------------------------------------- reference


def _label(ga: float, gb: float, sigma: float) -> int:
    """Ratio rule: +1 if ga/gb >= 1 + sigma, -1 if <= 1/(1 + sigma), else 0 (zeros allowed).

    Equal values are 0 even for sigma = 0 (where both inequalities hold), so that the label
    stays antisymmetric.
    """
    if ga == gb:
        return 0
    if gb == 0.0:
        return 1 if ga > 0.0 else 0
    ratio = ga / gb
    if ratio >= 1.0 + sigma:
        return 1
    if ratio <= 1.0 / (1.0 + sigma):
        return -1
    return 0


def reference_loss(pred, target, pairs, *, sigma=0.02, alpha=1.0, mask=None,
                   hard_fraction=1.0) -> float:
    pred = np.asarray(pred, np.float64)
    b = pred.shape[0]
    p = pred.reshape(b, -1)
    g = np.asarray(target, np.float64).reshape(b, -1)
    m = np.ones_like(p, bool) if mask is None else np.asarray(mask, bool).reshape(b, -1)
    idx_a, idx_b, valid = (np.asarray(x) for x in pairs)
    per_image = []
    for i in range(b):
        values = []
        for ia, ib, v in zip(idx_a[i], idx_b[i], valid[i], strict=True):
            if not (v and m[i, ia] and m[i, ib]):
                continue
            r = _label(g[i, ia], g[i, ib], sigma)
            d = p[i, ia] - p[i, ib]
            values.append(np.logaddexp(0.0, -r * d) if r != 0 else alpha * d * d)
        if not values:
            per_image.append(0.0)
            continue
        # ceil(hard_fraction * counted) in exact decimal arithmetic.
        kept = math.ceil(Fraction(str(hard_fraction)) * len(values))
        hardest = sorted(values, reverse=True)[:kept]
        per_image.append(sum(hardest) / len(hardest))
    return float(np.mean(per_image))


def _pairs(a, b, valid=None) -> Pairs:
    a = np.atleast_2d(np.asarray(a, np.int32))
    b = np.atleast_2d(np.asarray(b, np.int32))
    valid = np.ones(a.shape, bool) if valid is None else np.atleast_2d(np.asarray(valid, bool))
    return Pairs(jnp.asarray(a), jnp.asarray(b), jnp.asarray(valid))


def _random_problem(rng, shape, num_pairs=40, *, with_mask=True, target_range=(0.5, 2.0),
                    pred_scale=2.0):
    """pred, target, pairs (with invalid, repeated and a == b pairs, ties), mask or None."""
    b, h, w = shape
    n = h * w
    lo, hi = target_range
    target = np.exp(rng.uniform(np.log(lo), np.log(hi), shape))
    # Ties, so that the equal-pair term shows up.
    target[rng.random(shape) < 0.3] = np.sqrt(lo * hi)
    target = target.astype(np.float32)
    pred = (pred_scale * rng.standard_normal(shape)).astype(np.float32)
    a = rng.integers(0, n, (b, num_pairs))
    bb = rng.integers(0, n, (b, num_pairs))
    bb[:, :2] = a[:, :2]  # a == b
    a[:, 2], bb[:, 2] = a[:, 3], bb[:, 3]  # a repeated pair
    valid = rng.random((b, num_pairs)) < 0.85
    mask = (rng.random(shape) < 0.75) if with_mask else None
    return pred, target, _pairs(a, bb, valid), mask


# ----------------------------------------------------------------------------- reference checks


@pytest.mark.parametrize(
    ("seed", "shape", "with_mask", "sigma", "alpha", "hard_fraction"),
    [
        (0, (1, 4, 5), False, 0.02, 1.0, 1.0),
        (1, (3, 6, 7), True, 0.02, 1.0, 1.0),
        (2, (2, 1, 9), True, 0.0, 0.5, 1.0),
        (3, (3, 6, 7), True, 0.3, 2.0, 1.0),
        (4, (3, 6, 7), True, 0.02, 0.0, 1.0),
        (5, (3, 6, 7), True, 0.02, 1.0, 0.75),
        (6, (2, 5, 5), False, 0.03, 1.0, 0.5),
        (7, (3, 6, 7), True, 0.1, 0.3, 0.3),
        (8, (4, 3, 8), True, 0.02, 1.0, 0.1),
        (9, (3, 6, 7), True, 0.02, 1.0, 0.7),
    ],
)
def test_matches_reference(seed, shape, with_mask, sigma, alpha, hard_fraction):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        pred, target, pairs, mask = _random_problem(rng, shape, with_mask=with_mask)
        loss = losses.ranking_loss(pred, target, pairs, sigma=sigma, alpha=alpha, mask=mask,
                                   hard_fraction=hard_fraction)
        assert loss.shape == () and loss.dtype == jnp.float32
        expected = reference_loss(pred, target, pairs, sigma=sigma, alpha=alpha, mask=mask,
                                  hard_fraction=hard_fraction)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-7)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), hard_fraction=st.sampled_from([1.0, 0.75, 0.3]))
def test_matches_reference_hypothesis(seed, hard_fraction):
    rng = np.random.default_rng(seed)
    pred, target, pairs, mask = _random_problem(rng, (2, 5, 6), num_pairs=24)
    loss = losses.ranking_loss(pred, target, pairs, mask=mask, hard_fraction=hard_fraction)
    expected = reference_loss(pred, target, pairs, mask=mask, hard_fraction=hard_fraction)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("hard_fraction", [0.1, 0.3, 0.6, 0.7, 0.75, 0.9])
def test_hard_fraction_keeps_ceil_of_counted(hard_fraction):
    # Distinct per-pair losses 1, 4, 9, ... (equal pairs, alpha 1): the hardest k are the
    # k largest squares, with k = ceil(hard_fraction * counted) computed exactly
    # (e.g. ceil(0.3 * 100) = 30, although float32(0.3) * 100 rounds up to 30.000002).
    n = 100
    target = np.ones((1, 1, n + 1), np.float32)
    pred = np.arange(n + 1, dtype=np.float32)[None, None]
    a = np.arange(1, n + 1)
    b = np.zeros(n, int)
    wrong = []
    for counted in (1, 2, 3, 7, 10, 20, 30, 50, 90, 100):
        pairs = _pairs(a, b, np.arange(n) < counted)
        loss = float(losses.ranking_loss(pred, target, pairs, hard_fraction=hard_fraction))
        k = math.ceil(Fraction(str(hard_fraction)) * counted)
        squares = np.arange(counted, 0, -1, dtype=np.float64) ** 2
        np.testing.assert_allclose(
            reference_loss(pred, target, pairs, hard_fraction=hard_fraction),
            squares[:k].mean(), rtol=1e-12,
        )
        if not np.isclose(loss, squares[:k].mean(), rtol=1e-6):
            kept = [j for j in range(1, counted + 1) if np.isclose(loss, squares[:j].mean())]
            wrong.append(f"counted {counted}: kept {kept} pairs instead of ceil = {k}")
    assert not wrong, wrong


# ----------------------------------------------------------------------------- hand-computed


@pytest.mark.parametrize(
    ("pred", "target", "pair", "kwargs", "expected"),
    [
        # 1x1x2 image, pair (0, 1). target 2 vs 1: ratio 2 -> r = +1; p_a - p_b = 1:
        # log(1 + exp(-1)) = 0.31326168751822286.
        ([0.5, -0.5], [2.0, 1.0], (0, 1), {}, 0.31326168751822286),
        # Swapped pair: r = -1, p_a - p_b = -1, same loss.
        ([0.5, -0.5], [2.0, 1.0], (1, 0), {}, 0.31326168751822286),
        # Wrong order: r = +1, p_a - p_b = -1: log(1 + e) = 1.3132616875182228.
        ([-0.5, 0.5], [2.0, 1.0], (0, 1), {}, 1.3132616875182228),
        # Equal prediction: log 2.
        ([0.3, 0.3], [1.0, 3.0], (0, 1), {}, LOG2),
        # Equal target (ratio 1.01 within sigma 0.02): r = 0, (1.5 - (-0.5))^2 = 4.
        ([1.5, -0.5], [1.01, 1.0], (0, 1), {}, 4.0),
        # ... weighted by alpha = 0.25: 1.
        ([1.5, -0.5], [1.01, 1.0], (0, 1), {"alpha": 0.25}, 1.0),
        # ... and with sigma = 0.005 the pair is ordered: r = +1, diff 2: log(1 + e^-2).
        ([1.5, -0.5], [1.01, 1.0], (0, 1), {"sigma": 0.005}, 0.1269280110429725),
        # Target zero at b: r = +1; diff -3: log(1 + e^3) = 3.048587351573742.
        ([0.0, 3.0], [0.5, 0.0], (0, 1), {}, 3.048587351573742),
        # A pair whose point b is outside the mask: nothing counts, loss 0.
        ([0.0, 3.0], [0.5, 0.0], (0, 1), {"mask": [[[True, False]]]}, 0.0),
        # The same pair twice is a pair of pixels from one point: a == b, r = 0, diff 0.
        ([0.0, 3.0], [0.5, 0.0], (1, 1), {}, 0.0),
    ],
)
def test_hand_computed_single_pair(pred, target, pair, kwargs, expected):
    pred = np.array([[pred]], np.float32)
    target = np.array([[target]], np.float32)
    if "mask" in kwargs:
        kwargs = dict(kwargs, mask=np.array(kwargs["mask"]))
    loss = losses.ranking_loss(pred, target, _pairs([pair[0]], [pair[1]]), **kwargs)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6, atol=1e-7)


def test_hand_computed_batch_and_hard_fraction():
    # Image 0: three pairs with losses
    #   (0, 1): target 2 vs 1 -> r = +1, diff 1   -> log(1 + e^-1) = 0.31326168751822286
    #   (1, 2): target 1 vs 1 -> r = 0,  diff -1  -> 1
    #   (2, 0): target 1 vs 2 -> r = -1, diff 0   -> log 2 = 0.6931471805599453
    # mean 0.6688029560260561; hard_fraction 0.5 keeps ceil(1.5) = 2: (1 + log 2) / 2.
    # Image 1: its only pair is invalid -> 0. Batch mean: half of image 0's value.
    pred = np.array([[[1.0, 0.0, 1.0]], [[5.0, 1.0, 0.0]]], np.float32)
    target = np.array([[[2.0, 1.0, 1.0]], [[1.0, 1.0, 1.0]]], np.float32)
    pairs = _pairs([[0, 1, 2], [0, 0, 0]], [[1, 2, 0], [1, 1, 1]],
                   [[True] * 3, [True, False, False]])
    mask = np.array([[[True, True, True]], [[True, False, True]]])
    full = losses.ranking_loss(pred, target, pairs, mask=mask)
    np.testing.assert_allclose(float(full), 0.6688029560260561 / 2, rtol=1e-6)
    hard = losses.ranking_loss(pred, target, pairs, mask=mask, hard_fraction=0.5)
    np.testing.assert_allclose(float(hard), (1 + LOG2) / 2 / 2, rtol=1e-6)
    # The mean is over the counted pairs, not over all sampled pairs: adding invalid pairs
    # leaves the loss alone.
    more = _pairs([[0, 1, 2, 0, 0], [0, 0, 0, 0, 0]], [[1, 2, 0, 2, 1], [1, 1, 1, 1, 1]],
                  [[True, True, True, False, False], [True, False, False, False, False]])
    np.testing.assert_allclose(float(losses.ranking_loss(pred, target, more, mask=mask)),
                               float(full), rtol=1e-6)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    ("kwargs", "with_mask"),
    [({}, False), ({"alpha": 0.5, "sigma": 0.1}, True), ({"hard_fraction": 0.75}, True)],
)
def test_check_grads(kwargs, with_mask):
    rng = np.random.default_rng(3)
    pred, target, pairs, mask = _random_problem(rng, (2, 3, 4), num_pairs=12,
                                                with_mask=with_mask, pred_scale=1.0)
    f = lambda p: losses.ranking_loss(p, target, pairs, mask=mask, **kwargs)
    check_grads(f, (jnp.asarray(pred),), order=1, modes=("rev",), eps=1e-3, atol=1e-2,
                rtol=1e-2)


# Loss and gradient with respect to pred, under an outer jit (one compilation per signature).
_loss_and_grad = jax.jit(
    jax.value_and_grad(losses.ranking_loss), static_argnames=("sigma", "alpha", "hard_fraction")
)


def _value_and_grad(pred, target, pairs, **kwargs):
    loss, grad = _loss_and_grad(jnp.asarray(pred, jnp.float32), target, pairs, **kwargs)
    loss, grad = float(loss), np.asarray(grad)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    return loss, grad


SHAPE = (2, 4, 5)


def test_constant_target_all_equal_pairs():
    rng = np.random.default_rng(4)
    pred, _, pairs, mask = _random_problem(rng, SHAPE)
    target = np.full(SHAPE, 0.7, np.float32)
    loss, _ = _value_and_grad(pred, target, pairs, mask=mask)
    np.testing.assert_allclose(loss, reference_loss(pred, target, pairs, mask=mask), rtol=1e-5)
    # Only the equal-pair term: linear in alpha, gone for alpha 0.
    loss2, _ = _value_and_grad(pred, target, pairs, mask=mask, alpha=2.0)
    np.testing.assert_allclose(loss2, 2 * loss, rtol=1e-6)
    loss0, grad0 = _value_and_grad(pred, target, pairs, mask=mask, alpha=0.0)
    assert loss0 == 0.0 and np.all(grad0 == 0.0)


def test_constant_pred():
    rng = np.random.default_rng(5)
    _, target, pairs, mask = _random_problem(rng, SHAPE)
    pred = np.full(SHAPE, -3.0, np.float32)
    loss, grad = _value_and_grad(pred, target, pairs, mask=mask)
    # Every ordered pair costs log 2, every equal pair 0.
    np.testing.assert_allclose(loss, reference_loss(pred, target, pairs, mask=mask), rtol=1e-6)
    assert 0.0 < loss < LOG2


@pytest.mark.parametrize("hard_fraction", [1.0, 0.5])
def test_empty_mask_and_invalid_pairs_give_exactly_zero(hard_fraction):
    rng = np.random.default_rng(6)
    pred, target, pairs, _ = _random_problem(rng, SHAPE)
    empty = np.zeros(SHAPE, bool)
    loss, grad = _value_and_grad(pred, target, pairs, mask=empty, hard_fraction=hard_fraction)
    assert loss == 0.0 and np.all(grad == 0.0)
    invalid = pairs._replace(valid=jnp.zeros_like(pairs.valid))
    loss, grad = _value_and_grad(pred, target, invalid, hard_fraction=hard_fraction)
    assert loss == 0.0 and np.all(grad == 0.0)
    loss, grad = _value_and_grad(pred, target, invalid, mask=np.ones(SHAPE, bool),
                                 hard_fraction=hard_fraction)
    assert loss == 0.0 and np.all(grad == 0.0)


@pytest.mark.parametrize("target_range", [(1e-6, 1e-5), (1e5, 1e6), (1e-6, 1e6)])
def test_huge_and_tiny_targets(target_range):
    rng = np.random.default_rng(7)
    pred, target, pairs, mask = _random_problem(rng, SHAPE, target_range=target_range)
    loss, _ = _value_and_grad(pred, target, pairs, mask=mask)
    np.testing.assert_allclose(loss, reference_loss(pred, target, pairs, mask=mask), rtol=1e-5)


@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_large_pred_values_do_not_overflow(alpha):
    rng = np.random.default_rng(8)
    _, target, pairs, mask = _random_problem(rng, SHAPE)
    pred = np.where(rng.random(SHAPE) < 0.5, -1e4, 1e4).astype(np.float32)
    loss, grad = _value_and_grad(pred, target, pairs, mask=mask, alpha=alpha)
    expected = reference_loss(pred, target, pairs, mask=mask, alpha=alpha)
    assert expected > 1e3  # some pairs are in the wrong order by 2e4
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # Ordered pairs: gradient magnitude of softplus is at most 1 per pair.
    if alpha == 0.0:
        assert np.abs(grad).max() <= 1.0 + 1e-6


@pytest.mark.parametrize("hard_fraction", [1.0, 0.5])
def test_nan_target_outside_mask_is_harmless(hard_fraction):
    rng = np.random.default_rng(9)
    pred, target, pairs, mask = _random_problem(rng, SHAPE)
    nan_target = np.where(mask, target, np.nan).astype(np.float32)
    loss, grad = _value_and_grad(pred, target, pairs, mask=mask, hard_fraction=hard_fraction)
    nan_loss, nan_grad = _value_and_grad(pred, nan_target, pairs, mask=mask,
                                         hard_fraction=hard_fraction)
    assert nan_loss == loss
    np.testing.assert_array_equal(nan_grad, grad)


# ----------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("scale", [1e-3, 0.37, 5.0, 1e4])
def test_invariant_to_positive_target_scale(scale):
    rng = np.random.default_rng(10)
    pred, target, pairs, mask = _random_problem(rng, SHAPE)
    loss, grad = _value_and_grad(pred, target, pairs, mask=mask)
    scaled, scaled_grad = _value_and_grad(pred, target * np.float32(scale), pairs, mask=mask)
    np.testing.assert_allclose(scaled, loss, rtol=1e-6)
    np.testing.assert_allclose(scaled_grad, grad, rtol=1e-6, atol=1e-9)


def test_alpha_weights_only_the_equal_pair_term():
    rng = np.random.default_rng(11)
    pred, target, pairs, mask = _random_problem(rng, SHAPE)
    values = {
        alpha: _value_and_grad(pred, target, pairs, mask=mask, alpha=alpha)[0]
        for alpha in (0.0, 1.0, 2.0)
    }
    # loss(alpha) = ordered part + alpha * equal part (per image means, same denominators).
    equal_part = values[1.0] - values[0.0]
    assert equal_part > 0 and values[0.0] > 0
    np.testing.assert_allclose(values[2.0], values[0.0] + 2 * equal_part, rtol=1e-5)
    np.testing.assert_allclose(
        values[0.0], reference_loss(pred, target, pairs, mask=mask, alpha=0.0), rtol=1e-5
    )


@pytest.mark.parametrize("hard_fraction", [1.0, 0.5])
def test_depends_only_on_counted_pairs(hard_fraction):
    rng = np.random.default_rng(12)
    pred, target, pairs, mask = _random_problem(rng, SHAPE)
    b, n = SHAPE[0], SHAPE[1] * SHAPE[2]
    a_idx, b_idx, valid = (np.asarray(x) for x in pairs)
    flat_mask = mask.reshape(b, -1)
    counted = valid & np.take_along_axis(flat_mask, a_idx, 1) & np.take_along_axis(
        flat_mask, b_idx, 1
    )
    used = np.zeros((b, n), bool)
    for i in range(b):
        used[i, a_idx[i][counted[i]]] = True
        used[i, b_idx[i][counted[i]]] = True
    unused = ~used
    # Some unused points do appear in pairs (outside the mask or in invalid pairs).
    in_pairs = np.zeros((b, n), bool)
    for i in range(b):
        in_pairs[i, a_idx[i]] = in_pairs[i, b_idx[i]] = True
    assert (unused & in_pairs).any()
    changed = np.where(unused.reshape(SHAPE), np.float32(1e3), pred)
    changed_target = np.where(unused.reshape(SHAPE), np.float32(7.0), target)
    loss, grad = _value_and_grad(pred, target, pairs, mask=mask, hard_fraction=hard_fraction)
    loss2, grad2 = _value_and_grad(changed, changed_target, pairs, mask=mask,
                                   hard_fraction=hard_fraction)
    assert loss2 == loss
    assert np.all(grad.reshape(b, n)[unused] == 0.0)
    assert np.all(grad2.reshape(b, n)[unused] == 0.0)


# ----------------------------------------------------------------------------- jit, vmap, args


def test_outer_jit_grad_and_vmap():
    # _value_and_grad already runs jit(value_and_grad(ranking_loss)); here also vmap, over a
    # stack of predictions, with the targets and pairs closed over as constants.
    rng = np.random.default_rng(13)
    pred, target, pairs, mask = _random_problem(rng, SHAPE)
    preds = np.stack([pred, -pred, 2 * pred])

    @jax.jit
    def step(ps):
        f = lambda q: losses.ranking_loss(q, target, pairs, mask=mask, hard_fraction=0.75)
        return jax.vmap(jax.value_and_grad(f))(ps)

    batched, grads = step(preds)
    assert batched.shape == (3,) and grads.shape == (3, *SHAPE)
    for i in range(3):
        loss, grad = _value_and_grad(preds[i], target, pairs, mask=mask, hard_fraction=0.75)
        np.testing.assert_allclose(float(batched[i]), loss, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(grads[i]), grad, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            loss, reference_loss(preds[i], target, pairs, mask=mask, hard_fraction=0.75),
            rtol=1e-5,
        )


PRED = np.zeros((2, 3, 4), np.float32)
GOOD_PAIRS = _pairs(np.zeros((2, 5)), np.ones((2, 5)))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"pairs": _pairs(np.zeros((3, 5)), np.ones((3, 5)))}, "pairs"),
        ({"pairs": _pairs(np.zeros((1, 5)), np.ones((1, 5)))}, "pairs"),
        ({"pairs": (GOOD_PAIRS.idx_a, GOOD_PAIRS.idx_b)}, "pairs"),
        ({"pred": PRED[0], "target": PRED[0]}, "pred"),
        ({"target": PRED[:1]}, "target"),
        ({"mask": np.ones((2, 3, 5), bool)}, "mask"),
        ({"sigma": -0.01}, "sigma"),
        ({"alpha": -1.0}, "alpha"),
        ({"hard_fraction": 0.0}, "hard_fraction"),
        ({"hard_fraction": 1.5}, "hard_fraction"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, name):
    args = {"pred": PRED, "target": PRED, "pairs": GOOD_PAIRS} | kwargs
    with pytest.raises(ValueError, match=f"`{name}"):
        losses.ranking_loss(args.pop("pred"), args.pop("target"), args.pop("pairs"), **args)


# ----------------------------------------------------------------------------- edge-guided loss

H, W = 40, 44  # as in test_sampling.py, so that compiled samplers are shared


def _edge_problem(constant_image: bool = False):
    r, c = np.mgrid[0:H, 0:W]
    steps = np.stack([c >= 20, r + c >= 40]).astype(np.float32)  # vertical, diagonal steps
    image = np.repeat(steps[..., None], 3, axis=-1)
    if constant_image:
        image = np.full_like(image, 0.5)
    target = (1.0 + steps).astype(np.float32)  # nearer (larger) on the bright side
    rng = np.random.default_rng(14)
    target *= rng.uniform(0.999, 1.001, target.shape).astype(np.float32)
    mask = rng.random((2, H, W)) < 0.9
    pred = rng.standard_normal((2, H, W)).astype(np.float32)
    return pred, target, image, mask


def test_edge_guided_loss_without_edges_uses_as_many_random_pairs():
    pred, target, image, mask = _edge_problem(constant_image=True)
    key = jax.random.key(21)
    loss = losses.edge_guided_ranking_loss(key, pred, target, image, mask)
    assert loss.shape == () and loss.dtype == jnp.float32 and np.isfinite(float(loss))
    _, key_random = jax.random.split(key)
    random = sampling.random_pairs(key_random, mask, 300)  # default: 3 x 100 anchors
    np.testing.assert_allclose(
        float(loss), reference_loss(pred, target, random, sigma=0.03, mask=mask), rtol=1e-5
    )


def test_edge_guided_loss_combines_edge_and_random_pairs():
    pred, target, image, mask = _edge_problem()
    key = jax.random.key(22)
    loss = losses.edge_guided_ranking_loss(key, pred, target, image, mask)
    key_edge, key_random = jax.random.split(key)
    edge = sampling.edge_guided_pairs(key_edge, image, mask, 100)
    assert np.asarray(edge.valid).any(axis=1).all()
    pairs = sampling.concat_pairs(edge, sampling.random_pairs(key_random, mask, 300))
    np.testing.assert_allclose(
        float(loss), reference_loss(pred, target, pairs, sigma=0.03, mask=mask), rtol=1e-5
    )
    # Deterministic for a key, different for another.
    again = losses.edge_guided_ranking_loss(key, pred, target, image, mask)
    assert float(again) == float(loss)
    other = losses.edge_guided_ranking_loss(jax.random.key(23), pred, target, image, mask)
    assert float(other) != float(loss)


def test_edge_guided_loss_decreases_for_the_right_prediction():
    _, target, image, mask = _edge_problem()
    key = jax.random.key(24)
    right = float(losses.edge_guided_ranking_loss(key, target, target, image, mask))
    wrong = float(losses.edge_guided_ranking_loss(key, -target, target, image, mask))
    assert np.isfinite(right) and np.isfinite(wrong)
    assert right < wrong


def test_edge_guided_loss_under_outer_jit_and_grad():
    pred, target, image, mask = _edge_problem()

    @jax.jit
    def step(key, p):
        return jax.value_and_grad(
            lambda q: losses.edge_guided_ranking_loss(key, q, target, image, mask)
        )(p)

    key = jax.random.key(25)
    loss, grad = step(key, pred)
    assert np.isfinite(float(loss)) and np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(
        float(loss), float(losses.edge_guided_ranking_loss(key, pred, target, image, mask)),
        rtol=1e-6,
    )
    assert np.abs(np.asarray(grad)).sum() > 0
    # Pixels outside the mask get no gradient.
    assert np.all(np.asarray(grad)[~mask] == 0.0)
