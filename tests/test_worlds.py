"""The richer synthetic scenes (synthetic_scenes/v2): camera roll, rectangles with openings,
the height-field terrain, the new lights and textures, every scene family, the first
dataset kept as it was, and the camera degradations of the input pipeline."""

import math

import ml_collections
import numpy as np
import pytest

from depthsense_jax.data import synthetic as syn
from depthsense_jax.data.synthetic import renderer, textures, worlds
from depthsense_jax.data.synthetic.shapes import HeightField

FAMILIES = tuple(worlds.FAMILIES)


def _scene(cam, shapes, *, albedo=(0.5, 0.5, 0.5), light=None, **kw):
    light = light or syn.Light((0.0, 1.0, 0.0), (0.8, 0.8, 0.8), (0.2, 0.2, 0.2))
    surfaces = tuple(syn.Surface(s, syn.solid_texture(albedo)) for s in shapes)
    return syn.Scene(cam, surfaces, light, shadows=kw.pop("shadows", False), **kw)


def _surface_points(scene, z):
    """World points (H, W) x 3 that the camera's rays reach at camera depth z."""
    rays = syn.camera_rays(scene.camera)
    o = scene.camera.position
    return (o[0] + z * rays.dx, o[1] + z * rays.dy, o[2] + z * rays.dz)


# ----------------------------------------------------------------------------- camera roll


@pytest.mark.parametrize("roll", [0.0, 0.3, -0.7])
def test_camera_basis_is_a_rotation(roll):
    cam = syn.Camera(8, 8, 10.0, (0.0, 1.0, 0.0), pitch=0.2, yaw=0.5, roll=roll)
    basis = np.array(cam.basis())
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(basis) == pytest.approx(1.0)
    # the optical axis does not depend on roll
    np.testing.assert_allclose(basis[2], np.array(syn.Camera(8, 8, 10.0, (0, 1, 0), 0.2,
                                                             0.5).basis())[2])


def test_roll_tilts_the_horizon_of_the_ground():
    """A level camera sees a horizontal horizon; rolled by r, the ground's boundary turns by
    r in the image (its slope is tan r, measured from the sky mask)."""
    roll = math.radians(15.0)
    ground = syn.Plane((0.0, 1.0, 0.0), 0.0, (1.0, 0.0, 0.0))
    slopes = {}
    for r in (0.0, roll):
        cam = syn.Camera(120, 120, 60.0, (0.0, 1.0, 0.0), pitch=0.0, yaw=0.0, roll=r)
        mask = syn.render(_scene(cam, [ground]))["mask"]
        first_ground_row = mask.argmax(axis=0).astype(float)  # per column
        cols = np.arange(20, 100)
        slopes[r] = np.polyfit(cols, first_ground_row[cols], 1)[0]
    assert abs(slopes[0.0]) < 1e-6
    assert abs(slopes[roll]) == pytest.approx(math.tan(roll), abs=0.03)


def test_roll_zero_renders_the_first_dataset_unchanged():
    """The first dataset (config 160, families ()) is kept: a few scenes' summary values,
    recorded when the scene families were added, still hold."""
    expected = {  # (seed, index): (image mean, depth mean, sky fraction) at 64 px
        (0, 0): (162.249, 0.29462, 0.43359), (0, 1): (164.207, 0.4801, 0.13086),
        (1, 3): (144.199, 0.54455, 0.11694),
    }
    for (seed, index), (image_mean, depth_mean, sky) in expected.items():
        out = syn.render_scene(seed, index, 64)
        assert out["image"].mean() == pytest.approx(image_mean, abs=0.05)
        assert out["depth"].mean() == pytest.approx(depth_mean, abs=1e-4)
        assert 1 - out["mask"].mean() == pytest.approx(sky, abs=1e-4)


# ----------------------------------------------------------------------------- rectangles


