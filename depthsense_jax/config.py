"""Load `get_config()` Python files and apply `--config.a.b=value` overrides."""

from __future__ import annotations

import ast
import importlib.util
import os

import jax.numpy as jnp
import ml_collections

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _shipped_names() -> list[str]:
    import configs

    folder = os.path.dirname(configs.__file__)
    return [name[:-3] for name in os.listdir(folder)
            if name.endswith(".py") and not name.startswith("_")]


def _shipped_config(name: str) -> str | None:
    import configs

    # "synthetic", "synthetic.py" or "configs/synthetic.py" from outside the repository.
    folder, base = os.path.split(os.path.normpath(name))
    name = base.removesuffix(".py")
    if folder in ("", "configs") and name in _shipped_names():
        return os.path.join(os.path.dirname(configs.__file__), name + ".py")
    return None


def load_config(path: str, overrides: list[str] | None = None) -> ml_collections.ConfigDict:
    """Run `path`'s get_config() and apply overrides such as `model.width=16`.

    path: a config file, or the name of one shipped in configs/ ("synthetic", "redweb").
    """
    if not os.path.isfile(path):
        shipped = _shipped_config(path)
        if shipped is None:
            raise FileNotFoundError(
                f"config file {path!r} does not exist; shipped configs: "
                f"{', '.join(sorted(_shipped_names()))}")
        path = shipped
    spec = importlib.util.spec_from_file_location("depthsense_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path!r} defines no get_config()")
    config = module.get_config()
    for item in overrides or []:
        key, sep, text = item.removeprefix("--config.").removeprefix("config.").partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like config.KEY=VALUE")
        node = config
        *parents, leaf = key.split(".")
        for name in parents:
            if name not in node:
                raise ValueError(f"override {item!r}: no config field {key!r}")
            node = node[name]
        if leaf not in node:
            raise ValueError(f"override {item!r}: no config field {key!r}")
        old = node[leaf]
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        if isinstance(old, str):
            value = text
        elif isinstance(old, bool) != isinstance(value, bool) or (
            isinstance(old, int | float) and not isinstance(value, int | float)
        ):
            raise ValueError(f"override {item!r}: {key} is {type(old).__name__}, got {text!r}")
        node[leaf] = type(old)(value) if isinstance(old, int | float) else value
    return config


def model_from_config(model_config: ml_collections.ConfigDict):
    """DepthNet for a config's `model` section."""
    from depthsense_jax.models import DepthNet

    if model_config.dtype not in DTYPES:
        raise ValueError(
            f"model.dtype must be one of {sorted(DTYPES)}, got {model_config.dtype!r}"
        )
    return DepthNet(
        encoder_depth=model_config.encoder_depth, width=model_config.width,
        fusion_channels=model_config.fusion_channels, dtype=DTYPES[model_config.dtype],
    )


def create_variables(model_config: ml_collections.ConfigDict, key, image_size: int = 64):
    """Initialise DepthNet variables for a config; load `model.pretrained` (torchvision
    ResNet weights) into the encoder when it is set. This is what training runs before
    step 0."""
    import jax

    model = model_from_config(model_config)
    variables = model.init(key, jnp.zeros((1, image_size, image_size, 3), jnp.float32))
    if model_config.pretrained:
        from depthsense_jax.models.torchvision_import import load_encoder_weights

        variables = load_encoder_weights(model_config.pretrained, variables)
        variables = jax.tree.map(jnp.asarray, variables)
    return model, variables
