"""DepthNet from a config's `model` section: the module, its initial variables (with
pretrained encoder weights), and the one eval-mode forward pass everything else calls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from depthsense_jax.models.conv import IMPLS
from depthsense_jax.models.fusion import DepthNet

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MODEL_KEYS = ("encoder_depth", "width", "fusion_channels", "dtype")


def conv_impl_of(model_config: ml_collections.ConfigDict) -> str:
    """The config's `model.conv_impl` ("auto" where absent, e.g. in a model.json)."""
    impl = model_config.get("conv_impl", "auto")
    if impl not in IMPLS:
        raise ValueError(f"model.conv_impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    return impl


def model_from_config(model_config: ml_collections.ConfigDict) -> DepthNet:
    """DepthNet for a config's `model` section (encoder_depth, width, fusion_channels,
    dtype "float32" or "bfloat16")."""
    if model_config.dtype not in DTYPES:
        raise ValueError(
            f"model.dtype must be one of {sorted(DTYPES)}, got {model_config.dtype!r}"
        )
    return DepthNet(
        encoder_depth=model_config.encoder_depth, width=model_config.width,
        fusion_channels=model_config.fusion_channels, dtype=DTYPES[model_config.dtype],
        conv_impl=conv_impl_of(model_config),
    )


def create_variables(model_config: ml_collections.ConfigDict, key: jax.Array,
                     image_size: int = 64) -> tuple[DepthNet, dict]:
    """(model, variables {"params", "batch_stats"}) initialised from `key`, with
    `model.pretrained` (torchvision ResNet weights, or the .msgpack `depthsense
    convert-weights` writes) loaded into the encoder when it is set."""
    model = model_from_config(model_config)
    variables = model.init(key, jnp.zeros((1, image_size, image_size, 3), jnp.float32))
    if model_config.get("pretrained"):
        from depthsense_jax.models.torchvision_import import load_encoder_weights

        variables = load_encoder_weights(model_config.pretrained, variables)
        variables = jax.tree.map(jnp.asarray, variables)
    return model, variables


def variable_shapes(model: DepthNet, size: int = 64) -> dict:
    """The model's variables as ShapeDtypeStructs (nothing is computed)."""
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                             jnp.zeros((1, size, size, 3)), train=False))


def infer(model: DepthNet, variables: dict, images: jax.Array) -> jax.Array:
    """Eval-mode forward pass (BatchNorm running statistics): images (B, H, W, 3) float32 in
    [0, 1], H and W multiples of 32 -> (B, H, W) float32 relative inverse depth. Training's
    evaluation, the predictor, the exports and the benchmarks all call this one."""
    return model.apply(variables, images, train=False)


def summary(model_config: ml_collections.ConfigDict, size: int = 64,
            table: bool = False) -> str:
    """Parameter and BatchNorm-statistic counts of the config's DepthNet, per part (and
    flax's module table for `size` x `size` inputs with `table`)."""
    model = model_from_config(model_config)
    shapes = variable_shapes(model, size)
    m = model_config
    lines = [f"DepthNet(encoder_depth={m.encoder_depth}, width={m.width}, "
             f"fusion_channels={m.fusion_channels}, dtype={m.dtype})",
             f"{'module':<12}{'parameters':>14}{'batch_stats':>14}"]
    total = 0
    for part in ("encoder", "decoder"):
        n = sum(x.size for x in jax.tree.leaves(shapes["params"][part]))
        s = sum(x.size for x in jax.tree.leaves(shapes["batch_stats"][part]))
        total += n
        lines.append(f"{part:<12}{n:>14,}{s:>14,}")
    lines.append(f"{'total':<12}{total:>14,}   ({total / 1e6:.1f}M parameters)")
    if table:
        lines.append(model.tabulate(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)),
                                    depth=2, console_kwargs={"width": 140}))
    return "\n".join(lines)
