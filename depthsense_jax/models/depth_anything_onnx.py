"""Depth Anything written into an ONNX graph (the family's `onnx` writer; `onnx_export` builds,
checks and saves the model around it).

The graph follows the Flax modules (models.vit, models.dpt) op for op, in float32 and in
NCHW where there are convolutions; the patch grid (height / 14, width / 14) is read from the
patch embedding's shape, so height and width stay dynamic.

Position embeddings: ONNX `Resize` (cubic, a = -0.75, half_pixel, exclude_outside=0)
reproduces `resize.bicubic_matrix`: onnxruntime clamps the border taps as PyTorch does. For
pos_interpolation "dinov2" it gets scales (grid + 0.1) / pos_grid, for "transformers" the
grid as sizes; at the checkpoint's own grid the scales are exactly 1 (Equal/And/Where, as
`vit.interpolate_pos_embed` does), an exact identity. (onnxruntime itself copies a Resize's
input whenever the output size equals it; the Where makes the graph say so for any runtime.)
"""

from __future__ import annotations

import math

import numpy as np

from depthsense_jax.models.dpt import RESAMPLE
from depthsense_jax.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from depthsense_jax.models.vit import LN_EPSILON, PATCH, POS_INTERPOLATIONS

_INT_MAX = np.iinfo(np.int64).max


def _ints(g, hint: str, *values: int) -> str:
    return g.const(hint, np.asarray(values, np.int64))


def _shape(g, x: str, start: int, end: int) -> str:
    return g.op("Shape", [x], "shape", start=start, end=end)


def _dense(g, x: str, prefix: str) -> str:
    """nn.Dense: x @ kernel + bias over the last axis."""
    kernel = g.const(f"{prefix}/kernel", g.var(f"params/{prefix}/kernel"))
    bias = g.const(f"{prefix}/bias", g.var(f"params/{prefix}/bias"))
    return g.op("Add", [g.op("MatMul", [x, kernel], prefix), bias])


def _layer_norm_consts(g, prefix: str) -> tuple[str, str]:
    return (g.const(f"{prefix}/scale", g.var(f"params/{prefix}/scale")),
            g.const(f"{prefix}/bias", g.var(f"params/{prefix}/bias")))


def _layer_norm(g, x: str, consts: tuple[str, str]) -> str:
    return g.op("LayerNormalization", [x, *consts], "layer_norm", axis=-1,
                epsilon=LN_EPSILON)


def _gelu(g, x: str) -> str:
    """Exact GELU: 0.5 x (1 + erf(x / sqrt 2))."""
    erf = g.op("Erf", [g.op("Mul", [x, g.const("rsqrt2", np.float32(1 / math.sqrt(2)))])])
    y = g.op("Mul", [x, g.op("Add", [erf, g.const("one", np.float32(1))])])
    return g.op("Mul", [y, g.const("half", np.float32(0.5))])


def _attention(g, x: str, prefix: str, dim: int, heads: int) -> str:
    """vit.Attention: fused qkv, softmax(q k^T / sqrt(head dim)) v, output projection."""
    head_dim = dim // heads
    qkv = _dense(g, x, f"{prefix}/qkv")  # (B, T, 3 D)
    qkv = g.op("Reshape", [qkv, _ints(g, "qkv_shape", 0, 0, 3, heads, head_dim)])
    qkv = g.op("Transpose", [qkv], "qkv_heads", perm=[2, 0, 3, 1, 4])  # (3, B, N, T, Hd)
    q, k, v = (g.op("Gather", [qkv, g.const("index", np.asarray(i, np.int64))], name, axis=0)
               for i, name in enumerate(("q", "k", "v")))
    logits = g.op("MatMul", [q, g.op("Transpose", [k], "k_t", perm=[0, 1, 3, 2])], "logits")
    logits = g.op("Mul", [logits, g.const("attn_scale", np.float32(head_dim ** -0.5))])
    out = g.op("MatMul", [g.op("Softmax", [logits], axis=-1), v], "attended")  # (B, N, T, Hd)
    out = g.op("Transpose", [out], "merge_heads", perm=[0, 2, 1, 3])
    out = g.op("Reshape", [out, _ints(g, "tokens_shape", 0, 0, dim)])
    return _dense(g, out, f"{prefix}/proj")


def _block(g, x: str, prefix: str, dim: int, heads: int) -> str:
    """vit.Block: pre-norm attention and MLP, LayerScale on both residual branches."""
    y = _layer_norm(g, x, _layer_norm_consts(g, f"{prefix}/norm1"))
    y = _attention(g, y, f"{prefix}/attn", dim, heads)
    x = g.add(x, g.op("Mul", [y, g.const(f"{prefix}/ls1", g.var(f"params/{prefix}/ls1"))]))
    y = _layer_norm(g, x, _layer_norm_consts(g, f"{prefix}/norm2"))
    y = _dense(g, _gelu(g, _dense(g, y, f"{prefix}/fc1")), f"{prefix}/fc2")
    return g.add(x, g.op("Mul", [y, g.const(f"{prefix}/ls2", g.var(f"params/{prefix}/ls2"))]))


