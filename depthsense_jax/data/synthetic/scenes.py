"""Random scenes: camera, walls, shapes, sun and sky drawn from a NumPy generator, so that
scene ``index`` of stream ``seed`` is the same on every machine (`render_scene`); plus a
render benchmark and a sample picture.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from depthsense_jax.data.synthetic.camera import Camera, Vec
from depthsense_jax.data.synthetic.renderer import Light, Scene, Surface, render
from depthsense_jax.data.synthetic.shapes import Box, Cylinder, Plane, Sphere, _dot
from depthsense_jax.data.synthetic.textures import random_texture
from depthsense_jax.data.synthetic.worlds import random_world
from depthsense_jax.viz import colorize


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


def scene_for(seed: int, index: int, size: int | tuple[int, int] = 160,
              families: Sequence[str] = ()) -> Scene:
    """The scene `render_scene` renders: `random_scene` when ``families`` is empty (the
    first dataset), else `worlds.random_world` over those families."""
    rng = np.random.default_rng([seed, index])
    return random_world(rng, size, families) if families else random_scene(rng, size)


def render_scene(seed: int, index: int, size: int | tuple[int, int] = 160,
                 families: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Render scene ``index`` of the stream ``seed``; deterministic in its arguments.

    Args:
      seed, index: non-negative ints; the scene comes from ``np.random.default_rng([seed, index])``.
      size: image size, an int for square images or (height, width).
      families: scene families of `worlds.FAMILIES` ("indoor", "terrain", ...) to draw from;
        empty = the first dataset's layout (`random_scene`).

    Returns:
      ``image`` (H, W, 3) uint8 RGB; ``depth`` (H, W) float32 relative inverse depth
      ``(1/z) / max(1/z)`` (z = camera-space depth), in (0, 1] on valid pixels with max exactly
      1, 0 on sky; ``mask`` (H, W) bool, True where a surface was hit.
    """
    return render(scene_for(seed, index, size, families))


def render_sequence(seed: int, index: int, num_frames: int = 48,
                    size: int | tuple[int, int] = (192, 256), truck: float = 0.03,
                    pan: float = 0.004, families: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Scene ``index`` of stream ``seed`` (the scene `render_scene` draws) seen by a moving
    camera: each frame it slides ``truck`` world units to its right and turns ``pan``
    radians to the left (parallax and objects crossing the view, nothing entering the
    camera). Deterministic in its arguments.

    Returns ``image`` (T, H, W, 3) uint8 RGB; ``inverse_depth`` (T, H, W) float32, exact
    1 / z on one scale for the whole sequence (0 on sky); ``mask`` (T, H, W) bool.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    scene = scene_for(seed, index, size, families)
    cam = scene.camera
    right = np.asarray(cam.basis()[0])
    frames = []
    for t in range(num_frames):
        position = tuple((np.asarray(cam.position) + t * truck * right).tolist())
        moved = dataclasses.replace(cam, position=position, yaw=cam.yaw + t * pan)
        frames.append(render(dataclasses.replace(scene, camera=moved), with_z=True))
    z = np.stack([f["z"] for f in frames])
    mask = np.isfinite(z)
    return {"image": np.stack([f["image"] for f in frames]),
            "inverse_depth": np.where(mask, 1.0 / np.where(mask, z, 1.0), 0.0).astype(np.float32),
            "mask": mask}


# ----------------------------------------------------------------------------- tools


def benchmark_render(num: int = 200, size: int = 160, families: Sequence[str] = ()) -> float:
    """Images per second of `render_scene` (wall clock, this process, OpenCV on 1 thread)
    for the scenes of ``families`` (empty: the first dataset's).

    NumPy's element-wise kernels are single-threaded; run with ``OMP_NUM_THREADS=1`` for a
    strict single-core figure."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        render_scene(0, 0, size, families)  # warm-up
        start = time.perf_counter()
        for i in range(num):
            render_scene(12345, i, size, families)
        return num / (time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)


def save_samples(path: str | Path, seed: int = 0, size: int = 160,
                 families: Sequence[str] = (), num: int = 3) -> Path:
    """Save ``num`` scenes of stream ``seed`` as one PNG: rows of image | depth colour map."""
    rows = []
    for i in range(num):
        s = render_scene(seed, i, size, families)
        # depth is already in [0, 1] with max 1 per image: a fixed range keeps it as rendered
        colour = colorize(s["depth"], mask=s["depth"] > 0, value_range=(0.0, 1.0))
        rows.append(np.concatenate([s["image"], colour], axis=1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.concatenate(rows, axis=0)[..., ::-1]):
        raise OSError(f"could not write {path}")
    return path
