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


def _load(args: argparse.Namespace):
    from depthsense_jax import inference

    if args.overrides and not getattr(args, "config", None):
        raise ValueError("--config.KEY=VALUE overrides need --config (the config to override)")
    config = load_config(args) if getattr(args, "config", None) else None
    return inference.load_model(args.workdir, args.params, args.checkpoint, config, log=print)


def _predict(args: argparse.Namespace) -> int:
    from depthsense_jax import inference, video

    paths = inference.expand_inputs(args.inputs)
    videos = [p for p in paths if video.is_video(p)]
    photos = [p for p in paths if not video.is_video(p)]
    if args.stabilize and not videos:
        raise ValueError("--stabilize is for videos; no video among the inputs")
    model = _load(args)
    if photos:
        inference.predict_files(model, photos, args.out, size=args.size,
                                formats=comma_list(args.format or "png16,color"),
                                colormap=args.colormap, batch_size=args.batch)
    predictor = inference.Predictor(model) if videos else None
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
        "back. Unreadable files are "
        "reported and skipped. Video files (.mp4, .avi, .mov, .mkv, .webm, ...; any "
        "container OpenCV reads) given by name or pattern become NAME_depth.mp4 (colour "
        "map, or --format side), NAME_depth.npy (raw, --format npy) and NAME_depth/ (16-bit "
        "PNG per frame, --format png16).")
    predict.add_argument("inputs", nargs="+",
                         help="image or video files, folders (images) or glob patterns")
    predict.add_argument("--out", required=True, help="output folder or URL (gs://...)")
    predict.add_argument("--format",
                         help="comma-separated: png16 (16-bit PNG of the depth normalised to "
                         "0..65535), color (colour map), npy (raw float32), side (photo | "
                         "colour map) (default png16,color for photos, color for videos)")
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
    predict.set_defaults(func=_predict)

    export = commands.add_parser(
        "export", parents=[model_source_parent()],
        help="params (msgpack, safetensors), jax.export, TF SavedModel and ONNX",
        description="Write a trained model's params and compiled inference function to OUT; "
        "each file is reloaded, run and compared with the live model before it is reported.")
    export.add_argument("--out", required=True, help="output folder or URL (gs://...)")
    export.add_argument("--formats", default="msgpack,safetensors,jax,savedmodel",
                        help="comma-separated subset of msgpack,safetensors,jax,savedmodel,"
                        "onnx (default: all but onnx, which needs the [onnx] extra)")
    export.add_argument("--platforms", default="cpu",
                        help="jax.export platforms, comma-separated: cpu,cuda,tpu (default cpu)")
    export.set_defaults(func=_export)