def _pos_embed(g, grid_hw: str, dim: int, pos_grid: int, mode: str) -> str:
    """vit.interpolate_pos_embed: (1, 1 + h*w, D) for the (h, w) patch grid `grid_hw`
    (int64 (2,)), bicubic by onnxruntime's Resize."""
    pos = g.var("params/encoder/pos_embed")
    if pos.shape != (1, 1 + pos_grid ** 2, dim):
        raise ValueError(f"pos_embed has shape {pos.shape}, expected "
                         f"{(1, 1 + pos_grid ** 2, dim)} for pos_grid {pos_grid}")
    cls = g.const("encoder/pos_embed/cls", pos[:, :1])
    patches = pos[0, 1:].reshape(pos_grid, pos_grid, dim).transpose(2, 0, 1)[None]
    patches = g.const("encoder/pos_embed/patches", np.ascontiguousarray(patches))
    cubic = dict(mode="cubic", cubic_coeff_a=-0.75, coordinate_transformation_mode="half_pixel",
                 exclude_outside=0)
    if mode == "dinov2":
        # scale (grid + 0.1) / pos_grid (DINOv2's F.interpolate(scale_factor=...)), exactly 1
        # on both axes at the checkpoint's own grid
        grid_f = g.op("Cast", [grid_hw], "grid_f", to=g.onnx.TensorProto.FLOAT)
        scale = g.op("Div", [g.op("Add", [grid_f, g.const("offset", np.float32(
            POS_INTERPOLATIONS[mode]))]), g.const("pos_grid", np.float32(pos_grid))], "scale")
        equal = g.op("Equal", [grid_hw, _ints(g, "pos_grid_hw", pos_grid, pos_grid)])
        same = g.op("And", [g.op("Gather", [equal, g.const("index", np.asarray(i, np.int64))],
                                 axis=0) for i in (0, 1)], "same_grid")
        scale = g.op("Where", [same, g.const("unit", np.ones(2, np.float32)), scale], "scale")
        scales = g.op("Concat", [g.const("unit", np.ones(2, np.float32)), scale], "scales",
                      axis=0)
        resized = g.op("Resize", [patches, "", scales], "pos_resize", **cubic)
    else:
        # sizes = the grid (transformers' F.interpolate(size=...)): Resize's scale is then
        # grid / pos_grid per axis, exactly 1 on an axis that equals pos_grid, as the Flax
        # ratio is (the Where there changes nothing for this mode)
        sizes = g.op("Concat", [_ints(g, "pos_nc", 1, dim), grid_hw], "sizes", axis=0)
        resized = g.op("Resize", [patches, "", "", sizes], "pos_resize", **cubic)
    resized = g.op("Reshape", [resized, _ints(g, "pos_flat", 1, dim, -1)])
    resized = g.op("Transpose", [resized], "pos_tokens", perm=[0, 2, 1])  # (1, h*w, D)
    return g.op("Concat", [cls, resized], "pos_embed", axis=1)


def _encoder(g, x: str, model_config) -> tuple[list[str], str]:
    """vit.DinoV2 on NCHW `x`: the four taken blocks' patch tokens (B, h*w, D) through the
    final norm, and the name of the patch embedding's (B, D, h, w) output."""
    dim, depth, heads = (int(model_config[k]) for k in ("embed_dim", "depth", "num_heads"))
    layers = [int(i) for i in model_config.layers]
    mode = model_config.pos_interpolation
    if mode not in POS_INTERPOLATIONS:
        raise ValueError(f"pos_interpolation must be one of {sorted(POS_INTERPOLATIONS)}, "
                         f"got {mode!r}")
    if not layers or max(layers) >= depth:
        raise ValueError(f"layers {layers} must be block indices below the depth {depth}")
    kernel = g.var("params/encoder/patch_embed/kernel")  # (14, 14, 3, D)
    patch = g.op("Conv", [x, g.const("encoder/patch_embed/kernel",
                                     np.transpose(kernel, (3, 2, 0, 1))),
                          g.const("encoder/patch_embed/bias",
                                  g.var("params/encoder/patch_embed/bias"))],
                 "patch_embed", kernel_shape=[PATCH, PATCH], strides=[PATCH, PATCH],
                 pads=[0, 0, 0, 0])  # (B, D, h, w)
    x = g.op("Reshape", [patch, _ints(g, "flat", 0, dim, -1)])
    x = g.op("Transpose", [x], "tokens", perm=[0, 2, 1])  # (B, h*w, D)
    cls = g.const("encoder/cls_token", g.var("params/encoder/cls_token"))
    batch = g.op("Concat", [_shape(g, x, 0, 1), _ints(g, "ones", 1, 1)], "cls_shape", axis=0)
    x = g.op("Concat", [g.op("Expand", [cls, batch], "cls"), x], "with_cls", axis=1)
    x = g.add(x, _pos_embed(g, _shape(g, patch, 2, 4), dim, int(model_config.pos_grid), mode))
    norm = _layer_norm_consts(g, "encoder/norm")
    taken = []
    for index in range(depth):
        x = _block(g, x, f"encoder/blocks_{index}", dim, heads)
        if index in layers:
            y = _layer_norm(g, x, norm)
            taken.append(g.op("Slice", [y, _ints(g, "start", 1), _ints(g, "end", _INT_MAX),
                                        _ints(g, "axis", 1)], "patch_tokens"))
    return taken, patch


