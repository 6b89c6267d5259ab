"""`depthsense model-summary` and `depthsense convert-weights`."""

from __future__ import annotations

import argparse

from depthsense_jax.cli.common import config_parent, load_config, positive_int


def _summary(args: argparse.Namespace) -> int:
    from depthsense_jax.models import summary

    config = load_config(args)
    print(summary(config.model, args.size or config.image_size, table=args.table))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from depthsense_jax.models.torchvision_import import convert_file

    n = convert_file(args.src, args.out, args.depth, args.width)
    print(f"wrote {args.out}: ResNet-{args.depth} encoder, {n:,} parameters; use it with "
          f"--config.model.pretrained={args.out}")
    return 0


def add(commands) -> None:
    summary = commands.add_parser(
        "model-summary", parents=[config_parent("default")],
        help="parameter counts of the model a config describes",
        description="Parameter counts of DepthNet for a config.")
    summary.add_argument("--size", type=positive_int, help="input size (default: image_size)")
    summary.add_argument("--table", action="store_true", help="also print flax's module table")
    summary.set_defaults(func=_summary)

    convert = commands.add_parser(
        "convert-weights", help="torchvision ResNet weights -> encoder variables (msgpack)",
        description="Convert a torchvision ResNet state dict (.pth needs torch; .safetensors "
        "or .npz with torchvision key names) into the encoder's params and batch_stats as a "
        ".msgpack that model.pretrained loads without torch.")
    convert.add_argument("src", help="weights file (.pth, .pt, .safetensors, .npz)")
    convert.add_argument("out", help="output .msgpack")
    convert.add_argument("--depth", type=int, default=50, choices=[18, 34, 50, 101])
    convert.add_argument("--width", type=positive_int, default=64)
    convert.set_defaults(func=_convert)
