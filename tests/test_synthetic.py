"""Procedural scenes: output contract, determinism, exact depth, depth cues, TFDS builder."""

import math

import numpy as np
import pytest

from depthsense_jax.data import synthetic as syn

GROUND = syn.Plane((0.0, 1.0, 0.0), 0.0, (1.0, 0.0, 0.0))


def _scene(cam, shapes, *, albedo=(0.5, 0.5, 0.5), **kw):
    """A scene of ``shapes`` with solid ``albedo``, no shadows unless asked."""
    light = kw.pop("light", syn.Light((0.0, 1.0, 0.0), (0.8, 0.8, 0.8), (0.2, 0.2, 0.2)))
    surfaces = tuple(syn.Surface(s, syn.solid_texture(albedo)) for s in shapes)
    return syn.Scene(cam, surfaces, light, shadows=kw.pop("shadows", False), **kw)


def _ground_inverse_depth(cam):
    """Closed form 1/z of the ground plane y = 0 for a camera at height h with pitch theta:
    a pixel at normalised row y_n sees the ground at 1/z = (y_n cos theta + sin theta) / h,
    for any yaw and column (rows where that is <= 0 look above the horizon)."""
    _, yn = cam.normalised_coords()
    inv = (yn.astype(np.float64) * math.cos(cam.pitch) + math.sin(cam.pitch)) / cam.position[1]
    return np.broadcast_to(inv[:, None], (cam.height, cam.width))


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize("size, shape", [(64, (64, 64)), ((48, 80), (48, 80))])
def test_render_scene_shapes_dtypes_and_values(size, shape):
    saw_sky = False
    for index in range(4):
        out = syn.render_scene(7, index, size)
        assert set(out) == {"image", "depth", "mask"}
        image, depth, mask = out["image"], out["depth"], out["mask"]
        assert image.shape == (*shape, 3) and image.dtype == np.uint8
        assert depth.shape == shape and depth.dtype == np.float32
        assert mask.shape == shape and mask.dtype == np.bool_
        assert np.all(np.isfinite(depth))
        assert depth.min() >= 0.0 and depth.max() <= 1.0
        assert mask.any()
        assert np.array_equal(depth == 0, ~mask)
        assert depth[mask].max() == 1.0
        assert depth[mask].min() > 0.0
        saw_sky |= not mask.all()
    assert saw_sky


def test_sky_is_masked_over_seeds():
    fractions = [syn.render_scene(seed, 0, 48)["mask"].mean() for seed in range(8)]
    assert sum(f < 1.0 for f in fractions) >= 4  # most scenes show some sky
    assert all(f > 0.0 for f in fractions)


def test_determinism():
    a, b = syn.render_scene(3, 5, 64), syn.render_scene(3, 5, 64)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = syn.render_scene(3, 6, 64)
    d = syn.render_scene(4, 5, 64)
    assert not np.array_equal(a["image"], c["image"])
    assert not np.array_equal(a["image"], d["image"])


def test_random_scenes_use_every_primitive():
    kinds = set()
    for index in range(12):
        scene = syn.random_scene(np.random.default_rng([0, index]), 32)
        kinds |= {type(s.shape).__name__ for s in scene.surfaces}
        assert 1.0 <= math.degrees(scene.camera.pitch) <= 30.0
    assert kinds == {"Plane", "Sphere", "Box", "Cylinder"}


def test_screen_space_culling_loses_no_pixel(monkeypatch):
    scenes = [syn.random_scene(np.random.default_rng([2, i]), (40, 56)) for i in range(6)]
    culled = [syn.trace(s) for s in scenes]
    full = lambda cam, centre, radius: (0, cam.height, 0, cam.width)
    monkeypatch.setattr(syn.renderer, "_screen_rect", full)  # where `trace` looks it up
    for scene, (z, ids) in zip(scenes, culled, strict=True):
        z_full, ids_full = syn.trace(scene)
        np.testing.assert_array_equal(ids, ids_full)
        np.testing.assert_array_equal(z, z_full)


# ----------------------------------------------------------------------------- exact depth


