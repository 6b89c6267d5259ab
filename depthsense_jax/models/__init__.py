"""Models: the family registry (`registry`: name -> module, stride, encoder, ONNX writer,
checkpoint readers) and the families themselves; DepthNet (ReDWeb's ResNet + feature
fusion) is the built-in one."""

from depthsense_jax.models.fusion import FFM, FTB, AdaptiveOutput, DepthNet, FusionDecoder
from depthsense_jax.models.registry import (
    DTYPES,
    CheckpointReader,
    ModelFamily,
    apply_train,
    build,
    create_variables,
    family_of,
    infer,
    register,
    summary,
    unregister,
    variable_shapes,
)
from depthsense_jax.models.resnet import ResNet, stage_channels

__all__ = [
    "DTYPES",
    "FFM",
    "FTB",
    "AdaptiveOutput",
    "CheckpointReader",
    "DepthNet",
    "FusionDecoder",
    "ModelFamily",
    "ResNet",
    "apply_train",
    "build",
    "create_variables",
    "family_of",
    "infer",
    "register",
    "stage_channels",
    "summary",
    "unregister",
    "variable_shapes",
]
