"""At which scale should `depthsense predict` show a photo to a trained model?

Renders synthetic validation scenes (the validation split's seed, so scenes the model never
trained on) at non-square aspects, predicts them with `inference.predict` at several short
sides, and scores each against the exact depth at the rendered resolution with the aligned
WHDR (3,000 random pairs per image). "old" is the former rule (the *long* side at the
training size). Prints a Markdown table for docs/results.md.

    python scripts/predict_scale.py --workdir runs/quickstart [--num 100]
"""

from __future__ import annotations

import argparse

import cv2
import jax
import numpy as np

import depthsense_jax
from depthsense_jax import inference, metrics, sampling
from depthsense_jax.data.synthetic import SyntheticScenes, render_scene

ASPECTS = {"4:3": (240, 320), "16:9": (180, 320)}


def _old_rule(height: int, width: int, size: int) -> tuple[int, int]:
    """The former model_size: long side `size`, multiples of 32."""
    scale = size / max(height, width)
    return (max(32, int(round(height * scale / 32)) * 32),
            max(32, int(round(width * scale / 32)) * 32))


def _predict_at(predictor, photo: np.ndarray, height: int, width: int) -> np.ndarray:
    """One photo through the model at exactly height x width, resized back."""
    small = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    depth = predictor(small[None])[0]
    return cv2.resize(depth, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_LINEAR)


def score(depths: list[np.ndarray], scenes: list[dict], num_pairs: int = 3000) -> float:
    """Mean aligned WHDR of predictions against the scenes' exact depth (same pairs for
    every call: the key depends only on the image index)."""
    values = []
    for i, (pred, scene) in enumerate(zip(depths, scenes, strict=True)):
        mask = scene["mask"][None]
        pairs = sampling.random_pairs(jax.random.PRNGKey(i), mask, num_pairs)
        values.append(float(metrics.whdr(pred[None], scene["depth"][None], pairs,
                                         mask=mask)[0]))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--num", type=int, default=100, help="scenes per aspect")
    args = parser.parse_args()
    depthsense_jax.configure()
    model = inference.load_model(workdir=args.workdir, checkpoint=args.checkpoint)
    predictor = inference.Predictor(model)
    train_size = model.image_size
    sizes = sorted({train_size // 2 // 32 * 32 or 32, train_size - 32, train_size,
                    train_size + 32, train_size + 64, 2 * train_size})
    seed = SyntheticScenes.SPLIT_SEEDS["validation"]
    rows = []
    for aspect, shape in ASPECTS.items():
        scenes = [render_scene(seed, i, shape) for i in range(args.num)]
        photos = [s["image"].astype(np.float32) / 255 for s in scenes]
        row = {"aspect": f"{aspect} ({shape[0]}x{shape[1]})"}
        for size in sizes:
            row[size] = score(predictor.predict(photos, size=size, batch_size=8),
                              scenes)
        # The former default: the long side at the training size.
        old_h, old_w = _old_rule(*shape, train_size)
        row["old"] = score([_predict_at(predictor, p, old_h, old_w) for p in photos], scenes)
        row["old_shape"] = f"{old_h}x{old_w}"
        rows.append(row)
    header = "| scenes | " + " | ".join(
        f"short side {s}{' (default)' if s == train_size else ''}" for s in sizes)
    print(header + " | old rule: long side " f"{train_size} |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for row in rows:
        cells = " | ".join(f"{100 * row[s]:.2f}%" for s in sizes)
        print(f"| {row['aspect']} | {cells} | {100 * row['old']:.2f}% ({row['old_shape']}) |")


if __name__ == "__main__":
    main()
