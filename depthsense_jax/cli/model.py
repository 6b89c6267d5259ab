"""`depthsense model-summary` and `depthsense convert-weights`."""

from __future__ import annotations

import argparse

from depthsense_jax.cli.common import config_parent, load_config, positive_int


def _summary(args: argparse.Namespace) -> int:
    from depthsense_jax.models import registry, summary

    if args.params:
        from depthsense_jax import params_io

        loaded = params_io.load(args.params)
        size = args.size or loaded.image_size or loaded.family.default_size
        print(summary(loaded.model_config, registry.family_of(loaded.model_config).round_size(
            size), table=args.table))
        return 0
    config = load_config(args)
    print(summary(config.model, args.size or config.image_size, table=args.table))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from depthsense_jax import params_io

    if args.depth:
        args.overrides = [*args.overrides, f"--config.model.encoder_depth={args.depth}"]
    if args.width:
        args.overrides = [*args.overrides, f"--config.model.width={args.width}"]
    params_io.convert_weights(args.src, args.out, load_config(args).model)
    return 0


def add(commands) -> None:
    summary = commands.add_parser(
        "model-summary", parents=[config_parent("base")],
        help="parameter counts of the model a config (or checkpoint) describes",
        description="Parameter counts of the model a config (or --params) describes, per "
        "part.")
    summary.add_argument("--params", metavar="PATH",
                         help="the model of a checkpoint instead of the config's: a workdir, "
                         "an export folder, a Hugging Face Depth Anything folder, an original "
                         ".pth/.safetensors")
    summary.add_argument("--size", type=positive_int,
                         help="input size (default: image_size, or the checkpoint's)")
    summary.add_argument("--table", action="store_true", help="also print flax's module table")
    summary.set_defaults(func=_summary)

    convert = commands.add_parser(
        "convert-weights", parents=[config_parent("base")],
        help="pretrained encoder weights -> .msgpack; a whole checkpoint -> export folder",
        description="OUT.msgpack: convert pretrained encoder weights (what model.pretrained "
        "reads for the config's model family; DepthNet: a torchvision ResNet state dict, .pth "
        "needs torch, .safetensors or .npz with torchvision key names) into the encoder's "
        "variables, which model.pretrained then loads without torch. Any other OUT: a whole "
        "model that --params reads (a workdir, an export folder, a checkpoint a model family "
        "reads) written as an export folder (model.json, params.msgpack, params.safetensors).")
    convert.add_argument("src", help="weights file or folder")
    convert.add_argument("out", help="output .msgpack (encoder) or folder (whole model)")
    convert.add_argument("--depth", type=int, choices=[18, 34, 50, 101],
                         help="DepthNet: the ResNet depth, as --config.model.encoder_depth "
                         "(default: the config's, 50)")
    convert.add_argument("--width", type=positive_int,
                         help="DepthNet: the encoder width, as --config.model.width "
                         "(default: the config's, 64)")
    convert.set_defaults(func=_convert)