def test_bounded_plane_and_its_hole():
    """A 4 x 4 wall 5 units ahead with a 1 x 1 hole in its middle, a back wall at 9: the
    wall's pixels are at z = 5, the hole's and the margins' at 9, exactly."""
    cam = syn.Camera(64, 64, 32.0, (0.0, 0.0, 0.0), pitch=0.0, yaw=0.0)
    # normal towards the camera (-z); tangent +x, bitangent = normal x tangent = -y
    wall = syn.Plane((0.0, 0.0, -1.0), -5.0, (1.0, 0.0, 0.0), (-2.0, 2.0, -2.0, 2.0),
                     ((-0.5, 0.5, -0.5, 0.5),))
    back = syn.Plane((0.0, 0.0, -1.0), -9.0, (1.0, 0.0, 0.0))
    out = syn.render(_scene(cam, [wall, back]), with_z=True)
    z = out["z"]
    xn, yn = cam.normalised_coords()
    x, y = xn[None, :] * 5.0, -yn[:, None] * 5.0 + 0 * xn[None, :]  # world x, y at z = 5
    on_wall = (np.abs(x) <= 2) & (np.abs(y) <= 2) & ~((np.abs(x) < 0.5) & (np.abs(y) < 0.5))
    edge = (np.abs(np.abs(x) - 2) < 0.1) | (np.abs(np.abs(y) - 2) < 0.1) \
        | (np.abs(np.abs(x) - 0.5) < 0.1) | (np.abs(np.abs(y) - 0.5) < 0.1)
    np.testing.assert_allclose(z[on_wall & ~edge], 5.0, rtol=1e-6)
    np.testing.assert_allclose(z[~on_wall & ~edge], 9.0, rtol=1e-6)
    assert wall.bound()[1] == pytest.approx(math.hypot(4, 4) / 2)


def test_bitangent_is_normal_cross_tangent():
    for normal, tangent in [((0, 1, 0), (1, 0, 0)), ((1, 0, 0), (0, 0, 1)),
                            ((0, 0, -1), (1, 0, 0)), ((0.6, 0, 0.8), (0.8, 0, -0.6))]:
        plane = syn.Plane(normal, 0.0, tangent)
        np.testing.assert_allclose(plane.bitangent, np.cross(normal, tangent), atol=1e-12)


def test_oriented_box_turned_about_y_is_the_yaw_box():
    """An OrientedBox whose axes are the yaw box's renders to the same depth and image."""
    yaw = 0.6
    c, s = math.cos(yaw), math.sin(yaw)
    box = syn.Box((0.3, 1.0, 4.0), (1.2, 0.8, 0.6), yaw)
    oriented = syn.OrientedBox((0.3, 1.0, 4.0), (1.2, 0.8, 0.6),
                               ((c, 0.0, -s), (0.0, 1.0, 0.0), (s, 0.0, c)))
    cam = syn.Camera(64, 64, 40.0, (0.0, 2.0, 0.0), 0.2, 0.1)
    light = syn.Light((0.3, 0.9, 0.2))
    a = syn.render(_scene(cam, [box], light=light), with_z=True)
    b = syn.render(_scene(cam, [oriented], light=light), with_z=True)
    assert 0.1 < a["mask"].mean() < 0.9
    assert np.array_equal(a["mask"], b["mask"])
    np.testing.assert_allclose(a["z"][a["mask"]], b["z"][b["mask"]], rtol=1e-5)
    assert np.abs(a["image"].astype(int) - b["image"]).max() <= 1


def test_rotation_tilts_the_long_axis():
    """rotation(yaw, pitch, roll) is a rotation; without roll its second axis (a leaf's
    length) leans pitch away from the vertical."""
    axes = np.array(syn.shapes.rotation(0.7, 0.4, 0.3))
    np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(axes) == pytest.approx(1.0)
    assert syn.shapes.rotation(0.7, 0.4)[1][1] == pytest.approx(math.cos(0.4))
    assert axes[1][1] == pytest.approx(math.cos(0.4) * math.cos(0.3))  # rolled first


def test_a_plant_is_a_pot_and_thin_leaves_above_it():
    pot, leaves = worlds._plant(np.random.default_rng(3), 1.0, 0.0, 5.0)
    assert len(pot) == 1 and 5 <= len(leaves) <= 14
    top = pot[0].y1
    for leaf in leaves:
        assert leaf.half[2] < leaf.half[0] < leaf.half[1]  # thin, narrow, long
        assert leaf.center[1] > top  # leaning up from the pot


# ----------------------------------------------------------------------------- terrain


def _field():
    return HeightField((2.0, 0.6, 0.1), (0.05, -0.2, 0.7), (0.03, 0.1, -0.4), (0.3, 1.0, 2.0))


def test_terrain_depth_lies_on_the_surface():
    """Every terrain pixel's camera depth puts its point on y = h(x, z) (bisection to
    1e-3 of the depth), and the pixels that miss look above every hill or past Z_FAR."""
    field = _field()
    cam = syn.Camera(48, 64, 40.0, (0.0, float(field.height(0.0, 0.0)) + 1.5, 0.0),
                     pitch=0.1, yaw=0.4, roll=0.1)
    scene = _scene(cam, [field])
    z = syn.render(scene, with_z=True)["z"]
    hit = np.isfinite(z)
    assert 0.2 < hit.mean() < 1.0
    points = _surface_points(scene, np.where(hit, z, 0))
    px, py, pz = (np.asarray(c, np.float64)[hit] for c in points)
    gap = np.abs(py - field.height(px, pz))
    assert np.all(gap <= 2e-3 * z[hit] + 1e-4)


