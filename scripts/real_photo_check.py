"""Real-photo check: a trained model on the Middlebury "Aloe" photo with ground-truth
disparity that Debian's opencv-doc package ships, against the "lower is nearer" prior.

    python scripts/real_photo_check.py runs/quickstart [more workdirs] [--checkpoint best]
        [--json out.json]

The pair is laid out as a Middlebury 2006 scene (view1.png, disp1.png: 8-bit disparity, 0 =
unknown) in a temporary folder and scored twice:

- by `depthsense benchmark middlebury` (its reader, its 3,000 pairs per image), the model
  and the prior (given as saved predictions) alike;
- by the aligned WHDR (`metrics.whdr`) over 50,000 random valid pairs, for 3 pair seeds,
  which is steadier on one image.

Nothing is downloaded; without opencv-doc (`apt-get install opencv-doc`) it says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import cv2
import jax
import numpy as np

from depthsense_jax import inference, metrics, sampling
from depthsense_jax.evaluation import benchmark

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"
PAIRS = 50_000
SEEDS = (0, 1, 2)


def aloe_scene(folder: str, data: str = OPENCV_DATA) -> str:
    """Write the Aloe left view and its disparity as a Middlebury 2006 scene folder."""
    photo, truth = os.path.join(data, "aloeL.jpg"), os.path.join(data, "aloeGT.png")
    for path in (photo, truth):
        if not os.path.isfile(path):
            sys.exit(f"error: {path} not found: install Debian's opencv-doc "
                     "(apt-get install opencv-doc)")
    scene = os.path.join(folder, "aloe")
    os.makedirs(scene, exist_ok=True)
    cv2.imwrite(os.path.join(scene, "view1.png"), cv2.imread(photo, cv2.IMREAD_COLOR))
    cv2.imwrite(os.path.join(scene, "disp1.png"), cv2.imread(truth, cv2.IMREAD_UNCHANGED))
    return scene


def vertical_prior(height: int, width: int) -> np.ndarray:
    """Lower in the picture = nearer: the row index, (H, W) float32, larger = nearer."""
    return np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)


def dense_whdr(pred: np.ndarray, disparity: np.ndarray) -> list[float]:
    """Aligned WHDR in % of ``pred`` (larger = nearer) over PAIRS valid pairs, per seed."""
    mask = disparity > 0
    out = []
    for seed in SEEDS:
        pairs = sampling.random_pairs(jax.random.PRNGKey(seed), mask[None], PAIRS)
        out.append(100 * float(metrics.whdr(pred[None], disparity[None], pairs,
                                            mask=mask[None])[0]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+", help="training workdirs to score")
    parser.add_argument("--checkpoint", default="best",
                        help="best (default), latest, a step, or a comma list of them")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        scene = aloe_scene(tmp)
        disparity = cv2.imread(os.path.join(scene, "disp1.png"),
                               cv2.IMREAD_UNCHANGED).astype(np.float32)
        photo = inference.read_photo(os.path.join(scene, "view1.png"))
        prior_dir = os.path.join(tmp, "prior")
        os.makedirs(os.path.join(prior_dir, "aloe"))
        prior = vertical_prior(*disparity.shape)
        np.save(os.path.join(prior_dir, "aloe", "view1.npy"), prior)
        report = benchmark.run("middlebury", tmp, predictions_dir=prior_dir, progress=False)
        results["vertical prior"] = {"benchmark_whdr": 100 * report.summary()["whdr"],
                                     "dense_whdr": dense_whdr(prior, disparity)}
        checkpoints = args.checkpoint.split(",")
        for workdir in args.workdirs:
            for checkpoint in checkpoints:
                model = inference.load_model(workdir=workdir, checkpoint=checkpoint)
                report = benchmark.run("middlebury", tmp, model=model, progress=False)
                pred = inference.predict(model, [photo])[0]
                name = workdir if len(checkpoints) == 1 else f"{workdir} @ {checkpoint}"
                results[name] = {"benchmark_whdr": 100 * report.summary()["whdr"],
                                 "dense_whdr": dense_whdr(pred, disparity)}
    print(f"{'':40s} {'benchmark WHDR':>15s} {'WHDR, 50k pairs x 3 seeds':>28s}")
    for name, row in results.items():
        dense = row["dense_whdr"]
        print(f"{name:40s} {row['benchmark_whdr']:14.2f}% "
              f"{np.mean(dense):10.2f}% ({', '.join(f'{d:.2f}' for d in dense)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
