"""The DepthNet family (ReDWeb: ResNet encoder + feature-fusion decoder, Xian et al. 2018):
`config.model.name = "depthnet"`, the default where a config or model.json names none."""

from __future__ import annotations

import ml_collections

from depthsense_jax.models import depthnet_onnx, registry, torchvision_import
from depthsense_jax.models.fusion import STRIDE, DepthNet

CONFIG_KEYS = ("encoder_depth", "width", "fusion_channels", "dtype")


def build(model_config: ml_collections.ConfigDict) -> DepthNet:
    """DepthNet for a config's model section (encoder_depth 18/34/50/101, width,
    fusion_channels, dtype "float32" or "bfloat16")."""
    return DepthNet(encoder_depth=model_config.encoder_depth, width=model_config.width,
                    fusion_channels=model_config.fusion_channels,
                    dtype=registry.dtype_of(model_config))


def encoder_weights(path: str, model_config: ml_collections.ConfigDict) -> dict:
    """The ResNet encoder's variables from torchvision weights or a converted .msgpack."""
    shapes = torchvision_import.encoder_shapes(model_config.encoder_depth, model_config.width)
    return torchvision_import.read_encoder(path, shapes)


def describe(model_config: ml_collections.ConfigDict) -> str:
    m = model_config
    return (f"DepthNet(encoder_depth={m.encoder_depth}, width={m.width}, "
            f"fusion_channels={m.fusion_channels}, dtype={m.dtype})")


def torch_peer(model_config: ml_collections.ConfigDict):
    """The same DepthNet in plain PyTorch (needs torch)."""
    from depthsense_jax.models import torch_depthnet

    return torch_depthnet.TorchDepthNet(model_config.encoder_depth, model_config.width,
                                        model_config.fusion_channels)


FAMILY = registry.register(registry.ModelFamily(
    name="depthnet", build=build, config_keys=CONFIG_KEYS, stride=STRIDE, default_size=384,
    encoder=("encoder",), batch_stats=True, encoder_weights=encoder_weights,
    onnx=depthnet_onnx.write, describe=describe, torch_peer=torch_peer))
