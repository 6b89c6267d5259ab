"""Relative depth for videos: frames batched through the jitted predictor, optional
temporal stabilisation, and an .mp4 colour map (or video | depth side by side) out.

Stabilisation. A relative-depth model predicts each frame up to its own scale and shift, and
those drift from frame to frame: the main source of flicker. With `stabilize`, each frame's
prediction p (at the model's resolution) is mapped to a * p + b fitted to a running reference
R by robust least squares over the pixels whose brightness changed little since the previous
frame (|grey_t - grey_t-1| < `STATIC_THRESHOLD`; Cauchy-weighted, `IRLS_STEPS` reweightings),
and R follows the aligned frames: R <- (1 - alpha) R + alpha * aligned on those pixels,
R <- aligned elsewhere. alpha (`--smoothing`, default `DEFAULT_SMOOTHING`) is the weight of
the newest frame: 1 aligns each frame to the previous one only (drift accumulates), smaller
values remember ~1/alpha frames. The fit never flips or flattens the order: a > 0, else the
frame is matched to R's mean and spread. The colour map's range follows the same average.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from depthsense_jax import storage, viz
from depthsense_jax.inference import LoadedModel, Predictor, model_input, to_png16
from depthsense_jax.losses.scale_shift import robust_fit_scale_shift

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                  ".flv", ".3gp", ".ts")
FORMATS = ("color", "side", "npy", "png16")
DEFAULT_SMOOTHING = 0.2
STATIC_THRESHOLD = 0.04  # brightness change in [0, 1] below which a pixel counts as static
IRLS_STEPS = 5
MIN_STATIC_FRACTION = 0.01  # fewer static pixels than this: fit over all pixels
RANGE_QUANTILES = (0.01, 0.99)  # the colour map's range within a frame


def is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_SUFFIXES)


# Stabilisation -----------------------------------------------------------------------------


class StabilizerState(NamedTuple):
    """reference (h, w) float32: the running aligned depth; grey (h, w): the previous frame's
    brightness; color_range (2,): the running colour-map range; started: a frame was seen."""

    reference: jax.Array
    grey: jax.Array
    color_range: jax.Array
    started: jax.Array


def init_state(height: int, width: int) -> StabilizerState:
    zeros = jnp.zeros((height, width), jnp.float32)
    return StabilizerState(zeros, zeros, jnp.zeros(2, jnp.float32), jnp.asarray(False))


def robust_scale_shift(pred: jax.Array, reference: jax.Array, weights: jax.Array,
                       steps: int = IRLS_STEPS) -> tuple[jax.Array, jax.Array]:
    """(a, b) with a * pred + b ~ reference over `weights` (h, w) in [0, 1]: the package's
    robust fit (`losses.scale_shift.robust_fit_scale_shift`: least squares reweighted
    `steps` times by Cauchy weights) on one frame. a >= 0 is not enforced here."""
    a, b = robust_fit_scale_shift(pred[None], reference[None], weights[None], steps=steps)
    return a[0], b[0]


def _moments_fit(pred, reference):
    """(a, b) matching pred's mean and spread to the reference's; a = 0 for a flat pred."""
    sp, sr = jnp.std(pred), jnp.std(reference)
    a = jnp.where(sp > 1e-12 * (jnp.abs(jnp.mean(pred)) + sp) + 1e-30,
                  sr / jnp.maximum(sp, 1e-30), 0.0)
    return a, jnp.mean(reference) - a * jnp.mean(pred)


def _stabilize_one(state: StabilizerState, pred, grey, valid, smoothing):
    static = (jnp.abs(grey - state.grey) < STATIC_THRESHOLD).astype(jnp.float32)
    enough = jnp.mean(static) >= MIN_STATIC_FRACTION
    weights = jnp.where(enough, static, jnp.ones_like(static))
    a, b = robust_scale_shift(pred, state.reference, weights)
    a_m, b_m = _moments_fit(pred, state.reference)
    a, b = jnp.where(a > 0, a, a_m), jnp.where(a > 0, b, b_m)
    aligned = jnp.where(state.started, a * pred + b, pred)
    blended = (1.0 - smoothing) * state.reference + smoothing * aligned
    reference = jnp.where(state.started & (static > 0), blended, aligned)
    lo_hi = jnp.quantile(aligned, jnp.asarray(RANGE_QUANTILES))
    color_range = jnp.where(state.started,
                            (1.0 - smoothing) * state.color_range + smoothing * lo_hi, lo_hi)
    new = StabilizerState(reference, grey, color_range, jnp.asarray(True))
    # Padding frames of a last, partial batch leave the state as it was.
    new = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, state)
    return new, (aligned, new.color_range)


@jax.jit
def stabilize(state: StabilizerState, preds: jax.Array, greys: jax.Array, count: jax.Array,
              smoothing: float | jax.Array = DEFAULT_SMOOTHING):
    """Align a batch of consecutive frames: preds, greys (B, h, w) float32 (depth, and
    brightness in [0, 1]); the first `count` are real frames. Returns (state, aligned (B, h,
    w), color ranges (B, 2))."""
    valid = jnp.arange(preds.shape[0]) < count
    smoothing = jnp.asarray(smoothing, jnp.float32)

    def step(carry, xs):
        return _stabilize_one(carry, *xs, smoothing)

    state, (aligned, ranges) = jax.lax.scan(
        step, state, (preds.astype(jnp.float32), greys.astype(jnp.float32), valid))
    return state, aligned, ranges


def flicker(depths: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute change between consecutive frames of (T, H, W) depth, after one
    normalisation of the whole sequence (median 0, mean absolute deviation 1, over `mask`):
    per-frame scale and shift jumps count, a global scale does not."""
    depths = np.asarray(depths, np.float64)
    mask = np.ones(depths.shape, bool) if mask is None else np.asarray(mask, bool)
    values = depths[mask]
    centre = np.median(values)
    spread = np.mean(np.abs(values - centre))
    normalised = (depths - centre) / (spread if spread > 0 else 1.0)
    both = mask[1:] & mask[:-1]
    change = np.abs(normalised[1:] - normalised[:-1])
    return float(change[both].mean()) if both.any() else 0.0


