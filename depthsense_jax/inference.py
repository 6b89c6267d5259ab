"""Relative depth for photos of any size: load a trained model, resize, predict, resize back.

The model takes sides that are multiples of 32. A photo is resized keeping its aspect ratio so
that its long side is `size` (rounded to a multiple of 32, each side at least 32), predicted,
and the prediction resized back to the photo's size (bilinear).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from depthsense_jax.config import model_from_config

MODEL_KEYS = ("encoder_depth", "width", "fusion_channels", "dtype")


def model_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) the model sees for a (height, width) photo: aspect kept, long side ~`size`,
    both multiples of 32 and at least 32."""
    if size < 32 or size % 32:
        raise ValueError(f"size must be a positive multiple of 32, got {size}")
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1x1, got {height}x{width}")
    scale = size / max(height, width)
    return (max(32, int(round(height * scale / 32)) * 32),
            max(32, int(round(width * scale / 32)) * 32))


def load_workdir(workdir: str, checkpoint: str = "latest"):
    """(model config, variables {"params", "batch_stats"}) of a training workdir's checkpoint:
    "latest", "best" or a step number."""
    from depthsense_jax.train import loop

    config = loop.load_workdir_config(workdir)
    _, state = loop.build_state(config, total_steps=1)
    state, _ = loop.restore_named(workdir, config, state, checkpoint, lambda s: None)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return config.model, jax.device_get(variables)


def model_config_dict(model_config) -> dict:
    """The fields that rebuild DepthNet (what model.json holds)."""
    return {key: model_config[key] for key in MODEL_KEYS}


def read_model_json(path: str) -> ml_collections.ConfigDict:
    with open(path) as f:
        data = json.load(f)
    missing = [k for k in MODEL_KEYS if k not in data]  # extra keys (image_size) are hints
    if missing:
        raise ValueError(f"{path}: model config lacks {missing}; expected the keys "
                         f"{list(MODEL_KEYS)}")
    return ml_collections.ConfigDict({k: data[k] for k in MODEL_KEYS})


class Predictor:
    """A jitted DepthNet in eval mode for batches of one (h, w); compiled once per shape."""

    def __init__(self, model_config, variables: dict):
        self.model = model_from_config(model_config)
        self.variables = jax.device_put(variables)
        self._apply = jax.jit(lambda v, x: self.model.apply(v, x, train=False))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """images: (B, h, w, 3) float32 in [0, 1], h and w multiples of 32 -> (B, h, w)."""
        return np.asarray(self._apply(self.variables, jnp.asarray(images, jnp.float32)))


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def predict(
    params: Predictor | Callable[[np.ndarray], np.ndarray] | tuple | str,
    images: Iterable[np.ndarray],
    size: int = 384,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Relative inverse depth (larger = nearer) for each photo, at the photo's size.

    params: an export folder or params file (`depthsense export`), a (model config,
    variables) pair, or a Predictor (reuse one across calls: it keeps its compilations).

    images: (H, W, 3) float32 RGB in [0, 1] (any H, W >= 1). Photos whose model size is the
    same go through the model together, `batch_size` at a time. Returns (H, W) float32 each,
    in the model's arbitrary scale and shift. on_batch(n): called after each batch of n.
    """
    if isinstance(params, str | os.PathLike):
        from depthsense_jax import export

        params = export.load_params(str(params))
    predictor = Predictor(*params) if isinstance(params, tuple) else params
    images = list(images)
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {i} must have shape (H, W, 3), got {image.shape}")
    shapes = [model_size(im.shape[0], im.shape[1], size) for im in images]
    out: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(i)
    for (h, w), members in groups.items():
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            batch = np.stack([_resize(np.asarray(images[i], np.float32), h, w) for i in chunk])
            # Pad to a full batch: one compiled shape per (h, w), not one per remainder.
            padded = np.concatenate(
                [batch, np.zeros((batch_size - len(chunk), h, w, 3), np.float32)])
            depth = predictor(padded)[:len(chunk)]
            for i, d in zip(chunk, depth, strict=True):
                height, width = images[i].shape[:2]
                out[i] = cv2.resize(np.asarray(d, np.float32), (width, height),
                                    interpolation=cv2.INTER_LINEAR)
            if on_batch is not None:
                on_batch(len(chunk))
    return out


# Photo files -------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files, folders (recursive, image suffixes) and glob patterns -> sorted unique paths.
    A name that matches nothing is a ValueError."""
    import glob

    paths: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            for root, _, files in os.walk(item):
                paths += [os.path.join(root, f) for f in files
                          if f.lower().endswith(IMAGE_SUFFIXES)]
        elif os.path.isfile(item):
            paths.append(item)
        else:
            matches = [p for p in glob.glob(item, recursive=True) if os.path.isfile(p)]
            if not matches:
                raise ValueError(f"input {item!r} is no file, folder or matching pattern")
            paths += matches
    return sorted(dict.fromkeys(os.path.normpath(p) for p in paths))


def read_photo(path: str) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] as a viewer shows the file: EXIF rotation applied,
    8- or 16-bit, greyscale repeated, alpha dropped. ValueError if unreadable."""
    data = np.fromfile(path, np.uint8)
    # These flags keep 16 bits and apply the EXIF orientation (IMREAD_UNCHANGED would not).
    image = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if data.size else None
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.dtype == np.uint16:
        scale = 65535.0
    elif image.dtype == np.uint8:
        scale = 255.0
    elif image.dtype == np.float32:
        scale = 1.0
    else:
        raise ValueError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        image = np.repeat(image[..., :1], 3, axis=2)
    return np.clip(image.astype(np.float32) / scale, 0.0, 1.0)
