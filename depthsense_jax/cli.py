"""The `depthsense` command line."""

from __future__ import annotations

import argparse
import os
import sys

from depthsense_jax import __version__


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _bench_losses(args: argparse.Namespace) -> int:
    from depthsense_jax import bench, losses

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    known = [*losses.LOSS_NAMES, "combined"]
    if only and sorted(set(only) - set(known)):
        print(
            f"error: --only names unknown loss(es) {sorted(set(only) - set(known))}; "
            f"choose from {known}",
            file=sys.stderr,
        )
        return 2
    results = bench.bench_losses(
        batch=args.batch, size=args.size, repeats=args.repeats, warmup=args.warmup,
        compare=args.compare, only=only, num_pairs=args.num_pairs, num_anchors=args.num_anchors,
    )
    print(bench.format_table(results, args.batch, args.size))
    if args.json:
        bench.write_json(
            args.json, results, batch=args.batch, size=args.size, repeats=args.repeats,
            warmup=args.warmup, num_pairs=args.num_pairs, num_anchors=args.num_anchors,
            command=" ".join(["depthsense", *sys.argv[1:]]),
        )
        print(f"wrote {args.json}")
    return 0


def _bench_model(args: argparse.Namespace) -> int:
    from depthsense_jax import bench
    from depthsense_jax.config import load_config

    config = load_config(args.config, _split_overrides(args))
    batch = args.batch or config.batch_size
    size = args.size or config.image_size
    if size % 32:
        print(f"error: --size must be a multiple of 32, got {size}", file=sys.stderr)
        return 2
    timing = bench.bench_model(
        config, args.config, batch, size, repeats=args.repeats, warmup=args.warmup,
        compare=args.compare,
    )
    print(bench.format_model_table(timing))
    if args.json:
        bench.write_model_json(
            args.json, timing, config=args.config, overrides=args.overrides, batch=batch,
            size=size, repeats=args.repeats, warmup=args.warmup,
            command=" ".join(["depthsense", *sys.argv[1:]]),
        )
        print(f"wrote {args.json}")
    return 0


def _bench_train(args: argparse.Namespace) -> int:
    from depthsense_jax import bench
    from depthsense_jax.config import load_config

    config = load_config(args.config, _split_overrides(args))
    timing = bench.bench_train(config, args.config, steps=args.steps, warmup=args.warmup)
    print(bench.format_train_table(timing))
    if args.json:
        bench.write_train_json(
            args.json, timing, config=args.config, overrides=args.overrides, steps=args.steps,
            warmup=args.warmup, command=" ".join(["depthsense", *sys.argv[1:]]),
        )
        print(f"wrote {args.json}")
    return 0


def _load_for_inference(args: argparse.Namespace):
    """(model config, variables, default size) from --workdir or --params."""
    from depthsense_jax import export, inference
    from depthsense_jax.config import load_config

    if bool(args.workdir) == bool(args.params):
        raise ValueError("give exactly one of --workdir DIR or --params FILE_OR_DIR")
    if args.workdir:
        from depthsense_jax.train import loop

        model_config, variables = inference.load_workdir(args.workdir, args.checkpoint)
        size = loop.load_workdir_config(args.workdir).image_size
    else:
        model_config, variables = export.load_params(args.params)
        size = export.trained_size(args.params)
    if getattr(args, "config", None):
        config = load_config(args.config, _split_overrides(args))
        size = config.image_size
        if any(config.model[k] != model_config[k] for k in inference.MODEL_KEYS
               if k != "dtype"):
            raise ValueError(f"--config {args.config} describes another model "
                             f"({inference.model_config_dict(config.model)}) than the params "
                             f"({inference.model_config_dict(model_config)})")
        model_config.dtype = config.model.dtype
    return model_config, variables, size


def _predict(args: argparse.Namespace) -> int:
    from depthsense_jax import predict_files

    model_config, variables, size = _load_for_inference(args)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    summary = predict_files.run(
        model_config, variables, args.inputs, args.out, size=args.size or size or 384,
        formats=formats, colormap=args.colormap, batch_size=args.batch,
    )
    return 0 if summary.written else 1


def _export(args: argparse.Namespace) -> int:
    from depthsense_jax import export

    model_config, variables, size = _load_for_inference(args)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    platforms = tuple(p.strip() for p in args.platforms.split(",") if p.strip())
    print(f"exporting to {args.out} ({', '.join(formats)}); each is reloaded and checked:")
    export.export_all(args.out, model_config, variables, formats=formats, platforms=platforms,
                      image_size=size)
    return 0