def test_flat_terrain_is_the_ground_plane():
    flat = HeightField((0.0,), (0.1,), (0.1,), (0.0,))
    ground = syn.Plane((0.0, 1.0, 0.0), 0.0, (1.0, 0.0, 0.0))
    cam = syn.Camera(32, 32, 20.0, (0.0, 1.3, 0.0), pitch=0.3, yaw=1.0)
    a = syn.render(_scene(cam, [flat]), with_z=True)["z"]
    b = syn.render(_scene(cam, [ground]), with_z=True)["z"]
    assert np.array_equal(np.isfinite(a), np.isfinite(b))
    np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=3e-3)


def test_terrain_normal_matches_the_height_gradient():
    field = _field()
    rng = np.random.default_rng(0)
    x, z = rng.uniform(-50, 50, (2, 100)).astype(np.float32)
    y = field.height(x, z)
    nx, ny, nz, _, _ = field.attributes(x, y, z, 1.0)
    np.testing.assert_allclose(nx**2 + ny**2 + nz**2, 1.0, rtol=1e-5)
    eps = 1e-3
    x64, z64 = x.astype(np.float64), z.astype(np.float64)
    gx = (field.height(x64 + eps, z64) - field.height(x64 - eps, z64)) / (2 * eps)
    gz = (field.height(x64, z64 + eps) - field.height(x64, z64 - eps)) / (2 * eps)
    np.testing.assert_allclose(-nx / ny, gx, atol=1e-3)
    np.testing.assert_allclose(-nz / ny, gz, atol=1e-3)


def test_terrain_stops_at_a_nearer_surface():
    """An object in front hides the terrain: t_max from the z-buffer is honoured."""
    field = _field()
    # level camera: a wall across the view at world z = 2 is at camera depth 2 everywhere
    cam = syn.Camera(32, 32, 20.0, (0.0, float(field.height(0.0, 0.0)) + 1.5, 0.0), 0.0, 0.0)
    wall = syn.Plane((0.0, 0.0, -1.0), -2.0, (1.0, 0.0, 0.0), (-0.5, 0.5, -9.0, 9.0))
    z, ids = syn.trace(_scene(cam, [wall, field]))
    np.testing.assert_allclose(z[ids == 0], 2.0, rtol=1e-6)
    assert 0.2 < (ids == 0).mean() < 0.8  # the wall's 1-unit strip, terrain on both sides
    assert (ids == 1).any()


# ----------------------------------------------------------------------------- light


def test_lamp_light_falls_off_with_distance():
    """A lamp above a floor: brightness under it, then less and less away from it."""
    floor = syn.Plane((0.0, 1.0, 0.0), 0.0, (1.0, 0.0, 0.0))
    cam = syn.Camera(64, 64, 30.0, (0.0, 3.0, 0.0), pitch=math.pi / 2 - 1e-3, yaw=0.0)
    lamp = renderer.Lamp((0.0, 1.0, 0.0), (1.0, 1.0, 1.0), 1.0)
    light = syn.Light((0.0, 1.0, 0.0), (0.0, 0.0, 0.0), (0.05, 0.05, 0.05), lamps=(lamp,))
    image = syn.render(_scene(cam, [floor], light=light))["image"].mean(-1)
    linear = (image / 255) ** 2  # the renderer's gamma is 2
    assert linear[32, 32] > 3 * linear[32, 63]
    assert np.all(np.diff(image[32, 32:].astype(int)) <= 1)  # darker away from the lamp


def test_sky_light_comes_from_above():
    """With hemisphere 1, a floor (facing up) gets all the ambient light and a ceiling
    (facing down) none; with 0 both get the same."""
    means = {}
    for hemisphere in (0.0, 1.0):
        light = syn.Light((0.0, 1.0, 0.0), (0.0, 0.0, 0.0), (0.5, 0.5, 0.5),
                          hemisphere=hemisphere)
        for name, pitch, plane in (("floor", 1.2, syn.Plane((0, 1, 0), 0.0, (1, 0, 0))),
                                   ("ceiling", -1.2, syn.Plane((0, -1, 0), -2.0, (1, 0, 0)))):
            cam = syn.Camera(16, 16, 10.0, (0.0, 1.0, 0.0), pitch=pitch, yaw=0.0)
            means[hemisphere, name] = syn.render(_scene(cam, [plane], light=light))["image"].mean()
    assert means[0.0, "floor"] == means[0.0, "ceiling"]
    assert means[1.0, "floor"] > 100 and means[1.0, "ceiling"] == 0


