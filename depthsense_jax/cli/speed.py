"""`depthsense speed losses|model|train|input|render|runtimes` (old name: `bench`)."""

from __future__ import annotations

import argparse

from depthsense_jax.cli.common import (
    comma_list,
    command_line,
    config_parent,
    data_parent,
    load_config,
    load_data_config,
    model_source_parent,
    positive_int,
    renamed,
)


def _write_json(args, result, **settings) -> None:
    if args.json:
        from depthsense_jax.speed import timing

        timing.write_json(args.json, result, command=command_line(args.argv), **settings)
        print(f"wrote {args.json}")


def _losses(args: argparse.Namespace) -> int:
    from depthsense_jax.speed import losses

    results = losses.bench_losses(
        batch=args.batch, size=args.size, repeats=args.repeats, warmup=args.warmup,
        compare=args.compare, only=comma_list(args.only) if args.only else None,
        num_pairs=args.num_pairs, num_anchors=args.num_anchors)
    print(losses.format_table(results, args.batch, args.size))
    _write_json(args, results, batch=args.batch, size=args.size, repeats=args.repeats,
                warmup=args.warmup, num_pairs=args.num_pairs, num_anchors=args.num_anchors)
    return 0


def _model(args: argparse.Namespace) -> int:
    from depthsense_jax.speed import model

    config = load_config(args)
    batch, size = args.batch or config.batch_size, args.size or config.image_size
    result = model.bench_model(config, args.config, batch, size, repeats=args.repeats,
                               warmup=args.warmup, compare=args.compare, width=args.width)
    print(model.format_table(result))
    _write_json(args, result, config=args.config, overrides=args.overrides, batch=batch,
                size=size, width=args.width or size, repeats=args.repeats,
                warmup=args.warmup)
    return 0


def _train(args: argparse.Namespace) -> int:
    from depthsense_jax.speed import train

    result = train.bench_train(load_config(args), args.config, num_steps=args.steps,
                               warmup=args.warmup)
    print(train.format_table(result))
    _write_json(args, result, config=args.config, overrides=args.overrides, steps=args.steps,
                warmup=args.warmup)
    return 0


def _input(args: argparse.Namespace) -> int:
    from depthsense_jax.speed import input as input_bench

    config = load_data_config(args)
    if args.batch:
        config.batch_size = args.batch
    result = input_bench.bench_input(config, batches=args.batches, warmup=args.warmup)
    print(input_bench.format_input(result))
    _write_json(args, result, config=args.config, overrides=args.overrides,
                batches=args.batches, warmup=args.warmup)
    return 0


def _render(args: argparse.Namespace) -> int:
    from depthsense_jax.speed import input as input_bench

    families = _families(args.scenes)
    rate = input_bench.bench_render(args.num, args.size, families)
    which = f"families {','.join(families)}" if families else "the first layout (config 160)"
    print(f"synthetic renderer: {rate:.1f} images/s at {args.size}x{args.size} "
          f"({args.num} scenes, {which})")
    return 0


def _runtimes(args: argparse.Namespace) -> int:
    from depthsense_jax import inference
    from depthsense_jax.speed import runtimes

    model = inference.load_model(args.workdir, args.params, args.checkpoint, log=print)
    sizes = []
    for item in comma_list(args.sizes):
        if item == "train":
            from depthsense_jax import export

            sizes.append(export.train_size(model))
        elif item.isdigit() and int(item) > 0:
            sizes.append(int(item))
        else:
            raise ValueError(f"--sizes: 'train' or positive sides in pixels, got {item!r}")
    rows = runtimes.bench_runtimes(model, sizes, batch=args.batch, repeats=args.repeats,
                                   warmup=args.warmup, scenes=args.scenes,
                                   only=comma_list(args.only) if args.only else None)
    print(runtimes.format_table(rows, model, args.batch, args.scenes))
    _write_json(args, rows, workdir=args.workdir, params=args.params, sizes=sizes,
                batch=args.batch, repeats=args.repeats, warmup=args.warmup,
                scenes=args.scenes)
    return 0


def _families(scenes: str) -> tuple[str, ...]:
    """--scenes: "v1" (the first layout), "v2" (every family) or a comma list of families."""
    from depthsense_jax.data.synthetic.worlds import FAMILIES

    if scenes == "v1":
        return ()
    if scenes == "v2":
        return tuple(FAMILIES)
    return tuple(f.strip() for f in scenes.split(",") if f.strip())


