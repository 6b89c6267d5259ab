"""The one place that knows the datasets: a name -> its TFDS builder, how its stored ground
truth becomes the training target (`target`), what kind of ground truth it is, and how it
is built.

Names: the short name ("synthetic", "redweb", "nyu", ...), the TFDS builder name
("synthetic_scenes") or a TFDS name with its builder config ("synthetic_scenes/tiny").
`config.data.name` takes any of them. The benchmark datasets (NYU, KITTI, ETH3D, DIODE,
Sintel, Middlebury, DIW, and ReDWeb's validation split) are read from the user's folder in
their official layouts by `benchmark`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from depthsense_jax.data import diode, diw, eth3d, kitti, middlebury, nyu, redweb, sintel
from depthsense_jax.data.samples import Item, Protocol
from depthsense_jax.data.synthetic import builder as synthetic_builder

DecodeTarget = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline, the benchmark and the CLI need to know of one dataset."""

    name: str  # the short name users type
    kind: str  # ground truth: "relative", "depth", "disparity" or "ordinal"
    description: str
    tfds_name: str | None = None  # the TFDS builder, for training (None: benchmark only)
    default_config: str | None = None  # builder config used when the name gives none
    decode_target: DecodeTarget | None = None  # stored `depth` feature -> (depth, validity)
    manual: bool = False  # built from a folder the user provides (`data build --manual-dir`)
    benchmark: Callable[..., list[Item]] | None = None  # items(data_dir, split_file)
    protocol: Protocol | None = None  # the benchmark's defaults
    layout: str = ""  # the folder the benchmark reads, for errors and --help

    def full_name(self, config: str | None = None) -> str:
        config = config or self.default_config
        return f"{self.tfds_name}/{config}" if config else self.tfds_name


def _official(module, name: str, kind: str, description: str) -> DatasetSpec:
    return DatasetSpec(name=name, kind=kind, description=description, benchmark=module.items,
                       protocol=module.PROTOCOL, layout=module.LAYOUT)


DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="synthetic", tfds_name="synthetic_scenes", default_config="160",
            kind="relative", decode_target=synthetic_builder.decode_target,
            description="built-in rendered scenes with exact depth (generated on first use)"),
        DatasetSpec(
            name="redweb", tfds_name="redweb", kind="relative",
            decode_target=redweb.decode_target, manual=True,
            benchmark=redweb.benchmark_items, protocol=redweb.BENCHMARK_PROTOCOL,
            layout=redweb.BENCHMARK_LAYOUT,
            description="ReDWeb V1 from a folder you provide (--manual-dir)"),
        _official(nyu, "nyu", "depth", "NYU Depth v2, the 654 official test images"),
        _official(kitti, "kitti", "depth", "KITTI Eigen test split with annotated depth"),
        _official(eth3d, "eth3d", "depth", "ETH3D high-res multi-view DSLR images"),
        _official(diode, "diode", "depth", "DIODE validation, indoors and outdoor"),
        _official(sintel, "sintel", "depth", "MPI Sintel training, final pass"),
        _official(middlebury, "middlebury", "depth", "Middlebury stereo scenes (2014; 2005/6)"),
        _official(diw, "diw", "ordinal", "Depth in the Wild test pairs"),
    )
}
BENCHMARKS = tuple(name for name, spec in DATASETS.items() if spec.benchmark is not None)


def lookup(name: str) -> tuple[DatasetSpec, str | None]:
    """(spec, full TFDS name or None) of a dataset name; ValueError listing the known ones."""
    base, _, config = name.partition("/")
    for spec in DATASETS.values():
        if base in (spec.name, spec.tfds_name):
            return spec, spec.full_name(config or None) if spec.tfds_name else None
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
    spec, full_name = _trainable(data_config.name)
    builder = _builder(full_name, data_config)
    manual = os.path.expanduser(data_config.manual_dir) if data_config.manual_dir else None
    download_config = tfds.download.DownloadConfig(manual_dir=manual) if spec.manual else None
    try:
        builder.download_and_prepare(download_config=download_config)
    except AssertionError as err:  # tfds asserts on some bad manual folders
        raise ValueError(f"{spec.name}: {err}") from None
    return builder


def _trainable(name: str) -> tuple[DatasetSpec, str]:
    spec, full_name = lookup(name)
    if full_name is None:
        raise ValueError(f"dataset {spec.name!r} has no training build (it is a benchmark: "
                         f"`depthsense benchmark {spec.name} --data-dir DIR ...`)")
    return spec, full_name


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
    spec, full_name = _trainable(data_config.name)
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
    return _trainable(data_config.name)[0].decode_target


def benchmark(name: str, data_dir: str | None,
              split_file: str | None = None) -> tuple[DatasetSpec, list[Item]]:
    """(spec, items) of a benchmark dataset read from the user's folder `data_dir` in its
    official layout (a ValueError naming the folder and that layout when it does not
    match)."""
    spec, _ = lookup(name)
    if spec.benchmark is None:
        raise ValueError(f"{spec.name!r} is no benchmark dataset; benchmarks: "
                         f"{', '.join(BENCHMARKS)}")
    return spec, spec.benchmark(data_dir, split_file)