def test_soft_shadows_have_a_penumbra():
    """The same floating box's shadow on the floor, hard and blurred: the hard one has two
    levels (lit, shadow), the blurred one in-between values at its edge."""
    floor = syn.Plane((0.0, 1.0, 0.0), 0.0, (1.0, 0.0, 0.0))
    box = syn.Box((0.0, 1.0, 6.0), (1.0, 0.2, 1.0), 0.0)
    cam = syn.Camera(64, 64, 40.0, (0.0, 3.0, 0.0), pitch=0.45, yaw=0.0)
    light = syn.Light((0.0, 1.0, 0.0), (0.8, 0.8, 0.8), (0.1, 0.1, 0.1))
    scene = _scene(cam, [floor, box], light=light, shadows=True)
    on_floor = syn.trace(scene)[1] == 0
    hard = syn.render(scene)["image"][..., 0][on_floor]
    soft = syn.render(_scene(cam, [floor, box], light=light, shadows=True,
                             shadow_blur=2.0))["image"][..., 0][on_floor]
    lit, dark = hard.max(), hard.min()
    assert set(np.unique(hard)) == {lit, dark} and lit > dark + 50
    between = np.unique(soft[(soft > dark) & (soft < lit)])
    assert between.size >= 3


def test_white_balance_and_exposure_scale_linear_colour():
    cam = syn.Camera(8, 8, 10.0, (0.0, 1.0, 0.0), pitch=1.0, yaw=0.0)
    floor = syn.Plane((0.0, 1.0, 0.0), 0.0, (1.0, 0.0, 0.0))
    base = syn.render(_scene(cam, [floor]))["image"].astype(float)
    cast = syn.render(_scene(cam, [floor], white_balance=(1.0, 0.25, 1.0),
                             exposure=1.0))["image"].astype(float)
    np.testing.assert_allclose(cast[..., 0], base[..., 0], atol=1)
    np.testing.assert_allclose(cast[..., 1], base[..., 1] * 0.5, atol=1)  # gamma 2


# ----------------------------------------------------------------------------- textures


@pytest.mark.parametrize("kind", textures.MORE_TEXTURE_KINDS)
def test_new_textures_are_tiles_in_range(kind):
    for seed in range(3):
        tile, feature = textures._texture_tile(np.random.default_rng(seed), [kind])
        assert tile.shape == (textures.TEX, textures.TEX, 3) and tile.dtype == np.float32
        assert tile.min() >= 0 and tile.max() <= 1 and tile.std() > 0.005
        assert feature > 0
        # tileable: the wrap-around step is no larger than the steps inside the tile
        inner = np.abs(np.diff(tile, axis=0)).max()
        assert np.abs(tile[0] - tile[-1]).max() <= inner + 1e-6


def test_smear_is_a_wrapping_box_blur():
    a = np.random.default_rng(0).random((textures.TEX, textures.TEX)).astype(np.float32)
    for axis, n in ((0, 6), (1, 24)):
        expected = sum(np.roll(a, k, axis=axis) for k in range(n)) / n
        np.testing.assert_allclose(textures._smear(a, axis, n), expected, atol=1e-6)


# ----------------------------------------------------------------------------- families


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_renders_valid_scenes(family):
    """Output contract, determinism and exact depth: 1/depth is proportional to the traced
    camera depth z."""
    for index in range(3):
        out = syn.render_scene(11, index, (48, 64), (family,))
        image, depth, mask = out["image"], out["depth"], out["mask"]
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        assert np.all(np.isfinite(depth)) and depth.max() == 1.0 and depth.min() >= 0
        assert np.array_equal(depth == 0, ~mask) and mask.mean() > 0.2
        assert image.std() > 5  # not blank
        again = syn.render_scene(11, index, (48, 64), (family,))
        assert np.array_equal(again["image"], image) and np.array_equal(again["depth"], depth)
        scene = syn.scenes.scene_for(11, index, (48, 64), (family,))
        z, _ = syn.trace(scene)
        inv = np.where(mask, 1.0 / np.where(mask, z, 1.0), 0.0)
        np.testing.assert_allclose(depth, inv / inv.max(), rtol=1e-5, atol=1e-7)


