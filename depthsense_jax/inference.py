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

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import io
import itertools
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from depthsense_jax import metric, params_io, pointcloud, storage, viz
from depthsense_jax.models import registry
from depthsense_jax.params_io import LoadedModel

# Metric depth from known points (`metric`) and point clouds (`pointcloud`): write_outputs
# with WriterOptions. metric_json is the fit's report, written beside any metric output.
METRIC_FORMATS = ("metric_npy", "metric_png16", "metric_json")
CLOUD_FORMATS = ("ply", "npz")
FORMATS = ("png16", "color", "npy", "side", *METRIC_FORMATS, *CLOUD_FORMATS)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_WORKERS = 4  # predict_files: reading threads, and as many writing
MAX_ASPECT = 4  # the long side the model sees is at most this many times the short side

__all__ = ["RUNTIMES", "LoadedModel", "Predictor", "WriterOptions", "expand_inputs", "load_model",
           "model_input",
           "model_size", "output_paths", "predict", "predict_files", "read_photo", "to_png16",
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


RUNTIMES = ("jax", "onnx")  # Predictor(runtime=...), `depthsense predict --runtime`


def training_side(model: LoadedModel) -> int:
    """The side a model is used at by default: its training image_size when known (rounded
    to the stride), else the family's default (predict's short side, the fixed size of the
    TFLite export, the INT8 calibration's)."""
    size = model.image_size
    return model.family.round_size(size) if size else model.family.default_size


class Predictor:
    """A loaded model ready to run, compiled once per input shape: call it on model-size
    batches, or `predict` photos of any size.

    runtime: "jax" (jit in eval mode on JAX's default device), "onnx" (the model's ONNX
    graph in onnxruntime on the CPU, float32: the graph of `onnx_file`, an export's
    model.onnx, or else built in memory from the variables; the [onnx] extra), or a
    function images (B, h, w, 3) float32 -> (B, h, w) float32 that runs this model another
    way (`speed runtimes` passes its quantised sessions)."""

    def __init__(self, model: LoadedModel, runtime: str | Callable = "jax",
                 onnx_file: str | None = None):
        self.loaded = model
        self.family = model.family
        self.module = registry.build(model.model_config)
        if onnx_file and runtime != "onnx":
            raise ValueError(f"onnx_file {onnx_file!r} is for runtime 'onnx', not {runtime!r}")
        self.runtime = runtime if isinstance(runtime, str) else "custom"
        if callable(runtime):
            self._run = runtime
        elif runtime == "onnx":
            from depthsense_jax import onnx_export

            session = onnx_export.runtime_session(model.model_config, model.variables,
                                                  onnx_file)
            self._run = lambda x: session.run(None, {"images": x})[0]
        elif runtime == "jax":
            self.variables = jax.device_put(model.variables)
            self._apply = jax.jit(lambda v, x: registry.infer(self.module, v, x))
            self._run = lambda x: np.asarray(self._apply(self.variables, jnp.asarray(x)))
        else:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)} or a function, "
                             f"got {runtime!r}")

    @property
    def default_size(self) -> int:
        """The short side photos are resized to: `training_side` of the model."""
        return training_side(self.loaded)

    def model_size(self, height: int, width: int, size: int | None = None) -> tuple[int, int]:
        """`model_size` with this model's stride and default size."""
        return model_size(height, width, size or self.default_size, self.family.stride)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """images: (B, h, w, 3) float32 in [0, 1], h and w multiples of the stride ->
        (B, h, w) float32."""
        return self._run(np.asarray(images, np.float32))

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
                    out[i] = _to_photo_size(d, *images[i].shape[:2])
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


