"""Ray-traced primitives: planes (infinite, or rectangles with openings), spheres, yaw-rotated
boxes, vertical cylinders and a height-field terrain.

Each intersects a batch of rays (arrays, or scalars that broadcast) in the world frame of
`camera`, and gives the unit normals and texel coordinates of points on its surface.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from depthsense_jax.data.synthetic.camera import F32, Z_FAR, Vec

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


def _slabs(slabs) -> np.ndarray:
    """Ray-box hit by the slab method: ``slabs`` gives, per box axis, the ray origin and
    direction along it (box frame) and the half size; the nearest hit or inf."""
    near, far = None, None
    for oi, di, h in slabs:
        inv = F32(1.0) / di
        t1 = (F32(-h) - oi) * inv
        t2 = (F32(h) - oi) * inv
        lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
        near = lo if near is None else np.maximum(near, lo)
        far = hi if far is None else np.minimum(far, hi)
    return _nearest(near, near <= far)


Rect = tuple[float, float, float, float]  # (u0, u1, v0, v1) in plane coordinates, world units


@dataclasses.dataclass(frozen=True)
class Plane:
    """Plane {p : normal . p = offset}; ``normal`` (unit) points to the camera side;
    ``tangent`` (unit, in the plane) is the texture's u axis, normal x tangent its v axis.

    Plane coordinates of a point p are (tangent . p, (normal x tangent) . p) in world units.
    ``bounds`` (u0, u1, v0, v1) keeps only that rectangle of the plane (None: infinite);
    ``holes`` are rectangles cut out of it (doorways, windows)."""

    normal: Vec
    offset: float
    tangent: Vec
    bounds: Rect | None = None
    holes: tuple[Rect, ...] = ()

    @property
    def bitangent(self) -> Vec:
        """normal x tangent, the texture's v axis."""
        (a, b, c), (x, y, z) = self.normal, self.tangent
        return (b * z - c * y, c * x - a * z, a * y - b * x)

    def bound(self) -> tuple[Vec, float] | None:
        if self.bounds is None:
            return None
        u0, u1, v0, v1 = self.bounds
        um, vm = 0.5 * (u0 + u1), 0.5 * (v0 + v1)
        center = tuple(self.offset * n + um * t + vm * b for n, t, b in
                       zip(self.normal, self.tangent, self.bitangent, strict=True))
        return center, 0.5 * math.hypot(u1 - u0, v1 - v0)

    def intersect(self, o: Sequence[Coord], d: Sequence[Coord], dd: Coord) -> np.ndarray:
        den = _dot(self.normal, d)
        t = (F32(self.offset) - _dot(self.normal, o)) / den
        if self.bounds is None and not self.holes:
            return np.where(t > EPS, t, INF)
        hit = t > EPS
        u = _dot(self.tangent, o) + t * _dot(self.tangent, d)
        v = _dot(self.bitangent, o) + t * _dot(self.bitangent, d)
        if self.bounds is not None:
            u0, u1, v0, v1 = (F32(c) for c in self.bounds)
            hit &= (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
        for u0, u1, v0, v1 in self.holes:
            hit &= ~((u > F32(u0)) & (u < F32(u1)) & (v > F32(v0)) & (v < F32(v1)))
        return np.where(hit, t, INF)

    def attributes(self, px, py, pz, scale):
        n = self.normal
        u = _dot(self.tangent, (px, py, pz)) * F32(scale)
        v = _dot(self.bitangent, (px, py, pz)) * F32(scale)
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
        return _slabs(((ox, dx, self.half[0]), (o[1] - F32(cy), d[1], self.half[1]),
                       (oz, dz, self.half[2])))

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
class OrientedBox:
    """Box with half sizes ``half`` along the unit, orthogonal ``axes`` (three world vectors,
    a rotation's rows) about ``center``: a leaf, a plank or a slab at any angle."""

    center: Vec
    half: Vec
    axes: tuple[Vec, Vec, Vec]

    def bound(self) -> tuple[Vec, float]:
        return self.center, float(np.linalg.norm(self.half))

    def intersect(self, o, d, dd):
        q = [o[i] - F32(self.center[i]) for i in range(3)]
        return _slabs((_dot(axis, q), _dot(axis, d), h)
                      for axis, h in zip(self.axes, self.half, strict=True))

    def attributes(self, px, py, pz, scale):
        q = (px - F32(self.center[0]), py - F32(self.center[1]), pz - F32(self.center[2]))
        local = [_dot(axis, q) for axis in self.axes]
        gaps = [np.abs(np.abs(c) - F32(h)) for c, h in zip(local, self.half, strict=True)]
        face = np.argmin(np.stack(gaps), axis=0)  # the face each point lies on
        n = [np.zeros_like(px) for _ in range(3)]
        for k, axis in enumerate(self.axes):
            sign = np.where(face == k, np.sign(local[k]), F32(0))
            for i in range(3):
                n[i] = n[i] + sign * F32(axis[i])
        u = np.where(face == 0, local[2], local[0]) * F32(scale)
        v = np.where(face == 1, local[2], local[1]) * F32(scale)
        return n[0].astype(F32), n[1].astype(F32), n[2].astype(F32), u, v


def rotation(yaw: float, pitch: float, roll: float = 0.0) -> tuple[Vec, Vec, Vec]:
    """Rows of the rotation that turns a box's local axes by ``roll`` about z, then tilts
    its y axis by ``pitch`` towards z, then turns it by ``yaw`` about the world's y."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    m = ry @ rx @ rz  # local -> world; its columns are the local axes in the world
    return tuple(tuple(m[:, k].tolist()) for k in range(3))


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


@dataclasses.dataclass(frozen=True)
class HeightField:
    """Terrain y = sum_k amplitude_k sin(kx_k x + kz_k z + phase_k) (world units): rolling
    hills seen to the horizon. Rays are marched on a geometric grid of camera depths and the
    first crossing is refined by bisection, so the depth of a hit is the depth of the surface
    point that is shaded (the grid may step over a ridge thinner than its spacing)."""

    amplitude: tuple[float, ...]
    kx: tuple[float, ...]
    kz: tuple[float, ...]
    phase: tuple[float, ...]

    MARCH_STEPS = 24
    BISECTIONS = 8

    def bound(self) -> None:
        return None

    def height(self, x: Coord, z: Coord) -> Coord:
        out: Coord = 0.0
        for a, kx, kz, ph in zip(self.amplitude, self.kx, self.kz, self.phase, strict=True):
            out = out + F32(a) * np.sin(F32(kx) * x + F32(kz) * z + F32(ph))
        return out

    def intersect(self, o, d, dd, t_max: np.ndarray | None = None):
        """Nearest crossing below ``t_max`` (default Z_FAR); origins are above the terrain."""
        shape = np.shape(dd)
        dx, dy, dz = (np.broadcast_to(np.asarray(c, F32), shape).ravel() for c in d)
        ox, oy, oz = (np.broadcast_to(np.asarray(c, F32), shape).ravel() for c in o)
        out = np.full(dx.shape, INF, F32)
        limit = np.full(dx.shape, F32(Z_FAR)) if t_max is None else \
            np.minimum(np.asarray(t_max, F32).ravel(), F32(Z_FAR))
        top = F32(sum(abs(a) for a in self.amplitude))
        amp = [F32(a) for a in self.amplitude]
        # rays that start above every hill and climb never come down to it
        idx = np.flatnonzero(~((oy > top) & (dy >= 0)))
        # along a ray, each wave's argument is phase0 + t * rate
        phase0 = [F32(kx) * ox[idx] + F32(kz) * oz[idx] + F32(ph)
                  for kx, kz, ph in zip(self.kx, self.kz, self.phase, strict=True)]
        rate = [F32(kx) * dx[idx] + F32(kz) * dz[idx]
                for kx, kz in zip(self.kx, self.kz, strict=True)]
        ray_y, ray_dy, lim = oy[idx], dy[idx], limit[idx]
        lo = F32(0)
        for t in np.geomspace(0.1, Z_FAR, self.MARCH_STEPS).astype(F32):
            below = ray_y + t * ray_dy <= _waves(amp, phase0, rate, t)
            if below.any():
                out[idx[below]] = self._refine(
                    lo, t, [p[below] for p in phase0], [r[below] for r in rate],
                    ray_y[below], ray_dy[below], amp)
            # done: hit, past the nearest hit so far, or above every hill and climbing
            keep = ~below & (t <= lim) & ((ray_y + t * ray_dy <= top) | (ray_dy < 0))
            if not keep.all():
                idx, ray_y, ray_dy, lim = idx[keep], ray_y[keep], ray_dy[keep], lim[keep]
                phase0, rate = [p[keep] for p in phase0], [r[keep] for r in rate]
                if not idx.size:
                    break
            lo = t
        return np.where(out < limit, out, INF).reshape(shape)

    def _refine(self, lo, hi, phase0, rate, ray_y, ray_dy, amp) -> np.ndarray:
        """Bisection of [lo, hi] (above, below the terrain) to the crossing."""
        lo = np.full(ray_y.shape, lo, F32)
        hi = np.full(ray_y.shape, hi, F32)
        for _ in range(self.BISECTIONS):
            mid = F32(0.5) * (lo + hi)
            below = ray_y + mid * ray_dy <= _waves(amp, phase0, rate, mid)
            hi = np.where(below, mid, hi)
            lo = np.where(below, lo, mid)
        return hi

    def attributes(self, px, py, pz, scale):
        gx, gz = np.zeros_like(px), np.zeros_like(px)
        for a, kx, kz, ph in zip(self.amplitude, self.kx, self.kz, self.phase, strict=True):
            c = F32(a) * np.cos(F32(kx) * px + F32(kz) * pz + F32(ph))
            gx += F32(kx) * c
            gz += F32(kz) * c
        inv = F32(1) / np.sqrt(gx * gx + gz * gz + F32(1))
        return -gx * inv, inv, -gz * inv, px * F32(scale), pz * F32(scale)


def _waves(amp: list, phase0: list[np.ndarray], rate: list[np.ndarray], t) -> np.ndarray:
    """sum_k amp_k sin(phase0_k + t rate_k): the terrain height under points of rays."""
    out = amp[0] * np.sin(phase0[0] + t * rate[0])
    for a, p, r in zip(amp[1:], phase0[1:], rate[1:], strict=True):
        out += a * np.sin(p + t * r)
    return out
