"""Real-photo check: trained models on the Middlebury "Aloe" photo with ground-truth
disparity that Debian's opencv-doc package ships, against the "lower is nearer" prior
(`depthsense_jax.evaluation.real_photo` says how it is scored).

    python scripts/real_photo_check.py runs/quickstart [more workdirs] [--checkpoint best]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

import numpy as np

import depthsense_jax
from depthsense_jax import inference
from depthsense_jax.evaluation import real_photo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+", help="training workdirs to score")
    parser.add_argument("--checkpoint", default="best",
                        help="best (default), latest, a step, or a comma list of them")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    depthsense_jax.configure()
    checkpoints = args.checkpoint.split(",")
    models = {
        workdir if len(checkpoints) == 1 else f"{workdir} @ {checkpoint}":
            inference.load_model(workdir=workdir, checkpoint=checkpoint)
        for workdir in args.workdirs for checkpoint in checkpoints}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            results = real_photo.check(models, tmp)
        except FileNotFoundError as err:
            sys.exit(f"error: {err}")
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
