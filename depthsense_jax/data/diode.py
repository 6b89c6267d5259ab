"""DIODE validation split (Vasiljevic et al. 2019): 771 RGB-D images, indoors and outdoor.

Each `NAME.png` (1024 x 768) has `NAME_depth.npy` ((H, W, 1) float32 metres) and
`NAME_depth_mask.npy` ((H, W), 1 = valid) beside it (the DIODE devkit). Evaluated with the
0.6 .. 350 m cap of Marigold's DIODE protocol.
"""

from __future__ import annotations

import os

from depthsense_jax import storage
from depthsense_jax.data.formats import read_npy, read_rgb
from depthsense_jax.data.samples import (
    Item,
    Sample,
    Scoring,
    depth_sample,
    relative_stem,
    require_dir,
)

LAYOUT = """  DIR/val/indoors/scene_XXXXX/scan_XXXXX/NAME.png
      with NAME_depth.npy and NAME_depth_mask.npy beside it
  DIR/val/outdoor/scene_XXXXX/scan_XXXXX/...    (or DIR itself holding indoors/, outdoor/)"""
SCORING = Scoring(metric="depth", min_depth=0.6, max_depth=350.0)


def _load(root: str, image_path: str) -> Sample:
    stem = os.path.splitext(image_path)[0]
    image = read_rgb(image_path)
    return depth_sample(relative_stem(image_path, root), image, read_npy(stem + "_depth.npy"),
                        stem, mask=read_npy(stem + "_depth_mask.npy"))


def train_items(data_dir: str, split_file: str | None = None) -> list[Item]:
    """Every image of DIODE's train/ folder (for `depthsense data build diode`)."""
    root = require_dir(data_dir, "diode", LAYOUT)
    if not storage.isdir(storage.join(root, "train")):
        raise ValueError(f"diode: building for training needs {root}/train (train.tar.gz)")
    return items(data_dir, split_file, part="train")


def items(data_dir: str, split_file: str | None = None, part: str = "val") -> list[Item]:
    """Every image of val/indoors and val/outdoor (or of indoors/ and outdoor/ in DIR);
    part="train": of train/."""
    del split_file
    root = require_dir(data_dir, "diode", LAYOUT)
    base = storage.join(root, part) if storage.isdir(storage.join(root, part)) else root
    images = sorted(p for scene in ("indoors", "outdoor")
                    for p in storage.glob(storage.join(base, scene, "*", "*", "*.png")))
    if not images:
        raise ValueError(f"diode: no images in {base}/indoors or {base}/outdoor; "
                         f"expected:\n{LAYOUT}")
    return [Item(relative_stem(p, root), lambda p=p: _load(root, p)) for p in images]
