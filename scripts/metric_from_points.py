"""How well do a few known depths turn a relative prediction into metres?

Renders the synthetic validation scenes (the validation split's seed and the dataset
config's size and scene families: scenes the model never trained on, with exact depth),
predicts each with a model, and turns the prediction into metric depth as `depthsense
predict --metric-from` does (`metric.fit_known`: a scale and shift in inverse depth, robust,
and least squares beside it) from noise-free known depths at: 5, 20 and 100 random valid
pixels; a LiDAR-like pattern (4 and 16 evenly spaced rows, every 2nd pixel along each); and
the oracle, least squares in inverse depth over every valid pixel. Scores AbsRel and delta1
of the metric depth against the true depth over the valid pixels (a pixel left at 0 =
unknown counts as wrong: AbsRel 1, outside delta1), the share of them left unknown, and the
photos whose fit failed (too few distinct depths, a non-positive scale). The scene's depth
unit (its nearest pixel is 1) stands for metres. Prints a Markdown table for
docs/results.md.

    python scripts/metric_from_points.py --workdir runs/quickstart [--num 100]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

import depthsense_jax
from depthsense_jax import inference, metric, metrics
from depthsense_jax.data.synthetic import SyntheticScenes, render_scene
from depthsense_jax.data.synthetic.builder import FAMILY_SET, family_set_config

RANDOM_POINTS = (5, 20, 100)
LIDAR_LINES = (4, 16)
LIDAR_STEP = 2  # pixels between points along a scan line


def scenes_config(name: str):
    """The synthetic_scenes BuilderConfig named `name` ("v2", "160", "families-...")."""
    name = name.removeprefix("synthetic_scenes/")
    for config in SyntheticScenes.BUILDER_CONFIGS:
        if config.name == name:
            return config
    if name.startswith(FAMILY_SET):
        return family_set_config(name)
    raise ValueError(f"--scenes {name!r}: one of "
                     f"{', '.join(c.name for c in SyntheticScenes.BUILDER_CONFIGS)} or "
                     f"{FAMILY_SET}...")


def random_pixels(count: int) -> Callable:
    def choose(valid: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        ys, xs = np.nonzero(valid)
        pick = rng.permutation(ys.size)[:count]
        return xs[pick], ys[pick]

    return choose


def scan_lines(lines: int) -> Callable:
    def choose(valid: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        height, width = valid.shape
        rows = np.round(np.linspace(0, height - 1, lines + 2)[1:-1]).astype(int)
        ys, xs = np.meshgrid(rows, np.arange(0, width, LIDAR_STEP), indexing="ij")
        keep = valid[ys, xs]
        return xs[keep], ys[keep]

    return choose


def every_pixel(valid: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(valid)
    return xs, ys


SETTINGS = ([(f"{n} random points", random_pixels(n), ("robust", "lstsq"))
             for n in RANDOM_POINTS]
            + [(f"LiDAR-like, {k} lines", scan_lines(k), ("robust", "lstsq"))
               for k in LIDAR_LINES]
            + [("oracle: every valid pixel", every_pixel, ("lstsq",))])


def score(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray, xs, ys, fit: str,
          name: str) -> dict | None:
    """Errors of the metric depth fitted at the pixels (xs, ys) (None when the fit fails)."""
    points = metric.KnownPoints(xs.astype(np.float64), ys.astype(np.float64),
                                truth[ys, xs].astype(np.float64), name)
    try:
        result = metric.fit_known(pred, points, name, fit=fit)
    except ValueError:
        return None
    metres = metric.to_metric(pred, result)
    errors = metrics.depth_errors(metres[None], truth[None], valid[None])
    return {"abs_rel": float(errors["abs_rel"][0]), "delta1": float(errors["delta1"][0]),
            "unknown": float(np.mean(metres[valid] == 0)), "points": result.points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="a training workdir (its latest checkpoint)")
    source.add_argument("--params", help="an export folder, params file or checkpoint")
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--scenes", default="v2",
                        help="synthetic_scenes config (default v2, the quickstart's)")
    parser.add_argument("--num", type=int, default=100, help="validation scenes")
    parser.add_argument("--size", type=int, help="short side the model sees (default: its own)")
    parser.add_argument("--seed", type=int, default=0, help="of the random known points")
    args = parser.parse_args()
    depthsense_jax.configure()
    model = inference.load_model(args.workdir, args.params, args.checkpoint)
    predictor = inference.Predictor(model)
    config = scenes_config(args.scenes)
    seed = SyntheticScenes.SPLIT_SEEDS["validation"]
    results: dict[tuple[str, str], list] = {}
    for i in range(args.num):
        scene = render_scene(seed, i, (config.height, config.width), config.families)
        valid = scene["mask"] & (scene["depth"] > 0)
        truth = np.where(valid, 1.0 / np.where(valid, scene["depth"], 1.0), 0.0).astype(
            np.float32)
        pred = predictor.predict([scene["image"].astype(np.float32) / 255], size=args.size,
                                 batch_size=1)[0]
        for label, choose, fits in SETTINGS:
            xs, ys = choose(valid, np.random.default_rng([args.seed, i]))
            for fit in fits:
                results.setdefault((label, fit), []).append(
                    score(pred, truth, valid, xs, ys, fit, f"scene {i}"))
    size = args.size or predictor.default_size
    print(f"{args.num} validation scenes of synthetic_scenes/{config.name} "
          f"({config.height}x{config.width}), short side {size}; metric depth from known "
          "depths, scored over every valid pixel")
    print()
    print("| known depths | fit | points (mean) | failed | AbsRel | delta1 | unknown |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (label, fit), rows in results.items():
        done = [r for r in rows if r is not None]
        if not done:
            print(f"| {label} | {fit} | | {len(rows)} | | | |")
            continue
        mean = {k: float(np.mean([r[k] for r in done])) for k in done[0]}
        print(f"| {label} | {fit} | {mean['points']:.0f} | {len(rows) - len(done)} | "
              f"{mean['abs_rel']:.4f} | {mean['delta1']:.4f} | {100 * mean['unknown']:.2f}% |")


if __name__ == "__main__":
    main()
