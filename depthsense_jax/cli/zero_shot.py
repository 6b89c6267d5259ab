"""`depthsense zero-shot` (old name: `benchmark`)."""

from __future__ import annotations

import argparse

from depthsense_jax.cli.common import model_source_parent, positive_int, renamed

# The benchmark datasets' names, for --help without importing TensorFlow (data.registry has
# their readers; tests/test_cli.py checks that the two lists agree).
DATASETS = ("redweb", "nyu", "kitti", "eth3d", "diode", "sintel", "middlebury", "diw")


def _zero_shot(args: argparse.Namespace) -> int:
    from depthsense_jax import inference
    from depthsense_jax.evaluation import zero_shot

    if not args.data_dir and not args.dataset.startswith("rgbd/"):
        raise ValueError(f"zero-shot {args.dataset} needs --data-dir: the folder you unpacked "
                         "it into")
    model = None
    if args.workdir or args.params:
        model = inference.load_model(args.workdir, args.params, args.checkpoint, log=print)
    elif not args.predictions:
        raise ValueError("give one of --workdir DIR, --params DIR_OR_FILE or --predictions DIR")
    elif args.size:
        raise ValueError("--size sets the model's input; --predictions are scored as they are")
    report = zero_shot.run(
        args.dataset, args.data_dir, model=model, predictions_dir=args.predictions,
        prediction_kind=args.prediction_kind, size=args.size, align=args.align,
        space=args.space, crop=args.crop, limit=args.limit, split_file=args.split_file,
        batch_size=args.batch, fit=args.fit)
    print(zero_shot.format_table(report))
    if args.json:
        zero_shot.write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def add(commands) -> None:
    parser = commands.add_parser(
        "zero-shot", aliases=["benchmark"], parents=[model_source_parent()],
        help="accuracy on the field's benchmarks: NYU, KITTI, ETH3D, DIODE, Sintel, "
        "Middlebury, DIW, ReDWeb (the zero-shot protocol)",
        description="Score a model (--workdir / --params) or another tool's saved predictions "
        "(--predictions) on a benchmark dataset read from your copy (a folder or a gs:// "
        "URL) in its official layout, with the MiDaS zero-shot protocol: per-image "
        "least-squares scale and shift (in disparity space by default), clamp to the "
        "dataset's depth cap, invert, then "
        "AbsRel, delta1..3, RMSE and % of pixels with delta > 1.25 (WHDR for DIW and ReDWeb). "
        "docs/evaluation.md has each dataset's layout and the published numbers."
        + renamed("benchmark"))
    parser.add_argument("dataset", metavar="DATASET",
                        help=f"one of {', '.join(DATASETS)}, or rgbd/NAME (the validation "
                        "split of your own data, built with `data build folder`)")
    parser.add_argument("--data-dir",
                        help="the folder (or gs:// URL) you unpacked the dataset into "
                        "(redweb, rgbd/NAME: the TFDS data_dir it was built in; for rgbd/NAME "
                        "the default is ~/tensorflow_datasets)")
    parser.add_argument("--predictions", metavar="DIR",
                        help="score saved predictions instead of a model: files (in a folder "
                        "or under a gs:// URL) matched to the images by relative path and stem "
                        "(.npy, .pfm, 8/16-bit .png)")
    parser.add_argument("--prediction-kind", choices=["disparity", "depth"],
                        default="disparity",
                        help="what --predictions hold: relative inverse depth (MiDaS, Depth "
                        "Anything; the default) or relative depth (Marigold)")
    parser.add_argument("--align", choices=["disparity", "depth", "scale"],
                        default="disparity",
                        help="where the scale and shift are fitted (default disparity, as "
                        "MiDaS; depth for depth predictions, as Marigold; scale: a scale only)")
    parser.add_argument("--fit", choices=["lstsq", "robust"], default="lstsq",
                        help="how the scale and shift are fitted: least squares (the default, "
                        "MiDaS's protocol) or robust (least squares reweighted by Cauchy "
                        "weights, which a few grossly wrong pixels barely move; the fit of "
                        "`predict --metric-from`)")
    parser.add_argument("--space", choices=["depth", "disparity"], default="depth",
                        help="where the errors are measured: depth (MiDaS; the default) or "
                        "disparity (how Depth Anything reports AbsRel and delta1)")
    parser.add_argument("--crop", help="evaluation crop (default: the dataset's; KITTI: garg "
                        "or eigen_kitti; 'none' for none)")
    parser.add_argument("--split-file", help="the split list, where the dataset has one "
                        "(default: the one in --data-dir)")
    parser.add_argument("--size", type=positive_int,
                        help="short side the model sees (default: its training image_size)")
    parser.add_argument("--batch", type=positive_int, default=4,
                        help="images per model batch (default 4)")
    parser.add_argument("--limit", type=positive_int, help="score only the first N images")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the summary, settings and per-image rows as JSON (a "
                        "file or a gs:// URL)")
    parser.set_defaults(func=_zero_shot)