def test_families_differ_as_described():
    """Rooms have no sky, terrain and streets do; roll varies; some scenes break "lower is
    nearer" (the mean depth of the top third of the picture is nearer than the bottom's)."""
    sky, rolls, inverted = {}, [], 0
    for family in FAMILIES:
        fractions = []
        for index in range(12):
            scene = syn.scenes.scene_for(5, index, 32, (family,))
            rolls.append(scene.camera.roll)
            out = syn.render(scene)
            fractions.append(1 - out["mask"].mean())
            d = out["depth"]
            inverted += d[:10][out["mask"][:10]].mean() > d[-10:][out["mask"][-10:]].mean() \
                if out["mask"][:10].any() else 0
        sky[family] = np.mean(fractions)
    assert sky["indoor"] < 0.05
    assert sky["terrain"] > 0.1 and sky["street"] > 0.05
    assert max(abs(r) for r in rolls) > math.radians(5)
    assert inverted >= 3


def test_random_world_names_the_families():
    with pytest.raises(ValueError, match="indoor.*got \\['attic'\\]"):
        worlds.random_world(np.random.default_rng(0), 16, ("attic",))
    with pytest.raises(ValueError, match="scene families"):
        worlds.random_world(np.random.default_rng(0), 16, ())


def test_builder_v2_tiny(tmp_path):
    import tensorflow_datasets as tfds

    builder = tfds.builder("synthetic_scenes/v2_tiny", data_dir=str(tmp_path))
    assert set(syn.SyntheticScenes.builder_configs) >= {"160", "tiny", "v2", "v2_tiny"}
    builder.download_and_prepare()
    examples = {ex["file_name"].decode(): ex
                for ex in tfds.as_numpy(builder.as_dataset(split="validation"))}
    assert len(examples) == 16
    ref = syn.render_scene(1, 5, 64, FAMILIES)
    np.testing.assert_array_equal(examples["validation_000005.png"]["image"], ref["image"])
    np.testing.assert_array_equal(examples["validation_000005.png"]["depth"], ref["depth"])


# ----------------------------------------------------------------------------- degradations


def _degrade(image, seed, **settings):
    import tensorflow as tf

    from depthsense_jax.data import pipeline

    cfg = ml_collections.ConfigDict({"blur": 0.0, "noise": 0.0, "jpeg": 0} | settings)
    return pipeline.degrade(tf.constant(image), tf.constant([seed, 0]), cfg).numpy()


def test_degradations_off_leave_the_image():
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(_degrade(image, 0), image)


def test_degradations_are_deterministic_and_in_range():
    image = np.random.default_rng(0).random((40, 48, 3)).astype(np.float32)
    outs = [_degrade(image, s, blur=1.5, noise=0.05, jpeg=20) for s in range(12)]
    for s, out in enumerate(outs):
        assert out.shape == image.shape and out.dtype == np.float32
        assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
        np.testing.assert_array_equal(out, _degrade(image, s, blur=1.5, noise=0.05, jpeg=20))
    changed = [not np.array_equal(o, image) for o in outs]
    assert 6 <= sum(changed) <= 12  # each degradation is drawn for half the images


def test_blur_keeps_a_constant_image_and_smooths_noise():
    flat = np.full((24, 24, 3), 0.3, np.float32)
    for s in range(6):
        np.testing.assert_allclose(_degrade(flat, s, blur=2.0), flat, atol=1e-6)
    noise = np.random.default_rng(1).random((48, 48, 3)).astype(np.float32)
    stds = [_degrade(noise, s, blur=2.0).std() for s in range(8)]
    assert min(stds) < 0.5 * noise.std()  # some images blurred (sigma up to 2 px)


def test_noise_has_the_drawn_spread():
    flat = np.full((64, 64, 3), 0.5, np.float32)
    stds = [(_degrade(flat, s, noise=0.05) - flat).std() for s in range(16)]
    assert max(stds) <= 0.05 * 1.1
    assert sum(s > 0 for s in stds) >= 4 and sum(s == 0 for s in stds) >= 4


# ----------------------------------------------------------------------------- bench render


def test_bench_render_takes_the_scene_families(capsys):
    from depthsense_jax import cli

    assert cli.main(["bench", "render", "--num", "2", "--size", "32",
                     "--scenes", "indoor,street"]) == 0
    assert "families indoor,street" in capsys.readouterr().out
    assert cli.main(["bench", "render", "--num", "2", "--size", "32", "--scenes", "v1"]) == 0
    assert "the first layout" in capsys.readouterr().out
    assert cli.main(["bench", "render", "--num", "1", "--size", "16",
                     "--scenes", "attic"]) == 2
    assert "scene families must be some of objects, indoor" in capsys.readouterr().err
