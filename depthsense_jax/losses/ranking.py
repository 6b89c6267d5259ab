"""Ordinal ranking loss (Chen et al. 2016; Xian et al. 2018) and its edge-guided variant
(Xian et al. 2020)."""

from __future__ import annotations

import functools
from fractions import Fraction

import jax
import jax.numpy as jnp

from depthsense_jax import _checks, sampling


def _check_hard_fraction(hard_fraction: float) -> None:
    if not (isinstance(hard_fraction, int | float) and 0.0 < hard_fraction <= 1.0):
        raise ValueError(f"`hard_fraction` must be in (0, 1], got {hard_fraction!r}")


@functools.partial(jax.jit, static_argnames=("sigma", "alpha", "hard_fraction"))
def ranking_loss(
    pred: jax.Array,
    target: jax.Array,
    pairs: sampling.Pairs,
    *,
    sigma: float = 0.02,
    alpha: float = 1.0,
    mask: jax.Array | None = None,
    hard_fraction: float = 1.0,
) -> jax.Array:
    """Pairwise ranking loss: () float32.

    pred: (B, H, W) relative inverse depth (any scale). target: (B, H, W) ground truth, larger =
    nearer, non-negative. Per pair with label r (`sampling.ordinal_labels`): log(1 + exp(-r
    (p_a - p_b))) if r != 0, else alpha (p_a - p_b)^2. A pair counts when `pairs.valid` and both
    points are in `mask`. With hard_fraction < 1 only the hardest ceil(hard_fraction x counted)
    pairs of each image count (Xian 2018's improved loss drops the easiest 25%: 0.75). Mean over
    the counted pairs of each image (0 where none), then mean over images.
    """
    _checks.check_rank("pred", pred, 3, "(B, H, W)")
    _checks.check_same_shape("target", target, "pred", pred.shape)
    _checks.check_mask(mask, "pred", pred.shape)
    sampling.check_pairs(pairs, pred.shape[0])
    _checks.check_nonnegative("sigma", sigma)
    _checks.check_nonnegative("alpha", alpha)
    _check_hard_fraction(hard_fraction)

    pred = jnp.asarray(pred, jnp.float32)
    counted = pairs.valid
    if mask is not None:
        in_a, in_b = sampling.gather_pairs(jnp.asarray(mask, bool), pairs)
        counted = counted & in_a & in_b
    labels = sampling.ordinal_labels(jnp.asarray(target, jnp.float32), pairs, sigma)
    labels = jnp.where(counted, labels, 0).astype(jnp.float32)
    p_a, p_b = sampling.gather_pairs(pred, pairs)
    diff = p_a - p_b
    per_pair = jnp.where(labels != 0, jax.nn.softplus(-labels * diff), alpha * diff * diff)
    keep = counted
    if hard_fraction < 1.0:
        num_counted = jnp.sum(counted, axis=1, keepdims=True, dtype=jnp.int32)
        # ceil(fraction x count) in exact integers: in float32, 0.3 x 100 is 30.000002.
        frac = Fraction(hard_fraction).limit_denominator(1000)
        num_kept = (frac.numerator * num_counted + frac.denominator - 1) // frac.denominator
        # Rank pairs by loss, hardest first; uncounted pairs sort last.
        order = jnp.argsort(jnp.where(counted, -jax.lax.stop_gradient(per_pair), jnp.inf), axis=1)
        rank = jnp.argsort(order, axis=1)
        keep = counted & (rank < num_kept)
    num_kept = jnp.sum(keep, axis=1)
    total = jnp.sum(jnp.where(keep, per_pair, 0.0), axis=1)
    per_image = jnp.where(num_kept > 0, total / jnp.maximum(num_kept, 1), 0.0)
    return jnp.mean(per_image)


@functools.partial(
    jax.jit,
    static_argnames=("num_anchors", "num_random", "sigma", "alpha", "hard_fraction", "min_dist",
                     "max_dist"),
)
def edge_guided_ranking_loss(
    key: jax.Array,
    pred: jax.Array,
    target: jax.Array,
    image: jax.Array,
    mask: jax.Array,
    *,
    num_anchors: int = 100,
    num_random: int | None = None,
    sigma: float = 0.03,
    alpha: float = 1.0,
    hard_fraction: float = 1.0,
    min_dist: int = 2,
    max_dist: int = 30,
) -> jax.Array:
    """Structure-guided ranking loss (Xian 2020): () float32.

    pred, target: (B, H, W) as `ranking_loss`. image: (B, H, W, 3) in [0, 1], whose edges guide
    the sampling. mask: (B, H, W) bool. Uses 3 x num_anchors edge-guided pairs plus
    `num_random` uniformly random pairs (default: as many as the edge pairs), sigma 0.03 as in
    the paper. An image without edges still gets its random pairs.
    """
    _checks.check_rank("pred", pred, 3, "(B, H, W)")
    _checks.check_same_shape("target", target, "pred", pred.shape)
    _checks.check_rank("image", image, 4, "(B, H, W, 3)")
    _checks.check_same_shape("image[..., 0]", image[..., 0], "pred", pred.shape)
    num_random = 3 * num_anchors if num_random is None else num_random
    _checks.check_positive_int("num_random", num_random)
    key_edge, key_random = jax.random.split(key)
    pairs = sampling.concat_pairs(
        sampling.edge_guided_pairs(
            key_edge, image, mask, num_anchors, min_dist=min_dist, max_dist=max_dist
        ),
        sampling.random_pairs(key_random, mask, num_random),
    )
    return ranking_loss(
        pred, target, pairs, sigma=sigma, alpha=alpha, mask=mask, hard_fraction=hard_fraction
    )
