"""Models: the ReDWeb ResNet + feature-fusion network."""

from depthsense_jax.models.fusion import FFM, FTB, AdaptiveOutput, DepthNet, FusionDecoder
from depthsense_jax.models.resnet import ResNet, stage_channels

__all__ = ["FFM", "FTB", "AdaptiveOutput", "DepthNet", "FusionDecoder", "ResNet", "stage_channels"]
