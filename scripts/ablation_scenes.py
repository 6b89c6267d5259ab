"""Ablation of the synthetic scenes: which scene families and camera degradations move the
real-photo number.

    python scripts/ablation_scenes.py --out runs/ablation [--steps 1500] [--only NAME ...]

Each variant trains the quickstart model (configs/synthetic.py) for ``--steps`` steps on
one dataset, then is scored on the same three sets: the validation splits of
synthetic_scenes/160 (the first layout) and synthetic_scenes/v2 (every family), with the
aligned WHDR of training's evaluation, and the Middlebury "Aloe" photo of Debian's
opencv-doc (scripts/real_photo_check.py: 50,000 pairs x 3 seeds, and the benchmark
command's 3,000 pairs). Subsets of the families are registered here as extra builder
configs (`abl_...`, 2,000 train / 200 validation scenes at 160 px). Results go to
OUT/ablation.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import cv2
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import real_photo_check  # noqa: E402

from depthsense_jax import inference  # noqa: E402
from depthsense_jax.config import load_config  # noqa: E402
from depthsense_jax.data.synthetic import builder as synthetic_builder  # noqa: E402
from depthsense_jax.evaluation import benchmark  # noqa: E402
from depthsense_jax.train import checkpoints, evaluate, loop, sharding, steps  # noqa: E402
from depthsense_jax.train import state as state_lib  # noqa: E402

OFF = ["--config.data.blur=0", "--config.data.noise=0", "--config.data.jpeg=0"]
NO_SKY = ["--config.data.keep_sky=False"]
SKY = ["--config.data.keep_sky=True"]
SUBSETS = {
    "abl_outdoor": ("objects", "terrain", "street"),
    "abl_near": ("objects", "indoor", "closeup"),
}
VARIANTS = {  # name: (data, extra overrides, what it tests)
    "first layout": ("synthetic_scenes/160", OFF + NO_SKY, "the scenes and settings before"),
    "first layout + sky": ("synthetic_scenes/160", OFF + SKY, "sky as the farthest alone"),
    "v2 + sky, no degradations": ("synthetic_scenes/v2", OFF + SKY, "families and sky"),
    "v2 + sky + degradations": ("synthetic_scenes/v2", SKY, "families, sky, blur/noise/JPEG"),
    "v2 outdoor only": ("synthetic_scenes/abl_outdoor", OFF + SKY,
                        "objects, terrain, street (no rooms, no close-ups), sky"),
    "v2 near only": ("synthetic_scenes/abl_near", OFF + SKY,
                     "objects, indoor, closeup (no terrain, no streets), sky"),
}
SCORED_ON = ("synthetic_scenes/160", "synthetic_scenes/v2")


def register_subsets() -> None:
    for name, families in SUBSETS.items():
        synthetic_builder.SyntheticScenes.BUILDER_CONFIGS.append(
            synthetic_builder.SyntheticScenesConfig(
                name=name, description=f"ablation: {', '.join(families)}",
                num_train=2000, num_validation=200, families=families))


def validation_whdr(workdir: str, data_name: str) -> float:
    """Aligned validation WHDR (%) of the workdir's best checkpoint on ``data_name``."""
    from depthsense_jax import workdir as workdir_lib

    config = workdir_lib.load_config(workdir)
    config.data.name = data_name
    mesh = sharding.make_data_mesh()
    model, train_state = state_lib.build_state(config, total_steps=1)
    train_state, _ = checkpoints.restore_named(workdir, config, train_state, "best",
                                               lambda s: None)
    train_state = jax.device_put(train_state, sharding.replicated(mesh))
    eval_step = steps.make_eval_step(model, config.loss.weights, config.loss.options, mesh,
                                     num_pairs=config.eval.num_pairs)
    return 100 * evaluate.evaluate(config, eval_step, train_state, mesh, "validation")["whdr"]


def real_photo(workdir: str, scene_root: str, photo: np.ndarray, disparity: np.ndarray
               ) -> dict:
    model = inference.load_model(workdir=workdir, checkpoint="best")
    report = benchmark.run("middlebury", scene_root, model=model, progress=False)
    pred = inference.predict(model, [photo])[0]
    dense = real_photo_check.dense_whdr(pred, disparity)
    return {"aloe_benchmark": 100 * report.summary()["whdr"], "aloe_dense": dense}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the runs and ablation.json")
    parser.add_argument("--steps", type=int, default=1500, help="training steps per variant")
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    args = parser.parse_args(argv)
    register_subsets()
    os.makedirs(args.out, exist_ok=True)
    result_path = os.path.join(args.out, "ablation.json")
    results = json.load(open(result_path)) if os.path.exists(result_path) else {}
    with tempfile.TemporaryDirectory() as tmp:
        scene = real_photo_check.aloe_scene(tmp)
        disparity = cv2.imread(os.path.join(scene, "disp1.png"),
                               cv2.IMREAD_UNCHANGED).astype(np.float32)
        photo = inference.read_photo(os.path.join(scene, "view1.png"))
        prior = real_photo_check.dense_whdr(real_photo_check.vertical_prior(*disparity.shape),
                                            disparity)
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
            row |= real_photo(workdir, tmp, photo, disparity)
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
