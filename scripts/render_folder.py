"""Write a folder of photos with 16-bit depth PNGs, as a user's RGB-D data would come: the
fine-tune proof's "other domain" (docs/results.md, "Fine-tuning on your own data").

The scenes are the built-in ones seen by another camera, mounted 2-5 units high and looking
30-60 degrees down (the default's camera is 0.5-3 units high, 2-25 degrees down), and
printed in another palette (channels rotated, darker gamma), so the quickstart model meets
views and colours it never trained on.

    python scripts/render_folder.py --out own_data --num 600 --size 120 160

writes own_data/images/NNNN.jpg and own_data/depth/NNNN.png: camera-space depth z in
millimetres, taking the nearest surface in each view as 1 m (the renderer's scenes have no
metric unit); 0 where nothing was hit (sky) or beyond the 16-bit range, as depth sensors do.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from depthsense_jax.data.synthetic.renderer import render
from depthsense_jax.data.synthetic.scenes import random_scene

MAX_MILLIMETRES = 65535


def other_camera(scene, rng: np.random.Generator):
    """The scene from higher up, looking steeply down (same position on the ground, same
    heading)."""
    cam = scene.camera
    x, _, z = cam.position
    return dataclasses.replace(scene, camera=dataclasses.replace(
        cam, position=(x, float(rng.uniform(2.0, 5.0)), z),
        pitch=math.radians(rng.uniform(30.0, 60.0))))


def other_palette(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB with its channels rotated (R<-G<-B<-R) and a darker gamma."""
    rotated = image[..., [1, 2, 0]].astype(np.float32) / 255.0
    return np.round(255.0 * rotated ** 1.6).astype(np.uint8)


def depth_millimetres(inverse_depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) uint16 depth in mm from the renderer's (1/z) / max(1/z), nearest surface = 1 m;
    0 where invalid or too far for 16 bits."""
    z = np.where(mask, 1.0 / np.maximum(inverse_depth, 1e-12), 0.0)
    millimetres = np.round(1000.0 * z)
    return np.where(mask & (millimetres <= MAX_MILLIMETRES), millimetres, 0).astype(np.uint16)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write images/ and depth/ to")
    parser.add_argument("--num", type=int, default=600, help="number of scenes")
    parser.add_argument("--size", type=int, nargs=2, default=(120, 160),
                        metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--seed", type=int, default=7,
                        help="scene stream (the built-in dataset's train stream is 0)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "depth").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i in range(args.num):
        rng = np.random.default_rng([args.seed, i])
        scene = other_camera(random_scene(rng, tuple(args.size)), rng)
        rendered = render(scene)
        image = other_palette(rendered["image"])
        depth = depth_millimetres(rendered["depth"], rendered["mask"])
        if not (cv2.imwrite(str(out / "images" / f"{i:04d}.jpg"), image[..., ::-1],
                            [cv2.IMWRITE_JPEG_QUALITY, 92])
                and cv2.imwrite(str(out / "depth" / f"{i:04d}.png"), depth)):
            raise OSError(f"could not write scene {i} under {out}")
        if (i + 1) % 100 == 0 or i + 1 == args.num:
            print(f"{i + 1}/{args.num} scenes, {time.perf_counter() - start:.0f} s", flush=True)
    print(f"wrote {out}/images (JPEG) and {out}/depth (16-bit PNG, millimetres)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