_DATASETS = {"synthetic": "synthetic_scenes/160", "redweb": "redweb"}


def _data_config(args: argparse.Namespace):
    from depthsense_jax.config import load_config

    config = load_config(args.config, _split_overrides(args))
    if getattr(args, "name", None):
        config.data.name = _DATASETS.get(args.name, args.name)
    if getattr(args, "data_dir", None):
        config.data.data_dir = args.data_dir
    if getattr(args, "manual_dir", None):
        config.data.manual_dir = args.manual_dir
    return config


def _data_build(args: argparse.Namespace) -> int:
    import os

    import tensorflow_datasets as tfds

    from depthsense_jax.data import pipeline

    try:
        config = _data_config(args)
        name = config.data.name
        if name.startswith("redweb"):
            data_dir = os.path.expanduser(config.data.data_dir) if config.data.data_dir else None
            builder = tfds.builder(name, data_dir=data_dir)
            manual = os.path.expanduser(config.data.manual_dir) if config.data.manual_dir else None
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=manual)
            )
        else:
            builder = pipeline.builder_for(config.data)
    except AssertionError as err:  # tfds asserts on some bad manual folders
        print(f"error: {err}", file=sys.stderr)
        return 2
    for split, info in builder.info.splits.items():
        print(f"{builder.info.full_name} {split}: {info.num_examples} examples")
    print(f"in {builder.data_dir}")
    return 0


def _data_show(args: argparse.Namespace) -> int:
    from depthsense_jax.data import pipeline, show

    config = _data_config(args)
    config.batch_size = args.num
    if args.size:
        config.image_size = args.size
    batch = next(iter(pipeline.make_dataset(config, args.split, training=not args.no_augment)))
    show.write_rgb(args.out, show.sample_grid(batch, args.num))
    print(f"wrote {args.out}: {args.num} examples of {config.data.name} ({args.split}), "
          "image | depth | mask")
    return 0


def _bench_input(args: argparse.Namespace) -> int:
    import time

    from depthsense_jax.data import pipeline

    config = _data_config(args)
    if args.batch:
        config.batch_size = args.batch
    iterator = iter(pipeline.make_dataset(config, "train"))
    for _ in range(args.warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(iterator)
    seconds = time.perf_counter() - start
    rate = args.batches / seconds
    print(f"input pipeline {config.data.name}, batch {config.batch_size}, "
          f"{config.image_size}x{config.image_size}: {rate:.2f} batches/s "
          f"({rate * config.batch_size:.1f} images/s, {1e3 / rate:.1f} ms/batch) over "
          f"{args.batches} batches")
    return 0


def _train(args: argparse.Namespace) -> int:
    from depthsense_jax.config import load_config
    from depthsense_jax.train import loop

    config = load_config(args.config, _split_overrides(args))
    # Before anything touches a device: a multi-host run joins its peers here.
    loop.maybe_initialize_distributed(args.coordinator, args.num_processes, args.process_id,
                                      force=args.distributed)
    return loop.main_train(config, args.workdir)


def _eval(args: argparse.Namespace) -> int:
    from depthsense_jax.train import loop

    loop.evaluate_checkpoint(args.workdir, args.split, args.checkpoint, args.max_batches)
    return 0


def _split_overrides(args: argparse.Namespace) -> list[str]:
    unknown = [a for a in args.overrides if not a.startswith("--config.")]
    if unknown:
        raise SystemExit(f"error: unrecognised arguments {unknown} (overrides: --config.KEY=VALUE)")
    return args.overrides


def _model_summary(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from depthsense_jax.config import load_config, model_from_config

    config = load_config(args.config, _split_overrides(args))
    model = model_from_config(config.model)
    size = args.size or config.image_size
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), train=False)
    )
    print(f"DepthNet(encoder_depth={config.model.encoder_depth}, width={config.model.width}, "
          f"fusion_channels={config.model.fusion_channels}, dtype={config.model.dtype})")
    print(f"{'module':<12}{'parameters':>14}{'batch_stats':>14}")
    total = 0
    for part in ("encoder", "decoder"):
        n = sum(x.size for x in jax.tree.leaves(shapes["params"][part]))
        s = sum(x.size for x in jax.tree.leaves(shapes["batch_stats"][part]))
        total += n
        print(f"{part:<12}{n:>14,}{s:>14,}")
    print(f"{'total':<12}{total:>14,}   ({total / 1e6:.1f}M parameters)")
    if args.table:
        print(model.tabulate(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)),
                             depth=2, console_kwargs={"width": 140}))
    return 0


