"""Pictures of what the pipeline feeds a model: image | depth colour map | mask per example."""

from __future__ import annotations

import ml_collections
import numpy as np

from depthsense_jax import viz
from depthsense_jax.data import pipeline


def sources(batch: dict) -> list[str]:
    """The dataset each example of a batch came from."""
    names = batch.get("source")
    if names is None:
        return [""] * len(batch["image"])
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def sample_grid(batch: dict, num: int) -> np.ndarray:
    """Rows of image | depth | mask for the first `num` examples of a batch dict, the image
    labelled with the dataset it came from: (rows * (S + 2), 3 * (S + 2), 3) uint8 RGB on
    white."""
    rows = []
    for i, source in enumerate(sources(batch)[:num]):
        mask = np.repeat((batch["mask"][i].astype(np.uint8) * 255)[..., None], 3, axis=-1)
        image = viz.to_uint8(batch["image"][i])
        rows.append([viz.label(image, source) if source else image,
                     viz.colorize(batch["depth"][i], batch["mask"][i]), mask])
    return viz.grid(rows)


def show(config: ml_collections.ConfigDict, split: str = "train", num: int = 8,
         augment: bool = True) -> tuple[np.ndarray, list[str]]:
    """(a sample grid of the first `num` examples of `split` as the pipeline delivers them,
    training augmentation or the evaluation resize with augment=False; their sources)."""
    config = config.copy_and_resolve_references()
    config.batch_size = num
    batch = next(iter(pipeline.make_dataset(config, split, training=augment)))
    return sample_grid(batch, num), sources(batch)[:num]
