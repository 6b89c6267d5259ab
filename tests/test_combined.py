"""combined_loss: the weighted sum of the named losses, its configuration checks, jit, gradients
and agreement with the individual losses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from depthsense_jax import losses, sampling
from depthsense_jax.losses import combined as combined_module

SHAPE = (2, 24, 32)
WEIGHTS = {
    "ranking": 1.0,
    "edge_guided_ranking": 0.5,
    "ssim": 0.25,
    "smoothness": 2.0,
    "scale_shift": 1.5,
    "gradient_matching": 0.75,
}
# The function each part calls, as `combined` imports it.
PART_FUNCTIONS = {
    "ranking": "ranking_loss",
    "edge_guided_ranking": "edge_guided_ranking_loss",
    "ssim": "ssim_loss",
    "smoothness": "inverse_depth_smoothness_loss",
    "scale_shift": "scale_shift_invariant_loss",
    "gradient_matching": "gradient_matching_loss",
}
KEY = jax.random.key(0)


def make_case(name: str = "realistic", seed: int = 0):
    """(pred, batch) for a named case; every case has the same shapes and dtypes."""
    rng = np.random.default_rng(seed)
    b, h, w = SHAPE
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    depth = np.empty(SHAPE)
    image = np.empty((*SHAPE, 3))
    for i in range(b):
        d = 0.2 + 0.5 * yy  # ground plane, nearer (larger) towards the bottom
        r0, c0 = rng.integers(4, h // 2), rng.integers(2, w // 2)
        box = (slice(r0, r0 + h // 3), slice(c0, c0 + w // 3))
        d[box] = 0.9  # an object in front
        depth[i] = d
        img = np.repeat((0.3 + 0.3 * xx)[..., None], 3, axis=-1)
        img[box] = rng.uniform(0.0, 1.0, 3)
        image[i] = np.clip(img + 0.02 * rng.normal(size=img.shape), 0.0, 1.0)
    mask = rng.random(SHAPE) > 0.1
    mask[:, :3] = False  # "sky"
    pred = 2.0 * depth - 0.3 + 0.1 * rng.normal(size=SHAPE)  # right order, arbitrary scale

    if name == "constant_image":
        image[:] = 0.5
    elif name == "constant_depth":
        depth[:] = 0.4
    elif name == "constant_pred":
        pred[:] = 0.1
    elif name == "empty_mask":
        mask[:] = False
    elif name == "one_image_empty":
        mask[1] = False
    elif name == "nan_depth_outside_mask":
        depth = np.where(mask, depth, np.nan)
    elif name != "realistic":
        raise AssertionError(name)
    batch = {
        "image": jnp.asarray(image, jnp.float32),
        "depth": jnp.asarray(depth, jnp.float32),
        "mask": jnp.asarray(mask),
    }
    return jnp.asarray(pred, jnp.float32), batch


@pytest.fixture(scope="module")
def realistic():
    pred, batch = make_case("realistic")
    total, parts = losses.combined_loss(KEY, pred, batch, WEIGHTS)
    return pred, batch, total, parts


# ---------------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------------


def test_total_is_weighted_sum_of_parts(realistic):
    _, _, total, parts = realistic
    assert set(parts) == set(WEIGHTS)
    assert total.shape == () and total.dtype == jnp.float32
    for name, value in parts.items():
        assert value.shape == () and value.dtype == jnp.float32, name
        assert np.isfinite(float(value)) and float(value) > 0, name
    want = sum(WEIGHTS[name] * float(parts[name]) for name in WEIGHTS)
    np.testing.assert_allclose(float(total), want, rtol=1e-6)


def test_ordinal_mask_reaches_only_the_ranking_parts(realistic):
    """keep_sky's "ordinal_mask" (mask plus the sky, at depth 0) changes the two ranking
    parts, which then equal the individual losses on that mask, and no other part."""
    pred, batch, _, parts = realistic
    ordinal = jnp.ones_like(batch["mask"])
    sky_depth = jnp.where(batch["mask"], batch["depth"], 0.0)
    with_sky = dict(batch, depth=sky_depth, ordinal_mask=ordinal)
    _, sky_parts = losses.combined_loss(KEY, pred, with_sky, WEIGHTS)
    _, plain_parts = losses.combined_loss(KEY, pred, dict(batch, depth=sky_depth), WEIGHTS)
    for name in ("ssim", "smoothness", "scale_shift", "gradient_matching"):
        assert float(sky_parts[name]) == float(plain_parts[name]) == float(parts[name]), name
    key_ranking, _ = jax.random.split(KEY)
    pairs = sampling.random_pairs(key_ranking, ordinal, 300)
    want = losses.ranking_loss(pred, sky_depth, pairs, mask=ordinal)
    np.testing.assert_allclose(float(sky_parts["ranking"]), float(want), rtol=1e-6)
    for name in ("ranking", "edge_guided_ranking"):
        assert float(sky_parts[name]) != float(plain_parts[name]), name


def test_each_part_matches_the_individual_loss(realistic):
    pred, batch, _, parts = realistic
    image, depth, mask = batch["image"], batch["depth"], batch["mask"]
    opts = losses.LossOptions()
    key_ranking, key_edge = jax.random.split(KEY)
    pairs = sampling.random_pairs(key_ranking, mask, opts.num_pairs)
    scale, shift = losses.fit_scale_shift(pred, depth, mask)
    aligned = scale[:, None, None] * pred + shift[:, None, None]
    want = {
        "ranking": losses.ranking_loss(
            pred, depth, pairs, sigma=0.02, alpha=1.0, mask=mask, hard_fraction=1.0
        ),
        "edge_guided_ranking": losses.edge_guided_ranking_loss(
            key_edge, pred, depth, image, mask, num_anchors=100, sigma=0.03, alpha=1.0,
            hard_fraction=1.0,
        ),
        "ssim": losses.ssim_loss(aligned, jnp.where(mask, depth, 0.0), mask=mask, padding="zeros"),
        "smoothness": losses.inverse_depth_smoothness_loss(aligned, image, mask),
        "scale_shift": losses.scale_shift_invariant_loss(pred, depth, mask),
        "gradient_matching": losses.gradient_matching_loss(pred, depth, mask, scales=4),
    }
    for name in WEIGHTS:
        np.testing.assert_allclose(float(parts[name]), float(want[name]), rtol=1e-5, err_msg=name)


def test_dense_parts_ignore_the_prediction_scale_and_shift(realistic):
    """ssim and smoothness see the prediction aligned to the target, like scale_shift and
    gradient_matching; the ranking parts are not scale invariant."""
    pred, batch, _, parts = realistic
    _, moved = losses.combined_loss(KEY, 3.0 * pred + 1.0, batch, WEIGHTS)
    for name in ("ssim", "smoothness", "scale_shift", "gradient_matching"):
        np.testing.assert_allclose(float(moved[name]), float(parts[name]), rtol=2e-4, atol=1e-6,
                                   err_msg=name)
    assert float(moved["ranking"]) != pytest.approx(float(parts["ranking"]))


def test_deterministic_for_a_fixed_key(realistic):
    pred, batch, total, parts = realistic
    total2, parts2 = losses.combined_loss(jax.random.key(0), pred, batch, WEIGHTS)
    assert float(total2) == float(total)
    for name in WEIGHTS:
        assert float(parts2[name]) == float(parts[name]), name
    _, other = losses.combined_loss(jax.random.key(1), pred, batch, WEIGHTS)
    for name in ("ranking", "edge_guided_ranking"):  # new pairs
        assert float(other[name]) != float(parts[name]), name
    for name in ("ssim", "smoothness", "scale_shift", "gradient_matching"):
        assert float(other[name]) == float(parts[name]), name


# ---------------------------------------------------------------------------------------------
# parts with zero weight are absent and never computed
# ---------------------------------------------------------------------------------------------


def _raise(*args, **kwargs):
    raise AssertionError("a part with zero weight was computed")


@pytest.mark.parametrize("how", ["zero", "absent"])
@pytest.mark.parametrize("name", list(WEIGHTS))
def test_zero_weight_part_is_absent_and_not_computed(name, how, realistic, monkeypatch):
    pred, batch, _, parts = realistic
    monkeypatch.setattr(combined_module, PART_FUNCTIONS[name], _raise)
    weights = dict(WEIGHTS)
    if how == "zero":
        weights[name] = 0.0
    else:
        del weights[name]
    total, got = losses.combined_loss(KEY, pred, batch, weights)
    assert set(got) == set(WEIGHTS) - {name}
    for other in got:
        assert float(got[other]) == float(parts[other]), other
    want = sum(weights[k] * float(parts[k]) for k in got)
    np.testing.assert_allclose(float(total), want, rtol=1e-6)


def test_alignment_is_skipped_without_dense_parts(realistic, monkeypatch):
    pred, batch, _, _ = realistic
    monkeypatch.setattr(combined_module, "align_scale_shift", _raise)
    weights = {"ranking": 1.0, "scale_shift": 1.0, "ssim": 0.0, "smoothness": 0}
    _, parts = losses.combined_loss(KEY, pred, batch, weights)
    assert set(parts) == {"ranking", "scale_shift"}


def test_batch_without_image(realistic):
    """The image is only needed by edge_guided_ranking and smoothness."""
    pred, batch, _, parts = realistic
    no_image = {"depth": batch["depth"], "mask": batch["mask"]}
    weights = {"ranking": 1.0, "ssim": 1.0, "scale_shift": 1.0, "gradient_matching": 1.0,
               "edge_guided_ranking": 0.0}
    _, got = losses.combined_loss(KEY, pred, no_image, weights)
    assert set(got) == {"ranking", "ssim", "scale_shift", "gradient_matching"}
    for name in got:
        assert float(got[name]) == float(parts[name]), name
    for needs_image in ("edge_guided_ranking", "smoothness"):
        with pytest.raises(ValueError, match="image"):
            losses.combined_loss(KEY, pred, no_image, {**weights, needs_image: 0.1})


@pytest.mark.parametrize("missing", ["depth", "mask"])
def test_batch_missing_depth_or_mask(missing, realistic):
    pred, batch, _, _ = realistic
    partial = {k: v for k, v in batch.items() if k != missing}
    with pytest.raises(ValueError, match=missing):
        losses.combined_loss(KEY, pred, partial, {"scale_shift": 1.0})


# ---------------------------------------------------------------------------------------------
# configuration errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights, match",
    [
        ({"scale_shift": 1.0, "ssi_loss": 1.0}, "ssi_loss"),
        ({"Ranking": 1.0}, "Ranking"),
        ({"scale_shift": 1.0, "ranking": -0.5}, "ranking"),
        ({"scale_shift": 1.0, "ssim": float("nan")}, "ssim"),
        ({"scale_shift": float("inf")}, "scale_shift"),
        ({"scale_shift": None}, "scale_shift"),
        ({"scale_shift": 0.0, "ranking": 0}, "weight"),
        ({}, "weight"),
    ],
    ids=["unknown", "unknown_case", "negative", "nan", "inf", "none", "all_zero", "empty"],
)
def test_bad_weights_raise_value_error(weights, match, realistic):
    pred, batch, _, _ = realistic
    with pytest.raises(ValueError, match=match):
        losses.combined_loss(KEY, pred, batch, weights)


def test_unknown_option_raises_value_error(realistic):
    pred, batch, _, _ = realistic
    with pytest.raises(ValueError, match="num_pair"):
        losses.combined_loss(KEY, pred, batch, {"ranking": 1.0}, {"num_pair": 10})
    with pytest.raises(ValueError, match="gradient_scale"):
        losses.combined_loss(KEY, pred, batch, {"ranking": 1.0}, {"gradient_scale": 2})


def test_weights_must_be_static(realistic):
    pred, batch, _, _ = realistic
    step = jax.jit(lambda w: losses.combined_loss(KEY, pred, batch, {"scale_shift": w})[0])
    with pytest.raises(ValueError, match="scale_shift"):
        step(1.0)


def test_bad_prediction_shape_names_pred(realistic):
    pred, batch, _, _ = realistic
    for weights in ({"scale_shift": 1.0}, {"ranking": 1.0}):
        with pytest.raises(ValueError, match="`pred`"):
            losses.combined_loss(KEY, pred[0], batch, weights)


# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------

OPTIONS = {
    "num_pairs": 64,
    "ranking_sigma": 0.05,
    "alpha": 0.5,
    "hard_fraction": 0.75,
    "num_anchors": 20,
    "edge_sigma": 0.07,
    "gradient_scales": 2,
    "ssim_padding": "reflect",
}


@pytest.mark.parametrize("as_dataclass", [False, True])
def test_options_reach_each_part(as_dataclass, realistic, monkeypatch):
    """Spies in place of the losses record the arguments that each part passes on."""
    pred, batch, _, _ = realistic
    calls = {}

    def spy(name, value):
        def record(*args, **kwargs):
            calls[name] = (args, kwargs)
            return jnp.float32(value)

        return record

    values = {name: 0.1 * (i + 1) for i, name in enumerate(WEIGHTS)}
    for name, fn in PART_FUNCTIONS.items():
        monkeypatch.setattr(combined_module, fn, spy(name, values[name]))
    sampled = object()

    def random_pairs(key, mask, num_pairs):
        calls["pairs"] = (key, num_pairs)
        return sampled

    monkeypatch.setattr(sampling, "random_pairs", random_pairs)
    options = losses.LossOptions(**OPTIONS) if as_dataclass else OPTIONS
    total, parts = losses.combined_loss(KEY, pred, batch, WEIGHTS, options)

    np.testing.assert_allclose(float(total), sum(WEIGHTS[k] * values[k] for k in WEIGHTS), 1e-6)
    key_ranking, key_edge = jax.random.split(KEY)
    key, num_pairs = calls["pairs"]
    assert num_pairs == 64
    assert np.array_equal(jax.random.key_data(key), jax.random.key_data(key_ranking))
    args, kw = calls["ranking"]
    assert args[2] is sampled and kw["mask"] is not None
    assert (kw["sigma"], kw["alpha"], kw["hard_fraction"]) == (0.05, 0.5, 0.75)
    args, kw = calls["edge_guided_ranking"]
    assert np.array_equal(jax.random.key_data(args[0]), jax.random.key_data(key_edge))
    assert (kw["num_anchors"], kw["sigma"], kw["alpha"], kw["hard_fraction"]) == (
        20, 0.07, 0.5, 0.75
    )
    assert calls["ssim"][1]["padding"] == "reflect"
    assert calls["gradient_matching"][1]["scales"] == 2


def test_non_default_options_match_the_individual_losses(realistic):
    pred, batch, _, _ = realistic
    depth, mask = batch["depth"], batch["mask"]
    # (num_pairs keeps its default so that the sampler's compiled program is reused)
    options = {"ranking_sigma": 0.05, "alpha": 0.5, "hard_fraction": 0.75, "gradient_scales": 2}
    _, parts = losses.combined_loss(
        KEY, pred, batch, {"ranking": 1.0, "gradient_matching": 1.0}, options
    )
    key_ranking, _ = jax.random.split(KEY)
    pairs = sampling.random_pairs(key_ranking, mask, 300)
    ranking = losses.ranking_loss(
        pred, depth, pairs, sigma=0.05, alpha=0.5, mask=mask, hard_fraction=0.75
    )
    np.testing.assert_allclose(float(parts["ranking"]), float(ranking), rtol=1e-6)
    gm = losses.gradient_matching_loss(pred, depth, mask, scales=2)
    np.testing.assert_allclose(float(parts["gradient_matching"]), float(gm), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# jit and gradients
# ---------------------------------------------------------------------------------------------


@jax.jit
def jitted_parts_and_gradients(key, pred, batch):
    """Inside one jit (weights closed over): total, parts and the gradient of each part."""

    def parts_of(p):
        total, parts = losses.combined_loss(key, p, batch, WEIGHTS)
        return parts, (total, parts)

    grads, (total, parts) = jax.jacrev(parts_of, has_aux=True)(pred)
    return total, parts, grads


CASES = [
    "realistic",
    "constant_image",
    "constant_depth",
    "constant_pred",
    "empty_mask",
    "one_image_empty",
    "nan_depth_outside_mask",
]


@pytest.mark.parametrize("case", CASES)
def test_jit_and_finite_gradients_for_every_part(case):
    pred, batch = make_case(case)
    total, parts, grads = jitted_parts_and_gradients(KEY, pred, batch)
    assert set(parts) == set(grads) == set(WEIGHTS)
    assert np.isfinite(float(total))
    np.testing.assert_allclose(
        float(total), sum(WEIGHTS[k] * float(parts[k]) for k in WEIGHTS), rtol=1e-5
    )
    for name in WEIGHTS:
        g = np.asarray(grads[name])
        assert g.shape == SHAPE
        assert np.isfinite(float(parts[name])), name
        assert np.all(np.isfinite(g)), name
    mask = np.asarray(batch["mask"])
    if case == "realistic":
        for name in WEIGHTS:
            assert np.abs(np.asarray(grads[name])).max() > 0, name
    if case == "empty_mask":
        assert float(total) == 0.0
        for name in WEIGHTS:
            assert float(parts[name]) == 0.0, name
            np.testing.assert_array_equal(np.asarray(grads[name]), 0.0, err_msg=name)
    if case in ("realistic", "constant_image", "constant_depth", "one_image_empty"):
        # The same values as the eager call.
        _, eager = losses.combined_loss(KEY, pred, batch, WEIGHTS)
        for name in WEIGHTS:
            np.testing.assert_allclose(
                float(parts[name]), float(eager[name]), rtol=1e-5, atol=1e-7, err_msg=name
            )
    if case == "nan_depth_outside_mask":
        zeros = dict(batch, depth=jnp.where(mask, batch["depth"], 0.0))
        _, want, want_grads = jitted_parts_and_gradients(KEY, pred, zeros)
        for name in WEIGHTS:
            np.testing.assert_allclose(float(parts[name]), float(want[name]), rtol=1e-6)
            np.testing.assert_allclose(np.asarray(grads[name]), np.asarray(want_grads[name]),
                                       rtol=1e-5, atol=1e-8, err_msg=name)


def test_gradient_step_lowers_the_total():
    pred, batch = make_case("realistic", seed=1)
    total, _, grads = jitted_parts_and_gradients(KEY, pred, batch)
    g = sum(WEIGHTS[k] * grads[k] for k in WEIGHTS)
    stepped, _, _ = jitted_parts_and_gradients(KEY, pred - 0.05 * g / jnp.linalg.norm(g), batch)
    assert float(stepped) < float(total)
