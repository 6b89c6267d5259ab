"""Relative depth for photos of any size: load a trained model, resize, predict, resize back,
and write the results for photo files.

A model takes sides that are multiples of its family's stride (32 for DepthNet). A photo is
resized keeping its aspect ratio so that its *short* side is `size` (the training
`image_size` by default: training crops come from images whose short side is image_size x
1..scale_max, evaluation from a short side of exactly image_size; the family's default size
when the model does not know it), both sides rounded to multiples of the stride; the
prediction is resized back to the photo's size (bilinear).
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
from collections.abc import Callable, Iterable, Sequence

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from depthsense_jax import params_io, storage, viz
from depthsense_jax.models import registry
from depthsense_jax.params_io import LoadedModel

FORMATS = ("png16", "color", "npy", "side")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CHUNK = 64  # photos read and held at once by predict_files
MAX_ASPECT = 4  # the long side the model sees is at most this many times the short side

__all__ = ["LoadedModel", "Predictor", "expand_inputs", "load_model", "model_input",
           "model_size", "predict", "predict_files", "read_photo", "to_png16",
           "write_outputs"]


def model_size(height: int, width: int, size: int, stride: int) -> tuple[int, int]:
    """(h, w) the model sees for a (height, width) photo: aspect kept, short side ~`size`
    (the long side at most MAX_ASPECT x `size`: a panorama is scaled down further), both
    multiples of `stride` (the model family's) and at least one stride."""
    if size < stride or size % stride:
        raise ValueError(f"size must be a positive multiple of the model's stride {stride}, "
                         f"got {size}")
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1x1, got {height}x{width}")
    scale = min(size / min(height, width), MAX_ASPECT * size / max(height, width))
    return (max(stride, int(round(height * scale / stride)) * stride),
            max(stride, int(round(width * scale / stride)) * stride))


def load_model(workdir: str | None = None, params: str | None = None,
               checkpoint: str = "latest", config: ml_collections.ConfigDict | None = None,
               log: Callable[[str], None] = lambda s: None) -> LoadedModel:
    """The model of a training workdir's checkpoint (`workdir`, `checkpoint` "latest",
    "best" or a step) or of anything else `params_io.load` reads (`params`: an export
    folder, a params file, a foreign checkpoint): exactly one of them. `config` (optional)
    overrides the image size and the compute dtype; it must describe the same
    architecture."""
    if bool(workdir) == bool(params):
        raise ValueError("give exactly one of --workdir DIR or --params FILE_OR_DIR")
    if workdir and not params_io.is_workdir(workdir):
        # Say what is wrong with a workdir rather than with a params path.
        from depthsense_jax import workdir as workdir_lib

        workdir_lib.load_config(workdir)
    model = params_io.load(workdir or params, checkpoint, log,
                           what="--workdir" if workdir else "--params")
    if config is not None:
        mine, theirs = (params_io.model_config_dict(config.model),
                        params_io.model_config_dict(model.model_config))
        if {k: v for k, v in mine.items() if k != "dtype"} != {
                k: v for k, v in theirs.items() if k != "dtype"}:
            raise ValueError(f"--config describes another model ({mine}) than the params "
                             f"({theirs})")
        model_config = ml_collections.ConfigDict(dict(model.model_config))
        model_config.dtype = config.model.dtype
        model = dataclasses.replace(model, model_config=model_config,
                                    image_size=config.image_size)
    return model


class Predictor:
    """A loaded model, jitted in eval mode and compiled once per input shape: call it on
    model-size batches, or `predict` photos of any size."""

    def __init__(self, model: LoadedModel):
        self.loaded = model
        self.family = model.family
        self.module = registry.build(model.model_config)
        self.variables = jax.device_put(model.variables)
        self._apply = jax.jit(lambda v, x: registry.infer(self.module, v, x))

    @property
    def default_size(self) -> int:
        """The short side photos are resized to: the training image_size when known (rounded
        to the stride), else the family's default."""
        size = self.loaded.image_size
        return self.family.round_size(size) if size else self.family.default_size

    def model_size(self, height: int, width: int, size: int | None = None) -> tuple[int, int]:
        """`model_size` with this model's stride and default size."""
        return model_size(height, width, size or self.default_size, self.family.stride)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """images: (B, h, w, 3) float32 in [0, 1], h and w multiples of the stride ->
        (B, h, w) float32."""
        return np.asarray(self._apply(self.variables, jnp.asarray(images, jnp.float32)))

    def predict(self, images: Iterable[np.ndarray], size: int | None = None,
                batch_size: int = 8,
                on_batch: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """Relative inverse depth (larger = nearer) for each photo, at the photo's size.

        images: (H, W, 3) float32 RGB in [0, 1] or uint8 (any H, W >= 1). size: the short
        side the model sees (default `default_size`). Photos whose model size is the same go
        through the model together, `batch_size` at a time (padded to a full batch: one
        compiled shape per size). Returns (H, W) float32 each, in the model's arbitrary
        scale and shift. on_batch(n): called after each batch of n.
        """
        images = list(images)
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image {i} must have shape (H, W, 3), got {image.shape}")
        out: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(self.model_size(im.shape[0], im.shape[1], size), []).append(i)
        for (h, w), members in groups.items():
            for start in range(0, len(members), batch_size):
                chunk = members[start:start + batch_size]
                batch = np.stack([model_input(images[i], h, w) for i in chunk])
                padded = np.concatenate(
                    [batch, np.zeros((batch_size - len(chunk), h, w, 3), np.float32)])
                depth = self(padded)[:len(chunk)]
                for i, d in zip(chunk, depth, strict=True):
                    height, width = images[i].shape[:2]
                    out[i] = cv2.resize(np.asarray(d, np.float32), (width, height),
                                        interpolation=cv2.INTER_LINEAR)
                if on_batch is not None:
                    on_batch(len(chunk))
        return out


def predict(model: LoadedModel, images: Iterable[np.ndarray], size: int | None = None,
            batch_size: int = 8,
            on_batch: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """`Predictor(model).predict(images, ...)`: relative inverse depth at each photo's size.
    Keep a Predictor to predict again without compiling again."""
    return Predictor(model).predict(images, size, batch_size, on_batch)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def model_input(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A photo resized to the model's size, as float32 in [0, 1] (uint8 is scaled after the
    resize, so a large photo is never held as floats)."""
    if image.dtype == np.uint8:
        return _resize(image, height, width).astype(np.float32) / 255.0
    return _resize(np.asarray(image, np.float32), height, width)


# Photo files -------------------------------------------------------------------------------


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files, folders (recursive, image suffixes) and glob patterns -> sorted unique paths.
    A name that matches nothing is a ValueError."""
    paths: list[str] = []
    for item in inputs:
        item = storage.expand(item)
        if storage.isdir(item):
            paths += [p for p in storage.walk_files(item)
                      if storage.basename(p).lower().endswith(IMAGE_SUFFIXES)]
        elif storage.isfile(item):
            paths.append(item)
        else:
            matches = [p for p in storage.glob(item) if storage.isfile(p)]
            if not matches:
                storage.require_bucket(item)
                raise ValueError(f"input {item!r} is no file, folder or matching pattern")
            paths += matches
    return sorted(dict.fromkeys(
        storage.normalize(p) if storage.is_url(p) else os.path.normpath(p) for p in paths))


def read_photo(path: str) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] as a viewer shows the file: EXIF rotation applied,
    8- or 16-bit, greyscale repeated, alpha dropped. ValueError if unreadable."""
    data = np.frombuffer(storage.read_bytes(path), np.uint8)
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


def to_png16(depth: np.ndarray) -> np.ndarray:
    """(H, W) relative depth -> uint16 normalised to 0..65535 over the image (larger =
    nearer); a constant map gives 0."""
    lo, hi = float(depth.min()), float(depth.max())
    scaled = (depth - lo) / (hi - lo) if hi > lo else np.zeros_like(depth)
    return np.round(scaled * 65535).astype(np.uint16)


def _output_names(paths: Sequence[str]) -> dict[str, str]:
    """Input path -> output stem ('/'-separated), relative to the inputs' common folder (no
    collisions); inputs may be files or URLs."""
    parts = {p: storage.normalize(p).split("/") for p in paths}
    common = [] if not parts else list(os.path.commonprefix(
        [names[:-1] for names in parts.values()]))
    return {p: os.path.splitext("/".join(names[len(common):]))[0]
            for p, names in parts.items()}


def write_outputs(stem: str, photo: np.ndarray, depth: np.ndarray, formats: Sequence[str],
                  colormap: str = "inferno") -> None:
    """Write `formats` of one prediction next to `stem`: STEM_depth.png (png16),
    STEM_color.png (color), STEM.npy (npy), STEM_side.png (photo | colour map)."""
    color = None
    for fmt in formats:
        if fmt == "png16":
            viz.write_image(stem + "_depth.png", to_png16(depth))
        elif fmt == "npy":
            buffer = io.BytesIO()
            np.save(buffer, depth.astype(np.float32))
            storage.write_bytes(stem + ".npy", buffer.getvalue())
        elif fmt in ("color", "side"):
            if color is None:
                color = viz.colorize(depth, colormap=colormap)
            if fmt == "color":
                viz.write_rgb(stem + "_color.png", color)
            else:
                viz.write_rgb(stem + "_side.png",
                              np.concatenate([viz.to_uint8(photo), color], axis=1))


@dataclasses.dataclass
class Summary:
    written: list[str] = dataclasses.field(default_factory=list)  # input paths done
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, why)


def predict_files(model: LoadedModel, inputs: Sequence[str], out_dir: str,
                  size: int | None = None, formats: Sequence[str] = ("png16", "color"),
                  colormap: str = "inferno", batch_size: int = 4,
                  log: Callable[[str], None] = print) -> Summary:
    """Predict every photo that `inputs` names (files, folders, globs) and write `formats`
    for each into out_dir, keeping the inputs' folder structure. Unreadable files are
    reported, skipped and counted; when none could be read it is a ValueError."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"--format {','.join(formats)!r}: choose from {', '.join(FORMATS)}")
    viz.colormap_id(colormap)  # a bad --colormap fails before anything is read
    predictor = Predictor(model)
    size = size or predictor.default_size
    predictor.model_size(1, 1, size)  # so does a bad --size
    paths = expand_inputs(inputs)
    if not paths:
        raise ValueError(f"no image files in {list(inputs)}")
    names = _output_names(paths)
    summary = Summary()
    from tqdm import tqdm

    bar = tqdm(total=len(paths), unit="photo", desc="predict", file=sys.stderr,
               disable=len(paths) < 2 or not sys.stderr.isatty())
    for start in range(0, len(paths), CHUNK):
        photos, kept = [], []
        for path in paths[start:start + CHUNK]:
            try:
                photos.append(read_photo(path))
                kept.append(path)
            except (ValueError, OSError) as err:
                summary.skipped.append((path, str(err)))
                tqdm.write(f"skipped {path}: {err}", file=sys.stderr)
                bar.update(1)
        depths = predictor.predict(photos, size=size, batch_size=batch_size,
                                   on_batch=bar.update)
        for path, photo, depth in zip(kept, photos, depths, strict=True):
            write_outputs(storage.join(storage.expand(out_dir), *names[path].split("/")),
                          photo, depth, formats, colormap)
            summary.written.append(path)
    bar.close()
    log(f"wrote {', '.join(formats)} for {len(summary.written)} photo(s) to {out_dir} "
        f"(short side {size})"
        + (f"; skipped {len(summary.skipped)} unreadable file(s)" if summary.skipped else ""))
    if not summary.written:
        raise ValueError(f"none of the {len(paths)} input file(s) could be read")
    return summary
