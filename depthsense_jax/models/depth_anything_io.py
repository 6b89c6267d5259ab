"""Depth Anything and DINOv2 checkpoints in their releases' layouts -> our variables.

Two layouts are read, both without a download and without torch where the file is
safetensors:
- Hugging Face: a folder of `DepthAnythingForDepthEstimation` (config.json, model_type
  "depth_anything", + model.safetensors), as the depth-anything/Depth-Anything-V2-*-hf and
  LiheYoung/depth-anything-*-hf releases; for an encoder alone, a `Dinov2Model` folder
  (model_type "dinov2", facebook/dinov2-*). Attention weights under either of transformers'
  names (query/key/value + output.dense, or q/k/v/o_proj).
- The original code's state dicts (`depth_anything_v2_vits.pth`, V1's
  `depth_anything_vits14.pth`, ...: keys pretrained.* and depth_head.*; DINOv2's own
  `dinov2_vits14_pretrain.pth` for an encoder alone), as .pth (needs torch: the [compare]
  extra) or the same tensors as .safetensors.

The variant (ViT-S/B/L, the head's widths) comes from the tensors' shapes. V1 and V2 have the
same tensors and differ in which blocks the head reads: the original files say it by name
(depth_anything_v2_* is V2, depth_anything_vit*14 is V1; any other name is read as V2),
the Hugging Face config by its backbone's out_indices.

Tensors the model never uses are dropped by name: the mask token (masked pre-training
only) and the deepest fusion block's first residual unit (it has no skip to refine). Any
other tensor left over, or missing, is an error naming it.
"""

from __future__ import annotations

import json
import os
import re

import ml_collections
import numpy as np
from flax import traverse_util

from depthsense_jax import storage

FAMILY = "depth_anything"
# embed dim -> (ViT name, heads), DINOv2's sizes
VITS = {384: ("vits", 6), 768: ("vitb", 12), 1024: ("vitl", 16)}
_UNUSED = (re.compile(r"(^|\.)mask_token$"),
           re.compile(r"refinenet4\.resConfUnit1\."),
           re.compile(r"fusion_stage\.layers\.0\.residual_layer1\."))


# Reading tensors ---------------------------------------------------------------------------


