"""Ablation of the synthetic scenes: which scene families and camera degradations move the
real-photo number.

    python scripts/ablation_scenes.py --out runs/ablation [--steps 1500] [--only NAME ...]

Each variant trains the quickstart model (configs/synthetic.py) for ``--steps`` steps on
one dataset, then is scored on the same three sets: the validation splits of
synthetic_scenes/160 (the first layout) and synthetic_scenes/v2 (every family), with the
aligned WHDR of training's validation, and the Middlebury "Aloe" photo of Debian's
opencv-doc (`depthsense_jax.evaluation.real_photo`: 50,000 pairs x 3 seeds, and the zero-shot
benchmark's 3,000 pairs). Subsets of the families are the synthetic builder's family sets
(`synthetic_scenes/families-...-2000`: 2,000 train / 200 validation scenes at 160 px).
Results go to OUT/ablation.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

import depthsense_jax
from depthsense_jax import inference
from depthsense_jax import workdir as workdir_lib
from depthsense_jax.config import load_config
from depthsense_jax.evaluation import real_photo
from depthsense_jax.train import loop, validation

OFF = ["--config.data.blur=0", "--config.data.noise=0", "--config.data.jpeg=0"]
NO_SKY = ["--config.data.keep_sky=False"]
SKY = ["--config.data.keep_sky=True"]
# Subsets of the families: synthetic_builder.family_set_config (2,000 train / 200 validation).
OUTDOOR = "synthetic_scenes/families-objects-terrain-street-2000"
NEAR = "synthetic_scenes/families-objects-indoor-closeup-2000"
VARIANTS = {  # name: (data, extra overrides, what it tests)
    "first layout": ("synthetic_scenes/160", OFF + NO_SKY, "the scenes and settings before"),
    "first layout + sky": ("synthetic_scenes/160", OFF + SKY, "sky as the farthest alone"),
    "v2 + sky, no degradations": ("synthetic_scenes/v2", OFF + SKY, "families and sky"),
    "v2 + sky + degradations": ("synthetic_scenes/v2", SKY, "families, sky, blur/noise/JPEG"),
    "v2 outdoor only": (OUTDOOR, OFF + SKY,
                        "objects, terrain, street (no rooms, no close-ups), sky"),
    "v2 near only": (NEAR, OFF + SKY, "objects, indoor, closeup (no terrain, no streets), sky"),
}
SCORED_ON = ("synthetic_scenes/160", "synthetic_scenes/v2")


def validation_whdr(workdir: str, data_name: str) -> float:
    """Aligned validation WHDR (%) of the workdir's best checkpoint on ``data_name``."""
    config = workdir_lib.load_config(workdir)
    config.data.name = data_name
    record = validation.validate_checkpoint(workdir, "validation", "best", config=config,
                                            log=lambda s: None)
    return 100 * record["whdr"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the runs and ablation.json")
    parser.add_argument("--steps", type=int, default=1500, help="training steps per variant")
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    args = parser.parse_args(argv)
    depthsense_jax.configure()
    os.makedirs(args.out, exist_ok=True)
    result_path = os.path.join(args.out, "ablation.json")
    results = json.load(open(result_path)) if os.path.exists(result_path) else {}
    with tempfile.TemporaryDirectory() as tmp:
        prior = real_photo.check({}, tmp)[real_photo.PRIOR]["dense_whdr"]
        results["vertical prior"] = {"aloe_dense": prior}
        for name, (data, extra, what) in VARIANTS.items():
            if args.only and name not in args.only:
                continue
            workdir = os.path.join(args.out, name.replace(" ", "_").replace(",", "")
                                   .replace("(", "").replace(")", "").replace("+", "plus"))
            epochs = max(1, args.steps // 500)
            overrides = [f"--config.data.name={data}", f"--config.num_epochs={epochs}",
                         f"--config.steps_per_epoch={args.steps // epochs}", *extra]
            start = time.perf_counter()
            loop.train_and_evaluate(load_config("synthetic", overrides), workdir,
                                    log=lambda s: None)
            row = {"data": data, "overrides": overrides, "what": what,
                   "train_seconds": time.perf_counter() - start}
            for scored in SCORED_ON:
                row[f"val_whdr {scored}"] = validation_whdr(workdir, scored)
            model = inference.load_model(workdir=workdir, checkpoint="best")
            scored = real_photo.check({name: model}, tmp)[name]
            row |= {"aloe_benchmark": scored["benchmark_whdr"],
                    "aloe_dense": scored["dense_whdr"]}
            results[name] = row
            print(name, json.dumps(row), flush=True)
            with open(result_path, "w") as f:
                json.dump(results, f, indent=1)
    print("\n| variant | trained on | val WHDR, first layout | val WHDR, v2 | Aloe WHDR "
          "(50k pairs x 3) | Aloe, benchmark |\n|---|---|---|---|---|---|")
    for name, row in results.items():
        if name == "vertical prior":
            continue
        print(f"| {name} | {row['what']} | {row['val_whdr synthetic_scenes/160']:.2f}% | "
              f"{row['val_whdr synthetic_scenes/v2']:.2f}% | {np.mean(row['aloe_dense']):.2f}% | "
              f"{row['aloe_benchmark']:.2f}% |")
    print(f"| vertical prior | lower = nearer | | | {np.mean(prior):.2f}% | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
