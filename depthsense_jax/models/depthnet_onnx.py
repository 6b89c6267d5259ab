"""DepthNet written into an ONNX graph (the family's `onnx` writer; `onnx_export` builds,
checks and saves the model around it).

The graph follows the same architecture description the Flax modules use (`resnet.STAGES`,
the module names), and `onnx_export.Graph.var` hands out each variable once, so a renamed
or added parameter is an error there rather than a silently different model.
"""

from __future__ import annotations

import numpy as np

from depthsense_jax.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from depthsense_jax.models.resnet import STAGES


def _residual_block(g, x: str, prefix: str, kind: str, stride: int) -> str:
    """models.resnet.BasicBlock / Bottleneck (the stride sits on the 3x3 convolution)."""
    if kind == "basic":
        y = g.relu(g.batch_norm(g.conv(x, f"{prefix}/conv1", stride), f"{prefix}/bn1"))
        y = g.batch_norm(g.conv(y, f"{prefix}/conv2"), f"{prefix}/bn2")
    else:
        y = g.relu(g.batch_norm(g.conv(x, f"{prefix}/conv1"), f"{prefix}/bn1"))
        y = g.relu(g.batch_norm(g.conv(y, f"{prefix}/conv2", stride), f"{prefix}/bn2"))
        y = g.batch_norm(g.conv(y, f"{prefix}/conv3"), f"{prefix}/bn3")
    if g.has(f"params/{prefix}/downsample_conv/kernel"):
        x = g.batch_norm(g.conv(x, f"{prefix}/downsample_conv", stride),
                         f"{prefix}/downsample_bn")
    return g.relu(g.add(x, y))


def _encoder(g, x: str, depth: int) -> list[str]:
    """models.resnet.ResNet: C2..C5."""
    kind, blocks = STAGES[depth]
    x = g.relu(g.batch_norm(g.conv(x, "encoder/conv1", 2), "encoder/bn1"))
    x = g.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    features = []
    for stage, count in enumerate(blocks):
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            x = _residual_block(g, x, f"encoder/layer{stage + 1}_{index}", kind, stride)
        features.append(x)
    return features


def _ftb(g, x: str, prefix: str) -> str:
    """models.fusion.FTB."""
    h = g.relu(g.conv(x, f"{prefix}/conv1", bias=True))
    branch = g.batch_norm(g.conv(h, f"{prefix}/branch_conv1", bias=True), f"{prefix}/branch_bn")
    branch = g.conv(g.relu(branch), f"{prefix}/branch_conv2", bias=True)
    return g.relu(g.add(h, branch))


def _decoder(g, features: list[str]) -> str:
    """models.fusion.FusionDecoder: (B, 1, H, W)."""
    c2, c3, c4, c5 = features
    x = _ftb(g, c5, "decoder/top_ftb")
    x = g.upsample2x(g.conv(x, "decoder/top_conv", bias=True))
    for name, low in (("ffm4", c4), ("ffm3", c3), ("ffm2", c2)):
        x = g.add(_ftb(g, low, f"decoder/{name}/ftb1"), x)
        x = g.upsample2x(_ftb(g, x, f"decoder/{name}/ftb2"))
    x = g.batch_norm(g.conv(x, "decoder/output/conv1", bias=True), "decoder/output/bn")
    return g.upsample2x(g.conv(g.relu(x), "decoder/output/conv2", bias=True))


def write(g, images: str, model_config) -> str:
    """DepthNet(model_config) on `images` (batch, height, width, 3) in [0, 1]: the name of
    its (batch, 1, height, width) output, computed in NCHW."""
    depth = int(model_config.encoder_depth)
    if depth not in STAGES:
        raise ValueError(f"encoder_depth must be one of {sorted(STAGES)}, got {depth}")
    x = g.op("Sub", [images, g.const("mean", np.asarray(IMAGENET_MEAN, np.float32))])
    x = g.op("Div", [x, g.const("std", np.asarray(IMAGENET_STD, np.float32))])
    x = g.op("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2])
    return _decoder(g, _encoder(g, x, depth))
