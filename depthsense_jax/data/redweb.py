"""TFDS builder for ReDWeb V1 (Xian et al. 2018): 3,600 web stereo images with relative depth.

The dataset cannot be downloaded here: users place it in the manual directory (a local
folder or a URL, gs://...). The builder stores the raw RD maps untouched; `rd_to_depth`
converts them to our orientation.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import cv2
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from depthsense_jax import storage
from depthsense_jax.data.samples import Item, Sample, Scoring, hash_split
from depthsense_jax.data.target import SKY, VALID

log = logging.getLogger(__name__)

VALIDATION_PERCENT = 5
_ARCHIVES = ("ReDWeb_V1.zip", "ReDWeb_V1.tar.gz", "ReDWeb_V1.tgz", "ReDWeb_V1.tar")


def rd_to_depth(rd) -> tuple[tf.Tensor, tf.Tensor]:
    """ReDWeb RD map -> (depth, validity) in our orientation: the one RD conversion, used by
    the input pipeline (and callable eagerly on a NumPy array).

    rd: (H, W) uint8 RD map, where the nearest surface is near 0, far surfaces are large and
    255 marks sky / unknown background. Returns depth = 1 - RD / 255 as float32 (larger =
    nearer, affine in RD so scale-shift-invariant losses stay meaningful; sky becomes 0) and
    validity (uint8, `target` codes): VALID where RD != 255, SKY where RD == 255 (masked for
    every loss and metric unless `keep_sky` hands it to the ranking losses).
    """
    rd = tf.convert_to_tensor(rd)
    if rd.dtype != tf.uint8:
        raise ValueError(f"RD map must be uint8, got {rd.dtype.name}")
    depth = 1.0 - tf.cast(rd, tf.float32) / 255.0
    validity = tf.where(tf.equal(rd, 255), tf.constant(SKY, tf.uint8),
                        tf.constant(VALID, tf.uint8))
    return depth, validity


def decode_target(stored: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The stored `depth` feature ((H, W, 1) uint8 raw RD map) -> (depth, validity)."""
    return rd_to_depth(stored[..., 0])


def split_of(stem: str) -> str:
    """'validation' for about VALIDATION_PERCENT% of file stems (`samples.hash_split`)."""
    return hash_split(stem, VALIDATION_PERCENT)