def test_ground_plane_depth_is_analytic():
    cam = syn.Camera(48, 80, focal=55.0, position=(0.3, 1.7, -2.0), pitch=0.25, yaw=0.9)
    z, ids = syn.trace(_scene(cam, [GROUND]))
    expected = _ground_inverse_depth(cam)
    valid = expected > 1.0 / syn.Z_FAR
    clear = np.abs(expected - 1.0 / syn.Z_FAR) > 1e-4  # away from the far-clip row
    np.testing.assert_array_equal((ids == 0)[clear], valid[clear])
    assert valid.any() and (~valid).any()  # the horizon is in view
    np.testing.assert_allclose(1.0 / z[valid & clear], expected[valid & clear], rtol=1e-4)
    assert np.all(np.isinf(z[~valid & clear]))

    out = syn.render(_scene(cam, [GROUND]))
    expected_rel = np.where(out["mask"], expected / expected[out["mask"]].max(), 0.0)
    np.testing.assert_allclose(out["depth"], expected_rel, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "shape, z_centre",
    [
        (syn.Sphere((0.0, 1.0, 5.0), 1.0), 4.0),
        (syn.Box((0.0, 1.0, 6.0), (1.0, 1.0, 1.0), 0.0), 5.0),
        (syn.Box((0.0, 1.0, 6.0), (1.0, 1.0, 1.0), math.pi / 4), 6.0 - math.sqrt(2.0)),
        (syn.Cylinder(0.0, 6.0, 1.0, 0.0, 3.0), 5.0),
    ],
)
def test_primitive_depth_on_the_optical_axis(shape, z_centre):
    cam = syn.Camera(33, 33, focal=30.0, position=(0.0, 1.0, 0.0), pitch=0.0, yaw=0.0)
    z, ids = syn.trace(_scene(cam, [GROUND, shape]))
    assert ids[16, 16] == 1
    np.testing.assert_allclose(z[16, 16], z_centre, rtol=1e-5)


def test_cylinder_top_cap_seen_from_above():
    cam = syn.Camera(33, 33, focal=30.0, position=(0.0, 5.0, 0.0), pitch=math.pi / 2, yaw=0.0)
    z, ids = syn.trace(_scene(cam, [GROUND, syn.Cylinder(0.0, 0.0, 1.0, 0.0, 2.0)]))
    assert ids[16, 16] == 1
    np.testing.assert_allclose(z[16, 16], 3.0, rtol=1e-5)
    np.testing.assert_allclose(z[0, 0], 5.0, rtol=1e-5)  # the ground around it


def test_sphere_occludes_the_ground():
    cam = syn.Camera(48, 64, focal=50.0, position=(0.0, 1.5, 0.0), pitch=0.2, yaw=0.4)
    forward = (math.sin(cam.yaw), math.cos(cam.yaw))
    centre = (4.0 * forward[0], 0.8, 4.0 * forward[1])
    z_ground, _ = syn.trace(_scene(cam, [GROUND]))
    scene = _scene(cam, [GROUND, syn.Sphere(centre, 0.8)])
    z, ids = syn.trace(scene)
    covered = (ids == 1) & np.isfinite(z_ground)
    assert covered.sum() > 50
    assert np.all(1.0 / z[covered] > 1.0 / z_ground[covered])
    assert np.array_equal(z[ids == 0], z_ground[ids == 0])  # elsewhere unchanged
    out = syn.render(scene)
    inv = np.where(ids >= 0, 1.0 / z, 0.0)
    np.testing.assert_allclose(out["depth"], inv / inv.max(), rtol=1e-6)
    # in this image's normalisation the sphere is nearer than the ground it hides
    assert np.all(out["depth"][covered] > (1.0 / z_ground[covered]) / inv.max())


# ----------------------------------------------------------------------------- depth cues


def test_fog_pulls_far_pixels_to_the_fog_colour():
    cam = syn.Camera(64, 64, focal=60.0, position=(0.0, 1.5, 0.0), pitch=0.1, yaw=0.0)
    fog = (0.9, 0.9, 0.9)
    clear = syn.render(_scene(cam, [GROUND], albedo=(0.1, 0.3, 0.2)))
    foggy = syn.render(_scene(cam, [GROUND], albedo=(0.1, 0.3, 0.2), fog_density=0.08,
                              fog_color=fog))
    z, _ = syn.trace(_scene(cam, [GROUND]))
    fog_px = np.sqrt(np.asarray(fog)) * 255
    dist_fog = np.abs(foggy["image"] - fog_px).mean(axis=-1)
    dist_clear = np.abs(clear["image"] - fog_px).mean(axis=-1)
    near, far = z < 5.0, (z > 20.0) & np.isfinite(z)
    assert near.any() and far.any()
    # without fog the uniformly lit plane has one colour; with fog far is nearer the fog colour
    assert np.ptp(clear["image"][np.isfinite(z)].astype(int), axis=0).max() <= 1
    assert dist_fog[far].mean() < 0.5 * dist_fog[near].mean()
    assert np.all(dist_fog[np.isfinite(z)] <= dist_clear[np.isfinite(z)] + 1)
    np.testing.assert_array_equal(foggy["depth"], clear["depth"])  # fog changes no depth


