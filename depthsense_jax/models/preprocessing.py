"""Input normalisation shared by the model families and their ONNX graphs: images in [0, 1]
enter every model, which normalises them itself with the ImageNet statistics its encoder was
pretrained with."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# torchvision's ImageNet statistics, per RGB channel (ResNet and DINOv2 both use them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_imagenet(images: jax.Array) -> jax.Array:
    """images: (B, H, W, 3) in [0, 1] -> (B, H, W, 3) float32 (x - mean) / std."""
    mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
    std = jnp.asarray(IMAGENET_STD, jnp.float32)
    return (jnp.asarray(images, jnp.float32) - mean) / std


def check_images(images: jax.Array, stride: int) -> None:
    """A ValueError unless `images` is (B, H, W, 3) with H and W positive multiples of
    `stride`, saying which size to resize or pad to."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"`images` must have shape (B, H, W, 3), got {images.shape}")
    h, w = images.shape[1:3]
    if h % stride or w % stride or h == 0 or w == 0:
        raise ValueError(
            f"`images` height and width must be positive multiples of {stride}, got {h}x{w} "
            f"(shape {images.shape}); resize or pad to e.g. "
            f"{max(stride, -(-h // stride) * stride)}x{max(stride, -(-w // stride) * stride)}"
        )
