"""Procedural 3-D scenes with exact depth, and their TFDS builder (`synthetic_scenes`).

A tiny vectorised ray caster in NumPy: a pinhole camera (with pitch, yaw and roll) looks at
planes (infinite, or rectangles with doorways and windows cut out), a height-field terrain,
and spheres, yaw-rotated boxes and vertical cylinders that occlude each other. Every pixel
gets one ray; the nearest positive hit is kept by a z-buffer on the camera-space depth ``z``;
surfaces are shaded with a Lambertian sun (hard or softened shadows), ambient light (optionally
from the sky above), fill lights and point lamps, and some of the time exponential fog; a
white balance and exposure follow. Pixels whose ray hits nothing within ``Z_FAR`` are sky.

Two datasets: config ``160`` (and ``tiny``) draws the first layout (`scenes.random_scene`:
things on a ground, maybe walls); config ``v2`` (and ``v2_tiny``) draws the scene families of
`worlds` (objects, indoor rooms, terrain, streets, close-ups).

Output (see `render_scene`), following the conventions of docs/architecture.md:
``image`` (H, W, 3) uint8 RGB; ``depth`` (H, W) float32 **relative inverse depth**
``(1 / z) / max(1 / z)`` over the valid pixels, so the nearest pixel of each image is exactly
1.0, every valid pixel lies in (0, 1], larger = nearer, and invalid (sky) pixels are 0;
``mask`` (H, W) bool, True where a surface was hit (``depth > 0`` and finite).

Modules, each importing only the ones before it:

- `camera`: `Camera`, its `Rays` and the world / camera frames and units;
- `shapes`: the primitives `Plane`, `Sphere`, `Box`, `OrientedBox`, `Cylinder`,
  `HeightField` (ray hits, normals, texels);
- `textures`: procedural albedo tiles (`Texture`, `solid_texture`, `random_texture`);
- `renderer`: `Surface`, `Lamp`, `Light`, `Scene`, the z-buffer `trace`, shading and `render`;
- `worlds`: the scene families (`FAMILIES`, `random_world`);
- `scenes`: `random_scene`, `scene_for`, `render_scene`, `render_sequence` (a moving camera),
  `benchmark_render`, `save_samples`;
- `builder`: the TFDS builder `SyntheticScenes` (importing this package registers it).
"""

from depthsense_jax.data.synthetic.builder import SyntheticScenes, SyntheticScenesConfig
from depthsense_jax.data.synthetic.camera import Z_FAR, Camera, Rays, camera_rays
from depthsense_jax.data.synthetic.renderer import Lamp, Light, Scene, Surface, render, trace
from depthsense_jax.data.synthetic.scenes import (
    benchmark_render,
    random_scene,
    render_scene,
    render_sequence,
    save_samples,
    scene_for,
)
from depthsense_jax.data.synthetic.shapes import (
    Box,
    Cylinder,
    HeightField,
    OrientedBox,
    Plane,
    Shape,
    Sphere,
)
from depthsense_jax.data.synthetic.textures import (
    TEXTURE_KINDS,
    Texture,
    random_texture,
    solid_texture,
)
from depthsense_jax.data.synthetic.worlds import FAMILIES, random_world

__all__ = [
    "TEXTURE_KINDS",
    "Z_FAR",
    "FAMILIES",
    "Box",
    "Camera",
    "Cylinder",
    "HeightField",
    "Lamp",
    "Light",
    "OrientedBox",
    "Plane",
    "Rays",
    "Scene",
    "Shape",
    "Sphere",
    "Surface",
    "SyntheticScenes",
    "SyntheticScenesConfig",
    "Texture",
    "benchmark_render",
    "camera_rays",
    "random_scene",
    "random_world",
    "random_texture",
    "render",
    "render_scene",
    "render_sequence",
    "save_samples",
    "scene_for",
    "solid_texture",
    "trace",
]
