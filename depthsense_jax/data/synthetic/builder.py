"""The TFDS builder `synthetic_scenes`: the rendered scenes of `scenes.render_scene` as a
dataset with train and validation splits; nothing is downloaded."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from depthsense_jax.data.synthetic.scenes import render_scene
from depthsense_jax.data.synthetic.worlds import FAMILIES
from depthsense_jax.data.target import INVALID, SKY, VALID


def decode_target(stored: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The stored `depth` feature ((H, W) float32 relative inverse depth, 0 on sky) ->
    (depth, validity): VALID where depth > 0, SKY where it is 0 (the rays that hit
    nothing), INVALID where it is not finite."""
    depth = tf.cast(stored, tf.float32)
    finite = tf.math.is_finite(depth)
    validity = tf.where(depth > 0, tf.constant(VALID, tf.uint8), tf.constant(SKY, tf.uint8))
    validity = tf.where(finite, validity, tf.constant(INVALID, tf.uint8))
    return tf.where(finite & (depth > 0), depth, 0.0), validity


@dataclasses.dataclass(eq=False)
class SyntheticScenesConfig(tfds.core.BuilderConfig):
    """Image size in pixels, number of scenes per split, and the scene families drawn
    (`worlds.FAMILIES`; empty = the first layout, `scenes.random_scene`)."""

    height: int = 160
    width: int = 160
    num_train: int = 4000
    num_validation: int = 400
    families: tuple[str, ...] = ()


FAMILY_SET = "families-"  # config names "families-F1-F2[-N]": see family_set_config


def family_set_config(name: str) -> SyntheticScenesConfig:
    """The config of a set of scene families named "families-F1-F2...[-N]": the families
    F1, F2, ... of `worlds.FAMILIES` at 160x160, N train scenes (default 4,000) and N / 10
    validation scenes. `config.data.name = "synthetic_scenes/families-objects-street-2000"`
    trains on them (e.g. an ablation of the families), built on first use as every
    synthetic config is."""
    parts = name.removeprefix(FAMILY_SET).split("-")
    num_train = int(parts.pop()) if parts and parts[-1].isdigit() else 4000
    unknown = sorted(set(parts) - set(FAMILIES))
    if not name.startswith(FAMILY_SET) or not parts or unknown or num_train < 10:
        raise ValueError(f"synthetic_scenes/{name}: a family set is named "
                         f"{FAMILY_SET}F1-F2...[-N] with families from {', '.join(FAMILIES)} "
                         "and N >= 10 train scenes"
                         + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return SyntheticScenesConfig(
        name=name, description=f"{num_train:,} train / {num_train // 10:,} validation, "
        f"160x160, of the families {', '.join(parts)}.", num_train=num_train,
        num_validation=num_train // 10, families=tuple(parts))


class SyntheticScenes(tfds.core.GeneratorBasedBuilder):
    """Procedural 3-D scenes with exact relative inverse depth (`render_scene`).

    Features: ``image`` (H, W, 3) uint8; ``depth`` (H, W) float32 relative inverse depth
    (larger = nearer, max 1 per image, 0 = sky: see `decode_target`); ``file_name`` (text,
    unique). Scene i of a split is ``render_scene(SPLIT_SEEDS[split], i, (H, W), families)``;
    nothing is downloaded.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: spheres, boxes, cylinders, ground, walls; "
                              "configs v2 and v2_tiny add the scene families of `worlds`."}
    BUILDER_CONFIGS = [
        SyntheticScenesConfig(name="160", description="4,000 train / 400 validation, 160x160."),
        SyntheticScenesConfig(
            name="tiny", description="64 train / 16 validation, 64x64 (tests).",
            height=64, width=64, num_train=64, num_validation=16,
        ),
        SyntheticScenesConfig(
            name="v2", description="4,000 train / 400 validation, 160x160, of every scene "
            "family (objects, indoor, terrain, street, closeup).", families=tuple(FAMILIES),
        ),
        SyntheticScenesConfig(
            name="v2_tiny", description="64 train / 16 validation, 64x64, every family (tests).",
            height=64, width=64, num_train=64, num_validation=16, families=tuple(FAMILIES),
        ),
    ]
    SPLIT_SEEDS = {"train": 0, "validation": 1}

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        shape = (cfg.height, cfg.width)
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip(),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(*shape, 3), dtype=np.uint8),
                "depth": tfds.features.Tensor(
                    shape=shape, dtype=np.float32, encoding=tfds.features.Encoding.ZLIB
                ),
                "file_name": tfds.features.Text(),
            }),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # everything is generated
        cfg = self.builder_config
        return {
            "train": self._generate_examples("train", cfg.num_train),
            "validation": self._generate_examples("validation", cfg.num_validation),
        }

    def _generate_examples(self, split: str, num: int) -> Iterator[tuple[str, dict]]:
        cfg = self.builder_config
        seed = self.SPLIT_SEEDS[split]
        for i in range(num):
            scene = render_scene(seed, i, (cfg.height, cfg.width), cfg.families)
            key = f"{split}_{i:06d}"
            yield key, {
                "image": scene["image"],
                "depth": scene["depth"],
                "file_name": f"{key}.png",
            }

