"""Your own RGB-D data: a folder of images and a folder of ground-truth files beside it.

Images and ground truth pair by relative path and stem: `IMAGES/a/b/img_01.jpg` goes with
`DEPTH/a/b/img_01.{png,npy,pfm,exr,tif,tiff}` (and, with masks, `MASKS/a/b/img_01.{png,
npy,tif}`, nonzero = valid). A ground-truth file's values are divided by `depth_scale`
(1000 for millimetre PNGs, 256 for KITTI-style ones); zero, negative and non-finite values
and any of `invalid` (compared with the values as stored) are masked. `kind` says what the
files hold: metric "depth", "disparity" (larger = nearer) or "relative" (larger = nearer,
up to an affine map); training turns depth into 1 / depth.

Each folder may be a local path or a URL (gs://bucket/images): a URL's folders are listed
once each, and its files read through `storage`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from depthsense_jax import storage
from depthsense_jax.data.formats import FormatError, read_map, read_rgb
from depthsense_jax.data.samples import Item, Sample, hash_split, missing_folder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEPTH_SUFFIXES = (".png", ".npy", ".pfm", ".exr", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".npy", ".tif", ".tiff")
TRAINING_KINDS = ("depth", "disparity", "relative")


@dataclasses.dataclass(frozen=True)
class FolderOptions:
    """How to read a folder dataset (what `depthsense data build folder` takes)."""

    images: str
    depth: str
    kind: str
    masks: str | None = None
    depth_scale: float = 1.0
    invalid: tuple[float, ...] = ()
    split_list: str | None = None
    validation_percent: int = 5

    def __post_init__(self):
        if self.kind not in TRAINING_KINDS:
            raise ValueError(f"--kind must be one of {TRAINING_KINDS}, got {self.kind!r}")
        if not self.depth_scale > 0:
            raise ValueError(f"--depth-scale must be positive, got {self.depth_scale}")
        for flag, path in (("--images", self.images), ("--depth", self.depth),
                           ("--masks", self.masks)):
            if path is not None and not storage.isdir(storage.expand(path)):
                if storage.is_url(path):
                    raise missing_folder(path, f"{flag} ")
                raise ValueError(f"{flag} {path!r} is not a folder")
        if self.split_list is not None and not storage.isfile(self.split_list):
            if storage.is_url(self.split_list):
                raise FileNotFoundError(f"--split-list {storage.missing(self.split_list)}")
            raise ValueError(f"--split-list {self.split_list!r} does not exist")


class _Folder:
    """A folder of partner files (ground truth or masks), looked up by relative key: a local
    folder asks the file system per file, a URL is listed once."""

    def __init__(self, path: str):
        self.path = path
        self.listed = ({storage.relpath(f, path) for f in storage.walk_files(path)}
                       if storage.is_url(path) else None)

    def find(self, key: str, suffixes: tuple[str, ...]) -> str | None:
        """The first of `key` + each suffix that is a file in the folder, else None."""
        for suffix in suffixes:
            path = storage.join(self.path, key + suffix)
            if storage.isfile(path) if self.listed is None else key + suffix in self.listed:
                return path
        return None


def read_split_list(path: str) -> dict[str, str]:
    """A split list: one image per line, as its path relative to --images (extension
    optional), then optionally its split ("train" or "validation"; default validation)."""
    splits = {}
    for number, line in enumerate(storage.read_text(path).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        split = fields[1] if len(fields) > 1 else "validation"
        if split not in ("train", "validation"):
            raise ValueError(f"{path}:{number}: split must be train or validation, got "
                             f"{split!r}")
        splits[os.path.splitext(fields[0])[0]] = split
    return splits


def pairs(options: FolderOptions) -> tuple[dict[str, list[Item]], list[tuple[str, str, str]]]:
    """({split: items}, skipped (name, reason, message)) of a folder dataset. Each item is
    an image with its ground-truth file; images without one are skipped as "missing depth"."""
    images = storage.expand(options.images)
    depth = storage.expand(options.depth)
    masks = storage.expand(options.masks) if options.masks else None
    listed = read_split_list(options.split_list) if options.split_list else None
    depth_folder = _Folder(depth)
    mask_folder = _Folder(masks) if masks is not None else None
    splits: dict[str, list[Item]] = {"train": [], "validation": []}
    skipped = []
    # Folder by folder, each one's files by name (the order of a sorted os.walk).
    found = sorted((p for p in storage.walk_files(images)
                    if storage.basename(p).lower().endswith(IMAGE_SUFFIXES)),
                   key=lambda p: (storage.dirname(p), storage.basename(p)))
    if not found:
        raise ValueError(f"--images {options.images!r} holds no images "
                         f"({', '.join(IMAGE_SUFFIXES)}, searched recursively)")
    for image in found:
        key = os.path.splitext(storage.relpath(image, images))[0].replace(os.sep, "/")
        depth_file = depth_folder.find(key, DEPTH_SUFFIXES)
        if depth_file is None:
            skipped.append((key, "missing depth",
                            f"no {key}{{{','.join(DEPTH_SUFFIXES)}}} in {depth}"))
            continue
        mask_file = mask_folder.find(key, MASK_SUFFIXES) if mask_folder else None
        if masks is not None and mask_file is None:
            skipped.append((key, "missing mask", f"no mask for {key} in {masks}"))
            continue
        if listed is not None:
            split = listed.get(key, "train")
        else:
            split = hash_split(key, options.validation_percent)
        splits[split].append(Item(key, lambda i=image, d=depth_file, m=mask_file, k=key:
                                  read_sample(k, i, d, m, options)))
    return splits, skipped


def read_sample(name: str, image_path: str, depth_path: str, mask_path: str | None,
                options: FolderOptions) -> Sample:
    """One pair: (H, W, 3) uint8 image and (H, W) float32 ground truth in the file's units /
    depth_scale, with its mask. FormatError (with a reason) for an unusable pair."""
    image = read_rgb(image_path)
    stored = read_map(depth_path)
    if stored.shape != image.shape[:2]:
        raise FormatError(f"{depth_path}: {stored.shape[1]}x{stored.shape[0]} but the image is "
                          f"{image.shape[1]}x{image.shape[0]}", reason="size mismatch")
    valid = np.isfinite(stored) & (stored > 0)
    for value in options.invalid:
        valid &= stored != value
    if mask_path is not None:
        mask = read_map(mask_path)
        if mask.shape != stored.shape:
            raise FormatError(f"{mask_path}: {mask.shape} but the depth is {stored.shape}",
                              reason="size mismatch")
        valid &= mask > 0
    if not valid.any():
        raise FormatError(f"{depth_path}: no valid pixel", reason="no valid pixel")
    target = np.where(valid, stored / options.depth_scale, 0.0).astype(np.float32)
    return Sample(name=name, image=image, kind=options.kind, target=target, mask=valid)
