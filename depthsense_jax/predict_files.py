"""`depthsense predict`: photos on disk -> depth files, with a progress bar and a tally."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from depthsense_jax import inference
from depthsense_jax.data import show

FORMATS = ("png16", "color", "npy", "side")
CHUNK = 64  # photos read and held at once


@dataclasses.dataclass
class Summary:
    written: list[str] = dataclasses.field(default_factory=list)  # input paths done
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, why)


def colormap_id(name: str) -> int:
    attr = f"COLORMAP_{name.upper()}"
    if not hasattr(cv2, attr):
        known = sorted(a[9:].lower() for a in dir(cv2) if a.startswith("COLORMAP_"))
        raise ValueError(f"--colormap {name!r} is not an OpenCV colour map; choose from "
                         f"{', '.join(known)}")
    return getattr(cv2, attr)


def to_png16(depth: np.ndarray) -> np.ndarray:
    """(H, W) relative depth -> uint16 normalised to 0..65535 over the image (larger =
    nearer); a constant map gives 0."""
    lo, hi = float(depth.min()), float(depth.max())
    scaled = (depth - lo) / (hi - lo) if hi > lo else np.zeros_like(depth)
    return np.round(scaled * 65535).astype(np.uint16)


def _output_names(paths: Sequence[str]) -> dict[str, str]:
    """Input path -> output stem, relative to the inputs' common folder (no collisions)."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    root = os.path.commonpath(folders) if folders else ""
    return {p: os.path.splitext(os.path.relpath(os.path.abspath(p), root))[0] for p in paths}


def write_outputs(stem: str, photo: np.ndarray, depth: np.ndarray, formats: Sequence[str],
                  colormap: int) -> None:
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    color = None
    for fmt in formats:
        if fmt == "png16":
            _imwrite(stem + "_depth.png", to_png16(depth))
        elif fmt == "npy":
            np.save(stem + ".npy", depth.astype(np.float32))
        elif fmt in ("color", "side"):
            if color is None:
                color = show.colorize(depth, colormap=colormap)
            if fmt == "color":
                show.write_rgb(stem + "_color.png", color)
            else:
                rgb = (np.clip(photo, 0, 1) * 255 + 0.5).astype(np.uint8)
                show.write_rgb(stem + "_side.png", np.concatenate([rgb, color], axis=1))


def _imwrite(path: str, image: np.ndarray) -> None:
    if not cv2.imwrite(path, image):
        raise OSError(f"could not write {path}")


def run(model_config, variables: dict, inputs: Sequence[str], out_dir: str, size: int = 384,
        formats: Sequence[str] = ("png16", "color"), colormap: str = "inferno",
        batch_size: int = 4, log: Callable[[str], None] = print) -> Summary:
    """Predict every photo that `inputs` names and write `formats` for each into out_dir."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"--format {','.join(formats)!r}: choose from {', '.join(FORMATS)}")
    cmap = colormap_id(colormap)
    inference.model_size(32, 32, size)  # a bad --size fails before anything is read
    paths = inference.expand_inputs(inputs)
    if not paths:
        raise ValueError(f"no image files in {list(inputs)}")
    names = _output_names(paths)
    predictor = inference.Predictor(model_config, variables)
    summary = Summary()
    from tqdm import tqdm

    bar = tqdm(total=len(paths), unit="photo", desc="predict", file=sys.stderr,
               disable=len(paths) < 2 or not sys.stderr.isatty())
    for start in range(0, len(paths), CHUNK):
        photos, kept = [], []
        for path in paths[start:start + CHUNK]:
            try:
                photos.append(inference.read_photo(path))
                kept.append(path)
            except (ValueError, OSError) as err:
                summary.skipped.append((path, str(err)))
                tqdm.write(f"skipped {path}: {err}", file=sys.stderr)
                bar.update(1)
        depths = inference.predict(predictor, photos, size=size, batch_size=batch_size,
                                   on_batch=bar.update)
        for path, photo, depth in zip(kept, photos, depths, strict=True):
            write_outputs(os.path.join(out_dir, names[path]), photo, depth, formats, cmap)
            summary.written.append(path)
    bar.close()
    log(f"wrote {', '.join(formats)} for {len(summary.written)} photo(s) to {out_dir}"
        + (f"; skipped {len(summary.skipped)} unreadable file(s)" if summary.skipped else ""))
    return summary
