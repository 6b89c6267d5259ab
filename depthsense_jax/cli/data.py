"""`depthsense data build|show`."""

from __future__ import annotations

import argparse

from depthsense_jax.cli.common import (
    config_parent,
    data_parent,
    load_data_config,
    positive_int,
)


def _build(args: argparse.Namespace) -> int:
    from depthsense_jax.data import registry

    builder = registry.build(load_data_config(args).data)
    for split, info in builder.info.splits.items():
        print(f"{builder.info.full_name} {split}: {info.num_examples} examples")
    print(f"in {builder.data_dir}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from depthsense_jax import viz
    from depthsense_jax.data import show

    config = load_data_config(args)
    if args.size:
        config.image_size = args.size
    viz.write_rgb(args.out, show.show(config, args.split, args.num,
                                      augment=not args.no_augment))
    print(f"wrote {args.out}: {args.num} examples of {config.data.name} ({args.split}), "
          "image | depth | mask")
    return 0


def add(commands) -> None:
    data = commands.add_parser("data", help="build and look at the datasets")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build", parents=[data_parent(), config_parent("default")],
        help="build a dataset's TFRecords (synthetic: rendered here; redweb: from a folder)",
        description="Build a dataset with TFDS: the synthetic scenes are rendered here; "
        "ReDWeb is read from --manual-dir. Broken files are named, skipped and counted.")
    build.set_defaults(func=_build)
    show = actions.add_parser(
        "show", parents=[data_parent(), config_parent("default")],
        help="a picture of samples as training sees them: image | depth | mask",
        description="Write a PNG of examples after the pipeline's augmentation (or its "
        "evaluation resize with --no-augment): image | depth colour map | mask.")
    show.add_argument("--num", type=positive_int, default=8, help="examples (default 8)")
    show.add_argument("--out", default="grid.png", help="output PNG (default grid.png)")
    show.add_argument("--split", default="train", help="split (default train)")
    show.add_argument("--size", type=positive_int, help="crop size (default image_size)")
    show.add_argument("--no-augment", action="store_true",
                      help="evaluation resize instead of training augmentation")
    show.set_defaults(func=_show)
