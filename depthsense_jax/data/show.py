"""Pictures of batches: image | depth colour map | mask, one row per example."""

from __future__ import annotations

import cv2
import numpy as np


def colorize(depth: np.ndarray, mask: np.ndarray | None = None,
             colormap: int = cv2.COLORMAP_INFERNO, value_range: tuple | None = None,
             ) -> np.ndarray:
    """(H, W) relative inverse depth -> (H, W, 3) uint8 RGB colour map, normalised over the
    valid pixels (bright = near) or to `value_range` (lo, hi), clipped; invalid pixels are
    black."""
    depth = np.asarray(depth, np.float32)
    valid = np.isfinite(depth) if mask is None else (np.asarray(mask, bool) & np.isfinite(depth))
    out = np.zeros(depth.shape + (3,), np.uint8)
    if valid.any():
        lo, hi = value_range or (depth[valid].min(), depth[valid].max())
        scaled = np.where(valid, np.clip((depth - lo) / max(hi - lo, 1e-12), 0.0, 1.0), 0.0)
        colour = cv2.applyColorMap((255 * scaled).astype(np.uint8), colormap)
        out[valid] = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)[valid]
    return out


def sample_grid(batch: dict, num: int, gap: int = 2) -> np.ndarray:
    """Rows of image | depth | mask for the first `num` examples of a batch dict:
    (rows * (S + gap), 3 * (S + gap), 3) uint8 RGB on white."""
    rows = []
    for i in range(min(num, len(batch["image"]))):
        image = (np.clip(batch["image"][i], 0, 1) * 255).astype(np.uint8)
        depth = colorize(batch["depth"][i], batch["mask"][i])
        mask = np.repeat((batch["mask"][i].astype(np.uint8) * 255)[..., None], 3, axis=-1)
        tiles = [np.pad(t, ((0, gap), (0, gap), (0, 0)), constant_values=255)
                 for t in (image, depth, mask)]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def write_rgb(path: str, rgb: np.ndarray) -> None:
    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"could not write {path!r} (is the folder there and the suffix .png?)")