def _to_photo_size(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """A model-size prediction (h, w) resized back to its photo's (height, width), bilinear:
    (height, width) float32."""
    return cv2.resize(np.asarray(depth, np.float32), (width, height),
                      interpolation=cv2.INTER_LINEAR)


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


_SUFFIXES = {"png16": "_depth.png", "color": "_color.png", "npy": ".npy", "side": "_side.png",
             "metric_npy": "_metric.npy", "metric_png16": "_metric_mm.png",
             "metric_json": "_metric.json", "ply": "_points.ply", "npz": "_points.npz"}


def output_paths(stem: str, formats: Sequence[str]) -> list[str]:
    """The files `write_outputs(stem, ..., formats)` writes, in the order of `formats`."""
    unknown = [fmt for fmt in formats if fmt not in _SUFFIXES]
    if unknown:
        raise ValueError(f"--format {','.join(unknown)!r}: choose from {', '.join(FORMATS)}")
    return [stem + _SUFFIXES[fmt] for fmt in formats]


@dataclasses.dataclass(frozen=True)
class WriterOptions:
    """What `write_outputs` needs beyond a prediction for the metric and point-cloud formats
    (read-only: writer threads share it). known: the run's known depths
    (`metric.load_known`; needed by the metric formats, and it makes ply/npz metric);
    camera: how each photo's intrinsics are found (`pointcloud.Camera`); max_depth: the
    metric cap in metres (None: `metric.MAX_DEPTH_FACTOR` x each photo's farthest known
    depth); log: where each photo's fit is reported."""

    known: metric.KnownDepths | None = None
    camera: pointcloud.Camera = dataclasses.field(default_factory=pointcloud.Camera)
    max_depth: float | None = None
    log: Callable[[str], None] = print

    def check(self, formats: Sequence[str]) -> None:
        """A ValueError now, before anything is predicted, for formats these options cannot
        write (metric formats without known depths, a missing extra) or a bad cap."""
        asked = [f for f in formats if f in METRIC_FORMATS]
        if asked and self.known is None:
            raise ValueError(f"--format {','.join(asked)} needs known depths: --metric-from "
                             "CSV_OR_FOLDER")
        if self.known is not None and not set(formats) & {*METRIC_FORMATS, *CLOUD_FORMATS}:
            raise ValueError("--metric-from: no output format uses the known depths; add "
                             f"{', '.join(METRIC_FORMATS + CLOUD_FORMATS)}")
        if self.max_depth is not None and not (np.isfinite(self.max_depth)
                                               and self.max_depth > 0):
            raise ValueError(f"--max-depth must be a positive number of metres, got "
                             f"{self.max_depth}")
        clouds = bool(set(formats) & set(CLOUD_FORMATS))
        pointcloud.require_extras(ply="ply" in formats, exif=clouds and self.camera.needs_exif)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, np.float32))
    return buffer.getvalue()


def _metric_depth(depth: np.ndarray, source: str | None,
                  options: WriterOptions) -> tuple[np.ndarray, metric.MetricFit, str]:
    """(metres (H, W), the fit, where the known points came from) of one photo; a
    ValueError naming it when it has no usable known depths."""
    if options.known is None:
        raise ValueError("metric depth needs known depths (--metric-from)")
    if source is None:
        raise ValueError("metric depth needs the photo's input path (source=) to find its "
                         "known depths")
    points = options.known.for_photo(source)
    fit = metric.fit_known(depth, points, source, options.max_depth)
    options.log(f"{source}: metric depth from {fit.describe()}")
    return metric.to_metric(depth, fit), fit, points.origin


def _write_cloud(stem: str, photo: np.ndarray, depth: np.ndarray, formats: Sequence[str],
                 source: str | None, options: WriterOptions,
                 fit: metric.MetricFit | None) -> None:
    """STEM_points.ply / .npz of `depth` (metres when `fit`, else the relative depth)."""
    intrinsics = options.camera.for_photo(source, *depth.shape, log=options.log)
    xyz, rgb = pointcloud.point_cloud(photo, depth, intrinsics)
    if fit is not None:
        kind, note = "metric", f"metres; {fit.describe()}"
    else:
        kind, note = "relative", pointcloud.RELATIVE_NOTE
    if "ply" in formats:
        comments = [f"depthsense-jax point cloud of {source or stem}", f"depth: {note}",
                    "camera: OpenCV frame (x right, y down, z forward); pinhole "
                    + intrinsics.describe()]
        storage.write_bytes(stem + _SUFFIXES["ply"], pointcloud.ply_bytes(xyz, rgb, comments))
    if "npz" in formats:
        extra = {} if fit is None else {"scale": fit.scale, "shift": fit.shift,
                                        "abs_rel": fit.abs_rel, "rmse": fit.rmse,
                                        "max_depth": fit.max_depth}
        storage.write_bytes(stem + _SUFFIXES["npz"], pointcloud.npz_bytes(
            xyz, rgb, intrinsics, depth.shape, kind, note, **extra))


