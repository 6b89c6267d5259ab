"""The DPT decoder as Depth Anything builds it (Ranftl et al. 2021; Yang et al. 2024), and
`DepthAnything`: the DINOv2 encoder (models.vit) with this head.

Reassemble: each of the four token maps is projected by a 1x1 convolution to its width
(`out_channels`), then resampled to 4x, 2x, 1x and 1/2 of the patch grid (transposed
convolutions with kernel = stride, identity, a stride-2 3x3 convolution) and brought to
`features` channels (3x3, no bias). Fusion, deepest first: residual convolution units,
bilinear align_corners resampling to the next map's size (the last one 2x), a 1x1
convolution. Output: 3x3 to features/2, bilinear to the input size, 3x3 to 32, ReLU, 1x1 to
one channel, ReLU. Parameter names follow the original code's (projects_i, resize_i,
layer{i}_rn, refinenet{i}/{resunit1, resunit2, out_conv}, output_conv{1,2,3}).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from depthsense_jax.models.preprocessing import check_images, normalize_imagenet
from depthsense_jax.models.resize import resize_align_corners
from depthsense_jax.models.vit import PATCH, DinoV2

HEAD_HIDDEN = 32  # channels of the last 3x3 convolution (both releases)
RESAMPLE = (4, 2, 1, 0.5)  # each token map's scale against the patch grid


def _conv(features: int, size: int, name: str, dtype: Any, bias: bool = True,
          stride: int = 1) -> nn.Conv:
    pad = size // 2
    return nn.Conv(features, (size, size), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), use_bias=bias, dtype=dtype, name=name)


class PatchUpsample(nn.Module):
    """A transposed convolution whose kernel equals its stride: every input pixel becomes a
    factor x factor patch of its own (no overlap), written as one einsum.

    kernel: (factor, factor, in, out); out[f y + i, f x + j] = x[y, x] @ kernel[i, j] + bias.
    """

    features: int
    factor: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, height, width, channels = x.shape
        f = self.factor
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (f, f, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        y = jnp.einsum("bhwc,ijco->bhiwjo", x.astype(self.dtype), kernel.astype(self.dtype))
        return y.reshape(batch, height * f, width * f, self.features) + bias.astype(self.dtype)


class ResidualConvUnit(nn.Module):
    """x + conv(relu(conv(relu(x)))), 3x3 convolutions with bias."""

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        y = _conv(features, 3, "conv1", self.dtype)(nn.relu(x))
        return x + _conv(features, 3, "conv2", self.dtype)(nn.relu(y))


class FusionBlock(nn.Module):
    """(x [+ unit(skip)]) -> unit -> bilinear (align corners) to `size` -> 1x1 conv."""

    skip: bool = True  # the deepest block fuses nothing and has no first unit
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, skip: jax.Array | None, size) -> jax.Array:
        if self.skip:
            x = x + ResidualConvUnit(self.dtype, name="resunit1")(skip)
        x = ResidualConvUnit(self.dtype, name="resunit2")(x)
        x = resize_align_corners(x, *size)
        return _conv(x.shape[-1], 1, "out_conv", self.dtype)(x)


class DPTHead(nn.Module):
    """tokens: four (B, h*w, D) maps, shallowest first, over an h x w patch grid ->
    (B, 14 h, 14 w) float32 relative inverse depth (>= 0)."""

    features: int
    out_channels: Sequence[int]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, tokens: Sequence[jax.Array], height, width) -> jax.Array:
        maps = []
        for index, (x, channels, scale) in enumerate(zip(tokens, self.out_channels, RESAMPLE,
                                                         strict=True)):
            x = x.reshape(x.shape[0], height, width, x.shape[-1])
            x = _conv(channels, 1, f"projects_{index}", self.dtype)(x)
            if scale > 1:
                x = PatchUpsample(channels, int(scale), self.dtype, name=f"resize_{index}")(x)
            elif scale < 1:
                x = _conv(channels, 3, f"resize_{index}", self.dtype, stride=int(1 / scale))(x)
            maps.append(_conv(self.features, 3, f"layer{index + 1}_rn", self.dtype,
                              bias=False)(x))
        l1, l2, l3, l4 = maps
        x = FusionBlock(False, self.dtype, name="refinenet4")(l4, None, l3.shape[1:3])
        x = FusionBlock(True, self.dtype, name="refinenet3")(x, l3, l2.shape[1:3])
        x = FusionBlock(True, self.dtype, name="refinenet2")(x, l2, l1.shape[1:3])
        x = FusionBlock(True, self.dtype, name="refinenet1")(
            x, l1, (2 * l1.shape[1], 2 * l1.shape[2]))
        x = _conv(self.features // 2, 3, "output_conv1", self.dtype)(x)
        x = resize_align_corners(x, PATCH * height, PATCH * width)
        x = nn.relu(_conv(HEAD_HIDDEN, 3, "output_conv2", self.dtype)(x))
        x = nn.relu(_conv(1, 1, "output_conv3", self.dtype)(x))
        return x[..., 0].astype(jnp.float32)


class DepthAnything(nn.Module):
    """Depth Anything (V1 and V2: they differ in the blocks `layers` reads).

    images: (B, H, W, 3) float32 RGB in [0, 1], H and W multiples of 14 -> (B, H, W)
    float32 relative inverse depth (>= 0); the ImageNet normalisation is inside.
    """

    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    layers: Sequence[int] = (2, 5, 8, 11)
    features: int = 64
    out_channels: Sequence[int] = (48, 96, 192, 384)
    pos_grid: int = 37
    pos_interpolation: str = "dinov2"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        del train  # no dropout, no batch statistics
        check_images(images, PATCH)
        if len(self.layers) != 4 or len(self.out_channels) != 4:
            raise ValueError(f"layers {list(self.layers)} and out_channels "
                             f"{list(self.out_channels)} must have four entries each")
        x = normalize_imagenet(images).astype(self.dtype)
        tokens = DinoV2(self.embed_dim, self.depth, self.num_heads, tuple(self.layers),
                        self.pos_grid, self.pos_interpolation, self.dtype, name="encoder")(x)
        height, width = images.shape[1] // PATCH, images.shape[2] // PATCH
        return DPTHead(self.features, tuple(self.out_channels), self.dtype, name="head")(
            tokens, height, width)
