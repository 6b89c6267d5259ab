"""The video stabilisation proof (docs/results.md, "Video: flicker with and without
--stabilize"): rendered sequences with a moving camera and exact depth, written as .mp4,
predicted through `depthsense predict`'s video path with and without stabilisation, scored
per frame (WHDR) and over time (flicker).

    python scripts/video_flicker.py --workdir runs/quickstart --out video_proof \\
        --sequences 6 --frames 48 --size 192 256 --smoothing 0.05 0.1 0.2 0.5 1.0

Flicker (`video.flicker`): the mean absolute change between consecutive frames after one
normalisation of the whole sequence (median 0, mean absolute deviation 1) over the pixels
with ground truth; "excess" subtracts the same measure of the exact inverse depth, i.e. the
change the camera motion really causes. WHDR: 3000 random pairs per frame against the exact
inverse depth (`metrics.whdr`, which aligns scale and shift per frame first).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import cv2
import jax
import numpy as np

import depthsense_jax
from depthsense_jax import inference, metrics, sampling, video
from depthsense_jax.data.synthetic import render_sequence


def write_clip(path: str, frames: np.ndarray, fps: float = 24.0) -> None:
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def frame_whdr(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    """(T,) WHDR of each frame over 3000 random pairs of valid pixels."""
    pairs = sampling.random_pairs(jax.random.PRNGKey(seed), mask, 3000)
    return np.asarray(metrics.whdr(pred, truth, pairs, mask=mask))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256))
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--smoothing", type=float, nargs="+", default=[0.2])
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    depthsense_jax.configure()
    model = inference.load_model(workdir=args.workdir)
    predictor = inference.Predictor(model)
    settings = [("raw", None)] + [(f"stabilised {a:g}", a) for a in args.smoothing]
    rows = {name: {"whdr": [], "flicker": [], "excess": []} for name, _ in settings}
    # The floor: the raw predictions with each frame's scale and shift fitted to the truth
    # (what no stabiliser without the truth can beat).
    oracle = {"whdr": [], "flicker": [], "excess": []}
    truth_flicker = []
    for index in range(args.sequences):
        start = time.time()
        seq = render_sequence(args.seed, index, args.frames, tuple(args.size))
        clip = os.path.join(args.out, f"seq{index}.mp4")
        write_clip(clip, seq["image"])
        mask, truth = seq["mask"], seq["inverse_depth"]
        gt = video.flicker(truth, mask)
        truth_flicker.append(gt)
        for name, alpha in settings:
            out = os.path.join(args.out, name.replace(" ", "_"))
            video.predict_video(model, clip, out, formats=("npy",), batch_size=8,
                                stabilize_frames=alpha is not None,
                                smoothing=alpha or video.DEFAULT_SMOOTHING,
                                predictor=predictor, log=lambda s: None)
            pred = np.load(os.path.join(out, f"seq{index}_depth.npy"))
            whdr = frame_whdr(pred, truth, mask, index)
            f = video.flicker(pred, mask)
            rows[name]["whdr"].append(float(whdr.mean()))
            rows[name]["flicker"].append(f)
            rows[name]["excess"].append(f - gt)
            if alpha is None:
                fitted = np.asarray(metrics.align_scale_shift(pred, truth, mask))
                oracle["whdr"].append(float(whdr.mean()))
                oracle["flicker"].append(video.flicker(fitted, mask))
                oracle["excess"].append(oracle["flicker"][-1] - gt)
        print(f"sequence {index}: ground-truth flicker {gt:.4f}; "
              + "; ".join(f"{n} {rows[n]['flicker'][-1]:.4f} / WHDR "
                          f"{100 * rows[n]['whdr'][-1]:.2f}%" for n, _ in settings)
              + f" ({time.time() - start:.0f} s)", flush=True)
    print(f"\n{args.sequences} sequences x {args.frames} frames at {args.size[0]}x"
          f"{args.size[1]}, model {args.workdir} (ground-truth flicker "
          f"{np.mean(truth_flicker):.4f})\n")
    print("| prediction | WHDR (mean of frames) | flicker | excess flicker over truth |")
    print("|---|---:|---:|---:|")
    rows["raw, each frame fitted to the truth"] = oracle
    for name in rows:
        r = rows[name]
        print(f"| {name} | {100 * np.mean(r['whdr']):.2f}% | {np.mean(r['flicker']):.4f} | "
              f"{np.mean(r['excess']):.4f} |")
    with open(os.path.join(args.out, "video_flicker.json"), "w") as f:
        json.dump({"args": vars(args), "truth_flicker": truth_flicker, "rows": rows}, f,
                  indent=1)


if __name__ == "__main__":
    main()