def write_outputs(stem: str, photo: np.ndarray, depth: np.ndarray, formats: Sequence[str],
                  colormap: str = "inferno", *, source: str | None = None,
                  options: WriterOptions | None = None) -> None:
    """Write `formats` of one prediction next to `stem` (`output_paths` lists the files):
    STEM_depth.png (png16), STEM_color.png (color), STEM.npy (npy), STEM_side.png (photo |
    colour map); with known depths (`options.known`, found by the photo's input path
    `source`): STEM_metric.npy (metric_npy: float32 metres, 0 = unknown),
    STEM_metric_mm.png (metric_png16: uint16 millimetres, 0 = unknown or beyond 65.535 m),
    STEM_metric.json (metric_json: the fit and its errors at the known points); point
    clouds STEM_points.ply (ply) and STEM_points.npz (npz), metric with known depths, else
    relative (`pointcloud`).

    photo: (H, W, 3) float32 in [0, 1]; depth: (H, W) float32 relative inverse depth at the
    photo's size. A photo that cannot be written (no or too few known depths, a
    non-positive fitted scale) is a ValueError naming it. Thread-safe."""
    options = options or WriterOptions()
    metres, fit = None, None
    if set(formats) & set(METRIC_FORMATS) or (options.known is not None
                                              and set(formats) & set(CLOUD_FORMATS)):
        metres, fit, origin = _metric_depth(depth, source, options)
        if "metric_json" in formats:
            # First: on an object store, where nothing is staged, a photo with its metric
            # outputs has its report too.
            report = {"photo": source, "known_from": origin, **fit.to_dict(),
                      "meaning": "1 / depth_m = scale * pred + shift at the known points; "
                      "abs_rel, rmse (m), delta1 of the fitted depth there; max_depth (m): "
                      "the cap, beyond which depth is written as 0 (unknown)"}
            storage.write_text(stem + _SUFFIXES["metric_json"], json.dumps(report, indent=2))
    color = None
    for fmt in formats:
        if fmt == "png16":
            viz.write_image(stem + "_depth.png", to_png16(depth))
        elif fmt == "npy":
            storage.write_bytes(stem + ".npy", _npy_bytes(depth))
        elif fmt in ("color", "side"):
            if color is None:
                color = viz.colorize(depth, colormap=colormap)
            if fmt == "color":
                viz.write_rgb(stem + "_color.png", color)
            else:
                viz.write_rgb(stem + "_side.png",
                              np.concatenate([viz.to_uint8(photo), color], axis=1))
        elif fmt == "metric_npy":
            storage.write_bytes(stem + _SUFFIXES[fmt], _npy_bytes(metres))
        elif fmt == "metric_png16":
            viz.write_image(stem + _SUFFIXES[fmt], metric.to_png_mm(metres))
    if set(formats) & set(CLOUD_FORMATS):
        _write_cloud(stem, photo, metres if fit is not None else
                     pointcloud.relative_depth(depth), formats, source, options, fit)


@dataclasses.dataclass
class Summary:
    """What `predict_files` did with each input photo (input paths, in input order)."""

    written: list[str] = dataclasses.field(default_factory=list)
    existing: list[str] = dataclasses.field(default_factory=list)  # skip_existing: all there
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, why)


# A photo fails alone for these; anything else (a bug, an interrupt) stops the run.
_PHOTO_ERRORS = (ValueError, OSError, cv2.error)
PARTIAL = ".depthsense-partial"  # where a local photo's files are written before renaming


class _Inline(concurrent.futures.Executor):
    """An executor that runs each task when it is submitted: `workers=0`, the plain loop
    (read, predict, write one batch after another)."""

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # handed to whoever reads the result, as a pool does
            future.set_exception(err)
        return future


def _pool(workers: int, name: str) -> concurrent.futures.Executor:
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    return (concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=name)
            if workers else _Inline())


