"""A picture of the scene families of synthetic_scenes/v2: one column pair (image | depth
colour map) per family, ``--rows`` scenes each.

    python scripts/family_samples.py docs/synthetic_families.png [--rows 2] [--size 160]
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from depthsense_jax.data.synthetic import render_scene
from depthsense_jax.data.synthetic.worlds import FAMILIES
from depthsense_jax.viz import colorize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    columns = []
    for family in FAMILIES:
        cells = []
        for index in range(args.rows):
            scene = render_scene(args.seed, index, args.size, (family,))
            colour = colorize(scene["depth"], mask=scene["mask"], value_range=(0.0, 1.0))
            cells.append(np.concatenate([scene["image"], colour], axis=1))
        column = np.concatenate(cells, axis=0)
        label = np.full((24, column.shape[1], 3), 255, np.uint8)
        cv2.putText(label, family, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
        columns.append(np.concatenate([label, column], axis=0))
        columns.append(np.full((columns[-1].shape[0], 4, 3), 255, np.uint8))
    picture = np.concatenate(columns[:-1], axis=1)
    if not cv2.imwrite(args.out, picture[..., ::-1]):
        sys.exit(f"error: could not write {args.out}")
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
