"""ETH3D high-resolution multi-view training data (Schöps et al. 2017): the DSLR images of
its 13 scenes with their laser-scan depth (454 images).

Depth maps are headerless little-endian float32 rasters at the image's resolution
(6048 x 4032), row-major, named like the image (".JPG" included); inf = no ground truth
(the ETH3D documentation on multi-view data formats; Marigold's eth3d reader).
"""

from __future__ import annotations

from depthsense_jax import storage
from depthsense_jax.data.formats import read_raw_float32, read_rgb
from depthsense_jax.data.samples import (
    Item,
    Sample,
    Scoring,
    depth_sample,
    relative_stem,
    require_dir,
    require_ground_truth,
)

LAYOUT = """  DIR/SCENE/images/dslr_images/DSC_0xxx.JPG                (e.g. DIR/courtyard/...)
  DIR/SCENE/ground_truth_depth/dslr_images/DSC_0xxx.JPG    (raw float32, inf = invalid)"""
SCORING = Scoring(metric="depth")  # no cap: every finite positive depth counts


def _load(root: str, image_path: str) -> Sample:
    scene_dir = storage.dirname(storage.dirname(storage.dirname(image_path)))
    depth_path = storage.join(scene_dir, "ground_truth_depth", "dslr_images",
                              storage.basename(image_path))
    image = read_rgb(image_path)
    depth = read_raw_float32(require_ground_truth(image_path, depth_path), *image.shape[:2])
    return depth_sample(relative_stem(image_path, root), image, depth, depth_path)


def items(data_dir: str, split_file: str | None = None) -> list[Item]:
    """Every DSLR image with a ground_truth_depth folder beside it, in name order."""
    del split_file
    root = require_dir(data_dir, "eth3d", LAYOUT)
    images = storage.glob(storage.join(root, "*", "images", "dslr_images", "*.[jJ][pP][gG]"))
    if not images:
        raise ValueError(f"eth3d: no DSLR images in {root}; expected:\n{LAYOUT}")
    return [Item(relative_stem(p, root), lambda p=p: _load(root, p)) for p in images]
