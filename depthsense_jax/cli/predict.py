"""`depthsense predict` and `depthsense export`."""

from __future__ import annotations

import argparse

from depthsense_jax.cli.common import (
    comma_list,
    config_parent,
    load_config,
    model_source_parent,
    positive_int,
)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _load(args: argparse.Namespace):
    from depthsense_jax import inference

    if args.overrides and not getattr(args, "config", None):
        raise ValueError("--config.KEY=VALUE overrides need --config (the config to override)")
    config = load_config(args) if getattr(args, "config", None) else None
    return inference.load_model(args.workdir, args.params, args.checkpoint, config, log=print)


def _photo_formats(args: argparse.Namespace) -> list[str]:
    """--format for photos; with --metric-from the default adds the metric depth files, and
    the fit's report (metric_json) is always written."""
    formats = comma_list(args.format or ("png16,color,metric_npy,metric_png16"
                                         if args.metric_from else "png16,color"))
    if args.metric_from and "metric_json" not in formats:
        formats.append("metric_json")
    return formats


def _writer_options(args: argparse.Namespace, photos: list[str], formats: list[str]):
    """inference.WriterOptions of --metric-from, --fov, --intrinsics and --max-depth, checked
    against the formats (before the model is loaded)."""
    from depthsense_jax import inference, metric, pointcloud

    if (args.fov is not None or args.intrinsics) and not set(formats) & {"ply", "npz"}:
        raise ValueError("--fov and --intrinsics are for point clouds: --format ply or npz")
    if args.max_depth is not None and not args.metric_from:
        raise ValueError("--max-depth caps metric depth: it needs --metric-from")
    camera = pointcloud.Camera(fov=args.fov, intrinsics=(
        pointcloud.parse_intrinsics(args.intrinsics) if args.intrinsics else None))
    known = metric.load_known(args.metric_from, photos) if args.metric_from else None
    options = inference.WriterOptions(known=known, camera=camera, max_depth=args.max_depth)
    options.check(formats)
    return options


def _predictor(args: argparse.Namespace, model):
    """The inference.Predictor of --runtime; onnx runs --params' model.onnx when that folder
    has one, else the graph built from the weights."""
    from depthsense_jax import inference, onnx_export

    onnx_file = onnx_export.beside(args.params) if args.runtime == "onnx" else None
    if onnx_file:
        print(f"running {onnx_file} with onnxruntime")
    return inference.Predictor(model, runtime=args.runtime, onnx_file=onnx_file)


def _predict(args: argparse.Namespace) -> int:
    from depthsense_jax import inference, video

    paths = inference.expand_inputs(args.inputs)
    videos = [p for p in paths if video.is_video(p)]
    photos = [p for p in paths if not video.is_video(p)]
    if args.stabilize and not videos:
        raise ValueError("--stabilize is for videos; no video among the inputs")
    if args.metric_from and not photos:
        raise ValueError("--metric-from is for photos; no photo among the inputs")
    formats = _photo_formats(args)
    options = _writer_options(args, photos, formats) if photos else None
    model = _load(args)
    predictor = _predictor(args, model)
    if photos:
        inference.predict_files(model, photos, args.out, size=args.size,
                                formats=formats, writer_options=options,
                                colormap=args.colormap, batch_size=args.batch,
                                skip_existing=args.skip_existing,
                                workers=inference.DEFAULT_WORKERS if args.workers is None
                                else args.workers, predictor=predictor)
    for path in videos:
        video.predict_video(model, path, args.out, size=args.size,
                            formats=comma_list(args.format or "color"),
                            colormap=args.colormap, batch_size=args.batch,
                            stabilize_frames=args.stabilize, smoothing=args.smoothing,
                            predictor=predictor)
    return 0


def _export(args: argparse.Namespace) -> int:
    from depthsense_jax import export

    formats = comma_list(args.formats)
    print(f"exporting to {args.out} ({', '.join(formats)}); each is reloaded and checked:")
    export.export_all(args.out, _load(args), formats=formats,
                      platforms=tuple(comma_list(args.platforms)))
    return 0


