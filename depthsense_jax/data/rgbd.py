"""The TFDS builder `rgbd`: RGB-D samples from any source (your own folder, a benchmark
dataset's train split) as TFRecords the training pipeline reads like the built-in ones.

A build lives in DATA_DIR/rgbd/NAME/VERSION/ with `depthsense.json` beside the records: the
ground truth's kind (depth, disparity or relative), where it came from, and what was
skipped. Features: `image` (uint8 RGB), `ground_truth` (float32, the source's values after
its scale, 0 where invalid), `mask` (bool), `file_name`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from depthsense_jax import storage
from depthsense_jax.data.formats import FormatError
from depthsense_jax.data.samples import Item, Sample
from depthsense_jax.data.target import INVALID, VALID

log = logging.getLogger(__name__)
BUILDER = "rgbd"
SOURCE_FILE = "depthsense.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SPLITS = ("train", "validation")


@dataclasses.dataclass(eq=False)
class RgbdConfig(tfds.core.BuilderConfig):
    """One RGB-D dataset: `splits()` lists {split: items} (and what it skipped while listing);
    `kind` is the ground truth's; `source` describes where it came from (for the record)."""

    kind: str = "depth"
    source: dict = dataclasses.field(default_factory=dict)
    splits: Callable[[], tuple[dict[str, list[Item]], list]] | None = None


class Rgbd(tfds.core.GeneratorBasedBuilder):
    """RGB-D samples with ground truth of one kind (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "image, ground_truth, mask, file_name."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip(),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
                "ground_truth": tfds.features.Tensor(
                    shape=(None, None), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB),
                "mask": tfds.features.Tensor(
                    shape=(None, None), dtype=np.bool_, encoding=tfds.features.Encoding.ZLIB),
                "file_name": tfds.features.Text(),
            }),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        splits, skipped = self.builder_config.splits()
        self.skipped = list(skipped)
        empty = [s for s in SPLITS if not splits.get(s)]
        if empty:
            # TFDS cannot write an empty split: it is left out, and asking for it later
            # names the splits there.
            log.warning("%s: no images in split(s) %s; leaving them out",
                        self.builder_config.name, empty)
        return {s: self._generate_examples(items) for s, items in splits.items() if items}

    def _generate_examples(self, items: list[Item]):
        for item in items:
            try:
                sample = item.load()
            except (FormatError, ValueError, OSError) as err:
                reason = getattr(err, "reason", "unreadable")
                self.skipped.append((item.name, reason, str(err)))
                continue
            yield item.name, {"image": sample.image, "ground_truth": sample.target,
                              "mask": sample.mask, "file_name": item.name}


@contextlib.contextmanager
def _quiet_tfds():
    """TFDS's warnings at ERROR: it warns about a config that is not one of BUILDER_CONFIGS
    ("custom data configuration", with its whole repr) and a new folder without
    dataset_info.json, both of which are what a build of one's own data is. Our own
    warnings (skipped files) use this module's logger and still show."""
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl_log.setLevel(level)


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(f"dataset name {name!r}: use letters, digits, '_', '-' and '.', "
                         "starting with a letter or digit")
    return name


SKIPPED_SHOWN = 20  # skipped files named on the console; depthsense.json lists them all


def skipped_lines(skipped: list[tuple[str, str, str]], listing: str) -> list[str]:
    """Console lines naming skipped files (name, reason, message): all of them when there
    are at most SKIPPED_SHOWN, else the first SKIPPED_SHOWN and where the rest are listed."""
    lines = [f"  skipped {name} ({reason}): {message}"
             for name, reason, message in skipped[:SKIPPED_SHOWN]]
    if len(skipped) > SKIPPED_SHOWN:
        lines.append(f"  ... and {len(skipped) - SKIPPED_SHOWN} more, all listed in {listing}")
    return lines


