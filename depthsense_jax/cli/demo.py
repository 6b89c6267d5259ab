"""`depthsense demo`: the Gradio web app."""

from __future__ import annotations

import argparse

from depthsense_jax.cli.common import model_source_parent, positive_int


def _demo(args: argparse.Namespace) -> int:
    from depthsense_jax import demo, inference

    examples = inference.expand_inputs(args.examples) if args.examples else None
    model = inference.load_model(args.workdir, args.params, args.checkpoint, None, log=print)
    demo.launch(model, size=args.size, examples=examples,
                max_pixels=args.max_pixels or demo.MAX_PIXELS, host=args.host, port=args.port,
                queue_size=args.queue_size or demo.QUEUE_SIZE)
    return 0


def add(commands) -> None:
    demo = commands.add_parser(
        "demo", parents=[model_source_parent()],
        help="a web page that shows the relative depth of uploaded photos (Gradio)",
        description="Serve a web page (Gradio, the [demo] extra) where a photo is uploaded and "
        "shown next to its relative depth colour map (bright = near), with the depth to "
        "download as a 16-bit PNG and as float32 .npy. The model is compiled once at start; "
        "requests run one at a time, and those beyond --queue-size waiting are refused as "
        "busy.")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to serve on (default 127.0.0.1: this machine only; "
                      "0.0.0.0 serves the network)")
    demo.add_argument("--port", type=positive_int, default=7860,
                      help="port to serve on (default 7860)")
    demo.add_argument("--size", type=positive_int,
                      help="short side the model sees, a multiple of the model's stride "
                      "(default: the training image_size, else the family's default)")
    demo.add_argument("--examples", nargs="+", metavar="FILE",
                      help="photos offered as examples: files, folders or glob patterns")
    # The default is the library's (depthsense_jax.demo.MAX_PIXELS): importing it here would
    # import JAX for every `depthsense --help`.
    demo.add_argument("--max-pixels", type=positive_int,
                      help="photos with more pixels are refused (default 40,000,000)")
    demo.add_argument("--queue-size", type=positive_int,
                      help="requests that may wait for the model; one more is told the queue "
                      "is full (default 32)")
    demo.set_defaults(func=_demo)
