"""Pictures: the one depth colour map, image tiles on a white grid, and image writing
(to files or URLs).

Every picture the project draws (data samples, the training predictions picture, predicted
photos, the synthetic scene samples) goes through `colorize`, so they share one look.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from depthsense_jax import storage


def colormap_id(name: str) -> int:
    """OpenCV colour map constant of a name such as "inferno"; ValueError listing the names."""
    attr = f"COLORMAP_{name.upper()}"
    if not hasattr(cv2, attr):
        known = sorted(a[9:].lower() for a in dir(cv2) if a.startswith("COLORMAP_"))
        raise ValueError(f"colour map {name!r} is not an OpenCV colour map; choose from "
                         f"{', '.join(known)}")
    return getattr(cv2, attr)


def colorize(depth: np.ndarray, mask: np.ndarray | None = None,
             colormap: int | str = "inferno", value_range: tuple | None = None,
             ) -> np.ndarray:
    """(H, W) relative inverse depth -> (H, W, 3) uint8 RGB colour map.

    Normalised over the valid pixels (bright = near) or to `value_range` (lo, hi), clipped;
    pixels outside `mask` (or not finite) are black. colormap: an OpenCV name or constant.
    """
    if isinstance(colormap, str):
        colormap = colormap_id(colormap)
    depth = np.asarray(depth, np.float32)
    valid = np.isfinite(depth) if mask is None else (np.asarray(mask, bool) & np.isfinite(depth))
    out = np.zeros(depth.shape + (3,), np.uint8)
    if valid.any():
        lo, hi = value_range or (depth[valid].min(), depth[valid].max())
        scaled = np.where(valid, np.clip((depth - lo) / max(hi - lo, 1e-12), 0.0, 1.0), 0.0)
        colour = cv2.applyColorMap(np.round(255 * scaled).astype(np.uint8), colormap)
        out[valid] = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)[valid]
    return out


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1] -> uint8 (rounded, clipped)."""
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def grid(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tiles (each (h, w, 3) uint8, equal sizes) laid out in rows, each followed by a white
    `gap` to its right and below: (rows * (h + gap), cols * (w + gap), 3) uint8."""
    padded = [
        np.concatenate([np.pad(t, ((0, gap), (0, gap), (0, 0)), constant_values=255)
                        for t in row], axis=1)
        for row in rows
    ]
    return np.concatenate(padded, axis=0)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """A copy of a (h, w, 3) uint8 tile with `text` written small in its top-left corner,
    white on a dark band."""
    out = tile.copy()
    scale = max(0.3, min(1.0, out.shape[1] / 320))
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    out[: height + base + 2, : width + 4] //= 3
    cv2.putText(out, text, (2, height + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def encode_image(path: str, image: np.ndarray) -> bytes:
    """The bytes of an image file for `path`'s suffix (PNG, JPEG, ...): uint8 or uint16,
    (H, W) or (H, W, 3) BGR, as cv2.imwrite takes them."""
    try:
        ok, data = cv2.imencode(os.path.splitext(str(path))[1] or ".png", image)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"could not write {str(path)!r} (is the suffix .png or .jpg?)")
    return data.tobytes()


def write_image(path: str, image: np.ndarray) -> None:
    """Write a uint8/uint16 (H, W) or (H, W, 3) BGR image to a file or URL (by suffix)."""
    storage.write_bytes(str(path), encode_image(path, image))


def write_rgb(path: str, rgb: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB to an image file or URL (PNG, JPEG, ... by suffix)."""
    write_image(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
