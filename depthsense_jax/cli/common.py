"""What several commands share: the `--config` + `--config.KEY=VALUE` parent parser, the
model-source parent parser (a workdir or exported params), and argument types."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ml_collections is imported when a command runs, not to parse
    import ml_collections


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def config_parent(default: str | None) -> argparse.ArgumentParser:
    """--config FILE_OR_NAME (default `default`); overrides `--config.KEY=VALUE` are
    collected by `main`. A new parser per command: argparse shares a parent's actions
    between the parsers built from it, so one parent cannot carry two defaults."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("config")
    shown = f" (default: {default})" if default else ""
    group.add_argument("--config", default=default,
                       help="config file, or the name of one shipped in configs/ (base, "
                       "finetune, synthetic, redweb, redweb_tpu)" + shown
                       + "; override any field as --config.KEY=VALUE")
    parser.set_defaults(overrides=[])
    return parser


def model_source_parent() -> argparse.ArgumentParser:
    """--workdir DIR [--checkpoint] | --params DIR_OR_FILE."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("model (one of)")
    group.add_argument("--workdir", help="a training workdir, a folder or a URL such as "
                       "gs://bucket/run (its config and checkpoint)")
    group.add_argument("--checkpoint", default="latest",
                       help="with --workdir: 'latest', 'best' or a step (default latest)")
    group.add_argument("--params", help="an export folder or its params.msgpack / "
                       ".safetensors (model.json beside it), a training workdir, or a "
                       "checkpoint a model family reads")
    return parser


def data_parent(name_required: bool = True) -> argparse.ArgumentParser:
    """NAME (or --name), --data-dir, --manual-dir: which dataset, and where it is."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("dataset")
    if name_required:
        group.add_argument("name", help="dataset: synthetic, redweb, or a TFDS name such as "
                           "synthetic_scenes/tiny")
    else:
        group.add_argument("--name", help="dataset: synthetic, redweb or a TFDS name "
                           "(default: the config's data.name)")
    group.add_argument("--data-dir", help="TFDS data_dir (default: config.data.data_dir, "
                       "else ~/tensorflow_datasets)")
    group.add_argument("--manual-dir", help="where the dataset's own files are (redweb: the "
                       "folder with ReDWeb_V1/ or its archive)")
    return parser


def load_data_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
    """The config with the dataset options of `data_parent` applied."""
    from depthsense_jax.data.registry import with_dataset

    return with_dataset(load_config(args), args.name, args.data_dir, args.manual_dir)


def load_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
    from depthsense_jax.config import load_config as load

    return load(args.config, args.overrides)


def command_line(argv: list[str]) -> str:
    return " ".join(["depthsense", *argv])


def renamed(old: str) -> str:
    """The line every renamed command's help carries."""
    return f" (`depthsense {old}` is this command's old name, kept as an alias.)"
