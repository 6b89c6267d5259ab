"""`depthsense data build|show`."""

from __future__ import annotations

import argparse
import collections

from depthsense_jax.cli.common import (
    config_parent,
    data_parent,
    load_data_config,
    positive_int,
)


def _build(args: argparse.Namespace) -> int:
    from depthsense_jax.data import registry

    if args.name == "folder":
        from depthsense_jax.data.folder import FolderOptions

        missing = [flag for flag, value in (("--name", args.dataset_name),
                                            ("--images", args.images), ("--depth", args.depth),
                                            ("--kind", args.kind)) if not value]
        if missing:
            raise ValueError(f"data build folder needs {', '.join(missing)}")
        options = FolderOptions(
            images=args.images, depth=args.depth, masks=args.masks, kind=args.kind,
            depth_scale=args.depth_scale, invalid=tuple(args.invalid or ()),
            split_list=args.split_list, validation_percent=args.validation_percent)
        config = load_data_config(argparse.Namespace(**{**vars(args), "name": None}))
        registry.build_folder(args.dataset_name, options, config.data.data_dir or None)
        print(f"train with --config.data.name={registry.RGBD}{args.dataset_name}"
              + (f" --config.data.data_dir={args.data_dir}" if args.data_dir else ""))
        return 0
    builder = registry.build(load_data_config(args).data, split_file=args.split_file)
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
    picture, sources = show.show(config, args.split, args.num, augment=not args.no_augment)
    viz.write_rgb(args.out, picture)
    counts = collections.Counter(sources)  # in order of first appearance
    print(f"wrote {args.out}: {len(sources)} examples ({args.split}), image | depth | mask; "
          f"from {', '.join(f'{name} x{n}' for name, n in counts.items())}")
    return 0


def add(commands) -> None:
    data = commands.add_parser("data", help="build and look at the datasets")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build", parents=[data_parent(), config_parent("base")],
        help="build a dataset's TFRecords: synthetic, redweb, your own folder, or the train "
        "split of nyu, kitti, diode, middlebury",
        description="Build a dataset with TFDS. synthetic: rendered here. redweb: from "
        "--manual-dir. nyu, kitti, diode, middlebury: their train split from --manual-dir (the "
        "folder `zero-shot` reads; kitti: its train list as --split-file) into rgbd/NAME. "
        "folder: your images and ground truth, paired by relative path and stem, into "
        "rgbd/NAME (--name NAME). Broken files are named, skipped and counted.")
    build.add_argument("--split-file", help="nyu: splits.mat; kitti: the train list")
    own = build.add_argument_group(
        "your own data (data build folder)",
        "IMAGES/a/b/x.jpg pairs with DEPTH/a/b/x.{png,npy,pfm,exr,tif,tiff} (and "
        "MASKS/a/b/x.{png,npy,tif}, nonzero = valid)")
    own.add_argument("--name", dest="dataset_name", metavar="NAME",
                     help="the dataset's name: it becomes rgbd/NAME")
    own.add_argument("--images", help="folder of images (jpg, png, ...), searched recursively")
    own.add_argument("--depth", help="folder of ground-truth files, same relative paths")
    own.add_argument("--masks", help="folder of valid-pixel masks (optional)")
    own.add_argument("--kind", choices=["depth", "disparity", "relative"],
                     help="what the files hold: metric depth (trained as 1/depth), disparity "
                     "or relative depth (larger = nearer, as they are)")
    own.add_argument("--depth-scale", type=float, default=1.0,
                     help="divide stored values by this (1000: millimetre PNGs; 256: KITTI-style;"
                     " default 1)")
    own.add_argument("--invalid", type=float, nargs="+", metavar="V",
                     help="stored values that mean 'no ground truth' (0, negative and "
                     "non-finite always do)")
    own.add_argument("--split-list", help="a file of validation images (relative paths), or "
                     "of 'PATH train|validation' lines (default: a stable hash)")
    own.add_argument("--validation-percent", type=int, default=5,
                     help="share of images in the validation split by hash (default 5)")
    build.set_defaults(func=_build)
    show = actions.add_parser(
        "show", parents=[data_parent(), config_parent("base")],
        help="a picture of samples as training sees them: image | depth | mask",
        description="Write a PNG of examples after the pipeline's augmentation (or its "
        "evaluation resize with --no-augment): image (labelled with its dataset) | depth "
        "colour map | mask.")
    show.add_argument("--num", type=positive_int, default=8, help="examples (default 8)")
    show.add_argument("--out", default="grid.png", help="output PNG (default grid.png)")
    show.add_argument("--split", default="train", help="split (default train)")
    show.add_argument("--size", type=positive_int, help="crop size (default image_size)")
    show.add_argument("--no-augment", action="store_true",
                      help="evaluation resize instead of training augmentation")
    show.set_defaults(func=_show)
