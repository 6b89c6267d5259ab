"""Pictures of what the pipeline feeds a model: image | depth colour map | mask per example."""

from __future__ import annotations

import ml_collections
import numpy as np

from depthsense_jax import viz
from depthsense_jax.data import pipeline


def sample_grid(batch: dict, num: int) -> np.ndarray:
    """Rows of image | depth | mask for the first `num` examples of a batch dict:
    (rows * (S + 2), 3 * (S + 2), 3) uint8 RGB on white."""
    rows = []
    for i in range(min(num, len(batch["image"]))):
        mask = np.repeat((batch["mask"][i].astype(np.uint8) * 255)[..., None], 3, axis=-1)
        rows.append([viz.to_uint8(batch["image"][i]),
                     viz.colorize(batch["depth"][i], batch["mask"][i]), mask])
    return viz.grid(rows)


def show(config: ml_collections.ConfigDict, split: str = "train", num: int = 8,
         augment: bool = True) -> np.ndarray:
    """A sample grid of the first `num` examples of `split` as the pipeline delivers them
    (training augmentation, or the evaluation resize with augment=False)."""
    config = config.copy_and_resolve_references()
    config.batch_size = num
    batch = next(iter(pipeline.make_dataset(config, split, training=augment)))
    return sample_grid(batch, num)
