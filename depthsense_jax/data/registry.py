"""The one place that knows the datasets: a name -> how it is built, how its examples become
training targets, what kind of ground truth it has, and how the benchmark reads it.

Names: the short name ("synthetic", "redweb", "nyu", ...), the TFDS builder name
("synthetic_scenes") or a TFDS name with its builder config ("synthetic_scenes/tiny"), and
"rgbd/NAME" for data you built with `depthsense data build folder --name NAME`.
`config.data.name` takes any of them. The benchmark datasets (NYU, KITTI, ETH3D, DIODE,
Sintel, Middlebury, DIW, ReDWeb's validation split, and your rgbd/NAME's) are read from
their folders by `zero-shot`; NYU, KITTI, DIODE and Middlebury can also be built for
training (`build`: their train split, into rgbd/NAME).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from depthsense_jax import storage
from depthsense_jax.data import (
    diode,
    diw,
    eth3d,
    folder,
    kitti,
    middlebury,
    nyu,
    redweb,
    rgbd,
    sintel,
)
from depthsense_jax.data.folder import FolderOptions
from depthsense_jax.data.samples import Item, Scoring, hash_split
from depthsense_jax.data.synthetic import builder as synthetic_builder

# A decoded example (dict of tensors) -> (training target, larger = nearer; validity codes).
DecodeTarget = Callable[[dict], tuple[tf.Tensor, tf.Tensor]]
RGBD = rgbd.BUILDER + "/"  # "rgbd/NAME": a dataset built from your folder


def own_name(name: str) -> str | None:
    """NAME of a dataset name "rgbd/NAME" (your own data), else None."""
    return name[len(RGBD):] if name.startswith(RGBD) else None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline, the benchmark and the CLI need to know of one dataset."""

    name: str  # the short name users type
    kind: str  # ground truth: "relative", "depth", "disparity" or "ordinal"
    description: str
    tfds_name: str | None = None  # a registered TFDS builder (synthetic_scenes, redweb)
    default_config: str | None = None  # builder config used when the name gives none
    decode_target: DecodeTarget | None = None  # for the registered builders
    manual: bool = False  # built from a folder the user provides (`data build --manual-dir`)
    train_items: Callable[..., list[Item]] | None = None  # its train split, into rgbd/NAME
    benchmark: Callable[..., list[Item]] | None = None  # items(data_dir, split_file)
    scoring: Scoring | None = None  # how the zero-shot benchmark scores it
    layout: str = ""  # the folder the benchmark reads, for errors and --help

    def full_name(self, config: str | None = None) -> str | None:
        if self.tfds_name is None:
            return None
        config = config or self.default_config
        return f"{self.tfds_name}/{config}" if config else self.tfds_name


def _official(module, name: str, kind: str, description: str) -> DatasetSpec:
    return DatasetSpec(name=name, kind=kind, description=description, benchmark=module.items,
                       scoring=module.SCORING, layout=module.LAYOUT,
                       train_items=getattr(module, "train_items", None))


DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="synthetic", tfds_name="synthetic_scenes", default_config="v2",
            kind="relative", decode_target=lambda e: synthetic_builder.decode_target(e["depth"]),
            description="built-in rendered scenes with exact depth (generated on first use)"),
        DatasetSpec(
            name="redweb", tfds_name="redweb", kind="relative",
            decode_target=lambda e: redweb.decode_target(e["depth"]), manual=True,
            benchmark=redweb.benchmark_items, scoring=redweb.BENCHMARK_SCORING,
            layout=redweb.BENCHMARK_LAYOUT,
            description="ReDWeb V1 from a folder you provide (--manual-dir)"),
        _official(nyu, "nyu", "depth", "NYU Depth v2 (test: 654; train: 795)"),
        _official(kitti, "kitti", "depth", "KITTI Eigen split with annotated depth"),
        _official(eth3d, "eth3d", "depth", "ETH3D high-res multi-view DSLR images"),
        _official(diode, "diode", "depth", "DIODE, indoors and outdoor"),
        _official(sintel, "sintel", "depth", "MPI Sintel training, final pass"),
        _official(middlebury, "middlebury", "depth", "Middlebury stereo scenes (2014; 2005/6)"),
        _official(diw, "diw", "ordinal", "Depth in the Wild test pairs"),
    )
}
BENCHMARKS = tuple(name for name, spec in DATASETS.items() if spec.benchmark is not None)
TRAINABLE_BENCHMARKS = tuple(n for n, spec in DATASETS.items() if spec.train_items)


def lookup(name: str) -> tuple[DatasetSpec, str | None]:
    """(spec, full TFDS name or None) of a dataset name; ValueError listing the known ones."""
    if own_name(name) is not None:
        rgbd.check_name(own_name(name))
        return DatasetSpec(name=name, kind="(as built)", description="your RGB-D data"), None
    base, _, config = name.partition("/")
    for spec in DATASETS.values():
        if base in (spec.name, spec.tfds_name):
            return spec, spec.full_name(config or None)
    known = ", ".join(f"{s.name} ({s.description})" for s in DATASETS.values())
    raise ValueError(f"unknown dataset {name!r} (config.data.name); known: {known}; or "
                     f"{RGBD}NAME for data built with `depthsense data build folder`")


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
    """config.data.data_dir with `~` expanded; a URL (gs://...) as it is, which TFDS reads."""
    return storage.expand(data_config.data_dir) if data_config.data_dir else None