# Video files -------------------------------------------------------------------------------


@dataclasses.dataclass
class VideoResult:
    frames: int  # frames predicted and written
    expected: int  # frames the container announced (0 when it does not say)
    outputs: list[str]  # files written
    stopped_early: bool


def _open(path: str):
    if not os.path.isfile(path):  # a URL was downloaded first (predict_video)
        raise FileNotFoundError(f"{path}: no such video file")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"{path}: not a readable video (OpenCV could not open it; corrupt, "
                         "or a container/codec this OpenCV build lacks)")
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise ValueError(f"{path}: not a readable video (no frame could be decoded)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return capture, first, (fps if fps and np.isfinite(fps) and fps > 0 else 25.0), max(count, 0)


def _writer(path: str, fps: float, width: int, height: int):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"could not open {path} for writing (mp4v)")
    return writer


def _frames(capture, first: np.ndarray) -> Iterator[np.ndarray]:
    """`first`, then every frame `capture` still decodes, as (H, W, 3) uint8 RGB."""
    frame = first
    while frame is not None:
        yield _to_rgb(frame)
        ok, frame = capture.read()
        if not ok:
            return


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(frame[..., :3], cv2.COLOR_BGR2RGB)


def predict_video(model: LoadedModel, path: str, out_dir: str, size: int | None = None,
                  formats: Sequence[str] = ("color",), colormap: str = "inferno",
                  batch_size: int = 4, stabilize_frames: bool = False,
                  smoothing: float = DEFAULT_SMOOTHING, predictor: Predictor | None = None,
                  log: Callable[[str], None] = print) -> VideoResult:
    """Predict every frame of the video `path` and write into out_dir, for NAME.EXT:
    NAME_depth.mp4 (color: the colour map; side: video | colour map side by side; not
    both), NAME_depth.npy ((T, H, W) float32, the raw or stabilised predictions at the
    video's size) and NAME_depth/000000.png... (png16). Frames are predicted `batch_size`
    at a time at the model size of `size` (default: the training size).

    A video that cannot be opened or decoded is a ValueError. One whose frames stop before
    the count its container announced keeps the frames written so far and says so.

    `path` and `out_dir` may be URLs: the video is downloaded (a decoder reads files) and
    the outputs are written to a local folder, then uploaded."""
    if storage.is_url(path) or storage.is_url(out_dir):
        with storage.local_file(path) as local, storage.staged_folder(out_dir) as folder:
            result = predict_video(
                model, local, folder, size, formats, colormap, batch_size, stabilize_frames,
                smoothing, predictor, log=lambda s: log(s.replace(local, path).replace(
                    folder, out_dir)))
        return dataclasses.replace(result, outputs=[
            storage.join(out_dir, os.path.relpath(o, folder)) + ("/" if o.endswith(os.sep)
                                                                 else "")
            for o in result.outputs])
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"--format {','.join(formats)!r} for a video: choose from "
                         f"{', '.join(FORMATS)}")
    if "color" in formats and "side" in formats:
        raise ValueError("a video gets one NAME_depth.mp4: choose color or side, not both")
    if not 0.0 < smoothing <= 1.0:
        raise ValueError(f"--smoothing must be in (0, 1], got {smoothing}")
    cmap = viz.colormap_id(colormap)
    predictor = predictor or Predictor(model)
    capture, frame, fps, expected = _open(path)
    height, width = frame.shape[:2]
    h, w = predictor.model_size(height, width, size)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0] + "_depth")
    outputs: list[str] = []
    writer = None
    if "color" in formats or "side" in formats:
        outputs.append(stem + ".mp4")
        writer = _writer(stem + ".mp4", fps, width * (2 if "side" in formats else 1), height)
    raw = None
    if "npy" in formats:
        raw = open(stem + ".npy.part", "wb")
    if "png16" in formats:
        os.makedirs(stem, exist_ok=True)
        outputs.append(stem + os.sep)
    state = init_state(h, w)
    from tqdm import tqdm

    bar = tqdm(total=expected or None, unit="frame", desc=os.path.basename(path),
               file=sys.stderr, disable=not sys.stderr.isatty())
    done, stopped = 0, False
    frames_left = _frames(capture, frame)
    try:
        while frames := list(itertools.islice(frames_left, batch_size)):
            inputs = np.stack([model_input(f, h, w) for f in frames])
            count = len(frames)
            padded = np.concatenate(
                [inputs, np.zeros((batch_size - count, h, w, 3), np.float32)])
            depth = predictor(padded)
            if stabilize_frames:
                greys = padded @ np.asarray([0.299, 0.587, 0.114], np.float32)
                state, depth, ranges = stabilize(state, depth, greys, count, smoothing)
                depth, ranges = np.asarray(depth), np.asarray(ranges)
            for i in range(count):
                full = cv2.resize(np.asarray(depth[i], np.float32), (width, height),
                                  interpolation=cv2.INTER_LINEAR)
                if writer is not None:
                    lo_hi = tuple(ranges[i]) if stabilize_frames else tuple(
                        np.quantile(full, RANGE_QUANTILES))
                    colour = viz.colorize(full, colormap=cmap, value_range=lo_hi)
                    if "side" in formats:
                        colour = np.concatenate([frames[i], colour], axis=1)
                    writer.write(cv2.cvtColor(colour, cv2.COLOR_RGB2BGR))
                if raw is not None:
                    raw.write(full.astype(np.float32).tobytes())
                if "png16" in formats:
                    if not cv2.imwrite(os.path.join(stem, f"{done + i:06d}.png"),
                                       to_png16(full)):
                        raise OSError(f"could not write {stem}/{done + i:06d}.png")
            done += count
            bar.update(count)
        stopped = bool(expected) and done < expected
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
        if raw is not None:
            raw.close()
            _finish_npy(stem + ".npy", done, height, width)
    if raw is not None:
        outputs.insert(1 if writer is not None else 0, stem + ".npy")
    log(f"{path}: {done} frame(s) at {width}x{height}, model size {w}x{h}"
        + (", stabilised" if stabilize_frames else "") + f" -> {', '.join(outputs)}")
    if stopped:
        log(f"warning: {path}: its frames stopped after {done} of the {expected} its "
            f"container announces (truncated or corrupt); kept the {done} frame(s) written")
    return VideoResult(done, expected, outputs, stopped)


def _finish_npy(path: str, frames: int, height: int, width: int) -> None:
    """NAME.npy.part (raw float32 frames) -> NAME.npy of shape (frames, height, width)."""
    part = path + ".part"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                    shape=(frames, height, width))
    if frames:
        data = np.memmap(part, np.float32, mode="r", shape=(frames, height, width))
        for start in range(0, frames, 64):
            out[start:start + 64] = data[start:start + 64]
        del data
    out.flush()
    del out
    os.remove(part)
