"""The pinhole camera and its per-pixel rays.

World frame: y is up, the ground is the plane y = 0, lengths are in metres (arbitrary units).
Camera frame: x right, y down, z forward (the optical axis). Ray directions are scaled so that
their camera-space z component is 1, so the ray parameter ``t`` of a hit *is* its camera depth
``z`` (not the ray length).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

F32 = np.float32
Z_FAR = 100.0  # world units; a ray that hits nothing nearer than this sees the sky

Vec = tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Camera:
    """Pinhole camera. ``focal`` in pixels; ``pitch`` > 0 looks down, ``yaw`` about +y,
    ``roll`` > 0 turns the picture clockwise about the optical axis (radians)."""

    height: int
    width: int
    focal: float
    position: Vec
    pitch: float
    yaw: float
    roll: float = 0.0

    def basis(self) -> tuple[Vec, Vec, Vec]:
        """World-frame unit vectors of the camera's x (right), y (down) and z (forward) axes."""
        sp, cp = math.sin(self.pitch), math.cos(self.pitch)
        sy, cy = math.sin(self.yaw), math.cos(self.yaw)
        forward = (sy * cp, -sp, cy * cp)
        down = (-sy * sp, -cp, -cy * sp)
        right = (-cy, 0.0, sy)  # down x forward, so the basis is a proper rotation
        if self.roll:
            sr, cr = math.sin(self.roll), math.cos(self.roll)
            right, down = (
                tuple(cr * r + sr * d for r, d in zip(right, down, strict=True)),
                tuple(cr * d - sr * r for r, d in zip(right, down, strict=True)),
            )
        return right, down, forward

    def normalised_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates on the z = 1 plane: x (W,) and y (H,) float32."""
        xn = (np.arange(self.width, dtype=F32) + F32(0.5 - self.width / 2)) / F32(self.focal)
        yn = (np.arange(self.height, dtype=F32) + F32(0.5 - self.height / 2)) / F32(self.focal)
        return xn, yn


@dataclasses.dataclass(frozen=True)
class Rays:
    """Camera rays: world directions ``dx, dy, dz`` (H, W) float32 with camera z = 1, and
    their squared length ``dd`` (H, W); all rays start at the camera position."""

    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray
    dd: np.ndarray


def camera_rays(cam: Camera) -> Rays:
    """One ray per pixel centre; the ray parameter of a hit equals its camera depth z."""
    xn, yn = cam.normalised_coords()
    xs, ys = xn[None, :], yn[:, None]
    (rx, ry, rz), (ux, uy, uz), (fx, fy, fz) = cam.basis()
    dx = xs * F32(rx) + (ys * F32(ux) + F32(fx))
    if ry == 0.0:  # no roll: the right axis is horizontal
        dy = np.broadcast_to(ys * F32(uy) + F32(fy), (cam.height, cam.width))
    else:
        dy = xs * F32(ry) + (ys * F32(uy) + F32(fy))
    dz = xs * F32(rz) + (ys * F32(uz) + F32(fz))
    dd = xs * xs + (ys * ys + F32(1.0))
    return Rays(dx, dy, dz, dd)
