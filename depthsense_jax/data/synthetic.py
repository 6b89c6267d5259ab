"""Procedural 3-D scenes with exact depth, and their TFDS builder (`synthetic_scenes`).

A tiny vectorised ray caster in NumPy: a pinhole camera looks at a textured ground plane,
optional walls, and a few spheres, yaw-rotated boxes and vertical cylinders that occlude each
other. Every pixel gets one ray; the nearest positive hit is kept by a z-buffer on the
camera-space depth ``z``; surfaces are shaded with a Lambertian sun (with hard shadows) plus
ambient light and, some of the time, exponential fog. Pixels whose ray hits nothing within
``Z_FAR`` are sky.

World frame: y is up, the ground is the plane y = 0, lengths are in metres (arbitrary units).
Camera frame: x right, y down, z forward (the optical axis). Ray directions are scaled so that
their camera-space z component is 1, so the ray parameter ``t`` of a hit *is* its camera depth
``z`` (not the ray length).

Output (see `render_scene`), following the project conventions (docs: DESIGN.md, Conventions):
``image`` (H, W, 3) uint8 RGB; ``depth`` (H, W) float32 **relative inverse depth**
``(1 / z) / max(1 / z)`` over the valid pixels, so the nearest pixel of each image is exactly
1.0, every valid pixel lies in (0, 1], larger = nearer, and invalid (sky) pixels are 0;
``mask`` (H, W) bool, True where a surface was hit (``depth > 0`` and finite).

No sample photographs ship with the installed packages (``cv2.samples`` finds none, scikit-image
is not installed), so every texture is procedural: fractal noise, checkers, stripes, bricks and
marble tiles, mapped in surface coordinates (world units) so that they foreshorten with
perspective.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import tensorflow_datasets as tfds

__all__ = [
    "Z_FAR",
    "Box",
    "Camera",
    "Cylinder",
    "Light",
    "Plane",
    "Scene",
    "Sphere",
    "Surface",
    "SyntheticScenes",
    "SyntheticScenesConfig",
    "Texture",
    "benchmark_render",
    "camera_rays",
    "random_scene",
    "render",
    "render_scene",
    "save_samples",
    "solid_texture",
    "trace",
]

F32 = np.float32
INF = np.float32(np.inf)
Z_FAR = 100.0  # world units; a ray that hits nothing nearer than this sees the sky
EPS = 1e-4  # smallest accepted ray parameter
SHADOW_OFFSET = 2e-3  # shadow rays start this far along the normal (world units)
TEX = 64  # texture tiles are (TEX, TEX, 3)

_YY, _XX = np.mgrid[0:TEX, 0:TEX].astype(F32)
_FREQ = np.sqrt(
    np.fft.fftfreq(TEX)[:, None] ** 2 + np.fft.rfftfreq(TEX)[None, :] ** 2
).astype(F32) * TEX
_FREQ[0, 0] = np.inf  # zero-mean noise: the DC term gets amplitude 0

Vec = tuple[float, float, float]
Coord = np.ndarray | float  # a broadcastable coordinate: an array of rays or one scalar


# ----------------------------------------------------------------------------- camera


@dataclasses.dataclass(frozen=True)
class Camera:
    """Pinhole camera. ``focal`` in pixels; ``pitch`` > 0 looks down, ``yaw`` about +y (rad)."""

    height: int
    width: int
    focal: float
    position: Vec
    pitch: float
    yaw: float

    def basis(self) -> tuple[Vec, Vec, Vec]:
        """World-frame unit vectors of the camera's x (right), y (down) and z (forward) axes."""
        sp, cp = math.sin(self.pitch), math.cos(self.pitch)
        sy, cy = math.sin(self.yaw), math.cos(self.yaw)
        forward = (sy * cp, -sp, cy * cp)
        down = (-sy * sp, -cp, -cy * sp)
        right = (-cy, 0.0, sy)  # down x forward, so the basis is a proper rotation
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
    dy = np.broadcast_to(ys * F32(uy) + F32(fy), (cam.height, cam.width))  # rx's y part is 0
    dz = xs * F32(rz) + (ys * F32(uz) + F32(fz))
    dd = xs * xs + (ys * ys + F32(1.0))
    return Rays(dx, dy, dz, dd)


