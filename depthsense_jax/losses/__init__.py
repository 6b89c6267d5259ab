"""Pure, jit-compiled depth losses. Each returns a float32 scalar and is mask-aware: pixels
outside the mask contribute nothing, and an all-false mask gives 0, not NaN."""

from depthsense_jax.losses.combined import LOSS_NAMES, LossOptions, combined_loss
from depthsense_jax.losses.ranking import edge_guided_ranking_loss, ranking_loss
from depthsense_jax.losses.scale_shift import (
    fit_scale_shift,
    gradient_matching_loss,
    normalize_target,
    scale_shift_invariant_loss,
)
from depthsense_jax.losses.smoothness import inverse_depth_smoothness_loss
from depthsense_jax.losses.ssim import ssim, ssim_loss, ssim_map

__all__ = [
    "LOSS_NAMES",
    "LossOptions",
    "combined_loss",
    "edge_guided_ranking_loss",
    "fit_scale_shift",
    "gradient_matching_loss",
    "inverse_depth_smoothness_loss",
    "normalize_target",
    "ranking_loss",
    "scale_shift_invariant_loss",
    "ssim",
    "ssim_loss",
    "ssim_map",
]