def add(commands) -> None:
    speed = commands.add_parser(
        "speed", aliases=["bench"],
        help="how fast: the losses, the model, the training loop, the input pipeline",
        description="Speed benchmarks of the jit-compiled pieces, in ms and images/s; "
        "docs/benchmarks.md has the numbers measured so far." + renamed("bench"))
    kinds = speed.add_subparsers(dest="speed_kind", metavar="WHAT", required=True)

    def json_option(parser):
        parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")

    losses = kinds.add_parser(
        "losses", help="compile, forward and forward+backward time of every loss",
        description="Time each loss (and the combined loss) at a given batch and size: "
        "compile time, median forward and forward+backward time after warm-up.")
    losses.add_argument("--batch", type=positive_int, default=8, help="images (default 8)")
    losses.add_argument("--size", type=positive_int, default=384,
                        help="height = width in pixels (default 384)")
    losses.add_argument("--repeats", type=positive_int, default=20,
                        help="timed runs per measurement; the median is reported (default 20)")
    losses.add_argument("--warmup", type=positive_int, default=3, help="untimed runs (default 3)")
    losses.add_argument("--num-pairs", type=positive_int, default=300,
                        help="random pairs per image for the ranking loss (default 300)")
    losses.add_argument("--num-anchors", type=positive_int, default=100,
                        help="edge anchors per image for the edge-guided loss (default 100)")
    losses.add_argument("--only", metavar="NAMES",
                        help="comma-separated losses to time (default: all)")
    losses.add_argument("--compare", action="store_true",
                        help="also time the PyTorch equivalents (needs torch and kornia)")
    json_option(losses)
    losses.set_defaults(func=_losses)

    model = kinds.add_parser(
        "model", parents=[config_parent("base")],
        help="inference and training-step speed of a config's model, in images/s",
        description="Time the config's model (any family) in inference and in the training "
        "step of `depthsense train` (the config's combined loss, backward, optimizer update) "
        "on one device.")
    model.add_argument("--batch", type=positive_int, help="images (default: batch_size)")
    model.add_argument("--size", type=positive_int,
                       help="height (and width unless --width), a multiple of the model's "
                       "stride (default: image_size)")
    model.add_argument("--width", type=positive_int,
                       help="width, a multiple of the model's stride (default: --size)")
    model.add_argument("--repeats", type=positive_int, default=10,
                       help="timed runs; the median is reported (default 10)")
    model.add_argument("--warmup", type=positive_int, default=2, help="untimed runs (default 2)")
    model.add_argument("--compare", action="store_true",
                       help="also time the same architecture in PyTorch (needs torch; for the "
                       "model families that have a PyTorch peer)")
    json_option(model)
    model.set_defaults(func=_model)

    train = kinds.add_parser(
        "train", parents=[config_parent("synthetic")],
        help="steady-state speed of the training loop, split into input/host/device",
        description="Run the training loop of a config (data pipeline, sharded jitted step) "
        "and report images/s and a step's split into input wait, host overhead and device "
        "time.")
    train.add_argument("--steps", type=positive_int, default=20,
                       help="timed steps per pass (default 20)")
    train.add_argument("--warmup", type=positive_int, default=3,
                       help="untimed steps after the first (default 3)")
    json_option(train)
    train.set_defaults(func=_train)

    inputs = kinds.add_parser(
        "input", parents=[config_parent("base"), data_parent(name_required=False)],
        help="batches/s of the training input pipeline",
        description="Time the training input pipeline (decode, augment, batch) of a dataset "
        "(default: the config's). Compare with `depthsense speed model`: the pipeline "
        "must outrun the step.")
    inputs.add_argument("--batch", type=positive_int, help="batch (default: batch_size)")
    inputs.add_argument("--batches", type=positive_int, default=50, help="timed batches")
    inputs.add_argument("--warmup", type=positive_int, default=5, help="untimed batches")
    json_option(inputs)
    inputs.set_defaults(func=_input)

    rt = kinds.add_parser(
        "runtimes", parents=[model_source_parent()],
        help="a trained model in JAX, onnxruntime fp32/fp16/INT8, LiteRT and PyTorch: images/s "
        "and accuracy",
        description="Run one trained model in every runtime on this CPU (JAX jit; onnxruntime "
        "with our ONNX graph in float32, float16 and INT8; LiteRT; PyTorch with the same "
        "weights) at each size: images/s, the difference from the float32 JAX output, and "
        "WHDR and AbsRel (after scale-and-shift alignment) on rendered validation scenes and "
        "on the Middlebury Aloe photo (Debian's opencv-doc). Prints a Markdown table.")
    rt.add_argument("--sizes", default="train,384",
                    help="comma-separated square sides: 'train' (the training image_size) or "
                    "pixels, rounded to the model's stride (default train,384)")
    rt.add_argument("--batch", type=positive_int, default=1,
                    help="images per timed run (default 1)")
    rt.add_argument("--repeats", type=positive_int, default=10,
                    help="timed runs; the median is reported (default 10)")
    rt.add_argument("--warmup", type=positive_int, default=2, help="untimed runs (default 2)")
    rt.add_argument("--scenes", type=positive_int, default=32,
                    help="rendered validation scenes per size for the accuracy (default 32)")
    rt.add_argument("--only", metavar="NAMES",
                    help="comma-separated runtime name prefixes (e.g. onnxruntime,PyTorch); "
                    "the float32 JAX reference always runs")
    json_option(rt)
    rt.set_defaults(func=_runtimes)

    render = kinds.add_parser(
        "render", help="images/s of the synthetic scene renderer",
        description="Render synthetic scenes in this process and report images/s "
        "(OMP_NUM_THREADS=1 taskset -c 0 for a single-core figure).")
    render.add_argument("--num", type=positive_int, default=200, help="scenes (default 200)")
    render.add_argument("--size", type=positive_int, default=160,
                        help="height = width (default 160)")
    render.add_argument("--scenes", default="v2",
                        help="v2 (every scene family, the synthetic_scenes/v2 data; default), "
                        "v1 (the first layout, synthetic_scenes/160) or families, e.g. "
                        "indoor,street")
    render.set_defaults(func=_render)