def build(name: str, kind: str, splits: Callable, source: dict, data_dir: str | None,
          log_fn: Callable[[str], None] = print) -> str:
    """Build DATA_DIR/rgbd/NAME from `splits()` ({split: items}, skipped) and return its
    folder. Unusable samples are skipped, named on the console and in depthsense.json, and
    counted; a build with no usable sample at all is a ValueError (and is removed)."""
    check_name(name)
    data_dir = storage.expand(data_dir) if data_dir else None
    with _quiet_tfds():
        builder = Rgbd(data_dir=data_dir, config=RgbdConfig(
            name=name, description=f"{kind} ground truth from {source}", kind=kind,
            source=source, splits=splits))
        if builder.is_prepared():
            raise ValueError(f"{builder.data_dir} exists: give another --name, or remove it "
                             "to build again")
        builder.download_and_prepare()
    skipped = getattr(builder, "skipped", [])
    record = {"kind": kind, "source": source,
              "splits": {s: i.num_examples for s, i in builder.info.splits.items()},
              "skipped": dict(Counter(reason for _, reason, _ in skipped)),
              "skipped_files": [{"name": n, "reason": r, "message": m} for n, r, m in skipped]}
    listing = storage.join(str(builder.data_dir), SOURCE_FILE)
    reasons = ", ".join(f"{n} {r}" for r, n in record["skipped"].items())
    if not sum(record["splits"].values()):
        storage.rmtree(str(builder.data_dir))
        raise ValueError("\n".join([
            f"{BUILDER}/{name}: no usable example"
            + (f"; all {len(skipped)} skipped ({reasons}):" if skipped else ""),
            *skipped_lines(skipped, "the lines above")]))
    storage.write_text(listing, json.dumps(record, indent=2))
    counts = ", ".join(f"{s} {n}" for s, n in record["splits"].items())
    log_fn("\n".join([f"built {BUILDER}/{name} ({kind}): {counts} examples in "
                       f"{builder.data_dir}"
                       + (f"; skipped {len(skipped)} ({reasons}):" if skipped else ""),
                       *skipped_lines(skipped, listing)]))
    return builder.data_dir


def folder_of(name: str, data_dir: str | None) -> str | None:
    """The newest build of DATA_DIR/rgbd/NAME, or None."""
    root = storage.join(storage.expand(data_dir or "~/tensorflow_datasets"), BUILDER, name)
    if not storage.isdir(root):
        return None
    versions = sorted((d for d in storage.listdir(root)
                       if storage.isfile(storage.join(root, d, SOURCE_FILE))),
                      key=lambda v: tuple(int(x) for x in v.split(".") if x.isdigit()))
    return storage.join(root, versions[-1]) if versions else None


def load(name: str, data_dir: str | None, build_hint: str):
    """(TFDS builder, depthsense.json record) of a build; a ValueError saying how to build
    it (`build_hint`) when there is none (a FileNotFoundError naming a data_dir URL whose
    bucket does not exist)."""
    folder = folder_of(name, data_dir)
    if folder is None:
        where = storage.expand(data_dir or "~/tensorflow_datasets")
        storage.require_bucket(where)
        raise ValueError(f"dataset {BUILDER}/{name} is not built in {where!r}: {build_hint}")
    record = json.loads(storage.read_text(storage.join(folder, SOURCE_FILE)))
    return tfds.builder_from_directory(folder), record


def decode_for(kind: str) -> Callable[[dict], tuple[tf.Tensor, tf.Tensor]]:
    """example -> (training target, larger = nearer; validity codes) for a ground truth of
    `kind`: metric depth becomes 1 / depth; disparity and relative depth stay as they are."""
    def decode(example):
        truth = tf.cast(example["ground_truth"], tf.float32)
        valid = tf.cast(example["mask"], tf.bool) & tf.math.is_finite(truth) & (truth > 0)
        if kind == "depth":
            truth = 1.0 / tf.where(valid, truth, 1.0)
        target = tf.where(valid, truth, 0.0)
        validity = tf.where(valid, tf.constant(VALID, tf.uint8), tf.constant(INVALID, tf.uint8))
        return target, validity

    return decode


def benchmark_items(name: str, data_dir: str | None,
                    build_hint: str) -> tuple[list[Item], str]:
    """(the validation split of a build as benchmark items, their ground truth's kind)."""
    builder, record = load(name, data_dir, build_hint)
    if "validation" not in builder.info.splits:
        raise ValueError(f"{BUILDER}/{name} has no validation split to score")
    items = []
    for example in tfds.as_numpy(builder.as_dataset(split="validation")):
        file_name = example["file_name"].decode()
        items.append(Item(file_name, lambda e=example, n=file_name: Sample(
            name=n, image=e["image"], kind=record["kind"], target=e["ground_truth"],
            mask=e["mask"])))
    return items, record["kind"]
