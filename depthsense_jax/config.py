"""Configs: run a `get_config()` file (or a shipped one by name) and apply command-line
overrides `--config.a.b=VALUE`, each parsed and type-checked, then lock the result."""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
from importlib import resources

import ml_collections

# The repository's configs/ folder, installed as this package (never as a top-level
# `configs`, which would clash with any other project's).
SHIPPED_PACKAGE = "depthsense_jax.configs"
# Old names of shipped configs, still accepted: configs/base.py was configs/default.py,
# which was the default of some commands but not of `train` (whose default is synthetic).
RENAMED = {"default": "base"}


def _shipped_folder() -> str:
    try:
        return str(resources.files(SHIPPED_PACKAGE))
    except ModuleNotFoundError:
        # A source tree on PYTHONPATH, not installed (the device scripts): its configs/.
        return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "configs")


def shipped_names() -> list[str]:
    """Names of the configs that ship with the package ("base", "synthetic", ...)."""
    return sorted(name[:-3] for name in os.listdir(_shipped_folder())
                  if name.endswith(".py") and not name.startswith("_"))


def _shipped_config(name: str) -> str | None:
    # "synthetic", "synthetic.py" or "configs/synthetic.py" from outside the repository.
    folder, base = os.path.split(os.path.normpath(name))
    name = base.removesuffix(".py")
    name = RENAMED.get(name, name)
    if folder in ("", "configs") and name in shipped_names():
        return os.path.join(_shipped_folder(), name + ".py")
    return None


def _run(path: str) -> ml_collections.ConfigDict:
    """get_config() of a config file or of a shipped config's name, unlocked."""
    if not os.path.isfile(path):
        shipped = _shipped_config(path)
        if shipped is None:
            raise FileNotFoundError(
                f"config file {path!r} does not exist; shipped configs: "
                f"{', '.join(shipped_names())}")
        path = shipped
    spec = importlib.util.spec_from_file_location("depthsense_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path!r} defines no get_config()")
    return module.get_config()


def base_config(name: str) -> ml_collections.ConfigDict:
    """A shipped config (or a config file) as an unlocked ConfigDict, for a config file
    that builds on it: `config = base_config("base")` in its get_config()."""
    return _run(name)


def load_config(path: str, overrides: list[str] | None = None) -> ml_collections.ConfigDict:
    """Run `path`'s get_config(), apply overrides such as `model.width=16`, lock the result.

    path: a config file, or the name of one shipped in configs/ ("synthetic", "redweb").
    The returned config is locked: existing fields can be set, new ones cannot be added.
    """
    config = _run(path)
    for item in overrides or []:
        apply_override(config, item)
    config.lock()
    return config


def _leaf_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys += _leaf_keys(value, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _unknown_key(item: str, key: str, config: ml_collections.ConfigDict) -> ValueError:
    close = difflib.get_close_matches(key, _leaf_keys(config), n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return ValueError(f"override {item!r}: the config has no field {key!r}{hint}")


def parse_value(old, text: str, key: str):
    """The override text `text` parsed as the type of the field's current value `old`.

    int fields take integers; float fields integers or floats; bool fields True/False (or
    true/false); str fields the text as written; tuple and list fields a Python literal
    ("(1, 2)" or "1,2"); a field that is None takes any literal, else the text. Anything
    else is a ValueError naming the field, its type and the text.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if old is None:
        return value
    expected = type(old).__name__
    if isinstance(old, bool):
        words = {"true": True, "false": False}
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in words:
            return words[value.lower()]
    elif isinstance(old, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(old, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(old, str):
        return value if isinstance(value, str) else text
    elif isinstance(old, tuple | list):
        if isinstance(value, tuple | list):
            return type(old)(value)
        expected = f"{expected} (write it as (a, b, ...))"
    else:
        raise ValueError(f"config.{key} holds a {expected}, which cannot be set from the "
                         "command line")
    raise ValueError(f"config.{key} is {expected}, got {text!r}")


def apply_override(config: ml_collections.ConfigDict, item: str) -> None:
    """Set one `--config.a.b=VALUE` (or `a.b=VALUE`) override on `config`, in place."""
    key, sep, text = item.removeprefix("--config.").removeprefix("config.").partition("=")
    if not sep or not key:
        raise ValueError(f"override {item!r} must look like --config.KEY=VALUE")
    node = config
    *parents, leaf = key.split(".")
    for name in parents:
        if not isinstance(node, ml_collections.ConfigDict) or name not in node:
            raise _unknown_key(item, key, config)
        node = node[name]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise _unknown_key(item, key, config)
    old = node[leaf]
    if isinstance(old, ml_collections.ConfigDict):
        raise ValueError(f"override {item!r}: config.{key} is a section; set its fields "
                         f"({', '.join(sorted(old.keys()))}) one by one")
    try:
        node[leaf] = parse_value(old, text, key)
    except ValueError as err:
        raise ValueError(f"override {item!r}: {err}") from None
