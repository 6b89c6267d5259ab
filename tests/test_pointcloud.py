"""Point clouds (`depthsense_jax.pointcloud`, `predict --format ply,npz`): intrinsics from
the options, EXIF or the default; back-projection checked by projecting back; the PLY read
by a second library (trimesh)."""

from __future__ import annotations

import math
import sys

import cv2
import numpy as np
import pytest

from depthsense_jax import cli, inference, pointcloud, viz
from depthsense_jax.data.synthetic import render_scene

SIZES = {"depthnet": 64, "depth_anything": 56}


def _photo_with_focal(path, image: np.ndarray, f35: int | None) -> None:
    """A JPEG (with FocalLengthIn35mmFilm in its Exif IFD when f35 is given), by PIL."""
    from PIL import Image

    exif = Image.Exif()
    if f35 is not None:
        exif.get_ifd(0x8769)[0xA405] = f35
    Image.fromarray(image).save(path, exif=exif, quality=95)


def project(xyz: np.ndarray, fx, fy, cx, cy, height, width) -> np.ndarray:
    """The depth map that the points (x, y, z) make through a pinhole: z at pixel
    (round(fy y / z + cy), round(fx x / z + cx)), 0 where no point lands."""
    x, y, z = (xyz[:, i].astype(np.float64) for i in range(3))
    u = np.rint(fx * x / z + cx).astype(int)
    v = np.rint(fy * y / z + cy).astype(int)
    out = np.zeros((height, width), np.float32)
    assert len(set(zip(u, v, strict=True))) == len(u)  # one point per pixel
    out[v, u] = xyz[:, 2]
    return out


def test_intrinsics_from_options_exif_and_default(tmp_path):
    f = pointcloud.from_fov(90.0, 60, 100)
    assert (f.fx, f.fy, f.cx, f.cy) == pytest.approx((50.0, 50.0, 49.5, 29.5))
    image = np.full((60, 90, 3), 128, np.uint8)
    _photo_with_focal(tmp_path / "exif.jpg", image, 28)
    _photo_with_focal(tmp_path / "plain.jpg", image, None)
    lines = []
    camera = pointcloud.Camera()
    exif = camera.for_photo(str(tmp_path / "exif.jpg"), 60, 90, log=lines.append)
    assert exif.fx == exif.fy == pytest.approx(28 * 90 / 36) and "EXIF" in exif.source
    for _ in range(2):
        plain = camera.for_photo(str(tmp_path / "plain.jpg"), 60, 90, log=lines.append)
    assert plain.fx == pytest.approx(45 / math.tan(math.radians(30)))
    assert len(lines) == 1 and "60 degrees" in lines[0]  # logged once per run
    given = pointcloud.Camera(intrinsics=(100.0, 90.0, 40.0, 30.0))
    assert given.for_photo(None, 60, 90).as_array().tolist() == [100.0, 90.0, 40.0, 30.0]
    assert pointcloud.Camera(fov=90.0).for_photo(None, 60, 100).fx == pytest.approx(50.0)
    assert pointcloud.parse_intrinsics("500, 510,320,240") == (500.0, 510.0, 320.0, 240.0)
    for bad in ("500,510,320", "a,b,c,d", "0,1,2,3", "1,1,nan,2"):
        with pytest.raises(ValueError, match="--intrinsics"):
            pointcloud.parse_intrinsics(bad)
    with pytest.raises(ValueError, match="--fov must be"):
        pointcloud.Camera(fov=180.0)
    with pytest.raises(ValueError, match="not both"):
        pointcloud.Camera(fov=60.0, intrinsics=(1.0, 1.0, 0.0, 0.0))


