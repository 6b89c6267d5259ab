"""Ray-traced primitives: an infinite plane, spheres, yaw-rotated boxes, vertical cylinders.

Each intersects a batch of rays (arrays, or scalars that broadcast) in the world frame of
`camera`, and gives the unit normals and texel coordinates of points on its surface.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from depthsense_jax.data.synthetic.camera import F32, Vec

INF = np.float32(np.inf)
EPS = 1e-4  # smallest accepted ray parameter
# Texture tiles are (TEX, TEX, 3). Shapes give texel coordinates, and curved ones need the
# tile size to wrap a whole number of tiles round their circumference.
TEX = 64

Coord = np.ndarray | float  # a broadcastable coordinate: an array of rays or one scalar


class Shape(Protocol):
    """What the tracer needs from a primitive."""

    def bound(self) -> tuple[Vec, float] | None:
        """Bounding sphere (centre, radius), or None when unbounded."""

    def intersect(
        self, o: Sequence[Coord], d: Sequence[Coord], dd: Coord
    ) -> np.ndarray:
        """Ray parameter of the nearest hit with t > EPS, inf on a miss; origins outside."""

    def attributes(
        self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, scale: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Unit normals (nx, ny, nz) and texel coordinates (u, v) at surface points (n,)."""


def _dot(n: Vec, x: Sequence[Coord]) -> Coord:
    """n . x for a constant vector n, skipping its zero components."""
    out: Coord = 0.0
    for ni, xi in zip(n, x, strict=True):
        if ni != 0.0:
            out = out + F32(ni) * xi if ni != 1.0 else out + xi
    return out


def _nearest(t: np.ndarray, hit: np.ndarray) -> np.ndarray:
    return np.where(hit & (t > EPS), t, INF)


@dataclasses.dataclass(frozen=True)
class Plane:
    """Infinite plane {p : normal . p = offset}; ``normal`` (unit) points to the camera side;
    ``tangent`` (unit, in the plane) is the texture's u axis, normal x tangent its v axis."""

    normal: Vec
    offset: float
    tangent: Vec

    def bound(self) -> None:
        return None

    def intersect(self, o: Sequence[Coord], d: Sequence[Coord], dd: Coord) -> np.ndarray:
        den = _dot(self.normal, d)
        t = (F32(self.offset) - _dot(self.normal, o)) / den
        return np.where(t > EPS, t, INF)

    def attributes(self, px, py, pz, scale):
        n = self.normal
        b = np.cross(np.asarray(n), np.asarray(self.tangent)).tolist()
        u = _dot(self.tangent, (px, py, pz)) * F32(scale)
        v = _dot(tuple(b), (px, py, pz)) * F32(scale)
        ones = np.ones_like(px)
        return ones * F32(n[0]), ones * F32(n[1]), ones * F32(n[2]), u, v


def _wrap_reps(radius: float, scale: float) -> float:
    """Texels per radian round a circle so that a whole number of tiles fits (no seam)."""
    reps = max(1, round(2 * math.pi * radius * scale / TEX))
    return reps * TEX / (2 * math.pi)


@dataclasses.dataclass(frozen=True)
class Sphere:
    """Sphere of ``radius`` about ``center`` (world units)."""

    center: Vec
    radius: float

    def bound(self) -> tuple[Vec, float]:
        return self.center, self.radius

    def intersect(self, o, d, dd):
        cx, cy, cz = self.center
        ox, oy, oz = o[0] - F32(cx), o[1] - F32(cy), o[2] - F32(cz)
        b = d[0] * ox + d[1] * oy + d[2] * oz
        c = ox * ox + oy * oy + oz * oz - F32(self.radius**2)
        disc = b * b - dd * c
        t = (-b - np.sqrt(np.maximum(disc, F32(0)))) / dd
        return _nearest(t, disc >= 0)

    def attributes(self, px, py, pz, scale):
        cx, cy, cz = self.center
        inv_r = F32(1.0 / self.radius)
        qx, qy, qz = px - F32(cx), py - F32(cy), pz - F32(cz)
        u = np.arctan2(qz, qx) * F32(_wrap_reps(self.radius, scale))
        v = qy * F32(scale)
        return qx * inv_r, qy * inv_r, qz * inv_r, u, v


