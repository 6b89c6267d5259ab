"""The one place that knows the datasets: a name -> its TFDS builder, how its stored ground
truth becomes the training target (`target`), what kind of ground truth it is, and how it
is built.

Names: the short name ("synthetic", "redweb"), the TFDS builder name ("synthetic_scenes")
or a TFDS name with its builder config ("synthetic_scenes/tiny"). `config.data.name` takes
any of them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from depthsense_jax.data import redweb
from depthsense_jax.data.synthetic import builder as synthetic_builder

DecodeTarget = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline and the CLI need to know of one dataset."""

    name: str  # the short name users type
    tfds_name: str  # the TFDS builder name
    default_config: str | None  # builder config used when the name gives none
    kind: str  # ground truth: "relative" (larger = nearer), "depth" or "disparity"
    decode_target: DecodeTarget  # stored `depth` feature -> (depth, validity)
    manual: bool  # built from a folder the user provides (`data build --manual-dir`)
    description: str

    def full_name(self, config: str | None = None) -> str:
        config = config or self.default_config
        return f"{self.tfds_name}/{config}" if config else self.tfds_name


DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="synthetic", tfds_name="synthetic_scenes", default_config="160",
            kind="relative", decode_target=synthetic_builder.decode_target, manual=False,
            description="built-in rendered scenes with exact depth (generated on first use)"),
        DatasetSpec(
            name="redweb", tfds_name="redweb", default_config=None, kind="relative",
            decode_target=redweb.decode_target, manual=True,
            description="ReDWeb V1 from a folder you provide (--manual-dir)"),
    )
}


def lookup(name: str) -> tuple[DatasetSpec, str]:
    """(spec, full TFDS name) of a dataset name; ValueError listing the known ones."""
    base, _, config = name.partition("/")
    for spec in DATASETS.values():
        if base in (spec.name, spec.tfds_name):
            return spec, spec.full_name(config or None)
    known = ", ".join(f"{s.name} ({s.description})" for s in DATASETS.values())
    raise ValueError(f"unknown dataset {name!r} (config.data.name); known: {known}")


def with_dataset(config: ml_collections.ConfigDict, name: str | None = None,
                 data_dir: str | None = None, manual_dir: str | None = None,
                 ) -> ml_collections.ConfigDict:
    """`config` with data.name / data_dir / manual_dir set where given (the name checked)."""
    if name:
        lookup(name)
        config.data.name = name
    if data_dir:
        config.data.data_dir = data_dir
    if manual_dir:
        config.data.manual_dir = manual_dir
    return config


def _data_dir(data_config: ml_collections.ConfigDict) -> str | None:
    return os.path.expanduser(data_config.data_dir) if data_config.data_dir else None


def build(data_config: ml_collections.ConfigDict):
    """Build (or find built) the dataset of `data_config` and return its TFDS builder.

    Synthetic scenes are rendered here; a dataset with `manual` reads the folder in
    `data_config.manual_dir` (default: TFDS's manual folder).
    """
    spec, full_name = lookup(data_config.name)
    builder = _builder(full_name, data_config)
    manual = os.path.expanduser(data_config.manual_dir) if data_config.manual_dir else None
    download_config = tfds.download.DownloadConfig(manual_dir=manual) if spec.manual else None
    try:
        builder.download_and_prepare(download_config=download_config)
    except AssertionError as err:  # tfds asserts on some bad manual folders
        raise ValueError(f"{spec.name}: {err}") from None
    return builder


def _builder(full_name: str, data_config: ml_collections.ConfigDict):
    try:
        return tfds.builder(full_name, data_dir=_data_dir(data_config))
    except tfds.core.registered.DatasetNotFoundError as err:
        raise ValueError(f"{full_name!r} (config.data.name) is no dataset: {err}") from None
    except ValueError as err:  # an unknown builder config, e.g. "synthetic_scenes/huge"
        raise ValueError(f"{full_name!r} (config.data.name): {err}") from None


def prepared_builder(data_config: ml_collections.ConfigDict):
    """The prepared TFDS builder of `data_config`: synthetic scenes are generated on first
    use; a dataset built from a user's folder must have been built (`depthsense data
    build`), else a ValueError says how."""
    spec, full_name = lookup(data_config.name)
    builder = _builder(full_name, data_config)
    if not builder.is_prepared():
        if spec.manual:
            raise ValueError(
                f"dataset {full_name!r} is not built in {builder.data_dir!r}: run `depthsense "
                f"data build {spec.name} --manual-dir DIR` first (config.data.data_dir / "
                "manual_dir)")
        builder = build(data_config)
    return builder


def decode_target(data_config: ml_collections.ConfigDict) -> DecodeTarget:
    """The dataset's stored `depth` feature -> (depth, validity) function."""
    return lookup(data_config.name)[0].decode_target
