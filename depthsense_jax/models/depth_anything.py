"""The Depth Anything family (Yang et al. 2024, V1 and V2: DINOv2 ViT encoder + DPT head):
`config.model.name = "depth_anything"`.

config.model fields: embed_dim, depth, num_heads (the ViT), layers (the four blocks the head
reads, 0-based), features and out_channels (the head's widths), pos_grid (the checkpoint's
patch grid: 37 for the 518 px releases), pos_interpolation ("dinov2" for the original
code's checkpoints, "transformers" for Hugging Face's: models.vit), dtype. `variant_config`
fills them for ViT-S/B/L of either version; the checkpoint readers
(models.depth_anything_io) fill them from the file.
"""

from __future__ import annotations

import ml_collections

from depthsense_jax.models import depth_anything_io, registry
from depthsense_jax.models.dpt import DepthAnything
from depthsense_jax.models.vit import PATCH

NAME = depth_anything_io.FAMILY
CONFIG_KEYS = ("embed_dim", "depth", "num_heads", "layers", "features", "out_channels",
               "pos_grid", "pos_interpolation", "dtype")
# ViT name -> (embed_dim, depth, num_heads, features, out_channels), the releases' sizes
VARIANTS = {
    "vits": (384, 12, 6, 64, (48, 96, 192, 384)),
    "vitb": (768, 12, 12, 128, (96, 192, 384, 768)),
    "vitl": (1024, 24, 16, 256, (256, 512, 1024, 1024)),
}
DEFAULT_SIZE = 518  # the releases' short side


def variant_config(variant: str = "vits", version: int = 2, dtype: str = "float32",
                   pos_interpolation: str = "dinov2") -> ml_collections.ConfigDict:
    """config.model of a released size: variant "vits", "vitb" or "vitl"; version 1 (the
    last four blocks) or 2 (V2's intermediate blocks)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    embed_dim, depth, heads, features, out_channels = VARIANTS[variant]
    layers = (depth_anything_io.v2_layers if version == 2 else depth_anything_io.v1_layers)(
        depth)
    config = depth_anything_io.model_config_for(embed_dim, depth, heads, features,
                                                out_channels, layers, DEFAULT_SIZE // PATCH,
                                                pos_interpolation)
    config.dtype = dtype
    config.pretrained = ""
    return config


def build(model_config: ml_collections.ConfigDict) -> DepthAnything:
    m = model_config
    return DepthAnything(
        embed_dim=int(m.embed_dim), depth=int(m.depth), num_heads=int(m.num_heads),
        layers=tuple(int(i) for i in m.layers), features=int(m.features),
        out_channels=tuple(int(c) for c in m.out_channels), pos_grid=int(m.pos_grid),
        pos_interpolation=m.pos_interpolation, dtype=registry.dtype_of(m))


def variant_name(model_config) -> str:
    """"ViT-S" / "ViT-B" / "ViT-L", or "ViT (width N)" for other sizes."""
    for name, (embed_dim, depth, *_rest) in VARIANTS.items():
        if (int(model_config.embed_dim), int(model_config.depth)) == (embed_dim, depth):
            return f"ViT-{name[-1].upper()}"
    return f"ViT (width {model_config.embed_dim}, {model_config.depth} blocks)"


def version_of(model_config) -> str:
    layers = [int(i) for i in model_config.layers]
    depth = int(model_config.depth)
    if layers == depth_anything_io.v2_layers(depth):
        return "V2"
    return "V1" if layers == depth_anything_io.v1_layers(depth) else f"layers {layers}"


def describe(model_config: ml_collections.ConfigDict) -> str:
    m = model_config
    return (f"DepthAnything({version_of(m)}, {variant_name(m)}/14, embed_dim={m.embed_dim}, "
            f"depth={m.depth}, heads={m.num_heads}, layers={list(m.layers)}, "
            f"features={m.features}, out_channels={list(m.out_channels)}, "
            f"pos_grid={m.pos_grid}, pos_interpolation={m.pos_interpolation}, dtype={m.dtype})")


def encoder_weights(path: str, model_config: ml_collections.ConfigDict) -> dict:
    """The DINOv2 encoder's variables (model.pretrained): a DINOv2 or Depth Anything
    checkpoint in either layout, or a converted .msgpack."""
    if path.lower().endswith(".msgpack"):
        from flax import serialization

        from depthsense_jax import storage

        tree = serialization.msgpack_restore(storage.read_bytes(path))
        return {"params": tree.get("params", tree)}
    return depth_anything_io.read_encoder(path, model_config)


def torch_peer(model_config: ml_collections.ConfigDict):
    """transformers' DepthAnythingForDepthEstimation of the same size (needs torch and
    transformers), for `speed model --compare`."""
    from depthsense_jax.models import torch_depth_anything

    return torch_depth_anything.TransformersPeer(model_config)


def _onnx(g, images: str, model_config) -> str:
    from depthsense_jax.models import depth_anything_onnx

    return depth_anything_onnx.write(g, images, model_config)


FAMILY = registry.register(registry.ModelFamily(
    name=NAME, build=build, config_keys=CONFIG_KEYS, stride=PATCH, default_size=DEFAULT_SIZE,
    encoder=("encoder",), batch_stats=False, encoder_weights=encoder_weights,
    readers=(
        registry.CheckpointReader("Hugging Face Depth Anything folder", depth_anything_io.is_hf,
                                  depth_anything_io.read_hf),
        registry.CheckpointReader("Depth Anything state dict (.pth/.safetensors)",
                                  depth_anything_io.is_original,
                                  depth_anything_io.read_original)),
    onnx=_onnx, describe=describe, torch_peer=torch_peer,
    # Layer-wise learning-rate decay: the embeddings are layer 0, blocks_i layer i + 1, the
    # final norm layer depth + 1 (the encoder's full rate); an unknown name is a KeyError.
    encoder_layers=lambda m: registry.EncoderLayers(
        num_layers=int(m.depth) + 1,
        index=lambda path: (int(path[1][len("blocks_"):]) + 1 if path[1].startswith("blocks_")
                            else {"patch_embed": 0, "cls_token": 0, "pos_embed": 0,
                                  "norm": int(m.depth) + 1}[path[1]]))))