def test_back_projection_projects_back_to_the_depth_map(rng):
    depth = rng.uniform(0.5, 30.0, (37, 53)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = 0  # unknown: dropped
    for intrinsics in (pointcloud.from_fov(75.0, 37, 53),
                       pointcloud.Intrinsics(41.5, 47.25, 20.3, 15.9, "test")):
        xyz, index = pointcloud.back_project(depth, intrinsics)
        assert xyz.dtype == np.float32 and len(xyz) == int((depth > 0).sum())
        np.testing.assert_array_equal(
            project(xyz, intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy, 37, 53),
            depth)
        np.testing.assert_array_equal(depth.ravel()[index], xyz[:, 2])


def test_ply_is_binary_little_endian_and_trimesh_reads_it(tmp_path, rng):
    trimesh = pytest.importorskip("trimesh")
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    data = pointcloud.ply_bytes(xyz, rgb, ["depth: relative, not metres", "caf\u00e9"])
    header = data[:data.index(b"end_header")].decode("ascii")
    assert header.startswith("ply\nformat binary_little_endian 1.0\n")
    assert "comment depth: relative, not metres" in header and "caf\\xe9" in header
    for line in ("property float x", "property float z", "property uchar red",
                 "property uchar blue"):
        assert line in header
    (tmp_path / "c.ply").write_bytes(data)
    cloud = trimesh.load(tmp_path / "c.ply")
    np.testing.assert_array_equal(np.asarray(cloud.vertices, np.float32), xyz)
    np.testing.assert_array_equal(np.asarray(cloud.colors)[:, :3], rgb)


def test_relative_depth_and_a_missing_extra(monkeypatch):
    pred = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    shift = pointcloud.RELATIVE_SHIFT
    np.testing.assert_allclose(pointcloud.relative_depth(pred),
                               1 / (np.array([[0, 0.25], [0.5, 1]]) + shift), rtol=1e-6)
    flat = pointcloud.relative_depth(np.full((3, 3), 7.0))
    assert np.all(flat == np.float32(1 / shift))
    monkeypatch.setitem(sys.modules, "plyfile", None)
    with pytest.raises(ValueError, match=r"\[pointcloud\] extra"):
        pointcloud.require_extras(ply=True, exif=False)


@pytest.mark.parametrize("family", ["depthnet", "depth_anything"])
def test_predict_point_clouds(family, tiny_models, tmp_path, capsys):
    """Relative clouds of two photos, one with an EXIF focal length: the z of every point
    is the documented relative depth of the npy prediction, the intrinsics the photo's,
    the colours the photo's; the PLY and the npz hold the same points."""
    trimesh = pytest.importorskip("trimesh")
    size = SIZES[family]
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo_with_focal(photos / "a.jpg", render_scene(2, 0, size=(60, 90))["image"], 50)
    plain = render_scene(2, 1, size=(60, 90))["image"]
    assert cv2.imwrite(str(photos / "b.png"), plain[..., ::-1])
    out = tmp_path / "out"
    assert cli.main(["predict", str(photos), "--params", tiny_models.paths[family],
                     "--out", str(out), "--size", str(size), "--format", "npy,ply,npz"]) == 0
    assert "horizontal field of view of 60 degrees" in capsys.readouterr().out
    for name, fx in (("a", 50 * 90 / 36), ("b", 45 / math.tan(math.radians(30)))):
        cloud = np.load(out / f"{name}_points.npz")
        assert str(cloud["depth_kind"]) == "relative" and "not metres" in str(cloud["note"])
        fx_, fy, cx, cy = cloud["intrinsics"]
        assert fx_ == fy == pytest.approx(fx) and (cx, cy) == (44.5, 29.5)
        assert cloud["image_size"].tolist() == [60, 90]
        relative = pointcloud.relative_depth(np.load(out / f"{name}.npy"))
        np.testing.assert_array_equal(project(cloud["xyz"], fx_, fy, cx, cy, 60, 90),
                                      relative)
        photo = inference.read_photo(str(photos / (name + (".jpg" if name == "a" else ".png"))))
        np.testing.assert_array_equal(cloud["rgb"], viz.to_uint8(photo).reshape(-1, 3))
        ply = trimesh.load(out / f"{name}_points.ply")
        np.testing.assert_array_equal(np.asarray(ply.vertices, np.float32), cloud["xyz"])
        np.testing.assert_array_equal(np.asarray(ply.colors)[:, :3], cloud["rgb"])