def read_tensors(path: str) -> dict[str, np.ndarray]:
    """name -> float32 array of a .safetensors or .pth/.pt state dict (a "state_dict" or
    "model" entry inside a .pth is unwrapped)."""
    lower = path.lower()
    if lower.endswith(".safetensors"):
        from safetensors.numpy import load_file

        with storage.local_file(path) as local:
            return {k: np.asarray(v, np.float32) for k, v in load_file(local).items()}
    if lower.endswith((".pth", ".pt", ".bin")):
        try:
            import torch
        except ImportError as err:
            raise ValueError(f"reading {path!r} (a PyTorch file) needs torch: pip install "
                             "'depthsense-jax[compare]', or save the state dict as "
                             ".safetensors, which needs nothing more") from err
        with storage.local_file(path) as local:
            state = torch.load(local, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        return {k: v.float().numpy() for k, v in state.items() if hasattr(v, "float")}
    raise ValueError(f"{path!r}: expected a .safetensors, .pth or .pt file")


def safetensors_keys(path: str) -> list[str]:
    """The tensor names in a .safetensors file's header (nothing else is read)."""
    with storage.local_file(path) as local, open(local, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if size <= 0 or size > 100_000_000:
            return []
        header = json.loads(f.read(size))
    return [k for k in header if k != "__metadata__"]


def _dense(w: np.ndarray) -> np.ndarray:  # torch Linear (out, in) -> Flax (in, out)
    return w.T


def _conv(w: np.ndarray) -> np.ndarray:  # torch Conv2d (out, in, kh, kw) -> (kh, kw, in, out)
    return np.transpose(w, (2, 3, 1, 0))


def _conv_transpose(w: np.ndarray) -> np.ndarray:  # torch (in, out, kh, kw) -> (kh, kw, in, out)
    return np.transpose(w, (2, 3, 0, 1))


class _Mapper:
    """Takes tensors out of a state dict by name, once each, into a flat tree of ours."""

    def __init__(self, tensors: dict[str, np.ndarray], source: str):
        self.tensors = {k: v for k, v in tensors.items()
                        if not any(p.search(k) for p in _UNUSED)}
        self.source = source
        self.out: dict[tuple[str, ...], np.ndarray] = {}
        self.missing: list[str] = []

    def has(self, name: str) -> bool:
        return name in self.tensors

    def take(self, name: str) -> np.ndarray | None:
        if name not in self.tensors:
            self.missing.append(name)
            return None
        return self.tensors.pop(name)

    def put(self, ours: str, name: str, convert=lambda w: w) -> None:
        value = self.take(name)
        if value is not None:
            self.out[tuple(ours.split("/"))] = convert(value)

    def linear(self, ours: str, name: str) -> None:
        self.put(f"{ours}/kernel", f"{name}.weight", _dense)
        self.put(f"{ours}/bias", f"{name}.bias")

    def conv(self, ours: str, name: str, bias: bool = True, convert=_conv) -> None:
        self.put(f"{ours}/kernel", f"{name}.weight", convert)
        if bias:
            self.put(f"{ours}/bias", f"{name}.bias")

    def norm(self, ours: str, name: str) -> None:
        self.put(f"{ours}/scale", f"{name}.weight")
        self.put(f"{ours}/bias", f"{name}.bias")

    def variables(self) -> dict:
        """{"params": tree}; a ValueError naming missing and unexpected tensors."""
        problems = []
        if self.missing:
            more = " ..." if len(self.missing) > 8 else ""
            problems.append(f"missing {len(self.missing)} tensor(s): "
                            f"{', '.join(self.missing[:8])}{more}")
        if self.tensors:
            left = sorted(self.tensors)
            problems.append(f"{len(left)} unexpected tensor(s): "
                            f"{', '.join(left[:8])}{' ...' if len(left) > 8 else ''}")
        if problems:
            raise ValueError(f"{self.source}: not a Depth Anything / DINOv2 checkpoint this "
                             f"version reads: {'; '.join(problems)}")
        return {"params": traverse_util.unflatten_dict(self.out)}


def _count_blocks(tensors, pattern: str) -> int:
    found = {int(m.group(1)) for k in tensors if (m := re.match(pattern, k))}
    if not found or found != set(range(len(found))):
        return 0
    return len(found)


def _vit_size(embed_dim: int, source: str) -> tuple[str, int]:
    """(name, heads) of a ViT width: DINOv2's sizes; other widths (not released, e.g. a
    test's small model) at 64 channels per head, 16 below width 64."""
    if embed_dim in VITS:
        return VITS[embed_dim]
    head_dim = 64 if embed_dim >= 64 else 16
    if embed_dim % head_dim:
        raise ValueError(f"{source}: a ViT with embedding width {embed_dim}; this version "
                         f"reads DINOv2 ViT-S/B/L ({', '.join(map(str, VITS))}) or widths "
                         "that are multiples of 64")
    return f"width {embed_dim}", embed_dim // head_dim


# The two layouts' names for each of our tensors: {i} a block, {k} a fusion block (1 the
# shallowest), {u} its residual unit, {c} the unit's convolution; "qkv" is one tensor in the
# original code and three (q, k, v, concatenated here) in transformers'.
ORIGINAL = {
    "cls": "cls_token", "pos": "pos_embed", "patch": "patch_embed.proj", "block": "blocks.{i}",
    "norm1": "norm1", "qkv": ("attn.qkv",), "proj": "attn.proj", "ls1": "ls1.gamma",
    "norm2": "norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2", "ls2": "ls2.gamma", "norm": "norm",
    "projects": "depth_head.projects.{i}", "rn": "depth_head.scratch.layer{k}_rn",
    "resize": "depth_head.resize_layers.{i}", "refine": "depth_head.scratch.refinenet{k}",
    "out_conv": "out_conv", "unit": "resConfUnit{u}.conv{c}",
    "output": ("depth_head.scratch.output_conv1", "depth_head.scratch.output_conv2.0",
               "depth_head.scratch.output_conv2.2"),
}
_HF_HEAD = {
    "projects": "neck.reassemble_stage.layers.{i}.projection", "rn": "neck.convs.{i}",
    "resize": "neck.reassemble_stage.layers.{i}.resize",
    "refine": "neck.fusion_stage.layers.{j}",  # deepest first: j = 4 - k
    "out_conv": "projection", "unit": "residual_layer{u}.convolution{c}",
    "output": ("head.conv1", "head.conv2", "head.conv3"),
}
_HF_ENCODER = {
    "cls": "embeddings.cls_token", "pos": "embeddings.position_embeddings",
    "patch": "embeddings.patch_embeddings.projection", "block": "encoder.layer.{i}",
    "norm1": "norm1", "ls1": "layer_scale1.lambda1", "norm2": "norm2", "fc1": "mlp.fc1",
    "fc2": "mlp.fc2", "ls2": "layer_scale2.lambda1", "norm": "layernorm",
}
# transformers 4 and the releases; transformers 5 renamed the attention's projections
HF = {**_HF_ENCODER, **_HF_HEAD, "qkv": tuple(f"attention.attention.{n}" for n in
                                             ("query", "key", "value")),
      "proj": "attention.output.dense"}
HF5 = {**HF, "qkv": tuple(f"attention.{n}_proj" for n in "qkv"), "proj": "attention.o_proj"}


def _map_encoder(m: _Mapper, names: dict, prefix: str, depth: int) -> None:
    m.put("encoder/cls_token", prefix + names["cls"])
    m.put("encoder/pos_embed", prefix + names["pos"])
    m.conv("encoder/patch_embed", prefix + names["patch"])
    for i in range(depth):
        src, ours = prefix + names["block"].format(i=i), f"encoder/blocks_{i}"
        m.norm(f"{ours}/norm1", f"{src}.{names['norm1']}")
        parts = [(m.take(f"{src}.{n}.weight"), m.take(f"{src}.{n}.bias"))
                 for n in names["qkv"]]
        if all(w is not None and b is not None for w, b in parts):
            m.out[(*ours.split("/"), "attn", "qkv", "kernel")] = _dense(
                np.concatenate([w for w, _ in parts], 0))
            m.out[(*ours.split("/"), "attn", "qkv", "bias")] = np.concatenate(
                [b for _, b in parts], 0)
        m.linear(f"{ours}/attn/proj", f"{src}.{names['proj']}")
        m.put(f"{ours}/ls1", f"{src}.{names['ls1']}")
        m.norm(f"{ours}/norm2", f"{src}.{names['norm2']}")
        m.linear(f"{ours}/fc1", f"{src}.{names['fc1']}")
        m.linear(f"{ours}/fc2", f"{src}.{names['fc2']}")
        m.put(f"{ours}/ls2", f"{src}.{names['ls2']}")
    m.norm("encoder/norm", prefix + names["norm"])


def _map_head(m: _Mapper, names: dict) -> None:
    for i in range(4):
        m.conv(f"head/projects_{i}", names["projects"].format(i=i))
        m.conv(f"head/layer{i + 1}_rn", names["rn"].format(i=i, k=i + 1), bias=False)
    m.conv("head/resize_0", names["resize"].format(i=0), convert=_conv_transpose)
    m.conv("head/resize_1", names["resize"].format(i=1), convert=_conv_transpose)
    m.conv("head/resize_3", names["resize"].format(i=3))
    for k in range(1, 5):
        src, ours = names["refine"].format(k=k, j=4 - k), f"head/refinenet{k}"
        m.conv(f"{ours}/out_conv", f"{src}.{names['out_conv']}")
        for unit in (1, 2) if k < 4 else (2,):  # the deepest block has nothing to fuse
            for conv in (1, 2):
                m.conv(f"{ours}/resunit{unit}/conv{conv}",
                       f"{src}.{names['unit'].format(u=unit, c=conv)}")
    for index, name in enumerate(names["output"]):
        m.conv(f"head/output_conv{index + 1}", name)


def _hf_names(tensors, prefix: str) -> dict:
    return HF if f"{prefix}encoder.layer.0.attention.attention.query.weight" in tensors else HF5


# The original code's layout ----------------------------------------------------------------


def original_version(path: str) -> int:
    """1 or 2 from a released file's name (see the module docstring)."""
    name = os.path.basename(path).lower()
    if "v2" in name:
        return 2
    return 1 if re.search(r"depth_anything_vit[sbl]14|(^|[^a-z0-9])v1([^0-9]|$)", name) else 2


def v2_layers(depth: int) -> list[int]:
    """The blocks Depth Anything V2 reads: [2, 5, 8, 11] at depth 12, [4, 11, 17, 23] at 24."""
    return {12: [2, 5, 8, 11], 24: [4, 11, 17, 23]}.get(
        depth, [round(depth * f) - 1 for f in (0.25, 0.5, 0.75, 1.0)])


def v1_layers(depth: int) -> list[int]:
    """V1 reads the last four blocks."""
    return list(range(depth - 4, depth))


def _original_config(tensors, source: str, version: int) -> ml_collections.ConfigDict:
    embed_dim = tensors["pretrained.pos_embed"].shape[-1]
    _, heads = _vit_size(embed_dim, source)
    depth = _count_blocks(tensors, r"pretrained\.blocks\.(\d+)\.")
    features = tensors["depth_head.scratch.layer1_rn.weight"].shape[0]
    out_channels = [int(tensors[f"depth_head.projects.{i}.weight"].shape[0]) for i in range(4)]
    return model_config_for(embed_dim, depth, heads, features, out_channels,
                            v2_layers(depth) if version == 2 else v1_layers(depth),
                            _grid(tensors["pretrained.pos_embed"]), "dinov2")


def _grid(pos_embed: np.ndarray) -> int:
    return round((pos_embed.shape[1] - 1) ** 0.5)


def is_original(path: str) -> bool:
    """A .pth/.pt file, or a .safetensors whose tensors are named depth_head.*."""
    lower = str(path).lower()
    if lower.endswith((".pth", ".pt")):
        return True
    if lower.endswith(".safetensors") and storage.isfile(path):
        return any(k.startswith("depth_head.") for k in safetensors_keys(path))
    return False


def read_original(path: str) -> tuple[ml_collections.ConfigDict, dict]:
    """(config.model, variables) of an original-layout Depth Anything file."""
    tensors = read_tensors(path)
    if "pretrained.pos_embed" not in tensors or not any(
            k.startswith("depth_head.") for k in tensors):
        raise ValueError(f"{path!r} is not a Depth Anything state dict (no pretrained.* and "
                         "depth_head.* tensors); a whole model is read from a workdir, an "
                         "export folder, a Hugging Face DepthAnythingForDepthEstimation folder "
                         "or an original Depth Anything .pth/.safetensors")
    config = _original_config(tensors, repr(path), original_version(path))
    m = _Mapper(tensors, repr(path))
    _map_encoder(m, ORIGINAL, "pretrained.", config.depth)
    _map_head(m, ORIGINAL)
    return config, m.variables()


# The Hugging Face layout -------------------------------------------------------------------


def _hf_files(path: str) -> tuple[str, str]:
    folder = path if storage.isdir(path) else os.path.dirname(path)
    return storage.join(folder, "config.json"), storage.join(folder, "model.safetensors")


def _hf_config(path: str) -> dict | None:
    config_file, _ = _hf_files(path)
    if not storage.isfile(config_file):
        return None
    try:
        return json.loads(storage.read_text(config_file))
    except ValueError:
        return None


def is_hf(path: str) -> bool:
    """A Hugging Face folder (or its config.json / model.safetensors) of model_type
    depth_anything."""
    if not (storage.isdir(path) or os.path.basename(path) in ("config.json",
                                                              "model.safetensors")):
        return False
    config = _hf_config(path)
    return bool(config) and config.get("model_type") == FAMILY


def _hf_tensors(path: str) -> dict[str, np.ndarray]:
    _, weights = _hf_files(path)
    if not storage.isfile(weights):
        raise ValueError(f"{path!r}: a Hugging Face folder without model.safetensors (this "
                         "version reads the safetensors release, not pytorch_model.bin)")
    return read_tensors(weights)


def _backbone_layers(backbone: dict) -> list[int]:
    indices = backbone.get("out_indices")
    if not indices and backbone.get("out_features"):
        indices = [int(name.removeprefix("stage")) for name in backbone["out_features"]]
    if not indices:
        raise ValueError("the Hugging Face config names no backbone out_indices")
    # transformers' stage k is the output of block k - 1 (stage 0 is the embeddings)
    return [int(i) - 1 for i in indices]


def _check_hf_config(config: dict, source: str) -> dict:
    backbone = config.get("backbone_config") or {}
    problems = []
    if config.get("depth_estimation_type", "relative") != "relative":
        problems.append(f"depth_estimation_type {config['depth_estimation_type']!r} (the "
                        "metric models' sigmoid head is not built here; use a relative one)")
    if backbone.get("use_swiglu_ffn"):
        problems.append("a SwiGLU ViT (ViT-G)")
    if list(config.get("reassemble_factors", [4, 2, 1, 0.5])) != [4, 2, 1, 0.5]:
        problems.append(f"reassemble_factors {config['reassemble_factors']}")
    if config.get("head_hidden_size", 32) != 32:
        problems.append(f"head_hidden_size {config['head_hidden_size']}")
    if config.get("patch_size", 14) != 14 or backbone.get("patch_size", 14) != 14:
        problems.append("a patch size other than 14")
    if problems:
        raise ValueError(f"{source}: this version does not read {', '.join(problems)}")
    return backbone


def read_hf(path: str) -> tuple[ml_collections.ConfigDict, dict]:
    """(config.model, variables) of a Hugging Face DepthAnythingForDepthEstimation folder."""
    source = repr(path)
    config = _hf_config(path)
    backbone = _check_hf_config(config, source)
    tensors = _hf_tensors(path)
    embed_dim = int(backbone.get("hidden_size", 768))
    depth = int(backbone.get("num_hidden_layers", 12))
    model = model_config_for(
        embed_dim, depth, int(backbone.get("num_attention_heads", 12)),
        int(config["fusion_hidden_size"]), [int(c) for c in config["neck_hidden_sizes"]],
        _backbone_layers(backbone), _grid(tensors["backbone.embeddings.position_embeddings"]),
        "transformers")
    return model, map_hf(tensors, depth, source)


def map_hf(tensors: dict[str, np.ndarray], depth: int, source: str = "the tensors") -> dict:
    """Our variables from a DepthAnythingForDepthEstimation state dict of `depth` blocks."""
    m = _Mapper(tensors, source)
    names = _hf_names(tensors, "backbone.")
    _map_encoder(m, names, "backbone.", depth)
    _map_head(m, names)
    return m.variables()


# An encoder alone (model.pretrained) -------------------------------------------------------


def read_encoder(path: str, model_config) -> dict:
    """{"params": encoder tree} from a DINOv2 checkpoint (original .pth/.safetensors or a
    Hugging Face Dinov2Model folder) or the encoder of a whole Depth Anything checkpoint."""
    source = repr(path)
    if storage.isdir(path) or os.path.basename(path) == "config.json":
        config = _hf_config(path) or {}
        kind = config.get("model_type")
        if kind not in ("dinov2", FAMILY):
            raise ValueError(f"{source}: expected a Hugging Face folder of a dinov2 or "
                             f"depth_anything model, found model_type {kind!r}")
        tensors = _hf_tensors(path)
        prefix = "backbone." if kind == FAMILY else ""
        tensors = {k: v for k, v in tensors.items() if k.startswith(prefix)
                   and not k.startswith(("neck.", "head.", "pooler."))}
        depth = _count_blocks(tensors, re.escape(prefix) + r"encoder\.layer\.(\d+)\.")
        m = _Mapper(tensors, source)
        _map_encoder(m, _hf_names(tensors, prefix), prefix, depth)
    else:
        tensors = read_tensors(path)
        prefix = "pretrained." if "pretrained.pos_embed" in tensors else ""
        tensors = {k: v for k, v in tensors.items()
                   if k.startswith(prefix) and not k.startswith("depth_head.")
                   and not k.startswith("head.")}
        if f"{prefix}pos_embed" not in tensors:
            raise ValueError(f"{source}: no DINOv2 tensors (pos_embed, blocks.*) found")
        depth = _count_blocks(tensors, re.escape(prefix) + r"blocks\.(\d+)\.")
        m = _Mapper(tensors, source)
        _map_encoder(m, ORIGINAL, prefix, depth)
    variables = m.variables()
    encoder = variables["params"]["encoder"]
    found_dim, want_dim = encoder["pos_embed"].shape[-1], int(model_config.embed_dim)
    if (found_dim, depth) != (want_dim, int(model_config.depth)):
        raise ValueError(f"{source} is a DINOv2 {_vit_size(found_dim, source)[0]} "
                         f"(width {found_dim}, {depth} blocks); config.model is width "
                         f"{want_dim}, {model_config.depth} blocks")
    return {"params": encoder}


def model_config_for(embed_dim: int, depth: int, num_heads: int, features: int,
                     out_channels, layers, pos_grid: int,
                     pos_interpolation: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "name": FAMILY, "embed_dim": int(embed_dim), "depth": int(depth),
        "num_heads": int(num_heads), "layers": [int(i) for i in layers],
        "features": int(features), "out_channels": [int(c) for c in out_channels],
        "pos_grid": int(pos_grid), "pos_interpolation": pos_interpolation,
        "dtype": "float32"})
