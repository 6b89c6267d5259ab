"""Scene families for the richer dataset (`synthetic_scenes/v2`): rooms, rolling terrain,
streets, close-ups and the first dataset's objects on a ground, each seen by a camera of
varied field of view, height, pitch and roll, in varied light.

They are built to carry the depth cues that transfer to photographs: perspective on planes
(floors, roads, facades, terrain), occlusion, relative size (rows of equal objects
receding), texture gradients (textures are mapped in world units, so they shrink with
distance), atmospheric perspective (fog), shading (sun, sky light from above, lamps with
fall-off) and the sky as the farthest thing; and views where "lower is nearer" is wrong
(looking down at a table, up at a facade, a tilted horizon, a near object above a far floor).

`random_world(rng, size, families)` draws a family and then its scene; every draw comes from
``rng``, so a scene is the same on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from depthsense_jax.data.synthetic.camera import Camera, Vec
from depthsense_jax.data.synthetic.renderer import Lamp, Light, Scene, Surface
from depthsense_jax.data.synthetic.shapes import (
    Box,
    Cylinder,
    HeightField,
    OrientedBox,
    Plane,
    Sphere,
    rotation,
)
from depthsense_jax.data.synthetic.textures import (
    MORE_TEXTURE_KINDS,
    TEXTURE_KINDS,
    Texture,
    random_texture,
    solid_texture,
)

ALL_KINDS = TEXTURE_KINDS + MORE_TEXTURE_KINDS
OBJECT_KINDS = ("noise", "checker", "stripes", "marble", "solid", "wood", "tiles", "foliage")
Shape = Sphere | Box | Cylinder | Plane | HeightField | OrientedBox


def _texture(rng: np.random.Generator, period: tuple[float, float],
             kinds: Sequence[str] = ALL_KINDS) -> Texture:
    return random_texture(rng, period, kinds)


def _roll(rng: np.random.Generator) -> float:
    """Mostly level (sigma 2 degrees), a quarter of the time tilted 5-25 degrees."""
    if rng.random() < 0.25:
        return math.radians(rng.uniform(5.0, 25.0)) * float(rng.choice([-1.0, 1.0]))
    return math.radians(rng.normal(0.0, 2.0))


def _camera(rng: np.random.Generator, height: int, width: int, position: Vec, pitch_deg:
            tuple[float, float], yaw: float, fov_deg: tuple[float, float] = (35.0, 90.0)
            ) -> Camera:
    fov = math.radians(rng.uniform(*fov_deg))
    return Camera(height, width, 0.5 * width / math.tan(0.5 * fov), position,
                  pitch=math.radians(rng.uniform(*pitch_deg)), yaw=yaw, roll=_roll(rng))


def _clear_of(cam: Camera, shape: Shape, margin: float = 0.3) -> bool:
    bound = shape.bound()
    return bound is None or math.dist(bound[0], cam.position) > bound[1] + margin


def _sun(rng: np.random.Generator, elevation: tuple[float, float] = (15.0, 75.0)) -> Vec:
    elev, azim = math.radians(rng.uniform(*elevation)), rng.uniform(-math.pi, math.pi)
    return (math.cos(elev) * math.sin(azim), math.sin(elev), math.cos(elev) * math.cos(azim))


def _outdoor_light(rng: np.random.Generator, sun: Vec | None = None) -> Light:
    """Sun with a colour cast, ambient sky light from above, sometimes a weak fill."""
    tint = rng.uniform(-0.15, 0.15, 3)
    strength = rng.uniform(0.6, 1.4)
    sun_color = np.clip(strength * (1.0 + tint), 0, None)
    ambient = rng.uniform(0.1, 0.45) * (1.0 - 0.5 * tint)
    fill = ()
    if rng.random() < 0.4:
        fill = ((_sun(rng, (5.0, 40.0)), tuple((rng.uniform(0.05, 0.25) * np.ones(3)).tolist())),)
    return Light(sun or _sun(rng), tuple(sun_color.tolist()), tuple(ambient.tolist()),
                 hemisphere=float(rng.uniform(0.3, 1.0)), fill=fill)


def _sky(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    kind = rng.choice(["clear", "overcast", "dusk", "haze"], p=[0.5, 0.25, 0.1, 0.15])
    if kind == "clear":
        zen = np.array([0.1, 0.25, 0.75]) * rng.uniform(0.6, 1.2)
        hor = np.array([0.7, 0.8, 0.9]) * rng.uniform(0.75, 1.1)
    elif kind == "overcast":
        zen = np.full(3, rng.uniform(0.35, 0.85))
        hor = zen * rng.uniform(1.0, 1.3)
    elif kind == "haze":
        hor = np.array([0.85, 0.85, 0.8]) * rng.uniform(0.8, 1.1)
        zen = hor * rng.uniform(0.6, 0.9)
    else:
        zen = np.array([0.15, 0.15, 0.4]) * rng.uniform(0.7, 1.2)
        hor = np.array([0.95, 0.55, 0.3]) * rng.uniform(0.8, 1.1)
    jitter = 1.0 + rng.uniform(-0.08, 0.08, 3)
    return np.clip(hor * jitter, 0, 1), np.clip(zen * jitter, 0, 1)


def _object(rng: np.random.Generator, x: float, ground: float, z: float, scale: float = 1.0
            ) -> list[Shape]:
    """A thing standing on the ground at (x, ground, z): a ball, a box, a pillar, a tree (trunk
    and crown) or a rock (a sphere sunk into the ground)."""
    kind = rng.choice(["sphere", "box", "cylinder", "tree", "rock"])
    if kind == "sphere":
        r = rng.uniform(0.25, 1.0) * scale
        return [Sphere((x, ground + r * rng.uniform(0.7, 1.0), z), r)]
    if kind == "box":
        half = rng.uniform(0.2, 1.0, 3) * scale
        return [Box((x, ground + half[1], z), tuple(half.tolist()),
                    float(rng.uniform(0, math.pi)))]
    if kind == "cylinder":
        r, h = rng.uniform(0.1, 0.6) * scale, rng.uniform(0.5, 3.0) * scale
        return [Cylinder(x, z, r, ground - 0.1, ground + h)]
    if kind == "tree":
        h, crown = rng.uniform(1.0, 3.0) * scale, rng.uniform(0.6, 1.6) * scale
        return [Cylinder(x, z, rng.uniform(0.08, 0.2) * scale, ground - 0.1, ground + h),
                Sphere((x, ground + h + 0.7 * crown, z), crown)]
    r = rng.uniform(0.3, 1.2) * scale
    return [Sphere((x, ground + r * rng.uniform(-0.5, 0.3), z), r)]


def _plant(rng: np.random.Generator, x: float, ground: float, z: float, scale: float = 1.0
           ) -> tuple[list[Shape], list[Shape]]:
    """A potted plant at (x, ground, z): a pot and (pot, leaves): 5-14 long thin leaves
    fanning out and up from its top at random angles."""
    radius, tall = rng.uniform(0.1, 0.3) * scale, rng.uniform(0.15, 0.45) * scale
    pot = Cylinder(x, z, radius, ground - 0.05, ground + tall)
    leaves = []
    for _ in range(int(rng.integers(5, 15))):
        length = rng.uniform(0.25, 0.9) * scale
        axes = rotation(rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(5.0, 75.0)),
                        rng.uniform(-0.5, 0.5))
        base = np.array([x, ground + tall, z]) + rng.uniform(-0.5, 0.5, 3) * radius * [1, 0, 1]
        centre = base + 0.5 * length * np.asarray(axes[1])
        leaves.append(OrientedBox(tuple(centre.tolist()),
                                  (float(rng.uniform(0.012, 0.04) * scale), 0.5 * length,
                                   0.006 * scale), axes))
    return [pot], leaves


def _add_plant(surfaces: list[Surface], rng: np.random.Generator, cam: Camera, x: float,
               ground: float, z: float, scale: float = 1.0) -> None:
    pot, leaves = _plant(rng, x, ground, z, scale)
    if all(_clear_of(cam, s, 0.1) for s in pot + leaves):
        surfaces.append(Surface(pot[0], _texture(rng, (0.2, 1.0), ("noise", "solid",
                                                                   "stripes"))))
        leaf = _texture(rng, (0.1, 0.6), ("foliage", "grass", "solid"))
        surfaces.extend(Surface(s, leaf) for s in leaves)


def _object_texture(rng: np.random.Generator, tree_crown: bool) -> Texture:
    if tree_crown:
        return _texture(rng, (0.3, 1.2), ("foliage",))
    return _texture(rng, (0.2, 1.5), OBJECT_KINDS)


def _add_things(surfaces: list[Surface], rng: np.random.Generator, cam: Camera,
                things: list[Shape]) -> None:
    """Add a thing (the shapes of one `_object`) when none of its shapes holds the camera."""
    if all(_clear_of(cam, s) for s in things):
        crown = len(things) == 2
        for k, shape in enumerate(things):
            surfaces.append(Surface(shape, _object_texture(rng, crown and k == 1)))


def _finish(rng: np.random.Generator, cam: Camera, surfaces: list[Surface], light: Light,
            fog: tuple[float, float] = (0.0, 0.0), sky=None) -> Scene:
    """The camera response (white balance, exposure), penumbra and fog shared by all."""
    hor, zen = _sky(rng) if sky is None else sky
    fog_density = rng.uniform(*fog) if fog[1] > 0 else 0.0
    white = np.clip(1.0 + rng.uniform(-0.15, 0.15, 3), 0.5, 1.5)
    return Scene(
        cam, tuple(surfaces), light, tuple(hor.tolist()), tuple(zen.tolist()),
        float(fog_density), tuple(np.clip(hor * rng.uniform(0.85, 1.0), 0, 1).tolist()),
        shadow_blur=float(rng.uniform(0.0, 2.5) * cam.width / 160),
        white_balance=tuple(white.tolist()), exposure=float(rng.uniform(0.7, 1.4)),
    )


def _ground(texture: Texture, height: float = 0.0) -> Surface:
    return Surface(Plane((0.0, 1.0, 0.0), height, (1.0, 0.0, 0.0)), texture, False)


# ----------------------------------------------------------------------------- families


def objects_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """Things on a textured ground, sometimes a wall ahead or beside: the first dataset's
    layout, with the camera, materials and light of the new families."""
    yaw = float(rng.uniform(-math.pi, math.pi))
    cam = _camera(rng, height, width, (0.0, float(rng.uniform(0.4, 3.5)), 0.0), (-8.0, 45.0),
                  yaw)
    surfaces = [_ground(_texture(rng, (0.5, 4.0), ("checker", "noise", "stripes", "marble",
                                                  "tiles", "grass", "wood")))]
    fwd, right = np.array([math.sin(yaw), 0, math.cos(yaw)]), np.array([-math.cos(yaw), 0,
                                                                        math.sin(yaw)])
    if rng.random() < 0.4:
        a = math.radians(rng.uniform(-45.0, 45.0))
        normal = -(math.cos(a) * fwd + math.sin(a) * right)
        point = rng.uniform(5.0, 25.0) * fwd
        tangent = np.cross([0.0, 1.0, 0.0], normal)
        surfaces.append(Surface(Plane(tuple(normal.tolist()), float(normal @ point),
                                      tuple((tangent / np.linalg.norm(tangent)).tolist())),
                                _texture(rng, (1.0, 5.0), ("bricks", "noise", "windows",
                                                           "tiles", "wood")), False))
        limit = float(np.linalg.norm(point)) - 1.0
    else:
        limit = 20.0
    tan_half = 0.5 * width / cam.focal
    for _ in range(int(rng.integers(3, 10))):
        dist = math.exp(rng.uniform(math.log(1.5), math.log(max(limit, 2.0))))
        lateral = dist * tan_half * rng.uniform(-1.1, 1.1)
        x, z = (dist * fwd + lateral * right)[[0, 2]]
        if rng.random() < 0.15:
            _add_plant(surfaces, rng, cam, float(x), 0.0, float(z), rng.uniform(1.0, 3.0))
        else:
            _add_things(surfaces, rng, cam, _object(rng, float(x), 0.0, float(z)))
    return _finish(rng, cam, surfaces, _outdoor_light(rng), fog=(0.0, 0.06)
                   if rng.random() < 0.35 else (0.0, 0.0))


def indoor_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """A room seen from inside: floor, ceiling and four walls; a doorway and windows in the
    far wall opening on the next room or the outdoors; furniture-like boxes and cylinders,
    things on tables, a ceiling light and lamps whose light falls off with distance."""
    rw, rd, rh = rng.uniform(3.0, 8.0), rng.uniform(4.0, 12.0), rng.uniform(2.4, 3.5)
    cx = rng.uniform(-0.3, 0.3) * rw
    high = rng.random() < 0.2  # a camera up in a corner, looking down
    cy = rng.uniform(2.0, rh - 0.2) if high else rng.uniform(0.8, 1.9)
    cam = _camera(rng, height, width, (float(cx), float(cy), float(rng.uniform(0.2, 0.6))),
                  (15.0, 55.0) if high else (-12.0, 30.0),
                  float(math.radians(rng.uniform(-35.0, 35.0))), (45.0, 95.0))
    wall_tex = _texture(rng, (0.8, 4.0), ("noise", "bricks", "stripes", "tiles", "solid",
                                          "marble", "wood"))
    floor_tex = _texture(rng, (0.5, 3.0), ("wood", "tiles", "checker", "noise", "marble"))
    outdoors = rng.random() < 0.4
    # the far wall's openings: a doorway from the floor, 0-2 windows
    holes = []
    door_u = rng.uniform(-rw / 2 + 0.2, rw / 2 - 1.4)
    if rng.random() < 0.7:
        holes.append((door_u, door_u + rng.uniform(0.8, 1.4), -rng.uniform(1.9, 2.3), 0.01))
    for _ in range(int(rng.integers(0, 3))):
        u0 = rng.uniform(-rw / 2 + 0.1, rw / 2 - 1.0)
        if all(u0 + 1.0 < h[0] or u0 > h[1] for h in holes):
            holes.append((u0, u0 + rng.uniform(0.6, 1.2), -rng.uniform(1.9, rh - 0.2),
                          -rng.uniform(0.8, 1.1)))
    ceiling_bounds = (-rw / 2, rw / 2, -0.01, rd) if outdoors else None
    surfaces = [
        Surface(Plane((0.0, 1.0, 0.0), 0.0, (1.0, 0.0, 0.0)), floor_tex, False),
        Surface(Plane((0.0, -1.0, 0.0), -rh, (1.0, 0.0, 0.0), ceiling_bounds),
                _texture(rng, (1.0, 4.0), ("solid", "noise", "tiles")), False),
        Surface(Plane((1.0, 0.0, 0.0), -rw / 2, (0.0, 0.0, 1.0)), wall_tex, False),
        Surface(Plane((-1.0, 0.0, 0.0), -rw / 2, (0.0, 0.0, 1.0)), wall_tex, False),
        Surface(Plane((0.0, 0.0, 1.0), 0.0, (1.0, 0.0, 0.0)), wall_tex, False),
        Surface(Plane((0.0, 0.0, -1.0), -rd, (1.0, 0.0, 0.0), None, tuple(holes)),
                wall_tex if rng.random() < 0.6 else _texture(rng, (0.8, 4.0)), False),
    ]
    if not outdoors:  # the next room's far wall
        surfaces.append(Surface(Plane((0.0, 0.0, -1.0), -(rd + rng.uniform(1.5, 6.0)),
                                      (1.0, 0.0, 0.0)), _texture(rng, (0.8, 4.0)), False))
    for _ in range(int(rng.integers(2, 8))):
        x, z = rng.uniform(-rw / 2 + 0.3, rw / 2 - 0.3), rng.uniform(0.8, rd - 0.3)
        kind = rng.choice(["cabinet", "table", "thing", "plant"])
        things: list[Shape]
        if kind == "plant":
            _add_plant(surfaces, rng, cam, float(x), 0.0, float(z), rng.uniform(0.8, 2.0))
            continue
        if kind == "cabinet":  # against the nearest side wall
            half = (rng.uniform(0.2, 0.5), rng.uniform(0.4, 1.0), rng.uniform(0.3, 0.9))
            x = math.copysign(rw / 2 - half[0] - 0.01, x)
            things = [Box((x, half[1], z), half, 0.0)]
        elif kind == "table":
            top, hx, hz = rng.uniform(0.65, 0.8), rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.6)
            things = [Box((x, top, z), (hx, 0.03, hz), float(rng.uniform(0, math.pi))),
                      Box((x, top / 2, z), (0.06, top / 2, 0.06), 0.0)]
            for _ in range(int(rng.integers(0, 3))):
                dx, dz = rng.uniform(-0.6, 0.6) * hx, rng.uniform(-0.6, 0.6) * hz
                r = rng.uniform(0.05, 0.2)
                things.append(Sphere((x + dx, top + 0.03 + r, z + dz), r) if rng.random() < 0.5
                              else Cylinder(x + dx, z + dz, r, top + 0.03, top + 0.03 + 3 * r))
        else:
            things = _object(rng, float(x), 0.0, float(z), scale=0.6)
        if all(_clear_of(cam, s) for s in things):
            tex = _texture(rng, (0.2, 1.5), OBJECT_KINDS)
            surfaces.extend(Surface(s, tex) for s in things)
    lamps = tuple(
        Lamp((float(rng.uniform(-rw / 2, rw / 2)), rh - 0.3, float(rng.uniform(0.5, rd))),
             tuple((rng.uniform(0.5, 2.0) * (1 + rng.uniform(-0.2, 0.2, 3))).tolist()),
             float(rng.uniform(1.0, 3.0)))
        for _ in range(int(rng.integers(1, 3))))
    tint = rng.uniform(-0.2, 0.2, 3)
    light = Light(_sun(rng, (45.0, 85.0)), tuple((rng.uniform(0.2, 0.7) * (1 + tint)).tolist()),
                  tuple((rng.uniform(0.1, 0.35) * (1 - tint)).tolist()),
                  hemisphere=float(rng.uniform(0.0, 0.6)), lamps=lamps)
    return _finish(rng, cam, surfaces, light)


def terrain_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """Rolling hills to the horizon under the sky, rows of trees, rocks or posts receding,
    often with fog (atmospheric perspective)."""
    amps, kxs, kzs, phases = [], [], [], []
    for wavelength, slope in ((rng.uniform(60, 200), 0.25), (rng.uniform(20, 60), 0.15),
                              (rng.uniform(6, 20), 0.06)):
        k, angle = 2 * math.pi / wavelength, rng.uniform(0, 2 * math.pi)
        amps.append(float(rng.uniform(0.2, 1.0) * slope / k))
        kxs.append(k * math.cos(angle))
        kzs.append(k * math.sin(angle))
        phases.append(float(rng.uniform(0, 2 * math.pi)))
    field = HeightField(tuple(amps), tuple(kxs), tuple(kzs), tuple(phases))
    yaw = float(rng.uniform(-math.pi, math.pi))
    cam_y = float(field.height(0.0, 0.0)) + rng.uniform(1.2, 6.0)
    cam = _camera(rng, height, width, (0.0, cam_y, 0.0), (-8.0, 25.0), yaw)
    fwd = np.array([math.sin(yaw), math.cos(yaw)])
    right = np.array([-fwd[1], fwd[0]])
    surfaces: list[Surface] = []
    for _ in range(int(rng.integers(1, 4))):  # rows of like things, receding
        direction = math.radians(rng.uniform(-40.0, 40.0))
        along = math.cos(direction) * fwd + math.sin(direction) * right
        start = rng.uniform(2.0, 6.0) * along + rng.uniform(-6.0, 6.0) * right
        spacing, scale = rng.uniform(3.0, 9.0), rng.uniform(0.6, 1.6)
        state = rng.bit_generator.state
        for i in range(int(rng.integers(4, 12))):
            rng.bit_generator.state = state  # every thing of a row is drawn alike
            x, z = start + i * spacing * along
            things = _object(rng, float(x), float(field.height(x, z)), float(z), scale)
            _add_things(surfaces, rng, cam, things)
    for _ in range(int(rng.integers(0, 6))):
        x, z = rng.uniform(3.0, 40.0) * fwd + rng.uniform(-20.0, 20.0) * right
        _add_things(surfaces, rng, cam, _object(rng, float(x), float(field.height(x, z)),
                                                 float(z)))
    surfaces.append(Surface(field, _texture(rng, (0.8, 4.0), ("grass", "noise", "foliage",
                                                              "marble")), False))
    fog = (0.005, 0.04) if rng.random() < 0.6 else (0.0, 0.0)
    return _finish(rng, cam, surfaces, _outdoor_light(rng), fog=fog)


def street_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """A road between two rows of facades of varied heights, cars and poles along it, the
    sky above; sometimes a building across its far end."""
    road = rng.uniform(6.0, 16.0)
    length = rng.uniform(30.0, 100.0)
    high = rng.random() < 0.2
    cam = _camera(rng, height, width,
                  (float(rng.uniform(-0.3, 0.3) * road),
                   float(rng.uniform(4.0, 10.0) if high else rng.uniform(1.2, 2.2)), 0.0),
                  (10.0, 35.0) if high else (-25.0, 12.0),
                  float(math.radians(rng.uniform(-30.0, 30.0))))
    surfaces = [_ground(_texture(rng, (1.0, 4.0), ("noise", "tiles", "stripes")))]
    for side in (-1.0, 1.0):
        z0 = -10.0
        while z0 < length:
            z1 = z0 + rng.uniform(12.0, 45.0)
            setback = rng.uniform(0.0, 2.0)
            tall = rng.uniform(5.0, 30.0)
            offset = -(road / 2 + setback)
            if side < 0:  # left facade: v = -y
                plane = Plane((1.0, 0.0, 0.0), offset, (0.0, 0.0, 1.0), (z0, z1, -tall, 0.0))
            else:  # right facade: v = y
                plane = Plane((-1.0, 0.0, 0.0), offset, (0.0, 0.0, 1.0), (z0, z1, 0.0, tall))
            surfaces.append(Surface(plane, _texture(rng, (2.0, 8.0), ("windows", "bricks",
                                                                      "noise", "tiles"))))
            z0 = z1
    if rng.random() < 0.5:
        tall = rng.uniform(6.0, 30.0)
        surfaces.append(Surface(Plane((0.0, 0.0, -1.0), -length, (1.0, 0.0, 0.0),
                                      (-road, road, -tall, 0.0)),
                                _texture(rng, (2.0, 8.0), ("windows", "bricks"))))
    if rng.random() < 0.6:  # the road's centre line
        surfaces.append(Surface(Plane((0.0, 1.0, 0.0), 0.01, (1.0, 0.0, 0.0),
                                      (-0.08, 0.08, -length, 0.0)),
                                solid_texture(np.full(3, rng.uniform(0.5, 0.9))), False))
    for side in (-1.0, 1.0):
        if rng.random() < 0.7:  # poles or trees at a regular spacing
            spacing, z = rng.uniform(5.0, 15.0), rng.uniform(2.0, 8.0)
            x = side * (road / 2 - rng.uniform(0.4, 1.0))
            tree = rng.random() < 0.4
            tall, radius = rng.uniform(3.0, 7.0), rng.uniform(0.06, 0.2)
            crown = rng.uniform(0.8, 1.8)
            pole_tex, crown_tex = _texture(rng, (0.3, 1.0)), _texture(rng, (0.3, 1.2),
                                                                       ("foliage",))
            while z < length:
                pole = Cylinder(float(x), float(z), radius, -0.1, tall)
                if _clear_of(cam, pole):
                    surfaces.append(Surface(pole, pole_tex))
                    if tree:
                        surfaces.append(Surface(Sphere((float(x), tall + 0.7 * crown, float(z)),
                                                       crown), crown_tex))
                z += spacing
    for _ in range(int(rng.integers(0, 6))):  # cars
        x = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.4) * road
        half = (rng.uniform(0.8, 1.0), rng.uniform(0.6, 0.9), rng.uniform(1.8, 2.4))
        car = Box((float(x), half[1] + 0.1, float(rng.uniform(4.0, length))), half,
                  float(rng.normal(0.0, 0.1)))
        if _clear_of(cam, car):
            surfaces.append(Surface(car, _texture(rng, (0.5, 3.0), ("solid", "noise",
                                                                    "stripes"))))
    return _finish(rng, cam, surfaces, _outdoor_light(rng),
                   fog=(0.003, 0.02) if rng.random() < 0.3 else (0.0, 0.0))


def closeup_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """One large thing filling much of the picture (a ball, a box, a pillar, a bush of leafy
    balls or a potted plant of thin leaves) in front of a backdrop, upright or leaning back,
    or a table top seen from above with things on it."""
    yaw = float(rng.uniform(-math.pi, math.pi))
    fwd = np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    right = np.array([-math.cos(yaw), 0.0, math.sin(yaw)])
    surfaces: list[Surface] = [_ground(_texture(rng, (0.3, 2.0), ("wood", "tiles", "noise",
                                                                  "checker", "grass")))]
    if rng.random() < 0.3:  # a table top from above: lower is not always nearer
        cam = _camera(rng, height, width, (0.0, float(rng.uniform(0.4, 1.2)), 0.0),
                      (35.0, 75.0), yaw, (40.0, 75.0))
        reach = cam.position[1] / math.tan(cam.pitch)
        for _ in range(int(rng.integers(2, 7))):
            p = (reach * rng.uniform(0.4, 1.6)) * fwd + reach * rng.uniform(-0.7, 0.7) * right
            _add_things(surfaces, rng, cam, _object(rng, float(p[0]), 0.0, float(p[2]),
                                                    scale=0.25 * cam.position[1]))
        return _finish(rng, cam, surfaces, _outdoor_light(rng))
    eye = float(rng.uniform(0.5, 1.8))
    cam = _camera(rng, height, width, (0.0, eye, 0.0), (-10.0, 30.0), yaw, (35.0, 75.0))
    dist = rng.uniform(0.9, 3.5)
    half_fov = math.atan(0.5 * width / cam.focal)
    r = dist * math.tan(half_fov * rng.uniform(0.35, 0.8))
    r = min(r, 0.8 * dist)
    # the thing's centre where the camera looks, moved off the axis a little
    forward = np.asarray(cam.basis()[2])
    center = np.asarray(cam.position) + dist * forward + rng.uniform(-0.3, 0.3) * r * right
    center[1] = max(center[1], r * 0.5)
    kind = rng.choice(["sphere", "box", "cylinder", "bush", "plant"])
    things: list[Shape] = []
    if kind == "plant":
        _add_plant(surfaces, rng, cam, float(center[0]), 0.0, float(center[2]),
                   scale=float(np.clip(1.3 * max(r, center[1]), 0.5, 3.0)))
    elif kind == "sphere":
        things = [Sphere(tuple(center.tolist()), r)]
    elif kind == "box":
        half = r * rng.uniform(0.5, 0.9, 3)
        things = [Box(tuple(center.tolist()), tuple(half.tolist()),
                      float(rng.uniform(0, math.pi)))]
    elif kind == "cylinder":
        things = [Cylinder(float(center[0]), float(center[2]), r * rng.uniform(0.3, 0.7), -0.1,
                           float(center[1] + r * rng.uniform(0.5, 1.5)))]
    else:
        things = [Sphere(tuple((center + rng.uniform(-0.6, 0.6, 3) * r).tolist()),
                         float(r * rng.uniform(0.3, 0.6))) for _ in range(int(rng.integers(3, 9)))]
    if things and all(_clear_of(cam, s, 0.2) for s in things):
        tex = _texture(rng, (0.1, 0.8), ("foliage",) if kind == "bush" else OBJECT_KINDS)
        surfaces.extend(Surface(s, tex) for s in things)
    if rng.random() < 0.75:  # a backdrop behind it, upright or leaning back
        behind = dist + r + rng.uniform(0.3, 5.0)
        a = math.radians(rng.uniform(-30.0, 30.0))
        lean = math.radians(rng.uniform(0.0, 30.0)) if rng.random() < 0.5 else 0.0
        normal = -(math.cos(a) * fwd + math.sin(a) * right) * math.cos(lean) \
            + np.array([0.0, math.sin(lean), 0.0])
        point = np.asarray(cam.position) + behind * fwd
        tangent = np.cross([0.0, 1.0, 0.0], normal)
        surfaces.append(Surface(Plane(tuple(normal.tolist()), float(normal @ point),
                                      tuple((tangent / np.linalg.norm(tangent)).tolist())),
                                _texture(rng, (0.3, 3.0)), False))
    for _ in range(int(rng.integers(0, 4))):  # smaller things around it
        p = np.asarray(cam.position) + rng.uniform(1.0, 6.0) * fwd \
            + rng.uniform(-2.0, 2.0) * right
        _add_things(surfaces, rng, cam, _object(rng, float(p[0]), 0.0, float(p[2]), 0.5))
    return _finish(rng, cam, surfaces, _outdoor_light(rng))


FAMILIES: dict[str, Callable[[np.random.Generator, int, int], Scene]] = {
    "objects": objects_scene,
    "indoor": indoor_scene,
    "terrain": terrain_scene,
    "street": street_scene,
    "closeup": closeup_scene,
}


def random_world(rng: np.random.Generator, size: int | tuple[int, int] = 160,
                 families: Sequence[str] = tuple(FAMILIES)) -> Scene:
    """A scene of one of ``families`` (names of `FAMILIES`, drawn with equal odds) for an
    image of ``size`` (int, or (height, width)) pixels."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"scene families must be some of {', '.join(FAMILIES)}; "
                         f"got {list(families)}")
    height, width = (size, size) if np.ndim(size) == 0 else size
    family = families[int(rng.integers(len(families)))]
    return FAMILIES[family](rng, int(height), int(width))