def _resize_to(g, x: str, sizes: str) -> str:
    """resize.resize_align_corners of NCHW `x` to the (h, w) in `sizes` (int64 (2,))."""
    sizes = g.op("Concat", [_shape(g, x, 0, 2), sizes], "sizes", axis=0)
    return g.op("Resize", [x, "", "", sizes], "resize", mode="linear",
                coordinate_transformation_mode="align_corners")


def _residual_unit(g, x: str, prefix: str) -> str:
    """dpt.ResidualConvUnit."""
    y = g.conv(g.relu(x), f"{prefix}/conv1", bias=True)
    return g.add(x, g.conv(g.relu(y), f"{prefix}/conv2", bias=True))


def _fusion(g, x: str, skip: str | None, prefix: str, size: str | None) -> str:
    """dpt.FusionBlock; size None: 2x."""
    if skip is not None:
        x = g.add(x, _residual_unit(g, skip, f"{prefix}/resunit1"))
    x = _residual_unit(g, x, f"{prefix}/resunit2")
    x = g.upsample2x(x) if size is None else _resize_to(g, x, size)
    return g.conv(x, f"{prefix}/out_conv", bias=True)


def _head(g, tokens: list[str], patch: str, images: str) -> str:
    """dpt.DPTHead: (B, 1, 14 h, 14 w)."""
    maps = []
    for index, (x, scale) in enumerate(zip(tokens, RESAMPLE, strict=True)):
        x = g.op("Transpose", [x], "channels_first", perm=[0, 2, 1])
        x = g.op("Reshape", [x, g.op("Shape", [patch])], "token_map")  # (B, D, h, w)
        x = g.conv(x, f"head/projects_{index}", bias=True)
        prefix = f"head/resize_{index}"
        if scale > 1:  # dpt.PatchUpsample: kernel = stride
            kernel = g.var(f"params/{prefix}/kernel")  # (f, f, in, out)
            f = int(scale)
            if kernel.shape[:2] != (f, f):
                raise ValueError(f"{prefix} has a {kernel.shape[:2]} kernel, expected {f}x{f}")
            x = g.op("ConvTranspose", [
                x, g.const(f"{prefix}/kernel", np.transpose(kernel, (2, 3, 0, 1))),
                g.const(f"{prefix}/bias", g.var(f"params/{prefix}/bias"))],
                prefix, kernel_shape=[f, f], strides=[f, f])
        elif scale < 1:
            x = g.conv(x, prefix, stride=int(1 / scale), bias=True)
        maps.append(g.conv(x, f"head/layer{index + 1}_rn"))
    l1, l2, l3, l4 = maps
    x = _fusion(g, l4, None, "head/refinenet4", _shape(g, l3, 2, 4))
    x = _fusion(g, x, l3, "head/refinenet3", _shape(g, l2, 2, 4))
    x = _fusion(g, x, l2, "head/refinenet2", _shape(g, l1, 2, 4))
    x = _fusion(g, x, l1, "head/refinenet1", None)
    x = g.conv(x, "head/output_conv1", bias=True)
    x = _resize_to(g, x, _shape(g, images, 1, 3))
    x = g.relu(g.conv(x, "head/output_conv2", bias=True))
    return g.relu(g.conv(x, "head/output_conv3", bias=True))


def write(g, images: str, model_config) -> str:
    """DepthAnything(model_config) on `images` (batch, height, width, 3) in [0, 1], height
    and width multiples of 14: the name of its (batch, 1, height, width) output."""
    if len(model_config.layers) != 4 or len(model_config.out_channels) != 4:
        raise ValueError(f"layers {list(model_config.layers)} and out_channels "
                         f"{list(model_config.out_channels)} must have four entries each")
    x = g.op("Sub", [images, g.const("mean", np.asarray(IMAGENET_MEAN, np.float32))])
    x = g.op("Div", [x, g.const("std", np.asarray(IMAGENET_STD, np.float32))])
    x = g.op("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2])
    tokens, patch = _encoder(g, x, model_config)
    return _head(g, tokens, patch, images)