def add(commands) -> None:
    predict = commands.add_parser(
        "predict", parents=[model_source_parent(), config_parent(None)],
        help="relative depth of photos and videos: 16-bit PNG, colour map, .npy, .mp4",
        description="Predict relative inverse depth (bright/large = near) for image files, "
        "folders (recursive) or glob patterns, at any size: each photo is resized keeping its "
        "aspect so that its short side is --size (the scale the model trained at), both sides "
        "multiples of the model's stride (32 for DepthNet), predicted in batches and resized "
        "back. A photo that cannot be read or written is reported and skipped; the last "
        "line counts the photos written, skipped as existing (--skip-existing) and failed. "
        "Video files (.mp4, .avi, .mov, .mkv, .webm, ...; any container OpenCV reads) "
        "given by name or pattern become NAME_depth.mp4 (colour "
        "map, or --format side), NAME_depth.npy (raw, --format npy) and NAME_depth/ (16-bit "
        "PNG per frame, --format png16).")
    predict.add_argument("inputs", nargs="+",
                         help="image or video files, folders (images) or glob patterns")
    predict.add_argument("--out", required=True, help="output folder or URL (gs://...)")
    predict.add_argument("--format",
                         help="comma-separated: png16 (16-bit PNG of the depth normalised to "
                         "0..65535), color (colour map), npy (raw float32), side (photo | "
                         "colour map); photos with --metric-from: metric_npy (NAME_metric.npy, "
                         "float32 metres), metric_png16 (NAME_metric_mm.png, uint16 "
                         "millimetres), metric_json (NAME_metric.json, the fit; always "
                         "written with --metric-from); point clouds: ply (NAME_points.ply, "
                         "binary, x y z float32 + RGB) and npz (NAME_points.npz: xyz, rgb, "
                         "intrinsics), in metres with --metric-from, else relative (default "
                         "png16,color for photos, plus metric_npy,metric_png16 with "
                         "--metric-from; color for videos)")
    predict.add_argument("--metric-from", metavar="CSV_OR_FOLDER",
                         help="photos: known depths to turn the prediction into metres: a CSV "
                         "with the header image,x,y,depth_m (image: the photo's file name or "
                         "path relative to the inputs; x, y: pixels of the photo; depth_m: "
                         "metres), or a folder of sparse depth maps named by the photos' "
                         "stems (16-bit PNG in millimetres or .npy in metres, 0 = unknown). "
                         "A robust scale and shift is fitted in inverse depth per photo; a "
                         "photo with too few points (two distinct depths) fails alone")
    predict.add_argument("--max-depth", type=float, metavar="METRES",
                         help="with --metric-from: depths beyond this are written as 0 "
                         "(unknown) (default: 10x each photo's farthest known depth)")
    predict.add_argument("--fov", type=float, metavar="DEG",
                         help="point clouds: the horizontal field of view in degrees (default: "
                         "each photo's EXIF 35 mm focal length, else 60)")
    predict.add_argument("--intrinsics", metavar="FX,FY,CX,CY",
                         help="point clouds: pinhole intrinsics in pixels of the photos' own "
                         "resolution (instead of --fov)")
    predict.add_argument("--stabilize", action="store_true",
                         help="videos: align each frame's scale and shift to a running "
                         "reference over the pixels that did not change (less flicker)")
    predict.add_argument("--smoothing", type=float, default=0.2,
                         help="videos with --stabilize: the newest frame's weight in the "
                         "running reference, in (0, 1] (default 0.2: ~5 frames of memory)")
    predict.add_argument("--colormap", default="inferno",
                         help="OpenCV colour map name for color/side (default inferno)")
    predict.add_argument("--size", type=positive_int,
                         help="short side the model sees, a multiple of the model's stride "
                         "(default: the training image_size from the workdir, model.json or "
                         "--config; else the model family's default, 384 for DepthNet). "
                         "Training crops come from images scaled to a short side of "
                         "image_size to 1.5x it, so larger values see finer detail at a scale "
                         "the model trained less on")
    predict.add_argument("--batch", type=positive_int, default=4,
                         help="photos per batch (default 4)")
    # The quickstart DepthNet ran 1.7-2.0x faster in onnxruntime than in JAX on a 2-core
    # CPU at batch 1 (docs/benchmarks.md, "Runtimes"); on accelerators jax stays the default.
    predict.add_argument("--runtime", choices=("jax", "onnx"), default="jax",
                         help="jax (default): XLA, on the accelerator when there is one; "
                         "onnx: the model's ONNX graph in onnxruntime on the CPU (float32; "
                         "--params' model.onnx when that export folder has one, else built "
                         "from the weights; needs the [onnx] extra). Same outputs within "
                         "1e-4; which is faster on a CPU: docs/benchmarks.md, \"Runtimes\"")
    predict.add_argument("--skip-existing", action="store_true",
                         help="photos: skip a photo whose every output file is already in "
                         "--out (resumes an interrupted run; outputs are renamed into place "
                         "only when whole)")
    predict.add_argument("--workers", type=_non_negative_int,
                         help="photos: threads that read and resize photos ahead of the "
                         "model, and as many that write outputs (default 4; 0: read, "
                         "predict and write one batch after another)")
    predict.set_defaults(func=_predict)

    export = commands.add_parser(
        "export", parents=[model_source_parent()],
        help="params (msgpack, safetensors), jax.export, TF SavedModel, ONNX (fp32, fp16, "
        "INT8) and TFLite",
        description="Write a trained model's params and compiled inference function to OUT; "
        "each file is reloaded, run and compared with the live model before it is reported.")
    export.add_argument("--out", required=True, help="output folder or URL (gs://...)")
    export.add_argument("--formats", default="msgpack,safetensors,jax,savedmodel",
                        help="comma-separated subset of msgpack,safetensors,jax,savedmodel,"
                        "onnx,onnx-fp16,onnx-int8,tflite (default: the first four). onnx*: "
                        "the [onnx] extra; onnx-fp16: float16 inside, float32 in and out; "
                        "onnx-int8: INT8 calibrated on rendered scenes at the training size; "
                        "tflite: batch 1 at the training size (a static shape), the "
                        "[tflite] extra. Quantised files are checked against the float32 "
                        "model on rendered scenes (max and mean |diff| relative to the "
                        "output range, WHDR and AbsRel) and fail if beyond their tolerance")
    export.add_argument("--platforms", default="cpu",
                        help="jax.export platforms, comma-separated: cpu,cuda,tpu (default cpu)")
    export.set_defaults(func=_export)
