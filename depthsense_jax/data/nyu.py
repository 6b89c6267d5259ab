"""NYU Depth v2, labeled subset: the 654 official test images (Silberman et al. 2012).

Read with h5py from the MATLAB 7.3 (HDF5) file; MATLAB writes arrays column-major, so h5py
sees them transposed: `images` (N, 3, W, H) uint8 and `rawDepths` / `depths` (N, W, H)
float32 metres. The ground truth is the raw sensor depth (`rawDepths`, 0 = no return), as
BTS and Marigold evaluate; the in-painted `depths` is used only when a file lacks it.
"""

from __future__ import annotations

import contextlib
import io
import weakref

import numpy as np

from depthsense_jax import storage
from depthsense_jax.data.formats import FormatError
from depthsense_jax.data.samples import Item, Sample, Scoring, require_dir

LABELED = "nyu_depth_v2_labeled.mat"
SPLITS = "splits.mat"
LAYOUT = f"""  DIR/{LABELED}   (MATLAB 7.3 / HDF5: images, rawDepths)
  DIR/{SPLITS}                  (testNdxs: the 654 test images, 1-based)"""
# Eigen crop (rows 45:471, cols 41:601 of 480 x 640) and the 1e-3 .. 10 m cap.
SCORING = Scoring(metric="depth", min_depth=1e-3, max_depth=10.0, crop="eigen_nyu",
                    crops=("eigen_nyu",))


def split_indices(path: str, key: str = "testNdxs") -> list[int]:
    """An official split (testNdxs: 654 images, trainNdxs: 795): 1-based indices into the
    labeled file, in order."""
    import scipy.io

    try:
        splits = scipy.io.loadmat(io.BytesIO(storage.read_bytes(path)))
    except (OSError, ValueError, NotImplementedError) as err:
        raise FormatError(f"{path}: not a readable MATLAB splits file ({err})") from None
    if key not in splits:
        raise FormatError(f"{path}: no {key} in it (keys: {sorted(splits)})")
    return [int(i) for i in np.asarray(splits[key]).ravel()]


class _Labeled:
    """The open labeled file; h5py reads are serialised by its own lock. A URL's file (2.8 GB)
    is downloaded once to a temporary file, removed when this object goes."""

    def __init__(self, path: str):
        import h5py

        stack = contextlib.ExitStack()
        weakref.finalize(self, stack.close)
        try:
            self.file = h5py.File(stack.enter_context(storage.local_file(path)), "r")
        except OSError as err:
            raise FormatError(f"{path}: not a readable MATLAB 7.3 (HDF5) file ({err})") from None
        stack.callback(self.file.close)
        self.path = path
        missing = [k for k in ("images",) if k not in self.file]
        depth_key = "rawDepths" if "rawDepths" in self.file else "depths"
        if missing or depth_key not in self.file:
            raise FormatError(f"{path}: expected the datasets images and rawDepths (or depths), "
                              f"found {sorted(self.file)}")
        self.images, self.depths = self.file["images"], self.file[depth_key]

    def sample(self, index: int) -> Sample:
        """Image `index` (1-based, as in splits.mat): (H, W, 3) uint8, (H, W) metres."""
        if not 1 <= index <= self.images.shape[0]:
            raise FormatError(f"{self.path}: no image {index} (it holds {self.images.shape[0]})")
        image = np.ascontiguousarray(np.asarray(self.images[index - 1]).transpose(2, 1, 0))
        depth = np.ascontiguousarray(np.asarray(self.depths[index - 1], np.float32).T)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise FormatError(f"{self.path}: image {index} is {image.dtype} {image.shape}, "
                              "expected uint8 (3, W, H) as MATLAB 7.3 stores H x W x 3")
        if depth.shape != image.shape[:2]:
            raise FormatError(f"{self.path}: depth {index} is {depth.shape}, image "
                              f"{image.shape[:2]}")
        return Sample(name=f"{index:04d}", image=image, kind="depth", target=depth,
                      mask=np.isfinite(depth) & (depth > 0))


def items(data_dir: str, split_file: str | None = None, key: str = "testNdxs") -> list[Item]:
    """The official test images (or, with key="trainNdxs", the train images), named by their
    1-based index ("0001" ... "1449")."""
    root = require_dir(data_dir, "nyu", LAYOUT)
    labeled_path = storage.join(root, LABELED)
    splits_path = split_file or storage.join(root, SPLITS)
    for path in (labeled_path, splits_path):
        if not storage.isfile(path):
            raise ValueError(f"nyu: {path} does not exist; expected:\n{LAYOUT}")
    labeled = _Labeled(labeled_path)
    return [Item(f"{i:04d}", lambda i=i: labeled.sample(i))
            for i in split_indices(splits_path, key)]


def train_items(data_dir: str, split_file: str | None = None) -> list[Item]:
    """The 795 official train images (for `depthsense data build nyu`)."""
    return items(data_dir, split_file, key="trainNdxs")
