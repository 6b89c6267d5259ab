"""Weighted sum of the depth losses, configured by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from depthsense_jax import sampling
from depthsense_jax.losses.ranking import edge_guided_ranking_loss, ranking_loss
from depthsense_jax.losses.scale_shift import (
    align_scale_shift,
    gradient_matching_loss,
    scale_shift_invariant_loss,
)
from depthsense_jax.losses.smoothness import inverse_depth_smoothness_loss
from depthsense_jax.losses.ssim import ssim_loss

LOSS_NAMES = (
    "ranking",
    "edge_guided_ranking",
    "ssim",
    "smoothness",
    "scale_shift",
    "gradient_matching",
)


@dataclasses.dataclass(frozen=True)
class LossOptions:
    """Hyperparameters of the parts of `combined_loss` (defaults: the seed and the papers;
    the one place they are written: configs/base.py takes them from here)."""

    num_pairs: int = 300  # random pairs per image for "ranking" (the seed's 300)
    ranking_sigma: float = 0.02  # ordinal "equal" threshold of "ranking" (ReDWeb, Chen et al.)
    alpha: float = 1.0  # weight of the equal-pair term
    hard_fraction: float = 1.0  # keep the hardest fraction of pairs (0.75 = Xian 2018's mining)
    num_anchors: int = 100  # edge anchors per image for "edge_guided_ranking"
    edge_sigma: float = 0.03  # its ordinal threshold (Xian 2020)
    gradient_scales: int = 4  # scales of "gradient_matching"
    ssim_padding: str = "zeros"  # "zeros" (pytorch-ssim, the seed), "reflect" or "valid"

    @classmethod
    def from_mapping(cls, options: Mapping | None) -> LossOptions:
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown loss option(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(options))


def _static_weights(weights: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(LOSS_NAMES))
    if unknown:
        raise ValueError(f"unknown loss name(s) {unknown} in `weights`; known: {list(LOSS_NAMES)}")
    out = {}
    for name, w in weights.items():
        try:
            value = float(w)
        except (TypeError, jax.errors.ConcretizationTypeError) as err:
            raise ValueError(
                f"`weights[{name!r}]` must be a Python number (weights are static), got {w!r}"
            ) from err
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"`weights[{name!r}]` must be finite and >= 0, got {value}")
        out[name] = value
    return out


def combined_loss(
    key: jax.Array,
    pred: jax.Array,
    batch: Mapping[str, jax.Array],
    weights: Mapping[str, float],
    options: Mapping | LossOptions | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of losses: (total () float32, {name: () float32} for each weighted part).

    pred: (B, H, W) relative inverse depth. batch: {"image": (B, H, W, 3) in [0, 1],
    "depth": (B, H, W) target (larger = nearer), "mask": (B, H, W) bool, optionally
    "ordinal_mask": (B, H, W) bool}. "ordinal_mask" (a superset of "mask": sky kept as the
    farthest depth, 0) replaces "mask" for the two ranking parts only; every other part uses
    "mask". weights: {name: float} over LOSS_NAMES; parts with weight 0 (or absent) are not
    computed. Weights and options are static (Python values), so call this inside a jitted
    step that closes over them. The dense parts "ssim" and "smoothness" see the prediction
    aligned to the target by per-image least squares scale and shift, so that, like the
    ranking parts, they ignore the prediction's arbitrary scale; "scale_shift" and
    "gradient_matching" align by themselves.
    """
    weights = {k: v for k, v in _static_weights(weights).items() if v > 0}
    if not weights:
        raise ValueError(f"`weights` gives no loss a positive weight; names: {list(LOSS_NAMES)}")
    opts = LossOptions.from_mapping(options)
    missing = sorted({"depth", "mask"} - set(batch))
    if "image" not in batch and ({"edge_guided_ranking", "smoothness"} & set(weights)):
        missing.append("image")
    if missing:
        raise ValueError(f"`batch` lacks {missing}; it needs 'image', 'depth' and 'mask'")
    target, mask = batch["depth"], jnp.asarray(batch["mask"], bool)
    ordinal_mask = jnp.asarray(batch.get("ordinal_mask", mask), bool)
    key_ranking, key_edge = jax.random.split(key)

    aligned = None
    if {"ssim", "smoothness"} & set(weights):
        aligned = align_scale_shift(pred, target, mask)

    parts: dict[str, jax.Array] = {}
    for name in weights:
        if name == "ranking":
            pairs = sampling.random_pairs(key_ranking, ordinal_mask, opts.num_pairs)
            parts[name] = ranking_loss(
                pred, target, pairs, sigma=opts.ranking_sigma, alpha=opts.alpha,
                mask=ordinal_mask,
                hard_fraction=opts.hard_fraction,
            )
        elif name == "edge_guided_ranking":
            parts[name] = edge_guided_ranking_loss(
                key_edge, pred, target, batch["image"], ordinal_mask, num_anchors=opts.num_anchors,
                sigma=opts.edge_sigma, alpha=opts.alpha, hard_fraction=opts.hard_fraction,
            )
        elif name == "ssim":
            safe_target = jnp.where(mask, target, 0.0)
            parts[name] = ssim_loss(aligned, safe_target, mask=mask, padding=opts.ssim_padding)
        elif name == "smoothness":
            parts[name] = inverse_depth_smoothness_loss(aligned, batch["image"], mask)
        elif name == "scale_shift":
            parts[name] = scale_shift_invariant_loss(pred, target, mask)
        elif name == "gradient_matching":
            parts[name] = gradient_matching_loss(pred, target, mask, scales=opts.gradient_scales)
    total = sum(weights[name] * value for name, value in parts.items())
    return jnp.asarray(total, jnp.float32), parts