def _load(path: str, predictor: Predictor, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(photo (H, W, 3) float32, model input (h, w, 3) float32) of one file."""
    photo = read_photo(path)
    height, width = predictor.model_size(photo.shape[0], photo.shape[1], size)
    return photo, model_input(photo, height, width)


def _write_photo(stem: str, photo: np.ndarray, depth: np.ndarray, formats: Sequence[str],
                 colormap: str, **options) -> None:
    """`write_outputs` of one photo from its model-size depth (h, w). A local photo's files
    are written under the same names in STEM's folder/PARTIAL/ and renamed into place once
    all are whole, so an interrupted run never leaves a file under an output's name that is
    incomplete (object stores write whole objects already)."""
    depth = _to_photo_size(depth, photo.shape[0], photo.shape[1])
    if storage.is_url(stem):
        write_outputs(stem, photo, depth, formats, colormap, **options)
        return
    folder, base = os.path.split(stem)
    staged = output_paths(os.path.join(folder, PARTIAL, base), formats)
    try:
        write_outputs(os.path.join(folder, PARTIAL, base), photo, depth, formats, colormap,
                      **options)
        for temp, final in zip(staged, output_paths(stem, formats), strict=True):
            os.replace(temp, final)
    except BaseException:
        for temp in staged:
            with contextlib.suppress(OSError):
                os.remove(temp)
        raise


def _present(out_dir: str) -> set[str]:
    """Every file under out_dir (normalised paths); none when it does not exist yet."""
    if not storage.isdir(out_dir):
        return set()
    return {storage.normalize(f) for f in storage.walk_files(out_dir)}


def _bounds(batch_size: int, workers: int) -> tuple[int, int, int]:
    """(photos read ahead, photos waiting in part-full batches, photos being written): what
    bounds the memory of a run of any length."""
    return max(2 * batch_size, 2 * workers), 2 * batch_size, max(2 * batch_size, 2 * workers)


def predict_files(model: LoadedModel, inputs: Sequence[str], out_dir: str,
                  size: int | None = None, formats: Sequence[str] = ("png16", "color"),
                  colormap: str = "inferno", batch_size: int = 4,
                  log: Callable[[str], None] = print, *, skip_existing: bool = False,
                  workers: int = DEFAULT_WORKERS,
                  predictor: Predictor | None = None,
                  writer_options: WriterOptions | None = None) -> Summary:
    """Predict every photo that `inputs` names (files, folders, globs) and write `formats`
    for each into out_dir, keeping the inputs' folder structure.

    `workers` threads read, decode and resize photos ahead of the model, and as many write
    the outputs, while the model runs batches of `batch_size` photos of one model size on
    this thread; what is held at once is bounded (`_bounds`), however many photos there
    are. workers=0 does each step in turn (the plain loop). A local photo's files appear
    whole or not at all (`_write_photo`); skip_existing: a photo whose every output file is
    already in out_dir is not read again (resumes an interrupted run; one run per out_dir
    at a time). A photo
    that cannot be read or written is reported, counted and skipped; when none was written
    or found existing it is a ValueError. `predictor`: a Predictor of `model` to reuse
    (its compilations). writer_options: for the metric and point-cloud formats
    (`write_outputs`)."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"--format {','.join(formats)!r}: choose from {', '.join(FORMATS)}")
    formats = list(dict.fromkeys(formats))  # each file written (and renamed) once
    viz.colormap_id(colormap)  # a bad --colormap fails before anything is read
    (writer_options or WriterOptions()).check(formats)
    predictor = predictor or Predictor(model)
    size = size or predictor.default_size
    predictor.model_size(1, 1, size)  # so does a bad --size
    paths = expand_inputs(inputs)
    if not paths:
        raise ValueError(f"no image files in {list(inputs)}")
    out = storage.expand(out_dir)
    stems = {path: storage.join(out, *name.split("/"))
             for path, name in _output_names(paths).items()}
    summary = Summary()
    todo = paths
    if skip_existing:
        present = _present(out)
        done = {p for p in paths if all(storage.normalize(f) in present
                                        for f in output_paths(stems[p], formats))}
        summary.existing = [p for p in paths if p in done]
        todo = [p for p in paths if p not in done]
    from tqdm import tqdm

    bar = tqdm(total=len(paths), initial=len(summary.existing), unit="photo",
               desc="predict", file=sys.stderr,
               disable=len(paths) < 2 or not sys.stderr.isatty())

    failures: collections.Counter = collections.Counter()  # "unreadable" / "not written"

    def fail(path: str, err: BaseException, what: str) -> None:
        failures[what] += 1
        why = str(err) if path in str(err) else f"{path}: {err}"  # named once
        summary.failed.append((path, why))
        tqdm.write(f"failed {why}", file=sys.stderr)
        bar.update(1)

    write = functools.partial(_write_photo, formats=formats, colormap=colormap,
                              options=writer_options)
    read_ahead, max_waiting, max_writing = _bounds(batch_size, workers)
    readers, writers = _pool(workers, "predict-read"), _pool(workers, "predict-write")
    reading: collections.deque = collections.deque()  # (path, future), in input order
    waiting: dict[tuple[int, int], list] = {}  # model size -> [(path, photo, input)]
    writing: collections.deque = collections.deque()  # (path, future)

    def finish_write() -> None:
        path, future = writing.popleft()
        try:
            future.result()
        except _PHOTO_ERRORS as err:
            fail(path, err, "not written")
            return
        summary.written.append(path)
        bar.update(1)

    def run_batch(key: tuple[int, int]) -> None:
        group = waiting.pop(key)
        batch = np.zeros((batch_size, *key, 3), np.float32)  # a full batch: one program
        batch[:len(group)] = [x for _, _, x in group]
        depths = predictor(batch)
        for (path, photo, _), depth in zip(group, depths, strict=False):
            writing.append((path, writers.submit(write, stems[path], photo, depth,
                                                 source=path)))
            while len(writing) > max_writing:
                finish_write()

    queue = iter(todo)
    try:
        for path in itertools.islice(queue, read_ahead):
            reading.append((path, readers.submit(_load, path, predictor, size)))
        while reading:
            path, future = reading.popleft()
            for more in itertools.islice(queue, 1):
                reading.append((more, readers.submit(_load, more, predictor, size)))
            try:
                photo, x = future.result()
            except _PHOTO_ERRORS as err:
                fail(path, err, "unreadable")
                continue
            key = x.shape[:2]
            waiting.setdefault(key, []).append((path, photo, x))
            if len(waiting[key]) == batch_size:
                run_batch(key)
            elif sum(len(group) for group in waiting.values()) > max_waiting:
                run_batch(max(waiting, key=lambda k: len(waiting[k])))
            while writing and writing[0][1].done():
                finish_write()
        while waiting:
            run_batch(next(iter(waiting)))
        while writing:
            finish_write()
    finally:
        for pool in (readers, writers):
            pool.shutdown(wait=True, cancel_futures=True)  # writes under way end whole
        bar.close()
        for folder in {os.path.dirname(s) for s in stems.values() if not storage.is_url(s)}:
            shutil.rmtree(os.path.join(folder, PARTIAL), ignore_errors=True)
    order = {path: i for i, path in enumerate(paths)}
    summary.written.sort(key=order.__getitem__)
    summary.failed.sort(key=lambda item: order[item[0]])
    log(_report(summary, failures, formats, out_dir, size))
    if not summary.written and not summary.existing:
        raise ValueError(f"none of the {len(paths)} input file(s) could be read and written")
    return summary


def _report(summary: Summary, failures: collections.Counter, formats: Sequence[str],
            out_dir: str, size: int) -> str:
    """The run's last line: photos written, skipped as existing, failed (and why)."""
    line = (f"wrote {', '.join(formats)} for {len(summary.written)} photo(s) to {out_dir} "
            f"(short side {size}); {len(summary.existing)} skipped as existing; "
            f"{len(summary.failed)} failed")
    parts = ([f"skipped {failures['unreadable']} unreadable file(s)"]
             if failures["unreadable"] else [])
    parts += [f"{failures['not written']} not written"] if failures["not written"] else []
    return line + (f" ({', '.join(parts)})" if parts else "")