def _builder(full_name: str, data_config: ml_collections.ConfigDict):
    name, _, config = full_name.partition("/")
    try:
        if name == DATASETS["synthetic"].tfds_name and config.startswith(
                synthetic_builder.FAMILY_SET):
            return tfds.builder(name, config=synthetic_builder.family_set_config(config),
                                data_dir=_data_dir(data_config))
        return tfds.builder(full_name, data_dir=_data_dir(data_config))
    except tfds.core.registered.DatasetNotFoundError as err:
        raise ValueError(f"{full_name!r} (config.data.name) is no dataset: {err}") from None
    except ValueError as err:  # an unknown builder config, e.g. "synthetic_scenes/huge"
        raise ValueError(f"{full_name!r} (config.data.name): {err}") from None


def build(data_config: ml_collections.ConfigDict, split_file: str | None = None):
    """Build the dataset of `data_config` and return its TFDS builder.

    Synthetic scenes are rendered here; ReDWeb reads `data_config.manual_dir` (default:
    TFDS's manual folder); NYU, KITTI, DIODE and Middlebury read their train split from
    `data_config.manual_dir` (the folder `zero-shot` reads; KITTI's list as `split_file`)
    into rgbd/NAME, about 5% of it (by a hash of the name) as the validation split.
    """
    spec, full_name = lookup(data_config.name)
    if own_name(spec.name) is not None:
        raise ValueError(f"{spec.name}: build your own data with `depthsense data build folder "
                         f"--name {own_name(spec.name)} --images DIR --depth DIR --kind ...`")
    manual = storage.expand(data_config.manual_dir) if data_config.manual_dir else None
    if spec.train_items is not None:
        if manual is None:
            raise ValueError(f"{spec.name}: give the folder of its official layout as "
                             f"--manual-dir:\n{spec.layout}")

        def splits():
            found: dict[str, list[Item]] = {"train": [], "validation": []}
            for item in spec.train_items(manual, split_file):
                found[hash_split(item.name)].append(item)
            return found, []

        rgbd.build(spec.name, spec.kind, splits,
                   {"dataset": spec.name, "folder": manual, "split_file": split_file},
                   data_config.data_dir or None)
        builder, _ = rgbd.load(spec.name, data_config.data_dir or None, "")
        return builder
    if full_name is None:
        raise ValueError(f"{spec.name!r} cannot be built for training; trainable: synthetic, "
                         f"redweb, {', '.join(TRAINABLE_BENCHMARKS)}, or your own folder")
    builder = _builder(full_name, data_config)
    download_config = tfds.download.DownloadConfig(manual_dir=manual) if spec.manual else None
    try:
        builder.download_and_prepare(download_config=download_config)
    except AssertionError as err:  # tfds asserts on some bad manual folders
        raise ValueError(f"{spec.name}: {err}") from None
    return builder


def build_folder(name: str, options: FolderOptions, data_dir: str | None) -> str:
    """Build your folder of images and ground truth (`folder`) into rgbd/NAME; returns the
    build's folder."""
    return rgbd.build(name, options.kind, lambda: folder.pairs(options),
                      {"folder": dataclasses.asdict(options)}, data_dir or None)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A dataset ready for the pipeline: its TFDS builder and how its examples become
    training targets."""

    name: str
    builder: object
    decode_target: DecodeTarget
    kind: str


def prepared(data_config: ml_collections.ConfigDict) -> Prepared:
    """The built dataset of `data_config`: synthetic scenes are generated on first use;
    every other dataset must have been built (`depthsense data build`), else a ValueError
    says how."""
    spec, full_name = lookup(data_config.name)
    own = own_name(spec.name)
    if own is not None or spec.train_items is not None:
        name = own or spec.name
        hint = (f"build it with `depthsense data build folder --name {name} --images DIR "
                "--depth DIR --kind depth|disparity|relative`" if own is not None
                else f"build its train split with `depthsense data build {name} --manual-dir "
                "DIR`") + " (config.data.data_dir says where)"
        builder, record = rgbd.load(name, data_config.data_dir or None, hint)
        return Prepared(spec.name, builder, rgbd.decode_for(record["kind"]), record["kind"])
    if full_name is None:
        raise ValueError(f"dataset {spec.name!r} has no training build (it is a benchmark: "
                         f"`depthsense zero-shot {spec.name} --data-dir DIR ...`)")
    builder = _builder(full_name, data_config)
    if not builder.is_prepared():
        if spec.manual:
            raise ValueError(
                f"dataset {full_name!r} is not built in {builder.data_dir!r}: run `depthsense "
                f"data build {spec.name} --manual-dir DIR` first (config.data.data_dir / "
                "manual_dir)")
        builder = build(data_config)
    return Prepared(spec.name, builder, spec.decode_target, spec.kind)


def prepared_builder(data_config: ml_collections.ConfigDict):
    """The TFDS builder of `prepared`."""
    return prepared(data_config).builder


def benchmark(name: str, data_dir: str | None,
              split_file: str | None = None) -> tuple[DatasetSpec, list[Item]]:
    """(spec, items) of a benchmark dataset read from the user's folder `data_dir` in its
    official layout (a ValueError naming the folder and that layout when it does not
    match); for rgbd/NAME, the validation split of its build in `data_dir`."""
    spec, _ = lookup(name)
    if own_name(spec.name) is not None:
        items, kind = rgbd.benchmark_items(own_name(spec.name), data_dir, (
            "build it with `depthsense data build folder` (and give its --data-dir)"))
        metric = "whdr" if kind == "relative" else "depth"
        return dataclasses.replace(spec, kind=kind, scoring=Scoring(metric=metric)), items
    if spec.benchmark is None:
        raise ValueError(f"{spec.name!r} is no benchmark dataset; benchmarks: "
                         f"{', '.join(BENCHMARKS)}, or {RGBD}NAME")
    return spec, spec.benchmark(data_dir, split_file)