class BadExample(ValueError):
    """One unusable example; `reason` is a short tag for the skip counts."""

    def __init__(self, path: str, reason: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.reason = reason


def _complete(path: str, data: bytes) -> bool:
    """False for a JPEG without its end marker or a PNG without its IEND chunk (truncated)."""
    lower = path.lower()
    if lower.endswith((".jpg", ".jpeg")):
        return data.rstrip(b"\0").endswith(b"\xff\xd9")
    if lower.endswith(".png"):
        return b"IEND" in data[-16:]
    return True


def read_pair(image_path: str, rd_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode and check one example: (RGB uint8 (H, W, 3), RD uint8 (H, W)).

    Greyscale images become RGB and RGBA images drop alpha. Raises BadExample (a
    ValueError) naming the file for a missing, empty, truncated or undecodable file, a
    non-8-bit RD map, or sizes that differ.
    """
    if not storage.exists(rd_path):
        raise BadExample(image_path, "missing depth",
                         f"no depth file {storage.basename(rd_path)} beside it")
    arrays = []
    for path in (image_path, rd_path):
        data = storage.read_bytes(path)
        if not data:
            raise BadExample(path, "empty", "empty file")
        if not _complete(path, data):
            raise BadExample(path, "truncated", "truncated file")
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise BadExample(path, "corrupt", "not a decodable image")
        arrays.append(array)
    image, rd = arrays
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.dtype != np.uint8:
        raise BadExample(image_path, "format", f"expected an 8-bit image, got {image.dtype}")
    if rd.ndim == 3:
        raise BadExample(rd_path, "format",
                         f"expected a single-channel RD map, got {rd.shape[2]} channels")
    if rd.dtype != np.uint8:
        raise BadExample(rd_path, "format", f"expected an 8-bit RD map, got {rd.dtype}")
    if image.shape[:2] != rd.shape:
        raise BadExample(
            image_path, "size mismatch",
            f"image is {image.shape[1]}x{image.shape[0]} but its RD map "
            f"{storage.basename(rd_path)} is {rd.shape[1]}x{rd.shape[0]}",
        )
    return image, rd


def find_root(manual_dir: str, extract=None) -> str:
    """The folder holding Imgs/ and RDs/ inside `manual_dir` (the folder itself, a
    ReDWeb_V1/ subfolder, or an archive extracted with `extract(path) -> folder`); a local
    path or a URL (str or a path object, as TFDS gives its manual_dir)."""
    manual_dir = storage.expand(str(manual_dir))
    for candidate in (manual_dir, storage.join(manual_dir, "ReDWeb_V1")):
        if storage.isdir(storage.join(candidate, "Imgs")):
            return candidate
    for name in _ARCHIVES:
        archive = storage.join(manual_dir, name)
        if storage.exists(archive) and extract is not None:
            return find_root(str(extract(archive)))
    raise ValueError(
        f"no ReDWeb folder in {manual_dir!r}: expected {manual_dir}/ReDWeb_V1/Imgs/*.jpg with "
        f"{manual_dir}/ReDWeb_V1/RDs/*.png, or one of {list(_ARCHIVES)}"
    )


def list_examples(root: str) -> list[tuple[str, str, str]]:
    """(stem, image path, RD path) for every image in root/Imgs, sorted by stem."""
    images = storage.join(root, "Imgs")
    names = sorted(
        n for n in storage.listdir(images) if n.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    if not names:
        raise ValueError(f"{images} holds no .jpg images")
    out = []
    for name in names:
        stem = os.path.splitext(name)[0]
        out.append((stem, storage.join(images, name), storage.join(root, "RDs", stem + ".png")))
    return out


class Redweb(tfds.core.GeneratorBasedBuilder):
    """ReDWeb V1: RGB web images with relative depth (RD) maps from stereo."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Raw RD maps, hash-based 95/5 train/validation split."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download ReDWeb V1 (https://sites.google.com/site/redwebcvpr18/) and place it in the
    manual directory (`depthsense data build redweb --manual-dir DIR`, default
    ~/tensorflow_datasets/downloads/manual) as either
      DIR/ReDWeb_V1/Imgs/<name>.jpg and DIR/ReDWeb_V1/RDs/<name>.png
    or the archive DIR/ReDWeb_V1.zip / ReDWeb_V1.tar.gz. About 5% of images (chosen by an MD5
    hash of the file name) form the validation split.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
                "depth": tfds.features.Image(
                    shape=(None, None, 1), dtype=np.uint8, encoding_format="png"
                ),
                "file_name": tfds.features.Text(),
            }),
            description="ReDWeb V1 relative depth (raw RD maps: near ~0, far large, 255 sky).",
            homepage="https://sites.google.com/site/redwebcvpr18/",
        )

    def _split_generators(self, dl_manager):
        root = find_root(dl_manager.manual_dir, extract=dl_manager.extract)
        examples = list_examples(root)
        by_split = {
            s: [e for e in examples if split_of(e[0]) == s] for s in ("train", "validation")
        }
        empty = [s for s, found in by_split.items() if not found]
        if empty:
            # A small folder can leave the 5% validation split empty; TFDS cannot write an
            # empty split, so it is left out (and asking for it later names the splits there).
            log.warning("ReDWeb: no images fall in split(s) %s among %d; leaving them out",
                        empty, len(examples))
        return {s: self._generate_examples(found, s) for s, found in by_split.items() if found}

    def _generate_examples(self, examples, split):
        skipped: Counter = Counter()
        for stem, image_path, rd_path in examples:
            try:
                image, rd = read_pair(image_path, rd_path)
            except BadExample as err:
                skipped[err.reason] += 1
                log.warning("ReDWeb: skipping %s", err)
                continue
            yield stem, {"image": image, "depth": rd[..., None], "file_name": stem}
        if skipped:
            log.warning("ReDWeb %s: skipped %d examples (%s)", split, sum(skipped.values()),
                        dict(skipped))


BENCHMARK_SCORING = Scoring(metric="whdr")
BENCHMARK_LAYOUT = """  DIR: the TFDS data_dir where `depthsense data build redweb` wrote redweb/
  (default ~/tensorflow_datasets); its validation split is scored"""


def benchmark_items(data_dir: str | None, split_file: str | None = None) -> list:
    """The validation split of the built dataset as benchmark items: relative depth
    (1 - RD/255, larger = nearer) with the sky (RD 255) masked."""
    del split_file
    builder = tfds.builder("redweb", data_dir=storage.expand(data_dir) if data_dir else None)
    if not builder.is_prepared():
        raise ValueError(f"redweb is not built in {builder.data_dir!r}: run `depthsense data build "
                         "redweb --manual-dir DIR` first, then give its --data-dir")
    if "validation" not in builder.info.splits:
        raise ValueError(f"the redweb build in {builder.data_dir!r} has no validation split")
    found = []
    for example in tfds.as_numpy(builder.as_dataset(split="validation")):
        def load(example=example):
            depth, validity = (np.asarray(x) for x in decode_target(example["depth"]))
            return Sample(name=example["file_name"].decode(), image=example["image"],
                          kind="relative", target=depth, mask=validity == VALID)

        found.append(Item(example["file_name"].decode(), load))
    return found
