"""Other tools' saved predictions, matched to a benchmark's images.

A sample named `scene/frame_0001` (its path in the dataset, without extension) matches, in
the predictions folder, the first of: `scene/frame_0001.EXT`, `frame_0001.EXT` (a flat
folder), then one file `scene/frame_0001*.EXT` or `frame_0001*.EXT` (tools add suffixes:
MiDaS `-dpt_beit_large_512`, Depth Anything V1 `_depth`); EXT is .npy, .pfm, .png or .dpt.
PNGs must be single-channel (8- or 16-bit, as MiDaS `--grayscale` and Marigold write them);
a colour map cannot be scored. The folder may be a local path or a URL (gs://...).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from depthsense_jax import storage
from depthsense_jax.data.formats import MAP_SUFFIXES, FormatError, read_map


def find(folder: str, name: str) -> str:
    """The prediction file of sample `name` in `folder` (FormatError "missing prediction"
    when there is none, or several match)."""
    stem = os.path.basename(name)
    # One listing per base (BASE*) answers both the exact names and the suffixed ones: a
    # URL's folder is asked twice per image, not once per extension.
    found = {base: storage.glob(storage.join(folder, glob.escape(base) + "*"))
             for base in dict.fromkeys((name, stem))}
    for base, paths in found.items():
        names = {storage.basename(p) for p in paths}
        for ext in MAP_SUFFIXES:
            path = storage.join(folder, base + ext)
            if os.path.basename(base + ext) in names and storage.isfile(path):
                return path
    for paths in found.values():
        matches = [p for p in paths if p.lower().endswith(MAP_SUFFIXES)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise FormatError(f"{name}: several predictions match in {folder}: "
                              f"{[storage.basename(m) for m in matches[:4]]}",
                              reason="ambiguous prediction")
    raise FormatError(f"{name}: no prediction {name}.npy/.pfm/.png in {folder}",
                      reason="missing prediction")


def read(path: str) -> np.ndarray:
    """(h, w) float32 prediction map; non-finite values are an error."""
    pred = read_map(path)
    if not np.isfinite(pred).all():
        raise FormatError(f"{path}: the prediction has non-finite values")
    return pred


def check_size(path: str, pred: np.ndarray, size: tuple[int, int]) -> None:
    """A prediction is resized to the ground truth, but must have its aspect (within 1%)."""
    h, w = pred.shape
    height, width = size
    if abs(h / w - height / width) > 0.01 * height / width:
        raise FormatError(f"{path}: a {w}x{h} prediction for a {width}x{height} ground truth "
                          "(another aspect ratio)", reason="mis-sized prediction")
