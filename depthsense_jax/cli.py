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
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
