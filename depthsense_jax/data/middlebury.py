"""Middlebury stereo scenes: the 2014 datasets (Scharstein et al. 2014), and the 2005/2006
ones, which give disparity only.

2014 scene folder: `im0.png`, `disp0.pfm` (inf = unknown) and `calib.txt` (cam0=[f 0 cx;
0 f cy; 0 0 1], doffs, baseline in mm): depth [mm] = baseline * f / (d + doffs); the reader
gives metres. 2005/2006 folder: `view1.png` and `disp1.png` (8-bit disparity, 0 = unknown),
scored as disparity (its scale is unknown without the calibration).
"""

from __future__ import annotations

import os
import re

import numpy as np

from depthsense_jax import storage
from depthsense_jax.data.formats import FormatError, read_pfm, read_png_gray, read_rgb
from depthsense_jax.data.samples import Item, Sample, Scoring, require_dir

LAYOUT = """  DIR/SCENE/im0.png, disp0.pfm, calib.txt      (2014; or DIR itself is one scene)
  DIR/SCENE/view1.png, disp1.png                (2005 / 2006: disparity only)"""
SCORING = Scoring(metric="depth")


def read_calib(path: str) -> dict[str, float]:
    """calib.txt -> {"f", "doffs", "baseline"} (f in pixels, baseline in mm)."""
    try:
        text = storage.read_text(path)
    except OSError as err:
        raise FormatError(f"{path}: cannot be read ({err.strerror or err})",
                          reason="missing file") from None
    fields = dict(re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", text, re.MULTILINE))
    try:
        cam0 = [float(v) for v in re.split(r"[\s;\[\]]+", fields["cam0"]) if v]
        return {"f": cam0[0], "doffs": float(fields["doffs"]),
                "baseline": float(fields["baseline"])}
    except (KeyError, ValueError, IndexError):
        raise FormatError(f"{path}: expected cam0=[f 0 cx; 0 f cy; 0 0 1], doffs= and "
                          "baseline= lines") from None


def _load_2014(root: str, scene: str) -> Sample:
    image = read_rgb(storage.join(scene, "im0.png"))
    disparity = read_pfm(storage.join(scene, "disp0.pfm"))
    calib = read_calib(storage.join(scene, "calib.txt"))
    if disparity.shape != image.shape[:2]:
        raise FormatError(f"{scene}/disp0.pfm: {disparity.shape} but im0.png is "
                          f"{image.shape[:2]}")
    valid = np.isfinite(disparity) & (disparity + calib["doffs"] > 0)
    safe = np.where(valid, disparity + calib["doffs"], 1.0)
    depth = np.where(valid, calib["baseline"] * calib["f"] / safe / 1000.0, 0.0)
    return Sample(name=_name(root, scene, "im0"), image=image, kind="depth",
                  target=depth.astype(np.float32), mask=valid)


def _load_2006(root: str, scene: str) -> Sample:
    image = read_rgb(storage.join(scene, "view1.png"))
    disparity = read_png_gray(storage.join(scene, "disp1.png")).astype(np.float32)
    if disparity.shape != image.shape[:2]:
        raise FormatError(f"{scene}/disp1.png: {disparity.shape} but view1.png is "
                          f"{image.shape[:2]}")
    return Sample(name=_name(root, scene, "view1"), image=image, kind="disparity",
                  target=disparity, mask=disparity > 0)


def _name(root: str, scene: str, stem: str) -> str:
    relative = storage.relpath(scene, root)
    return stem if relative == "." else f"{relative.replace(os.sep, '/')}/{stem}"


def items(data_dir: str, split_file: str | None = None) -> list[Item]:
    """DIR as one scene folder, or every scene folder in it."""
    del split_file
    root = require_dir(data_dir, "middlebury", LAYOUT)
    scenes = [root] + [p for p in storage.glob(storage.join(root, "*")) if storage.isdir(p)]
    found = []
    for scene in scenes:
        if storage.isfile(storage.join(scene, "im0.png")):
            found.append(Item(_name(root, scene, "im0"), lambda s=scene: _load_2014(root, s)))
        elif storage.isfile(storage.join(scene, "view1.png")):
            found.append(Item(_name(root, scene, "view1"), lambda s=scene: _load_2006(root, s)))
    if not found:
        raise ValueError(f"middlebury: no scene in {root}; expected:\n{LAYOUT}")
    return found


def train_items(data_dir: str, split_file: str | None = None) -> list[Item]:
    """Every scene (for `depthsense data build middlebury`)."""
    return items(data_dir, split_file)
