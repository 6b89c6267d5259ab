"""Scenes and their rendering: a z-buffer ray cast, Lambertian sun with hard or softened
shadows, ambient (optionally from the sky above), fill lights and point lamps, exponential
fog, a gradient sky, a camera white balance, and relative inverse depth.

`render` returns ``image`` (H, W, 3) uint8 RGB, ``depth`` (H, W) float32 relative inverse
depth ``(1 / z) / max(1 / z)`` over the valid pixels (0 on sky) and ``mask`` (H, W) bool.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from depthsense_jax.data.synthetic.camera import F32, Z_FAR, Camera, Rays, Vec, camera_rays
from depthsense_jax.data.synthetic.shapes import INF, Box, Cylinder, HeightField, Plane, Sphere
from depthsense_jax.data.synthetic.textures import Texture, _sample

SHADOW_OFFSET = 2e-3  # shadow rays start this far along the normal (world units)


@dataclasses.dataclass(frozen=True)
class Surface:
    """A shape and its texture; ``casts_shadow`` False leaves it out of the shadow test."""

    shape: Plane | Sphere | Box | Cylinder | HeightField
    texture: Texture
    casts_shadow: bool = True


@dataclasses.dataclass(frozen=True)
class Lamp:
    """A point light at ``position`` (world units) of linear-RGB ``color`` at distance 0,
    falling off as 1 / (1 + (distance / reach)^2); it casts no shadows."""

    position: Vec
    color: tuple[float, float, float]
    reach: float = 2.0


@dataclasses.dataclass(frozen=True)
class Light:
    """Sun ``direction`` (unit, towards the light), linear-RGB ``sun`` and ``ambient``.

    ``hemisphere`` in [0, 1] makes the ambient light come from above: a surface facing up
    gets all of it, one facing down 1 - hemisphere of it (0: the same from everywhere).
    ``fill`` lights are extra directional lights (direction, colour) without shadows;
    ``lamps`` are point lights."""

    direction: Vec
    sun: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: tuple[float, float, float] = (0.3, 0.3, 0.3)
    hemisphere: float = 0.0
    fill: tuple[tuple[Vec, tuple[float, float, float]], ...] = ()
    lamps: tuple[Lamp, ...] = ()


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
    # penumbra: the sun's visibility is blurred over this many pixels (Gaussian sigma; 0 =
    # hard shadows), a cheap stand-in for an area light
    shadow_blur: float = 0.0
    # camera response: linear colour x white_balance x exposure before the gamma
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    exposure: float = 1.0


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
            d = (rays.dx[sl], rays.dy[sl], rays.dz[sl])
            if isinstance(surf.shape, HeightField):  # marched only up to the nearest hit
                t = surf.shape.intersect(o, d, rays.dd[sl], t_max=zbuf[sl])
            else:
                t = surf.shape.intersect(o, d, rays.dd[sl])
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
        blocked = lit[_shadowed(scene, px[lit], py[lit], pz[lit], nx[lit], ny[lit], nz[lit])]
        if scene.shadow_blur > 0 and blocked.size:
            seen = np.ones(cam.height * cam.width, F32)
            seen[pix[blocked]] = 0
            seen = cv2.GaussianBlur(seen.reshape(cam.height, cam.width), (0, 0),
                                    scene.shadow_blur).ravel()
            lam *= seen[pix]
        else:
            lam[blocked] = 0
    ambient = np.asarray(light.ambient, F32)
    if light.hemisphere > 0:
        sky_part = F32(1) - F32(0.5 * light.hemisphere) * (F32(1) - ny)
        shade = sky_part[:, None] * ambient + lam[:, None] * np.asarray(light.sun, F32)
    else:
        shade = ambient + lam[:, None] * np.asarray(light.sun, F32)
    for direction, fill_color in light.fill:
        fx, fy, fz = (F32(c) for c in direction)
        shade += np.maximum(nx * fx + ny * fy + nz * fz, F32(0))[:, None] \
            * np.asarray(fill_color, F32)
    for lamp in light.lamps:
        qx, qy, qz = (F32(c) - p for c, p in zip(lamp.position, (px, py, pz), strict=True))
        dist2 = qx * qx + qy * qy + qz * qz
        cos = np.maximum(nx * qx + ny * qy + nz * qz, F32(0)) / np.sqrt(dist2 + F32(1e-12))
        fall = cos / (F32(1) + dist2 * F32(1.0 / lamp.reach**2))
        shade += fall[:, None] * np.asarray(lamp.color, F32)
    color = albedo * shade
    if scene.fog_density > 0:
        keep = np.exp(-F32(scene.fog_density) * zv)[:, None]
        fog = np.asarray(scene.fog_color, F32)
        color = fog + (color - fog) * keep
    return color, pix


def render(scene: Scene, with_z: bool = False) -> dict[str, np.ndarray]:
    """Render ``scene``: image (H, W, 3) uint8 RGB, depth (H, W) float32 relative inverse
    depth ((1/z) / max(1/z) over valid pixels, 0 elsewhere), mask (H, W) bool; with `with_z`
    also ``z`` (H, W) float32, the camera depth in world units (inf on sky)."""
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
    if scene.white_balance != (1.0, 1.0, 1.0) or scene.exposure != 1.0:
        color *= np.asarray(scene.white_balance, F32) * F32(scene.exposure)
    # linear -> display values with gamma 2; convertScaleAbs rounds and saturates to uint8
    image = cv2.convertScaleAbs(cv2.sqrt(color.reshape(cam.height, cam.width, 3)), alpha=255)
    depth = depth.reshape(cam.height, cam.width)
    out = {"image": image, "depth": depth, "mask": depth > 0}
    if with_z:
        out["z"] = np.where(out["mask"], z.reshape(cam.height, cam.width), np.inf).astype(F32)
    return out
