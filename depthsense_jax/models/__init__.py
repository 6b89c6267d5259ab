"""Models: the ReDWeb ResNet + feature-fusion network, built from configs."""

from depthsense_jax.models.build import (
    DTYPES,
    MODEL_KEYS,
    create_variables,
    infer,
    model_from_config,
    summary,
    variable_shapes,
)
from depthsense_jax.models.fusion import FFM, FTB, AdaptiveOutput, DepthNet, FusionDecoder
from depthsense_jax.models.resnet import ResNet, stage_channels

__all__ = [
    "DTYPES",
    "FFM",
    "FTB",
    "MODEL_KEYS",
    "AdaptiveOutput",
    "DepthNet",
    "FusionDecoder",
    "ResNet",
    "create_variables",
    "infer",
    "model_from_config",
    "stage_channels",
    "summary",
    "variable_shapes",
]