# ----------------------------------------------------------------------------- shapes


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


# ----------------------------------------------------------------------------- textures


class Texture:
    """Tileable albedo ``tile`` (TEX, TEX, 3) float32 in [0, 1] (linear RGB) covering
    ``period`` world units; ``feature`` is the size of its details in texels (used to fade
    to the ``mean`` colour where a pixel covers many details, against aliasing).

    The tile is made by ``make() -> (tile, feature)`` on first use, so that textures of
    surfaces that end up out of view cost nothing."""

    def __init__(
        self, make: Callable[[], tuple[np.ndarray, float]], period: float = 1.0
    ) -> None:
        self._make = make
        self.period = float(period)

    @functools.cached_property
    def _made(self) -> tuple[np.ndarray, float, np.ndarray]:
        tile, feature = self._make()
        tile = np.ascontiguousarray(tile, F32)
        return tile, float(feature), tile.mean((0, 1), dtype=F32)

    @property
    def tile(self) -> np.ndarray:
        return self._made[0]

    @property
    def feature(self) -> float:
        return self._made[1]

    @property
    def mean(self) -> np.ndarray:
        return self._made[2]

    @property
    def scale(self) -> float:
        """Texels per world unit."""
        return TEX / self.period


def solid_texture(color: Sequence[float]) -> Texture:
    """A uniform albedo ``color`` (3,) in [0, 1]."""
    c = np.asarray(color, F32)
    return Texture(lambda: (np.broadcast_to(c, (TEX, TEX, 3)), float(TEX)))


_NOISE_BETAS = np.linspace(0.8, 2.8, 41)


@functools.cache
def _noise_bank() -> np.ndarray:
    """Tileable 1/f^beta noise fields (len(_NOISE_BETAS), 4, TEX, TEX) float32 in [0, 1],
    made once from a fixed seed (about 40 ms)."""
    rng = np.random.default_rng(20240917)
    spec = np.fft.rfft2(rng.standard_normal((4, TEX, TEX)))
    bank = np.stack([np.fft.irfft2(spec * _FREQ ** -beta, s=(TEX, TEX)) for beta in _NOISE_BETAS])
    bank -= bank.min(axis=(2, 3), keepdims=True)
    bank /= bank.max(axis=(2, 3), keepdims=True)
    return bank.astype(F32)


def _fractal_noise(rng: np.random.Generator, beta: float) -> np.ndarray:
    """Tileable 1/f^beta noise (TEX, TEX) float32 in [0, 1]: a field of the bank nearest in
    beta, randomly shifted (wrapping), transposed and negated."""
    i = int(np.abs(_NOISE_BETAS - beta).argmin())
    j, dy, dx, flip = (int(x) for x in rng.integers(0, [4, TEX, TEX, 4]))
    n = np.roll(_noise_bank()[i, j], (dy, dx), axis=(0, 1))
    if flip & 1:
        n = n.T
    return 1.0 - n if flip & 2 else n


def _random_color(rng: np.random.Generator, lo: float = 0.03, hi: float = 0.85) -> np.ndarray:
    """A random linear-RGB albedo (3,) float32, saturation varied."""
    c = rng.uniform(lo, hi, 3)
    grey = c.mean()
    return np.clip(grey + (c - grey) * rng.uniform(0.2, 1.3), 0.0, 1.0).astype(F32)


TEXTURE_KINDS = ("noise", "checker", "stripes", "bricks", "marble", "solid")


