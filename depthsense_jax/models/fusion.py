"""ReDWeb feature-fusion decoder (Xian et al. 2018) and `DepthNet`.

Blocks, named as in the paper: FTB (feature transfer block), FFM (feature fusion module),
and the adaptive output head. Two details follow the authors' PyTorch code so that their
weights could be ported: the FTB's residual branch opens with an in-place ReLU, so the skip
adds relu(conv(x)); and upsampling is bilinear with align_corners=True.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from depthsense_jax.models.preprocessing import check_images, normalize_imagenet
from depthsense_jax.models.resize import upsample_align_corners
from depthsense_jax.models.resnet import ResNet

_DECODER_INIT = nn.initializers.normal(stddev=0.01)
STRIDE = 32  # C5 is at 1/32 of the input


def _conv3x3(features: int, name: str, dtype: Any) -> nn.Conv:
    return nn.Conv(
        features, (3, 3), padding=((1, 1), (1, 1)), use_bias=True, dtype=dtype,
        param_dtype=jnp.float32, kernel_init=_DECODER_INIT, name=name,
    )


class FTB(nn.Module):
    """Feature transfer block: 3x3 conv to `features`, then relu(h + conv-BN-ReLU-conv(h))
    with h = relu(conv(x))."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        h = nn.relu(_conv3x3(self.features, "conv1", self.dtype)(x))
        branch = _conv3x3(self.features, "branch_conv1", self.dtype)(h)
        branch = nn.BatchNorm(
            use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype,
            param_dtype=jnp.float32, name="branch_bn",
        )(branch)
        branch = _conv3x3(self.features, "branch_conv2", self.dtype)(nn.relu(branch))
        return nn.relu(h + branch)


class FFM(nn.Module):
    """Feature fusion module: FTB(low-level feature) + higher path -> FTB -> 2x upsample."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, low: jax.Array, high: jax.Array, train: bool) -> jax.Array:
        x = FTB(self.features, self.dtype, name="ftb1")(low, train) + high
        x = FTB(self.features, self.dtype, name="ftb2")(x, train)
        return upsample_align_corners(x)


class AdaptiveOutput(nn.Module):
    """3x3 conv to features/2, BN, ReLU, 3x3 conv to 1, 2x upsample: (B, H, W, 1)."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = _conv3x3(self.features // 2, "conv1", self.dtype)(x)
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype,
            param_dtype=jnp.float32, name="bn",
        )(x)
        x = _conv3x3(1, "conv2", self.dtype)(nn.relu(x))
        return upsample_align_corners(x)


class FusionDecoder(nn.Module):
    """C2..C5 -> (B, H, W, 1) at the input resolution (C2 is at stride 4)."""

    features: int = 256
    top_features: int = 512
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, feats: tuple[jax.Array, ...], train: bool) -> jax.Array:
        c2, c3, c4, c5 = feats
        x = FTB(self.top_features, self.dtype, name="top_ftb")(c5, train)
        x = _conv3x3(self.features, "top_conv", self.dtype)(x)
        x = upsample_align_corners(x)
        x = FFM(self.features, self.dtype, name="ffm4")(c4, x, train)
        x = FFM(self.features, self.dtype, name="ffm3")(c3, x, train)
        x = FFM(self.features, self.dtype, name="ffm2")(c2, x, train)
        return AdaptiveOutput(self.features, self.dtype, name="output")(x, train)


class DepthNet(nn.Module):
    """ResNet encoder + feature-fusion decoder: (B, H, W, 3) in [0, 1] -> (B, H, W) float32
    relative inverse depth (larger = nearer). H and W must be multiples of 32.

    encoder_depth: 18, 34, 50, 101. width: the encoder's first-stage channels (64 =
    torchvision). fusion_channels: F of the decoder (256 in the paper); the top FTB has
    2F channels. dtype: compute dtype (bfloat16 on accelerators); params and output float32.
    Images are normalised with ImageNet mean/std inside the model.
    """

    encoder_depth: int = 50
    width: int = 64
    fusion_channels: int = 256
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False,
                 encoder_train: bool | None = None) -> jax.Array:
        """encoder_train: the encoder's BatchNorm mode when it differs from `train` (False
        keeps a frozen encoder's statistics while the decoder trains)."""
        check_images(images, STRIDE)
        feats = ResNet(self.encoder_depth, self.width, self.dtype, name="encoder")(
            normalize_imagenet(images), train if encoder_train is None else encoder_train)
        out = FusionDecoder(
            self.fusion_channels, 2 * self.fusion_channels, self.dtype, name="decoder",
        )(feats, train)
        return out[..., 0].astype(jnp.float32)