def test_sphere_shading_follows_the_normal():
    cam = syn.Camera(64, 64, focal=50.0, position=(0.0, 1.0, 0.0), pitch=0.0, yaw=0.0)
    sun_dir = tuple(np.asarray([0.6, 0.5, -0.62]) / np.linalg.norm([0.6, 0.5, -0.62]))
    light = syn.Light(sun_dir, (0.8, 0.8, 0.8), (0.15, 0.15, 0.15))
    sphere = syn.Sphere((0.0, 1.0, 4.0), 1.2)
    scene = _scene(cam, [GROUND, sphere], albedo=(1.0, 1.0, 1.0), light=light)
    out = syn.render(scene)
    z, ids = syn.trace(scene)
    rays = syn.camera_rays(cam)
    on = ids == 1
    p = [c + z[on] * d[on] for c, d in zip(cam.position, (rays.dx, rays.dy, rays.dz), strict=True)]
    n = (np.stack(p, -1) - np.asarray(sphere.center)) / sphere.radius
    lam = np.maximum(n @ np.asarray(sun_dir), 0.0)
    expected = np.sqrt(np.clip(0.15 + 0.8 * lam, 0, 1)) * 255
    grey = out["image"][on].astype(float).mean(axis=-1)
    np.testing.assert_allclose(grey, expected, atol=1.5)
    assert grey.max() - grey.min() > 80  # lit side vs. shadowed side


def test_shadows_darken_the_ground_under_a_floating_box():
    cam = syn.Camera(48, 48, focal=40.0, position=(0.0, 3.0, 0.0), pitch=0.6, yaw=0.0)
    box = syn.Box((0.0, 1.5, 5.0), (0.8, 0.3, 0.8), 0.3)
    light = syn.Light((0.0, 1.0, 0.0), (0.8, 0.8, 0.8), (0.2, 0.2, 0.2))
    lit = syn.render(_scene(cam, [GROUND, box], light=light, shadows=False))
    shaded = syn.render(_scene(cam, [GROUND, box], light=light, shadows=True))
    z, ids = syn.trace(_scene(cam, [GROUND, box]))
    rays = syn.camera_rays(cam)
    px = cam.position[0] + z * rays.dx
    pz = cam.position[2] + z * rays.dz
    under = (ids == 0) & (np.abs(px) < 0.5) & (np.abs(pz - 5.0) < 0.5)
    assert under.any()
    assert np.all(shaded["image"][under] < lit["image"][under])
    far_away = (ids == 0) & (np.abs(pz - 5.0) > 2.0)
    np.testing.assert_array_equal(shaded["image"][far_away], lit["image"][far_away])


def test_save_samples(tmp_path):
    import cv2

    path = syn.save_samples(tmp_path / "samples.png", seed=0, size=32)
    picture = cv2.imread(str(path))
    assert picture.shape == (96, 64, 3)


# ----------------------------------------------------------------------------- TFDS builder


def _read_all(data_dir):
    import tensorflow_datasets as tfds

    builder = syn.SyntheticScenes(config="tiny", data_dir=str(data_dir))
    builder.download_and_prepare()
    splits = {}
    for split in ("train", "validation"):
        ds = builder.as_dataset(split=split)
        splits[split] = {ex["file_name"].decode(): ex for ex in tfds.as_numpy(ds)}
    return builder, splits


def test_builder_tiny(tmp_path):
    import tensorflow_datasets as tfds

    builder, splits = _read_all(tmp_path / "a")
    assert builder.info.name == "synthetic_scenes"
    assert str(builder.info.version) == "1.0.0"
    assert builder.info.splits["train"].num_examples == 64
    assert builder.info.splits["validation"].num_examples == 16
    assert len(splits["train"]) == 64 and len(splits["validation"]) == 16  # unique names
    assert not set(splits["train"]) & set(splits["validation"])
    for examples in splits.values():
        for ex in examples.values():
            assert ex["image"].shape == (64, 64, 3) and ex["image"].dtype == np.uint8
            assert ex["depth"].shape == (64, 64) and ex["depth"].dtype == np.float32
            assert ex["depth"].max() == 1.0 and ex["depth"].min() >= 0.0
    # the stored scenes are the renderer's, seed 0 for train and 1 for validation
    for split, seed in (("train", 0), ("validation", 1)):
        ex = splits[split][f"{split}_000003.png"]
        ref = syn.render_scene(seed, 3, 64)
        np.testing.assert_array_equal(ex["image"], ref["image"])
        np.testing.assert_array_equal(ex["depth"], ref["depth"])

    # a second build elsewhere stores the same bytes under the same names
    _, again = _read_all(tmp_path / "b")
    for split in splits:
        assert set(again[split]) == set(splits[split])
        for name, ex in splits[split].items():
            assert ex["image"].tobytes() == again[split][name]["image"].tobytes()
            assert ex["depth"].tobytes() == again[split][name]["depth"].tobytes()

    # registered under its name: tfds.load finds the prepared data
    ds = tfds.load("synthetic_scenes/tiny", split="validation", data_dir=str(tmp_path / "a"))
    assert sum(1 for _ in ds) == 16
