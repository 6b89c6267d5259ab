"""KITTI, Eigen test split with the annotated depth of Uhrig et al. 2017 (652 of its 697
images have it).

Ground truth: `proj_depth/groundtruth/image_02/FRAME.png`, 16-bit, metres x 256, 0 = no
depth (KITTI depth devkit readme). The split list is either Monodepth2's
`splits/eigen/test_files.txt` ("2011_09_26/2011_09_26_drive_0002_sync 0000000069 l") or the
BTS / Depth Anything `eigen_test_files_with_gt.txt` ("IMAGE_PATH GT_PATH_or_None FOCAL").
"""

from __future__ import annotations

import os

import numpy as np

from depthsense_jax import storage
from depthsense_jax.data.formats import FormatError, read_png_gray, read_rgb
from depthsense_jax.data.samples import Item, Sample, Scoring, require_dir

SPLIT_FILES = ("eigen_test_files_with_gt.txt", "kitti_eigen_test_files_with_gt.txt",
               "test_files.txt", "eigen_test_files.txt")
LAYOUT = """  DIR/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png   (raw data)
  DIR/data_depth_annotated/{train,val}/2011_09_26_drive_0002_sync/proj_depth/groundtruth/
      image_02/0000000069.png                       (annotated depth, 16-bit, m x 256)
  DIR/test_files.txt or DIR/eigen_test_files_with_gt.txt   (the Eigen test list; or
      --split-file FILE)"""
# Garg crop by default (Eigen's as an option), 1e-3 .. 80 m.
SCORING = Scoring(metric="depth", min_depth=1e-3, max_depth=80.0, crop="garg",
                    crops=("garg", "eigen_kitti"))


def _split_file(root: str, split_file: str | None) -> str:
    if split_file:
        if not storage.isfile(split_file):
            raise ValueError(f"kitti: --split-file {split_file!r} does not exist")
        return split_file
    for name in SPLIT_FILES:
        if storage.isfile(storage.join(root, name)):
            return storage.join(root, name)
    raise ValueError(f"kitti: no split list in {root} (one of {list(SPLIT_FILES)}), and no "
                     f"--split-file; expected:\n{LAYOUT}")


def parse_split(path: str) -> list[tuple[str, str | None]]:
    """(image path, ground-truth path relative to the annotated tree or None) per line."""
    entries = []
    for number, line in enumerate(storage.read_text(path).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if fields[0].endswith(".png"):  # BTS: IMAGE GT FOCAL
            gt = None if len(fields) < 2 or fields[1] == "None" else fields[1]
            entries.append((fields[0], gt))
        elif len(fields) >= 2:  # Monodepth2: FOLDER FRAME SIDE
            side = {"l": "image_02", "r": "image_03"}.get(fields[2] if len(fields) > 2 else "l")
            if side is None:
                raise ValueError(f"{path}:{number}: side must be l or r, got {fields[2]!r}")
            frame = f"{int(fields[1]):010d}"
            entries.append((f"{fields[0]}/{side}/data/{frame}.png", None))
        else:
            raise ValueError(f"{path}:{number}: expected 'FOLDER FRAME SIDE' or 'IMAGE GT "
                             f"FOCAL', got {line.strip()!r}")
    return entries


def _ground_truth(root: str, image: str, listed: str | None) -> str | None:
    """The annotated depth file of a raw image, wherever the user unpacked it."""
    parts = image.split("/")  # DATE/DRIVE/image_0X/data/FRAME.png
    drive, camera, frame = parts[-4], parts[-3], parts[-1]
    tail = f"{drive}/proj_depth/groundtruth/{camera}/{frame}"
    candidates = [storage.join(root, "data_depth_annotated", s, tail) for s in ("train", "val")]
    candidates += [storage.join(root, "data_depth_annotated", tail),
                   storage.join(root, *parts[:-4], tail)]
    if listed:
        candidates.insert(0, storage.join(root, "data_depth_annotated", listed))
    return next((c for c in candidates if storage.isfile(c)), None)


def _load(root: str, image_path: str, listed_gt: str | None) -> Sample:
    image = read_rgb(storage.join(root, image_path))
    gt_path = _ground_truth(root, image_path, listed_gt)
    if gt_path is None:
        raise FormatError(f"{image_path}: no annotated depth (data_depth_annotated/.../"
                          "proj_depth/groundtruth/...)", reason="no ground truth")
    raw = read_png_gray(gt_path)
    if raw.dtype != np.uint16:
        raise FormatError(f"{gt_path}: expected a 16-bit PNG, got {raw.dtype}")
    if raw.shape != image.shape[:2]:
        raise FormatError(f"{gt_path}: {raw.shape} but its image is {image.shape[:2]}")
    depth = raw.astype(np.float32) / 256.0
    name = os.path.splitext(image_path)[0]
    return Sample(name=name, image=image, kind="depth", target=depth, mask=raw > 0)


def train_items(data_dir: str, split_file: str | None = None) -> list[Item]:
    """The images of a training split list (`--split-file`, e.g. Monodepth2's
    splits/eigen_zhou/train_files.txt), for `depthsense data build kitti`."""
    if split_file is None:
        raise ValueError("kitti: building for training needs the train list as --split-file "
                         "(e.g. Monodepth2's splits/eigen_zhou/train_files.txt)")
    return items(data_dir, split_file)


def items(data_dir: str, split_file: str | None = None) -> list[Item]:
    """The images of the split list, named by their raw-data path without extension; those
    without annotated depth fail to load ("no ground truth") and are counted as skipped."""
    root = require_dir(data_dir, "kitti", LAYOUT)
    return [Item(os.path.splitext(image)[0], lambda image=image, gt=gt: _load(root, image, gt))
            for image, gt in parse_split(_split_file(root, split_file))]