def _pattern(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, float]:
    """A tileable scalar pattern (TEX, TEX) in [0, 1] of ``kind`` and its feature size."""
    if kind == "noise":
        return _fractal_noise(rng, rng.uniform(1.2, 2.8)), 6.0
    if kind == "checker":
        cells = int(rng.choice([2, 4, 8]))
        a = ((_XX * cells // TEX) + (_YY * cells // TEX)) % 2
        return a, TEX / cells
    if kind == "stripes":
        kx, ky = int(rng.integers(0, 5)), int(rng.integers(0, 5))
        kx = kx if kx or ky else 1
        s = np.sin((kx * _XX + ky * _YY) * F32(2 * math.pi / TEX))
        a = (s > 0).astype(F32) if rng.random() < 0.5 else 0.5 + 0.5 * s
        return a, TEX / (2 * max(abs(kx), abs(ky)))
    if kind == "bricks":
        rows, per_row = int(rng.choice([4, 8])), int(rng.choice([2, 4]))
        bh, bw, m = TEX // rows, TEX // per_row, 2
        shift = (_YY // bh % 2) * (bw // 2)
        mortar = (_YY % bh < m) | ((_XX + shift) % bw < m)
        return 1.0 - mortar.astype(F32), float(m * 2)
    if kind == "marble":
        k = int(rng.integers(1, 4))
        n = _fractal_noise(rng, 2.0)
        a = 0.5 + 0.5 * np.sin((k * _XX / TEX + rng.uniform(0.5, 2.0) * n) * F32(2 * math.pi))
        return a, TEX / (2 * k)
    return np.zeros((TEX, TEX), F32), float(TEX)


def _texture_tile(rng: np.random.Generator, kinds: Sequence[str]) -> tuple[np.ndarray, float]:
    """A random tile (TEX, TEX, 3) of one of ``kinds`` and its feature size in texels."""
    kind = str(rng.choice(list(kinds)))
    a, feature = _pattern(rng, kind)
    c1, c2 = _random_color(rng), _random_color(rng)
    tile = c1 + (c2 - c1) * a[..., None]
    if kind != "noise" and rng.random() < 0.7:  # grain / dirt
        amp = float(rng.uniform(0.05, 0.3))
        grain = _fractal_noise(rng, float(rng.uniform(0.8, 2.0)))
        tile = tile * (1.0 - amp + 2.0 * amp * grain)[..., None]
    return np.clip(tile, 0.0, 1.0), feature


def random_texture(
    rng: np.random.Generator, period: tuple[float, float], kinds: Sequence[str] = TEXTURE_KINDS
) -> Texture:
    """A random texture of one of ``kinds`` covering U(period) world units per tile; draws
    two numbers from ``rng`` (the tile itself comes from its own generator, on first use)."""
    seed = int(rng.integers(2**63))
    return Texture(
        lambda: _texture_tile(np.random.default_rng(seed), kinds), rng.uniform(*period)
    )


def _sample(tex: Texture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear, wrapped lookup of ``tex`` at texel coordinates u, v (n,) -> (n, 3)."""
    n = u.shape[0]
    cols = 128
    rows = -(-n // cols)
    mu = np.zeros(rows * cols, F32)
    mv = np.zeros(rows * cols, F32)
    np.mod(u, F32(TEX), out=mu[:n])  # small maps: remap works in fixed point
    np.mod(v, F32(TEX), out=mv[:n])
    out = cv2.remap(tex.tile, mu.reshape(rows, cols), mv.reshape(rows, cols),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return out.reshape(-1, 3)[:n]


# ----------------------------------------------------------------------------- scene


@dataclasses.dataclass(frozen=True)
class Surface:
    shape: Plane | Sphere | Box | Cylinder
    texture: Texture
    casts_shadow: bool = True


@dataclasses.dataclass(frozen=True)
class Light:
    """Sun ``direction`` (unit, towards the light), linear-RGB ``sun`` and ``ambient``."""

    direction: Vec
    sun: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: tuple[float, float, float] = (0.3, 0.3, 0.3)


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything `render` needs; fog_density 0 means no fog (1 / world units)."""

    camera: Camera
    surfaces: tuple[Surface, ...]
    light: Light
    sky_horizon: tuple[float, float, float] = (0.75, 0.8, 0.85)
    sky_zenith: tuple[float, float, float] = (0.2, 0.35, 0.75)
    fog_density: float = 0.0
    fog_color: tuple[float, float, float] = (0.75, 0.8, 0.85)
    shadows: bool = True


def _screen_rect(cam: Camera, center: Vec, radius: float) -> tuple[int, int, int, int] | None:
    """Pixel rows [r0, r1) and columns [c0, c1) covering the image of a sphere, None when
    it is out of view; the whole image when the sphere reaches the camera plane."""
    basis = cam.basis()
    rel = [c - p for c, p in zip(center, cam.position, strict=True)]
    x, y, z = (sum(a * b for a, b in zip(axis, rel, strict=True)) for axis in basis)
    if z + radius <= 0 or z - radius > Z_FAR:
        return None
    if z <= radius * 1.001:
        return 0, cam.height, 0, cam.width

    def span(c: float, n_pix: int) -> tuple[int, int]:
        # tangent lines x = a z to the sphere: a = (c z -+ r sqrt(c^2 + z^2 - r^2)) / (z^2 - r^2)
        root = radius * math.sqrt(c * c + z * z - radius * radius)
        den = z * z - radius * radius
        lo, hi = (c * z - root) / den, (c * z + root) / den
        lo_px = lo * cam.focal + n_pix / 2 - 0.5
        hi_px = hi * cam.focal + n_pix / 2 - 0.5
        return max(0, math.floor(lo_px)), min(n_pix, math.ceil(hi_px) + 1)

    r0, r1 = span(y, cam.height)
    c0, c1 = span(x, cam.width)
    if r0 >= r1 or c0 >= c1:
        return None
    return r0, r1, c0, c1


def trace(scene: Scene, rays: Rays | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer ray cast: camera depth z (H, W) float32 (inf where nothing is hit within
    Z_FAR) and the index of the visible surface (H, W) int16 (-1 where none)."""
    cam = scene.camera
    rays = camera_rays(cam) if rays is None else rays
    zbuf = np.full((cam.height, cam.width), F32(Z_FAR), F32)
    ids = np.full((cam.height, cam.width), -1, np.int16)
    o = tuple(F32(c) for c in cam.position)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for k, surf in enumerate(scene.surfaces):
            bound = surf.shape.bound()
            rect = (0, cam.height, 0, cam.width) if bound is None else _screen_rect(cam, *bound)
            if rect is None:
                continue
            sl = (slice(rect[0], rect[1]), slice(rect[2], rect[3]))
            t = surf.shape.intersect(o, (rays.dx[sl], rays.dy[sl], rays.dz[sl]), rays.dd[sl])
            closer = t < zbuf[sl]
            np.copyto(zbuf[sl], t, where=closer)
            np.copyto(ids[sl], np.int16(k), where=closer)
    return np.where(ids >= 0, zbuf, INF), ids


def _shadowed(
    scene: Scene, px: np.ndarray, py: np.ndarray, pz: np.ndarray,
    nx: np.ndarray, ny: np.ndarray, nz: np.ndarray,
) -> np.ndarray:
    """Whether points (n,) with normals (n,) see the sun blocked by a bounded surface."""
    lx, ly, lz = (F32(c) for c in scene.light.direction)
    off = F32(SHADOW_OFFSET)
    ox, oy, oz = px + off * nx, py + off * ny, pz + off * nz
    blocked = np.zeros(px.shape, bool)
    for surf in scene.surfaces:
        bound = surf.shape.bound()
        if bound is None or not surf.casts_shadow:
            continue
        (cx, cy, cz), radius = bound
        # cheap cull: does the shadow ray pass the bounding sphere (in front of the origin)?
        qx, qy, qz = ox - F32(cx), oy - F32(cy), oz - F32(cz)
        b = qx * lx + qy * ly + qz * lz
        c = qx * qx + qy * qy + qz * qz - F32(radius**2)
        cand = (b * b >= c) & ((b < 0) | (c < 0))
        if isinstance(surf.shape, Sphere):
            blocked |= cand & (c > 0)
            continue
        idx = np.flatnonzero(cand & ~blocked)
        if idx.size:
            t = surf.shape.intersect((ox[idx], oy[idx], oz[idx]), (lx, ly, lz), F32(1))
            blocked[idx[np.isfinite(t)]] = True
    return blocked


def _sky(scene: Scene, rays: Rays, sel: np.ndarray) -> np.ndarray:
    """Sky colour (n, 3) linear RGB for the rays at flat indices ``sel``."""
    elev = rays.dy.ravel()[sel] / np.sqrt(rays.dd.ravel()[sel])
    w = np.sqrt(np.clip(elev * F32(2.5), F32(0), F32(1)))[:, None]
    hor, zen = np.asarray(scene.sky_horizon, F32), np.asarray(scene.sky_zenith, F32)
    return hor + (zen - hor) * w


def _surface_colors(
    scene: Scene, rays: Rays, z: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Shaded, fogged linear-RGB colours (n, 3) of the n hit pixels and their flat indices
    (n,), grouped by surface so that each surface's pixels are one contiguous slice."""
    cam = scene.camera
    flat_ids = ids.ravel()
    pix = np.flatnonzero(flat_ids >= 0)
    idv = flat_ids[pix]
    order = np.argsort(idv, kind="stable")
    pix, idv = pix[order], idv[order]
    ends = np.cumsum(np.bincount(idv, minlength=len(scene.surfaces)))
    zv = z.ravel()[pix]
    dx, dy, dz, dd = (a.ravel()[pix] for a in (rays.dx, rays.dy, rays.dz, rays.dd))
    cx, cy, cz = (F32(c) for c in cam.position)
    px, py, pz = cx + zv * dx, cy + zv * dy, cz + zv * dz
    n = pix.size
    nx, ny, nz = np.empty(n, F32), np.empty(n, F32), np.empty(n, F32)
    albedo = np.empty((n, 3), F32)
    for k, surf in enumerate(scene.surfaces):
        sel = slice(ends[k - 1] if k else 0, ends[k])
        if sel.start == sel.stop:
            continue
        tex = surf.texture
        snx, sny, snz, u, v = surf.shape.attributes(px[sel], py[sel], pz[sel], tex.scale)
        nx[sel], ny[sel], nz[sel] = snx, sny, snz
        col = _sample(tex, u, v)
        # texels per pixel: the pixel footprint grows with z and at grazing angles
        cos = np.abs(snx * dx[sel] + sny * dy[sel] + snz * dz[sel]) / np.sqrt(dd[sel])
        footprint = zv[sel] * F32(tex.scale / cam.focal) / np.maximum(cos, F32(0.15))
        w = np.clip(footprint * F32(1.0 / tex.feature) - F32(0.5), F32(0), F32(1))[:, None]
        albedo[sel] = col + (tex.mean - col) * w
    light = scene.light
    lx, ly, lz = (F32(c) for c in light.direction)
    lam = np.maximum(nx * lx + ny * ly + nz * lz, F32(0))
    if scene.shadows:
        lit = np.flatnonzero(lam > 0)
        lam[lit[_shadowed(scene, px[lit], py[lit], pz[lit], nx[lit], ny[lit], nz[lit])]] = 0
    shade = np.asarray(light.ambient, F32) + lam[:, None] * np.asarray(light.sun, F32)
    color = albedo * shade
    if scene.fog_density > 0:
        keep = np.exp(-F32(scene.fog_density) * zv)[:, None]
        fog = np.asarray(scene.fog_color, F32)
        color = fog + (color - fog) * keep
    return color, pix


def render(scene: Scene) -> dict[str, np.ndarray]:
    """Render ``scene``: image (H, W, 3) uint8 RGB, depth (H, W) float32 relative inverse
    depth ((1/z) / max(1/z) over valid pixels, 0 elsewhere), mask (H, W) bool."""
    cam = scene.camera
    rays = camera_rays(cam)
    z, ids = trace(scene, rays)
    color = np.empty((cam.height * cam.width, 3), F32)
    depth = np.zeros(cam.height * cam.width, F32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        hit_color, pix = _surface_colors(scene, rays, z, ids)
        color[pix] = hit_color
        sky = np.flatnonzero(ids.ravel() < 0)
        color[sky] = _sky(scene, rays, sky)
    if pix.size:
        inv = F32(1) / z.ravel()[pix]
        depth[pix] = inv / inv.max()
    # linear -> display values with gamma 2; convertScaleAbs rounds and saturates to uint8
    image = cv2.convertScaleAbs(cv2.sqrt(color.reshape(cam.height, cam.width, 3)), alpha=255)
    depth = depth.reshape(cam.height, cam.width)
    return {"image": image, "depth": depth, "mask": depth > 0}


# ----------------------------------------------------------------------------- random scenes


def _unit(v: Sequence[float]) -> Vec:
    a = np.asarray(v, float)
    return tuple((a / np.linalg.norm(a)).tolist())


def _random_camera(rng: np.random.Generator, height: int, width: int) -> Camera:
    """Horizontal field of view 40-80 degrees, 0.5-3 units high, looking 2-25 degrees down."""
    fov = math.radians(rng.uniform(40.0, 80.0))
    focal = 0.5 * width / math.tan(0.5 * fov)
    return Camera(
        height, width, focal, (0.0, float(rng.uniform(0.5, 3.0)), 0.0),
        pitch=math.radians(rng.uniform(2.0, 25.0)), yaw=float(rng.uniform(-math.pi, math.pi)),
    )


def _random_walls(rng: np.random.Generator, cam: Camera) -> list[Plane]:
    """0-2 vertical walls: one ahead (45 % of scenes, 6-25 units away, turned up to 45
    degrees), one beside the camera (25 %, 2.5-8 units to the left or right)."""
    sy, cy = math.sin(cam.yaw), math.cos(cam.yaw)
    fwd, right = np.array([sy, 0.0, cy]), np.array([-cy, 0.0, sy])
    cpos = np.asarray(cam.position)
    walls = []  # (normal towards the camera, a point on the wall)
    if rng.random() < 0.45:
        a = math.radians(rng.uniform(-45.0, 45.0))
        normal = -(math.cos(a) * fwd + math.sin(a) * right)
        walls.append((normal, cpos + rng.uniform(6.0, 25.0) * fwd))
    if rng.random() < 0.25:
        side = rng.choice([-1.0, 1.0])
        a = math.radians(rng.uniform(-20.0, 20.0))
        normal = -side * (math.cos(a) * right + math.sin(a) * fwd)
        walls.append((normal, cpos + side * rng.uniform(2.5, 8.0) * right))
    return [
        Plane(_unit(n), float(n @ point), _unit(np.cross([0.0, 1.0, 0.0], n)))
        for n, point in walls
    ]


def _random_shape(
    rng: np.random.Generator, cam: Camera, walls: Sequence[Plane]
) -> Sphere | Box | Cylinder | None:
    """A sphere, box or cylinder somewhere in view, on the camera's side of every wall."""
    sy, cy = math.sin(cam.yaw), math.cos(cam.yaw)
    tan_half = 0.5 * cam.width / cam.focal
    for _ in range(10):
        dist = math.exp(rng.uniform(math.log(1.8), math.log(16.0)))
        lateral = dist * tan_half * rng.uniform(-1.1, 1.1)
        x = cam.position[0] + dist * sy - lateral * cy
        z = cam.position[2] + dist * cy + lateral * sy
        floating = rng.random() < 0.15
        kind = rng.choice(["sphere", "box", "cylinder"])
        if kind == "sphere":
            r = rng.uniform(0.25, 1.2)
            y = r + rng.uniform(0.2, 1.5) if floating else r * rng.uniform(0.6, 1.0)
            shape = Sphere((x, y, z), r)
        elif kind == "box":
            half = rng.uniform(0.2, 1.1, 3)
            y = half[1] + (rng.uniform(0.2, 1.5) if floating else 0.0)
            shape = Box((x, y, z), tuple(half.tolist()), float(rng.uniform(0, math.pi)))
        else:
            r, h = rng.uniform(0.15, 0.8), rng.uniform(0.3, 3.0)
            y0 = rng.uniform(0.2, 1.5) if floating else 0.0
            shape = Cylinder(x, z, r, y0, y0 + h)
        (bx, by, bz), br = shape.bound()
        clear_camera = math.dist((bx, by, bz), cam.position) > br + 0.3
        inside_walls = all(_dot(w.normal, (bx, by, bz)) > w.offset for w in walls)
        if clear_camera and inside_walls:
            return shape
    return None


def _random_light(rng: np.random.Generator, walls: Sequence[Plane]) -> Light:
    """Sun 15-75 degrees high, on the lit side of every wall; tinted sun and ambient."""
    direction: Vec = (0.0, 1.0, 0.0)
    for _ in range(20):
        elev, azim = math.radians(rng.uniform(15.0, 75.0)), rng.uniform(-math.pi, math.pi)
        cand = (math.cos(elev) * math.sin(azim), math.sin(elev), math.cos(elev) * math.cos(azim))
        if all(_dot(w.normal, cand) > 0.15 for w in walls):
            direction = cand
            break
    tint = rng.uniform(-0.12, 0.12, 3)
    sun = np.clip(rng.uniform(0.8, 1.3) * (1.0 + tint), 0, None)
    ambient = rng.uniform(0.12, 0.45) * (1.0 - 0.5 * tint)
    return Light(direction, tuple(sun.tolist()), tuple(ambient.tolist()))


def _random_sky(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Horizon and zenith colours (linear RGB): clear, overcast or dusk."""
    kind = rng.choice(["clear", "overcast", "dusk"], p=[0.6, 0.25, 0.15])
    if kind == "clear":
        zen = np.array([0.1, 0.25, 0.75]) * rng.uniform(0.7, 1.2)
        hor = np.array([0.7, 0.8, 0.9]) * rng.uniform(0.8, 1.1)
    elif kind == "overcast":
        zen = np.full(3, rng.uniform(0.4, 0.8))
        hor = zen * rng.uniform(1.0, 1.3)
    else:
        zen = np.array([0.15, 0.15, 0.4]) * rng.uniform(0.7, 1.2)
        hor = np.array([0.95, 0.55, 0.3]) * rng.uniform(0.8, 1.1)
    jitter = 1.0 + rng.uniform(-0.08, 0.08, 3)
    return np.clip(hor * jitter, 0, 1), np.clip(zen * jitter, 0, 1)


def random_scene(rng: np.random.Generator, size: int | tuple[int, int] = 160) -> Scene:
    """A random scene for an image of ``size`` (int, or (height, width)) pixels."""
    height, width = (size, size) if np.ndim(size) == 0 else size
    cam = _random_camera(rng, int(height), int(width))
    ground_tex = random_texture(rng, (0.5, 4.0), ("checker", "noise", "stripes", "marble"))
    surfaces = [Surface(Plane((0.0, 1.0, 0.0), 0.0, (1.0, 0.0, 0.0)), ground_tex, False)]
    walls = _random_walls(rng, cam)
    for wall in walls:
        tex = random_texture(rng, (1.0, 5.0), ("bricks", "noise", "stripes", "checker"))
        surfaces.append(Surface(wall, tex, False))
    for _ in range(int(rng.integers(3, 9))):
        shape = _random_shape(rng, cam, walls)
        if shape is not None:
            surfaces.append(Surface(shape, random_texture(rng, (0.2, 1.5))))
    light = _random_light(rng, walls)
    hor, zen = _random_sky(rng)
    fog = rng.uniform(0.01, 0.08) if rng.random() < 0.35 else 0.0
    fog_color = np.clip(hor * rng.uniform(0.85, 1.0), 0, 1)
    return Scene(
        cam, tuple(surfaces), light, tuple(hor.tolist()), tuple(zen.tolist()), float(fog),
        tuple(fog_color.tolist()),
    )


def render_scene(seed: int, index: int, size: int | tuple[int, int] = 160) -> dict[str, np.ndarray]:
    """Render scene ``index`` of the stream ``seed``; deterministic in (seed, index).

    Args:
      seed, index: non-negative ints; the scene comes from ``np.random.default_rng([seed, index])``.
      size: image size, an int for square images or (height, width).

    Returns:
      ``image`` (H, W, 3) uint8 RGB; ``depth`` (H, W) float32 relative inverse depth
      ``(1/z) / max(1/z)`` (z = camera-space depth), in (0, 1] on valid pixels with max exactly
      1, 0 on sky; ``mask`` (H, W) bool, True where a surface was hit.
    """
    return render(random_scene(np.random.default_rng([seed, index]), size))


# ----------------------------------------------------------------------------- tools


def benchmark_render(num: int = 200, size: int = 160) -> float:
    """Images per second of `render_scene` (wall clock, this process, OpenCV on 1 thread).

    NumPy's element-wise kernels are single-threaded; run with ``OMP_NUM_THREADS=1`` for a
    strict single-core figure."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        render_scene(0, 0, size)  # warm-up
        start = time.perf_counter()
        for i in range(num):
            render_scene(12345, i, size)
        return num / (time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)


def depth_colormap(depth: np.ndarray) -> np.ndarray:
    """Inferno colour map of a (H, W) relative inverse depth in [0, 1] -> (H, W, 3) uint8 RGB;
    invalid (0) pixels are black."""
    bgr = cv2.applyColorMap(np.round(depth * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    bgr[depth <= 0] = 0
    return bgr[..., ::-1].copy()


def save_samples(path: str | Path, seed: int = 0, size: int = 160) -> Path:
    """Save three scenes of stream ``seed`` as one PNG: rows of image | depth colour map."""
    rows = []
    for i in range(3):
        s = render_scene(seed, i, size)
        rows.append(np.concatenate([s["image"], depth_colormap(s["depth"])], axis=1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.concatenate(rows, axis=0)[..., ::-1]):
        raise OSError(f"could not write {path}")
    return path


# ----------------------------------------------------------------------------- TFDS builder


@dataclasses.dataclass(eq=False)
class SyntheticScenesConfig(tfds.core.BuilderConfig):
    """Image size in pixels and number of scenes per split."""

    height: int = 160
    width: int = 160
    num_train: int = 4000
    num_validation: int = 400


class SyntheticScenes(tfds.core.GeneratorBasedBuilder):
    """Procedural 3-D scenes with exact relative inverse depth (`render_scene`).

    Features: ``image`` (H, W, 3) uint8; ``depth`` (H, W) float32 relative inverse depth
    (larger = nearer, max 1 per image, 0 = invalid: the pipeline derives the mask as
    depth > 0 and finite); ``file_name`` (text, unique). Scene i of a split is
    ``render_scene(SPLIT_SEEDS[split], i, (H, W))``; nothing is downloaded.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: spheres, boxes, cylinders, ground, walls."}
    BUILDER_CONFIGS = [
        SyntheticScenesConfig(name="160", description="4,000 train / 400 validation, 160x160."),
        SyntheticScenesConfig(
            name="tiny", description="64 train / 16 validation, 64x64 (tests).",
            height=64, width=64, num_train=64, num_validation=16,
        ),
    ]
    SPLIT_SEEDS = {"train": 0, "validation": 1}

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        shape = (cfg.height, cfg.width)
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip(),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(*shape, 3), dtype=np.uint8),
                "depth": tfds.features.Tensor(
                    shape=shape, dtype=np.float32, encoding=tfds.features.Encoding.ZLIB
                ),
                "file_name": tfds.features.Text(),
            }),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # everything is generated
        cfg = self.builder_config
        return {
            "train": self._generate_examples("train", cfg.num_train),
            "validation": self._generate_examples("validation", cfg.num_validation),
        }

    def _generate_examples(self, split: str, num: int) -> Iterator[tuple[str, dict]]:
        cfg = self.builder_config
        seed = self.SPLIT_SEEDS[split]
        for i in range(num):
            scene = render_scene(seed, i, (cfg.height, cfg.width))
            key = f"{split}_{i:06d}"
            yield key, {
                "image": scene["image"],
                "depth": scene["depth"],
                "file_name": f"{key}.png",
            }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["bench", "samples"])
    parser.add_argument("--num", type=int, default=200)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--out", default="docs/synthetic_samples.png")
    args = parser.parse_args()
    if args.command == "bench":
        print(f"{benchmark_render(args.num, args.size):.1f} images/s at {args.size}x{args.size}")
    else:
        print(save_samples(args.out, size=args.size))
