"""DINOv2's Vision Transformer (Oquab et al. 2023) as Depth Anything uses it: patch 14, class
token, learned position embeddings interpolated to any patch grid, LayerScale, and the
intermediate blocks' tokens, each through the final norm, as the encoder's output.

Parameter names follow DINOv2's own layout (patch_embed, cls_token, pos_embed, blocks_i/
{norm1, attn/{qkv, proj}, ls1, norm2, fc1, fc2, ls2}, norm), so that reading a release
is a renaming (models.depth_anything_io).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from depthsense_jax.models.resize import bicubic_matrix

PATCH = 14
LN_EPSILON = 1e-6
# How the position embeddings reach a new grid. "dinov2": the original code's
# F.interpolate(scale_factor=(grid + 0.1) / checkpoint_grid), the 0.1 against rounding;
# "transformers": F.interpolate(size=grid). Both bicubic, both skipped when the grid is the
# checkpoint's and square.
POS_INTERPOLATIONS = {"dinov2": 0.1, "transformers": 0.0}


def interpolate_pos_embed(pos_embed: jax.Array, height, width, mode: str) -> jax.Array:
    """pos_embed: (1, 1 + g*g, D), the class token's first -> (1, 1 + height*width, D) for
    a height x width patch grid (mode: a POS_INTERPOLATIONS key)."""
    offset = POS_INTERPOLATIONS[mode]
    grid = round((pos_embed.shape[1] - 1) ** 0.5)
    dim = pos_embed.shape[-1]
    h = jnp.asarray(height, jnp.float32)
    w = jnp.asarray(width, jnp.float32)
    # The references return the embeddings unchanged at their own grid; a ratio of exactly
    # 1 makes the bicubic map the identity there, with no branch on (maybe symbolic) sizes.
    same = (h == grid) & (w == grid)
    ratio_h = jnp.where(same, 1.0, grid / (h + offset))
    ratio_w = jnp.where(same, 1.0, grid / (w + offset))
    patches = pos_embed[0, 1:].astype(jnp.float32).reshape(grid, grid, dim)
    patches = jnp.einsum("og,gkd,pk->opd", bicubic_matrix(grid, height, ratio_h), patches,
                         bicubic_matrix(grid, width, ratio_w),
                         precision=jax.lax.Precision.HIGHEST)
    return jnp.concatenate([pos_embed[:, :1].astype(jnp.float32),
                            patches.reshape(1, height * width, dim)], axis=1)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (DINOv2's layout)."""

    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, tokens, dim = x.shape
        qkv = nn.Dense(3 * dim, dtype=self.dtype, name="qkv")(x)
        q, k, v = jnp.moveaxis(qkv.reshape(batch, tokens, 3, self.num_heads,
                                           dim // self.num_heads), 2, 0)
        out = jax.nn.dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(head dim)) v
        return nn.Dense(dim, dtype=self.dtype, name="proj")(out.reshape(batch, tokens, dim))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    num_heads: int
    mlp_ratio: int = 4
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dim = x.shape[-1]
        ones = nn.initializers.ones
        y = nn.LayerNorm(LN_EPSILON, dtype=self.dtype, name="norm1")(x)
        y = Attention(self.num_heads, self.dtype, name="attn")(y)
        x = x + y * self.param("ls1", ones, (dim,)).astype(self.dtype)
        y = nn.LayerNorm(LN_EPSILON, dtype=self.dtype, name="norm2")(x)
        y = nn.Dense(self.mlp_ratio * dim, dtype=self.dtype, name="fc1")(y)
        y = nn.Dense(dim, dtype=self.dtype, name="fc2")(nn.gelu(y, approximate=False))
        return x + y * self.param("ls2", ones, (dim,)).astype(self.dtype)


class DinoV2(nn.Module):
    """images: (B, H, W, 3) normalised, H and W multiples of 14 -> the tokens of the blocks
    in `layers` (0-based), each (B, H/14 * W/14, D) after the final norm, class token
    dropped, row-major over the patch grid."""

    embed_dim: int
    depth: int
    num_heads: int
    layers: Sequence[int]
    pos_grid: int = 37  # the checkpoint's patch grid (518 px / 14)
    pos_interpolation: str = "dinov2"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> list[jax.Array]:
        if self.pos_interpolation not in POS_INTERPOLATIONS:
            raise ValueError(f"pos_interpolation must be one of {sorted(POS_INTERPOLATIONS)},"
                             f" got {self.pos_interpolation!r}")
        if not self.layers or max(self.layers) >= self.depth:
            raise ValueError(f"layers {list(self.layers)} must be block indices below the "
                             f"depth {self.depth}")
        batch = images.shape[0]
        x = nn.Conv(self.embed_dim, (PATCH, PATCH), strides=(PATCH, PATCH), padding="VALID",
                    dtype=self.dtype, name="patch_embed")(images)
        height, width = x.shape[1:3]
        x = x.reshape(batch, height * width, self.embed_dim)
        cls = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, self.embed_dim))
        pos = self.param("pos_embed", nn.initializers.truncated_normal(0.02),
                         (1, 1 + self.pos_grid ** 2, self.embed_dim))
        x = jnp.concatenate([jnp.broadcast_to(cls, (batch, 1, self.embed_dim)).astype(x.dtype),
                             x], axis=1)
        x = x + interpolate_pos_embed(pos, height, width, self.pos_interpolation).astype(x.dtype)
        norm = nn.LayerNorm(LN_EPSILON, dtype=self.dtype, name="norm")
        taken = []
        for index in range(self.depth):
            x = Block(self.num_heads, dtype=self.dtype, name=f"blocks_{index}")(x)
            if index in self.layers:
                taken.append(norm(x)[:, 1:])
        return taken
