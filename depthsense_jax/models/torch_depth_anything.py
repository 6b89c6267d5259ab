"""transformers' Depth Anything built from our config.model (torch and transformers needed;
imported only by `speed model --compare` and the tests): the family's `torch_peer`."""

from __future__ import annotations

import importlib

import numpy as np
from flax import traverse_util

from depthsense_jax.models import depth_anything_io
from depthsense_jax.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from depthsense_jax.models.vit import PATCH


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"the Depth Anything PyTorch peer needs {module}: pip install "
                         "'depthsense-jax[compare]' transformers") from err


def hf_config(model_config):
    """transformers.DepthAnythingConfig of the same architecture (relative depth)."""
    transformers = _require("transformers")
    m = model_config
    backbone = transformers.Dinov2Config(
        hidden_size=int(m.embed_dim), num_hidden_layers=int(m.depth),
        num_attention_heads=int(m.num_heads), image_size=int(m.pos_grid) * PATCH,
        patch_size=PATCH, out_indices=[int(i) + 1 for i in m.layers], apply_layernorm=True,
        reshape_hidden_states=False, layerscale_value=1.0)
    return transformers.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=int(m.embed_dim),
        neck_hidden_sizes=[int(c) for c in m.out_channels],
        fusion_hidden_size=int(m.features), head_hidden_size=32, patch_size=PATCH,
        reassemble_factors=[4, 2, 1, 0.5], depth_estimation_type="relative")


def TransformersPeer(model_config):  # noqa: N802 (a class-like factory of a torch module)
    """A torch.nn.Module: (B, 3, H, W) images in [0, 1] -> (B, H, W), normalising them as
    our model does and running DepthAnythingForDepthEstimation (random weights)."""
    torch = _require("torch")
    transformers = _require("transformers")

    class Peer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = transformers.DepthAnythingForDepthEstimation(hf_config(model_config))
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

        def load_variables(self, variables: dict) -> None:
            """Our variables into this model: the same weights on both sides."""
            load_variables(self.model, variables, int(model_config.depth))

        def forward(self, images):
            return self.model(pixel_values=(images - self.mean) / self.std).predicted_depth

    return Peer()


def load_variables(model, variables: dict, depth: int) -> None:
    """Copy our variables into a DepthAnythingForDepthEstimation `model` (the inverse of
    `depth_anything_io.map_hf`). Every conversion there only moves elements (transposes, the
    q/k/v concatenation), so it is run once on tensors of element ids, which then say where
    each of our values goes."""
    torch = _require("torch")
    state = model.state_dict()
    ids, offset = {}, 0
    for name, tensor in state.items():
        ids[name] = np.arange(offset, offset + tensor.numel(), dtype=np.float64).reshape(
            tuple(tensor.shape))
        offset += tensor.numel()
    where = traverse_util.flatten_dict(depth_anything_io.map_hf(ids, depth)["params"])
    ours = traverse_util.flatten_dict(variables["params"])
    if set(where) != set(ours):
        differ = sorted(set(where) ^ set(ours))[:5]
        raise ValueError(f"the variables do not fit this model: {differ}")
    flat = np.concatenate([t.detach().float().numpy().ravel() for t in state.values()])
    for key, index in where.items():
        flat[index.astype(np.int64).ravel()] = np.asarray(ours[key], np.float32).ravel()
    start = 0
    with torch.no_grad():
        for tensor in state.values():
            n = tensor.numel()
            tensor.copy_(torch.from_numpy(flat[start:start + n].reshape(tuple(tensor.shape))))
            start += n