@dataclasses.dataclass(frozen=True)
class Box:
    """Box with half sizes ``half`` along its local axes, rotated by ``yaw`` about +y."""

    center: Vec
    half: Vec
    yaw: float

    def bound(self) -> tuple[Vec, float]:
        return self.center, float(np.linalg.norm(self.half))

    def _to_local(self, x: Coord, z: Coord) -> tuple[Coord, Coord]:
        c, s = F32(math.cos(self.yaw)), F32(math.sin(self.yaw))
        return c * x - s * z, s * x + c * z

    def intersect(self, o, d, dd):
        cx, cy, cz = self.center
        ox, oz = self._to_local(o[0] - F32(cx), o[2] - F32(cz))
        dx, dz = self._to_local(d[0], d[2])
        near, far = None, None
        for oi, di, hi in ((ox, dx, self.half[0]), (o[1] - F32(cy), d[1], self.half[1]),
                           (oz, dz, self.half[2])):
            inv = F32(1.0) / di
            t1 = (F32(-hi) - oi) * inv
            t2 = (F32(hi) - oi) * inv
            lo, hi_t = np.minimum(t1, t2), np.maximum(t1, t2)
            near = lo if near is None else np.maximum(near, lo)
            far = hi_t if far is None else np.minimum(far, hi_t)
        return _nearest(near, near <= far)

    def attributes(self, px, py, pz, scale):
        cx, cy, cz = self.center
        hx, hy, hz = (F32(h) for h in self.half)
        lx, lz = self._to_local(px - F32(cx), pz - F32(cz))
        ly = py - F32(cy)
        gx, gy, gz = np.abs(np.abs(lx) - hx), np.abs(np.abs(ly) - hy), np.abs(np.abs(lz) - hz)
        on_x = (gx <= gy) & (gx <= gz)
        on_y = ~on_x & (gy <= gz)
        on_z = ~on_x & ~on_y
        nlx = np.where(on_x, np.sign(lx), F32(0))
        nly = np.where(on_y, np.sign(ly), F32(0))
        nlz = np.where(on_z, np.sign(lz), F32(0))
        c, s = F32(math.cos(self.yaw)), F32(math.sin(self.yaw))
        nx, nz = c * nlx + s * nlz, -s * nlx + c * nlz  # back to the world frame
        u = np.where(on_x, lz, lx) * F32(scale)
        v = np.where(on_y, lz, ly) * F32(scale)
        return nx.astype(F32), nly.astype(F32), nz.astype(F32), u, v


@dataclasses.dataclass(frozen=True)
class Cylinder:
    """Vertical cylinder: axis through (x, z), radius, from height y0 to y1, capped."""

    x: float
    z: float
    radius: float
    y0: float
    y1: float

    def bound(self) -> tuple[Vec, float]:
        half = 0.5 * (self.y1 - self.y0)
        return (self.x, self.y0 + half, self.z), math.hypot(self.radius, half)

    def intersect(self, o, d, dd):
        ox, oz = o[0] - F32(self.x), o[2] - F32(self.z)
        r2 = F32(self.radius**2)
        a = d[0] * d[0] + d[2] * d[2]
        b = d[0] * ox + d[2] * oz
        disc = b * b - a * (ox * ox + oz * oz - r2)
        t = (-b - np.sqrt(np.maximum(disc, F32(0)))) / a
        y = o[1] + t * d[1]
        t = _nearest(t, (disc >= 0) & (y >= F32(self.y0)) & (y <= F32(self.y1)))
        for level, from_above in ((self.y1, True), (self.y0, False)):
            if not _cap_possible(o[1], d[1], level, from_above):
                continue
            tc = (F32(level) - o[1]) / d[1]
            xc, zc = ox + tc * d[0], oz + tc * d[2]
            t = np.where((tc > EPS) & (xc * xc + zc * zc <= r2) & (tc < t), tc, t)
        return t

    def attributes(self, px, py, pz, scale):
        qx, qz = px - F32(self.x), pz - F32(self.z)
        rad = np.sqrt(qx * qx + qz * qz)
        d_top, d_bot = np.abs(py - F32(self.y1)), np.abs(py - F32(self.y0))
        d_side = np.abs(rad - F32(self.radius))
        top = (d_top < d_side) & (d_top <= d_bot)
        bot = ~top & (d_bot < d_side)
        side = ~(top | bot)
        inv_r = F32(1.0 / self.radius)
        nx = np.where(side, qx * inv_r, F32(0))
        nz = np.where(side, qz * inv_r, F32(0))
        ny = np.where(top, F32(1), np.where(bot, F32(-1), F32(0)))
        u = np.where(side, np.arctan2(qz, qx) * F32(_wrap_reps(self.radius, scale)),
                     qx * F32(scale))
        v = np.where(side, py, qz) * F32(scale)
        return nx, ny, nz, u, v


def _cap_possible(oy: Coord, dy: Coord, level: float, from_above: bool) -> bool:
    """Whether rays from outside can reach a cap at height ``level`` (cheap scalar checks)."""
    if from_above:
        if np.ndim(dy) == 0 and dy >= 0:
            return False
        return not (np.ndim(oy) == 0 and oy <= level)
    if level <= 0.0:  # a cap on the ground is hidden by it
        return False
    if np.ndim(dy) == 0 and dy <= 0:
        return False
    return not (np.ndim(oy) == 0 and oy >= level)
