"""What a benchmark dataset's reader yields: one `Item` per image, loaded lazily into a
`Sample` (so that a broken file is named and skipped, and reading can run ahead of the model),
and the dataset's evaluation defaults (`Scoring`)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable

import numpy as np

from depthsense_jax import storage
from depthsense_jax.data.formats import FormatError

KINDS = ("depth", "disparity", "relative", "ordinal")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One evaluation image and its ground truth.

    name: the image's path relative to the dataset folder, without extension (what a saved
      prediction is matched by).
    image: (H, W, 3) uint8 RGB.
    target: (H, W) float32 ground truth of `kind`: "depth" (metres, or the dataset's unit),
      "disparity" (larger = nearer, up to scale), "relative" (larger = nearer, up to an
      affine map); None for "ordinal" (DIW), whose truth is `pair`.
    mask: (H, W) bool, True where `target` is valid (before crops and caps).
    pair: "ordinal" only: (y_a, x_a, y_b, x_b, relation) in 0-based pixels of `size`, relation
      +1 when point a is farther than point b, -1 when nearer.
    size: (H, W) of the ground truth's grid (the image's, unless the annotation says else).
    """

    name: str
    image: np.ndarray
    kind: str
    target: np.ndarray | None = None
    mask: np.ndarray | None = None
    pair: tuple[int, int, int, int, int] | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"sample kind must be one of {KINDS}, got {self.kind!r}")
        if self.size is None:
            object.__setattr__(self, "size", tuple(self.image.shape[:2]))


@dataclasses.dataclass(frozen=True)
class Item:
    """A sample not read yet: `load()` reads it (raising a ValueError naming the file when
    it cannot)."""

    name: str
    load: Callable[[], Sample]


@dataclasses.dataclass(frozen=True)
class Scoring:
    """How the zero-shot benchmark scores a dataset (its defaults; the algorithm itself is
    `evaluation.protocol`).

    metric: "depth" (aligned depth errors), "whdr" (ordinal pairs sampled over a relative
      ground truth) or "ordinal" (one human-labelled pair per image).
    min_depth, max_depth: the cap: ground truth outside (min, max) is not scored, and the
      aligned estimate is clamped into [min, max]; None: no cap.
    crop: the name of the evaluation crop ("eigen_nyu", "garg", "eigen_kitti") or None.
    crops: the crops the dataset allows (`--crop`).
    """

    metric: str = "depth"
    min_depth: float | None = None
    max_depth: float | None = None
    crop: str | None = None
    crops: tuple[str, ...] = ()


def depth_sample(name: str, image: np.ndarray, depth: np.ndarray, source: str,
                 mask: np.ndarray | None = None) -> Sample:
    """A "depth" Sample: valid where the depth is finite and positive (and `mask` allows),
    0 elsewhere. A depth map of another size than the image is an error naming `source`."""
    if depth.shape != image.shape[:2] or (mask is not None and mask.shape != depth.shape):
        raise FormatError(f"{source}: depth {depth.shape}"
                          + (f" and mask {mask.shape}" if mask is not None else "")
                          + f" do not match the image {image.shape[:2]}")
    depth = np.asarray(depth, np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        valid &= np.asarray(mask) > 0
    return Sample(name=name, image=image, kind="depth", target=np.where(valid, depth, 0.0),
                  mask=valid)


def hash_split(key: str, validation_percent: int = 5) -> str:
    """'validation' for about `validation_percent`% of keys, by an MD5 hash of the key
    (stable across machines and Python versions), else 'train'."""
    bucket = int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16) % 100
    return "validation" if bucket < validation_percent else "train"


def require_ground_truth(image_path: str, truth_path: str) -> str:
    """`truth_path`, or a FormatError ("no ground truth") naming the image it belongs to."""
    if not storage.isfile(truth_path):
        raise FormatError(f"{image_path}: no depth file {truth_path}", reason="no ground truth")
    return truth_path


class MissingFolder(FileNotFoundError, ValueError):
    """A dataset folder given as a URL that is not there: a FileNotFoundError naming the URL
    (and saying whether its bucket is missing), and a ValueError like the readers' other
    complaints about a folder."""


def missing_folder(url: str, prefix: str, suffix: str = "") -> MissingFolder:
    """The error for a URL with no objects under it: `prefix` + storage's message (which
    names the URL, or its missing bucket) + `suffix`."""
    return MissingFolder(f"{prefix}{storage.missing(url, 'folder')}{suffix}")


def require_dir(path: str, dataset: str, layout: str) -> str:
    """`path` itself (`~` expanded), or an error naming it and the layout the reader expects:
    a ValueError for a local path that is no folder, a `MissingFolder` (FileNotFoundError)
    for a URL with nothing under it."""
    path = storage.expand(path)
    if not storage.isdir(path):
        if storage.is_url(path):
            raise missing_folder(path, f"{dataset}: --data-dir ", f"; expected:\n{layout}")
        raise ValueError(f"{dataset}: --data-dir {path!r} is not a folder; expected:\n{layout}")
    return path


def relative_stem(path: str, root: str) -> str:
    """`path` relative to `root` (a folder or URL), without its extension, with forward
    slashes."""
    return os.path.splitext(storage.relpath(path, root))[0].replace(os.sep, "/")
