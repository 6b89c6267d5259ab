"""Flax Linen ResNet-18/34/50/101 encoder in torchvision's layout, returning C2..C5.

Module names follow torchvision's state-dict keys (`layer1.0.conv1` -> `layer1_0/conv1`,
`downsample.0`/`.1` -> `downsample_conv`/`downsample_bn`) so that ImageNet weights map
one to one (see `torchvision_import.py`). Padding is explicit and symmetric, as in PyTorch
(Flax's "SAME" pads stride-2 convolutions asymmetrically).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# depth -> (block kind, blocks per stage)
STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
BOTTLENECK_EXPANSION = 4


def stage_channels(depth: int, width: int = 64) -> tuple[int, int, int, int]:
    """Channels of C2..C5 for a ResNet of this depth and base width."""
    kind, _ = STAGES[depth]
    factor = BOTTLENECK_EXPANSION if kind == "bottleneck" else 1
    return tuple(width * 2**i * factor for i in range(4))


def _conv(features: int, kernel: int, stride: int, name: str, dtype: Any) -> nn.Conv:
    pad = kernel // 2
    return nn.Conv(
        features, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
        use_bias=False, dtype=dtype, param_dtype=jnp.float32, name=name,
        kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
    )


def _batch_norm(train: bool, dtype: Any, name: str) -> nn.BatchNorm:
    # PyTorch's defaults: momentum 0.1 there is 0.9 here; eps 1e-5.
    return nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
        param_dtype=jnp.float32, name=name,
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    features: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        def norm(name: str) -> nn.BatchNorm:
            return _batch_norm(train, self.dtype, name)

        y = _conv(self.features, 3, self.stride, "conv1", self.dtype)(x)
        y = nn.relu(norm(name="bn1")(y))
        y = _conv(self.features, 3, 1, "conv2", self.dtype)(y)
        y = norm(name="bn2")(y)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = _conv(self.features, 1, self.stride, "downsample_conv", self.dtype)(x)
            x = norm(name="downsample_bn")(x)
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as torchvision's v1.5), 1x1 expand x4, residual."""

    features: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        def norm(name: str) -> nn.BatchNorm:
            return _batch_norm(train, self.dtype, name)

        out = self.features * BOTTLENECK_EXPANSION
        y = _conv(self.features, 1, 1, "conv1", self.dtype)(x)
        y = nn.relu(norm(name="bn1")(y))
        y = _conv(self.features, 3, self.stride, "conv2", self.dtype)(y)
        y = nn.relu(norm(name="bn2")(y))
        y = norm(name="bn3")(_conv(out, 1, 1, "conv3", self.dtype)(y))
        if self.stride != 1 or x.shape[-1] != out:
            x = _conv(out, 1, self.stride, "downsample_conv", self.dtype)(x)
            x = norm(name="downsample_bn")(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """ResNet encoder: (B, H, W, 3) images -> (C2, C3, C4, C5) at strides 4, 8, 16, 32.

    depth: 18, 34, 50 or 101. width: channels of the first stage (64 in torchvision; smaller
    for tiny CPU models). dtype: compute dtype (params stay float32).
    """

    depth: int = 50
    width: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, ...]:
        if self.depth not in STAGES:
            raise ValueError(f"`depth` must be one of {sorted(STAGES)}, got {self.depth!r}")
        kind, blocks = STAGES[self.depth]
        block_cls = BasicBlock if kind == "basic" else Bottleneck
        x = jnp.asarray(x, self.dtype)
        x = _conv(self.width, 7, 2, "conv1", self.dtype)(x)
        x = _batch_norm(train, self.dtype, "bn1")(x)
        x = nn.relu(x)
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        features = []
        for stage, count in enumerate(blocks):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                x = block_cls(
                    self.width * 2**stage, stride, self.dtype,
                    name=f"layer{stage + 1}_{index}",
                )(x, train)
            features.append(x)
        return tuple(features)