def _convert_weights(args: argparse.Namespace) -> int:
    import flax.serialization
    import jax
    import jax.numpy as jnp

    from depthsense_jax.models import ResNet
    from depthsense_jax.models.torchvision_import import convert_state_dict, load_state_dict

    encoder = ResNet(depth=args.depth, width=args.width)
    shapes = jax.eval_shape(lambda: encoder.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
    try:
        converted = convert_state_dict(load_state_dict(args.src), shapes)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    with open(args.out, "wb") as f:
        f.write(flax.serialization.msgpack_serialize(converted))
    n = sum(x.size for x in jax.tree.leaves(converted["params"]))
    print(f"wrote {args.out}: ResNet-{args.depth} encoder, {n:,} parameters "
          f"(load with depthsense_jax.models.torchvision_import or model.pretrained)")
    return 0


def _model_source_args(parser: argparse.ArgumentParser, with_config: bool = True) -> None:
    parser.add_argument("--workdir", help="a training workdir (its config and checkpoint)")
    parser.add_argument("--checkpoint", default="latest",
                        help="with --workdir: 'latest', 'best' or a step (default latest)")
    parser.add_argument("--params", help="an export folder or its params.msgpack / "
                        ".safetensors (model.json beside it)")
    if with_config:
        parser.add_argument("--config", help="config for image_size and dtype (optional)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthsense",
        description="Monocular relative depth in JAX: losses, models, training and tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    bench = commands.add_parser("bench", help="benchmarks of the jit-compiled pieces")
    bench_kinds = bench.add_subparsers(dest="bench_kind", metavar="WHAT")
    bench_kinds.required = True
    losses = bench_kinds.add_parser(
        "losses",
        help="compile, forward and forward+backward time of every loss",
        description="Time each loss (and the combined loss) at a given batch and size: "
        "compile time, median forward and forward+backward time after warm-up.",
    )
    losses.add_argument("--batch", type=_positive_int, default=8, help="images (default 8)")
    losses.add_argument("--size", type=_positive_int, default=384,
                        help="height = width in pixels (default 384)")
    losses.add_argument("--repeats", type=_positive_int, default=20,
                        help="timed runs per measurement; the median is reported (default 20)")
    losses.add_argument("--warmup", type=_positive_int, default=3, help="untimed runs (default 3)")
    losses.add_argument("--num-pairs", type=_positive_int, default=300,
                        help="random pairs per image for the ranking loss (default 300)")
    losses.add_argument("--num-anchors", type=_positive_int, default=100,
                        help="edge anchors per image for the edge-guided loss (default 100)")
    losses.add_argument("--only", metavar="NAMES",
                        help="comma-separated losses to time (default: all)")
    losses.add_argument("--compare", action="store_true",
                        help="also time the PyTorch equivalents (needs torch and kornia)")
    losses.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    losses.set_defaults(func=_bench_losses)

    model = bench_kinds.add_parser(
        "model",
        help="forward and training-step speed of a config's model, in images/s",
        description="Time DepthNet inference and a training step (forward+backward with the "
        "config's combined loss). Overrides as --config.KEY=VALUE.",
    )
    model.add_argument("--config", default="default",
                       help="config file or name in configs/ (default: default)")
    model.add_argument("--batch", type=_positive_int, help="images (default: batch_size)")
    model.add_argument("--size", type=_positive_int,
                       help="height = width, a multiple of 32 (default: image_size)")
    model.add_argument("--repeats", type=_positive_int, default=10,
                       help="timed runs; the median is reported (default 10)")
    model.add_argument("--warmup", type=_positive_int, default=2, help="untimed runs (default 2)")
    model.add_argument("--compare", action="store_true",
                       help="also time the same architecture in PyTorch (needs torch)")
    model.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    model.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    model.set_defaults(func=_bench_model)

    train_bench = bench_kinds.add_parser(
        "train", help="steady-state speed of the training loop, split into input/host/device",
        description="Run the training loop of a config (data pipeline, sharded jitted step) "
        "and report images/s and a step's split into input wait, host overhead and device "
        "time. Overrides as --config.KEY=VALUE.",
    )
    train_bench.add_argument("--config", default="synthetic",
                             help="config file or name in configs/ (default: synthetic)")
    train_bench.add_argument("--steps", type=_positive_int, default=20,
                             help="timed steps per pass (default 20)")
    train_bench.add_argument("--warmup", type=_positive_int, default=3,
                             help="untimed steps after the first (default 3)")
    train_bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    train_bench.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    train_bench.set_defaults(func=_bench_train)

    inputs = bench_kinds.add_parser(
        "input", help="batches/s of the training input pipeline",
        description="Time the training input pipeline (decode, augment, batch) of a config. "
        "Compare with `depthsense bench model`: the pipeline must outrun the step.",
    )
    inputs.add_argument("--config", default="default",
                       help="config file or name in configs/ (default: default)")
    inputs.add_argument("--name", help="dataset: synthetic, redweb or a TFDS name")
    inputs.add_argument("--data-dir", help="TFDS data_dir (default: config.data.data_dir)")
    inputs.add_argument("--batch", type=_positive_int, help="batch (default: batch_size)")
    inputs.add_argument("--batches", type=_positive_int, default=50, help="timed batches")
    inputs.add_argument("--warmup", type=_positive_int, default=5, help="untimed batches")
    inputs.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    inputs.set_defaults(func=_bench_input)

    data = commands.add_parser("data", help="build and look at the datasets")
    data_kinds = data.add_subparsers(dest="data_command", metavar="ACTION")
    data_kinds.required = True
    build = data_kinds.add_parser(
        "build", help="build a dataset's TFRecords (synthetic: generated here; redweb: from "
        "a manual folder)",
    )
    build.add_argument("name", help="synthetic, redweb, or a TFDS name (synthetic_scenes/tiny)")
    build.add_argument("--config", default="default",
                       help="config file or name in configs/ (default: default)")
    build.add_argument("--data-dir", help="TFDS data_dir (default: config.data.data_dir)")
    build.add_argument("--manual-dir", help="folder with ReDWeb_V1/ or its archive (redweb)")
    build.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    build.set_defaults(func=_data_build)
    show_cmd = data_kinds.add_parser(
        "show", help="a picture of samples after augmentation: image | depth | mask",
    )
    show_cmd.add_argument("name", help="synthetic, redweb, or a TFDS name")
    show_cmd.add_argument("--num", type=_positive_int, default=8, help="examples (default 8)")
    show_cmd.add_argument("--out", default="grid.png", help="output PNG (default grid.png)")
    show_cmd.add_argument("--split", default="train", help="split (default train)")
    show_cmd.add_argument("--size", type=_positive_int, help="crop size (default image_size)")
    show_cmd.add_argument("--no-augment", action="store_true",
                          help="evaluation resize instead of training augmentation")
    show_cmd.add_argument("--config", default="default",
                       help="config file or name in configs/ (default: default)")
    show_cmd.add_argument("--data-dir", help="TFDS data_dir (default: config.data.data_dir)")
    show_cmd.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    show_cmd.set_defaults(func=_data_show)

    train = commands.add_parser(
        "train", help="train a model (resumes from the workdir's latest checkpoint)",
        description="Train DepthNet as a config describes, in WORKDIR: checkpoints, "
        "metrics.jsonl and the evaluation table each epoch. Overrides as --config.KEY=VALUE.",
    )
    train.add_argument("--config", default="synthetic",
                       help="config file, or the name of one in configs/ (default: synthetic, "
                       "the small built-in model on synthetic scenes)")
    train.add_argument("--workdir", required=True, help="folder for checkpoints and logs")
    multi = train.add_argument_group(
        "multi-host", "jax.distributed is initialised automatically on multi-host Cloud TPU, "
        "Slurm and Open MPI, or when JAX_COORDINATOR_ADDRESS is set; these flags set it by hand")
    multi.add_argument("--coordinator", help="host:port of process 0 (JAX_COORDINATOR_ADDRESS)")
    multi.add_argument("--num-processes", type=_positive_int,
                       help="processes in the run (JAX_NUM_PROCESSES)")
    multi.add_argument("--process-id", type=int, help="this process, 0-based (JAX_PROCESS_ID)")
    multi.add_argument("--distributed", action="store_true",
                       help="call jax.distributed.initialize() even if nothing above says so")
    train.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "eval", help="metrics of a workdir's checkpoint on a split",
        description="Load a training workdir's config and checkpoint and print the loss, WHDR, "
        "SSIM, MSE, AbsRel and delta1 on a split; also written to WORKDIR/eval/.",
    )
    evaluate.add_argument("--workdir", required=True, help="the training workdir")
    evaluate.add_argument("--split", default="validation", help="split (default validation)")
    evaluate.add_argument("--checkpoint", default="latest",
                          help="'latest', 'best' (lowest validation WHDR) or a step number")
    evaluate.add_argument("--max-batches", type=_positive_int,
                          help="score only this many batches (default: the whole split)")
    evaluate.set_defaults(func=_eval)

    predict = commands.add_parser(
        "predict", help="relative depth of photos: 16-bit PNG, colour map, .npy, side by side",
        description="Predict relative inverse depth (bright/large = near) for image files, "
        "folders (recursive) or glob patterns, at any size: each photo is resized keeping its "
        "aspect (long side --size, sides multiples of 32), predicted in batches and resized "
        "back. Unreadable files are reported and skipped.",
    )
    predict.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    _model_source_args(predict)
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--format", default="png16,color",
                         help="comma-separated: png16 (16-bit PNG of the depth normalised to "
                         "0..65535), color (colour map PNG), npy (raw float32), side (photo | "
                         "colour map) (default png16,color)")
    predict.add_argument("--colormap", default="inferno",
                         help="OpenCV colour map name for color/side (default inferno)")
    predict.add_argument("--size", type=_positive_int,
                         help="long side the model sees, a multiple of 32 (default: the "
                         "training image_size from the workdir, model.json or --config; else "
                         "384)")
    predict.add_argument("--batch", type=_positive_int, default=4,
                         help="photos per batch (default 4)")
    predict.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    predict.set_defaults(func=_predict)

    export_cmd = commands.add_parser(
        "export", help="params (msgpack, safetensors), jax.export and TF SavedModel",
        description="Write a trained model's params and compiled inference function to OUT; "
        "each file is reloaded, run and compared with the live model before it is reported.",
    )
    _model_source_args(export_cmd, with_config=False)
    export_cmd.add_argument("--out", required=True, help="output folder")
    export_cmd.add_argument("--formats", default="msgpack,safetensors,jax,savedmodel",
                            help="comma-separated subset of msgpack,safetensors,jax,savedmodel")
    export_cmd.add_argument("--platforms", default="cpu",
                            help="jax.export platforms, comma-separated: cpu,cuda,tpu "
                            "(default cpu)")
    export_cmd.set_defaults(func=_export)

    summary = commands.add_parser(
        "model-summary", help="parameter counts of the model a config describes",
        description="Parameter counts of DepthNet for a config; overrides as --config.KEY=VALUE.",
    )
    summary.add_argument("--config", default="default",
                       help="config file or name in configs/ (default: default)")
    summary.add_argument("--size", type=_positive_int, help="input size (default: image_size)")
    summary.add_argument("--table", action="store_true", help="also print flax's module table")
    summary.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    summary.set_defaults(func=_model_summary)

    convert = commands.add_parser(
        "convert-weights", help="torchvision ResNet weights -> encoder variables (msgpack)",
        description="Convert a torchvision ResNet state dict (.pth needs torch; .safetensors "
        "or .npz with torchvision key names) into the encoder's params and batch_stats.",
    )
    convert.add_argument("src", help="weights file (.pth, .pt, .safetensors, .npz)")
    convert.add_argument("out", help="output .msgpack")
    convert.add_argument("--depth", type=int, default=50, choices=[18, 34, 50, 101])
    convert.add_argument("--width", type=_positive_int, default=64)
    convert.set_defaults(func=_convert_weights)
    return parser


class _DropTfdsDeprecation:
    """tfds warns about its own use of FeatureConnector.dtype on every dataset it opens."""

    def filter(self, record) -> bool:
        return "FeatureConnector.dtype" not in record.getMessage()


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.getLogger("absl").addFilter(_DropTfdsDeprecation())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TF only decodes and resizes images here; its oneDNN notice on import is noise.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides"):
            parser.error(f"unrecognised arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        # Bad configs, overrides, paths and data: our code raises these with a message that
        # says what to change; a traceback would only hide it.
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
