"""MPI Sintel, training set, final pass (Butler et al. 2012): 1,064 frames with depth.

`.dpt` depth (float32 tag 202021.25, int32 width, int32 height, float32 row-major data; the
official sintel_io.py). The sky is ~1e11: the cap keeps 1e-3 .. 72 (scene units, metres),
the cut used in MiDaS-era zero-shot evaluations of Sintel (19 frames have depth beyond
it); Video Depth Anything uses 70.
"""

from __future__ import annotations

import os

from depthsense_jax import storage
from depthsense_jax.data.formats import read_dpt, read_rgb
from depthsense_jax.data.samples import (
    Item,
    Sample,
    Scoring,
    depth_sample,
    relative_stem,
    require_dir,
    require_ground_truth,
)

LAYOUT = """  DIR/training/final/SCENE/frame_0001.png
  DIR/training/depth/SCENE/frame_0001.dpt"""
SCORING = Scoring(metric="depth", min_depth=1e-3, max_depth=72.0)


def _load(root: str, image_path: str) -> Sample:
    scene, frame = storage.basename(storage.dirname(image_path)), storage.basename(image_path)
    depth_path = storage.join(root, "training", "depth", scene,
                              os.path.splitext(frame)[0] + ".dpt")
    image = read_rgb(image_path)
    depth = read_dpt(require_ground_truth(image_path, depth_path))
    return depth_sample(relative_stem(image_path, root), image, depth, depth_path)


def items(data_dir: str, split_file: str | None = None) -> list[Item]:
    del split_file
    root = require_dir(data_dir, "sintel", LAYOUT)
    images = storage.glob(storage.join(root, "training", "final", "*", "*.png"))
    if not images:
        raise ValueError(f"sintel: no frames in {root}/training/final; expected:\n{LAYOUT}")
    return [Item(relative_stem(p, root), lambda p=p: _load(root, p)) for p in images]
