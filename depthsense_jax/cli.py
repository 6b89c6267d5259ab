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

    try:
        config = load_config(args.config, _split_overrides(args))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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


def _split_overrides(args: argparse.Namespace) -> list[str]:
    unknown = [a for a in args.overrides if not a.startswith("--config.")]
    if unknown:
        raise SystemExit(f"error: unrecognised arguments {unknown} (overrides: --config.KEY=VALUE)")
    return args.overrides


def _model_summary(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from depthsense_jax.config import load_config, model_from_config

    try:
        config = load_config(args.config, _split_overrides(args))
        model = model_from_config(config.model)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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
    model.add_argument("--config", default="configs/default.py", help="config file")
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

    summary = commands.add_parser(
        "model-summary", help="parameter counts of the model a config describes",
        description="Parameter counts of DepthNet for a config; overrides as --config.KEY=VALUE.",
    )
    summary.add_argument("--config", default="configs/default.py", help="config file")
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


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides"):
            parser.error(f"unrecognised arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
