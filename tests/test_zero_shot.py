"""`depthsense zero-shot` on a tiny copy of every benchmark dataset, written here in its real
on-disk format, against the float64 NumPy protocol of tests/reference/protocol.py (written
from the published protocol and crops)."""

from __future__ import annotations

import csv
import json
import os
import struct

import cv2
import h5py
import numpy as np
import pytest
import scipy.io
from reference import protocol as ref

from depthsense_jax import cli
from depthsense_jax.evaluation import protocol as protocol_lib

TOL = 1e-5


# ------------------------------------------------------------------------ format writers
# Written from each format's description, not with the package's readers.


def write_pfm(path, array):
    """Greyscale PFM, little-endian (negative scale), rows bottom to top."""
    height, width = array.shape
    with open(path, "wb") as f:
        f.write(f"Pf\n{width} {height}\n-1.0\n".encode())
        f.write(np.ascontiguousarray(array[::-1], "<f4").tobytes())


def write_dpt(path, depth):
    height, width = depth.shape
    with open(path, "wb") as f:
        f.write(struct.pack("<fii", 202021.25, width, height))
        f.write(np.ascontiguousarray(depth, "<f4").tobytes())


def write_rgb(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), image[..., ::-1])


def scene(rng, height, width, near=1.0, far=8.0):
    """A smooth random depth map in [near, far] and an image that follows it."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    a, b, c = rng.uniform(-1, 1, 3)
    depth = near + (far - near) * (0.5 + 0.25 * np.sin(3 * a * yy + 2 * b * xx + c)
                                   + 0.25 * yy)
    image = np.clip(255 * (depth[..., None] / far) * rng.uniform(0.5, 1, 3), 0, 255)
    return depth.astype(np.float32), image.astype(np.uint8)


def noisy_disparity(rng, depth, noise=0.05):
    """A relative inverse-depth prediction: affine in 1/depth, plus noise."""
    scale, shift = rng.uniform(0.5, 3.0), rng.uniform(-0.2, 0.5)
    return (scale / depth + shift + noise * rng.normal(size=depth.shape)).astype(np.float32)


def run_benchmark(*args):
    assert cli.main(["zero-shot", *map(str, args)]) == 0
    path = [a for a in args if str(a).endswith(".json")][-1]
    with open(path) as f:
        return json.load(f)


def check(result, expected: dict[str, dict], skipped=None):
    """Rows and means of a benchmark JSON against reference rows {name: errors}."""
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == set(expected), (sorted(rows), sorted(expected))
    for name, want in expected.items():
        for key, value in want.items():
            assert rows[name][key] == pytest.approx(value, abs=TOL), (name, key)
    for key in next(iter(expected.values())):
        mean = np.mean([e[key] for e in expected.values()])
        assert result["summary"][key] == pytest.approx(mean, abs=TOL), key
    assert result["summary"]["images"] == len(expected)
    assert result["summary"]["skipped"] == (skipped or {})


# ------------------------------------------------------------------------ NYU


def write_nyu(root, rng, count=3):
    """The labeled file as MATLAB 7.3 writes it (HDF5 with a 512-byte MATLAB header in the
    user block, arrays transposed: images (N, 3, W, H), rawDepths (N, W, H)) and splits.mat
    as MATLAB 5 (1-based testNdxs)."""
    os.makedirs(root, exist_ok=True)
    depths, images = zip(*(scene(rng, 480, 640, 0.5, 12.0) for _ in range(count)), strict=True)
    depths = [d.copy() for d in depths]
    depths[0][:10] = 0.0  # no return
    path = os.path.join(root, "nyu_depth_v2_labeled.mat")
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("images", data=np.stack([im.transpose(2, 1, 0) for im in images]))
        f.create_dataset("rawDepths", data=np.stack([d.T for d in depths]))
        f.create_dataset("depths", data=np.stack([d.T + 1 for d in depths]))  # unused
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")
    test = [2, 3]  # 1-based, as in the official file
    scipy.io.savemat(os.path.join(root, "splits.mat"),
                     {"testNdxs": np.array(test, float)[:, None], "trainNdxs": [[1.0]]})
    return {f"{i:04d}": (depths[i - 1], images[i - 1]) for i in test}


def test_nyu(tmp_path, rng):
    truth = write_nyu(tmp_path / "nyu", rng)
    preds = tmp_path / "preds"
    preds.mkdir()
    expected, pixels = {}, {}
    crop = ref.crop_box("eigen_nyu", 480, 640)
    for name, (depth, _) in truth.items():
        pred = noisy_disparity(rng, depth)
        np.save(preds / f"{name}.npy", pred)
        valid = (depth > 1e-3) & (depth < 10.0) & crop
        expected[name] = ref.score(pred, depth, valid, 1e-3, 10.0)
        pixels[name] = int(valid.sum())
    result = run_benchmark("nyu", "--data-dir", tmp_path / "nyu", "--predictions", preds,
                           "--json", tmp_path / "out.json")
    check(result, expected)
    assert {r["name"]: r["pixels"] for r in result["rows"]} == pixels  # ints, per image
    assert result["settings"]["crop"] == "eigen_nyu" and result["settings"]["max_depth"] == 10


# ------------------------------------------------------------------------ KITTI

DRIVE = "2011_09_26_drive_0002_sync"


def write_kitti(root, rng, frames=(69, 70, 71), missing=71, size=(375, 1242)):
    """KITTI's layout at its commonest image size (the published crops' size)."""
    truth = {}
    for frame in frames:
        depth, image = scene(rng, *size, 2.0, 90.0)
        name = f"2011_09_26/{DRIVE}/image_02/data/{frame:010d}"
        write_rgb(os.path.join(root, name + ".png"), image)
        if frame == missing:
            continue
        gt = np.round(depth * 256).astype(np.uint16)
        gt[rng.random(size) < 0.6] = 0  # sparse lidar
        gt_dir = os.path.join(root, "data_depth_annotated", "val", DRIVE, "proj_depth",
                              "groundtruth", "image_02")
        os.makedirs(gt_dir, exist_ok=True)
        assert cv2.imwrite(os.path.join(gt_dir, f"{frame:010d}.png"), gt)
        truth[name] = gt.astype(np.float64) / 256.0
    with open(os.path.join(root, "test_files.txt"), "w") as f:  # Monodepth2's format
        f.writelines(f"2011_09_26/{DRIVE} {frame:010d} l\n" for frame in frames)
    return truth


@pytest.mark.parametrize("crop", ["garg", "eigen_kitti"])
def test_kitti(crop, tmp_path, rng):
    truth = write_kitti(tmp_path / "kitti", rng)
    preds = tmp_path / "preds"
    expected = {}
    for name, depth in truth.items():
        pred = noisy_disparity(rng, np.where(depth > 0, depth, 50.0))
        os.makedirs(preds / os.path.dirname(name), exist_ok=True)
        write_pfm(preds / f"{name}.pfm", pred)  # MiDaS writes .pfm
        valid = (depth > 1e-3) & (depth < 80.0) & ref.crop_box(crop, *depth.shape)
        expected[name] = ref.score(pred, depth, valid, 1e-3, 80.0)
    result = run_benchmark("kitti", "--data-dir", tmp_path / "kitti", "--predictions", preds,
                           "--crop", crop, "--json", tmp_path / "out.json")
    check(result, expected, skipped={"no ground truth": 1})
    assert "0000000071" in result["skipped"][0]["name"]


def test_kitti_reads_the_bts_split_list(tmp_path, rng):
    truth = write_kitti(tmp_path / "kitti", rng, frames=(5, 6), missing=None)
    os.remove(tmp_path / "kitti" / "test_files.txt")
    listing = tmp_path / "eigen.txt"
    listing.write_text("".join(
        f"2011_09_26/{DRIVE}/image_02/data/{f:010d}.png "
        f"{DRIVE}/proj_depth/groundtruth/image_02/{f:010d}.png 721.5377\n" for f in (5, 6)))
    preds = tmp_path / "preds"
    preds.mkdir()
    for name, depth in truth.items():  # a flat folder, matched by stem
        np.save(preds / f"{os.path.basename(name)}.npy",
                noisy_disparity(rng, np.where(depth > 0, depth, 50.0)))
    result = run_benchmark("kitti", "--data-dir", tmp_path / "kitti", "--predictions", preds,
                           "--split-file", listing, "--json", tmp_path / "out.json")
    assert result["summary"]["images"] == 2


# ------------------------------------------------------------------------ ETH3D


def test_eth3d(tmp_path, rng):
    root = tmp_path / "eth3d"
    preds = tmp_path / "preds"
    expected = {}
    for scene_name, shot in (("courtyard", "DSC_0286"), ("pipes", "DSC_0634")):
        depth, image = scene(rng, 40, 60, 1.0, 30.0)
        depth[:5, :5] = np.inf  # no ground truth
        name = f"{scene_name}/images/dslr_images/{shot}"
        write_rgb(root / f"{name}.JPG", image)
        gt_dir = root / scene_name / "ground_truth_depth" / "dslr_images"
        gt_dir.mkdir(parents=True)
        depth.astype("<f4").tofile(gt_dir / f"{shot}.JPG")  # raw float32, named like the image
        pred = noisy_disparity(rng, np.where(np.isfinite(depth), depth, 30.0))
        (preds / os.path.dirname(name)).mkdir(parents=True, exist_ok=True)
        np.save(preds / f"{name}.npy", pred)
        valid = np.isfinite(depth) & (depth > 0)
        expected[name] = ref.score(pred, np.where(valid, depth, 0), valid, None, None)
    result = run_benchmark("eth3d", "--data-dir", root, "--predictions", preds,
                           "--json", tmp_path / "out.json")
    check(result, expected)


# ------------------------------------------------------------------------ DIODE


def test_diode(tmp_path, rng):
    root = tmp_path / "diode"
    preds = tmp_path / "preds"
    expected = {}
    for kind, code in (("indoors", "00019_00183_indoors_000_010"),
                       ("outdoor", "00024_00201_outdoor_130_040")):
        depth, image = scene(rng, 48, 64, 0.3, 400.0)  # reaches past both ends of the cap
        mask = (rng.random(depth.shape) > 0.2).astype(np.float32)
        folder = root / "val" / kind / "scene_00001" / "scan_00001"
        name = f"val/{kind}/scene_00001/scan_00001/{code}"
        write_rgb(folder / f"{code}.png", image)
        np.save(folder / f"{code}_depth.npy", depth[..., None])
        np.save(folder / f"{code}_depth_mask.npy", mask)
        pred = noisy_disparity(rng, depth)
        (preds / os.path.dirname(name)).mkdir(parents=True, exist_ok=True)
        np.save(preds / f"{name}.npy", pred[None])  # (1, H, W) is squeezed
        valid = (mask > 0) & (depth > 0.6) & (depth < 350.0)
        expected[name] = ref.score(pred, depth, valid, 0.6, 350.0)
    result = run_benchmark("diode", "--data-dir", root, "--predictions", preds,
                           "--json", tmp_path / "out.json")
    check(result, expected)


# ------------------------------------------------------------------------ Sintel


def test_sintel_with_16_bit_png_predictions(tmp_path, rng):
    root = tmp_path / "sintel"
    preds = tmp_path / "preds"
    expected = {}
    for frame in (1, 2):
        depth, image = scene(rng, 24, 56, 0.5, 60.0)
        depth[:3] = 1e11  # sky
        name = f"training/final/alley_1/frame_{frame:04d}"
        write_rgb(root / f"{name}.png", image)
        (root / "training" / "depth" / "alley_1").mkdir(parents=True, exist_ok=True)
        write_dpt(root / "training" / "depth" / "alley_1" / f"frame_{frame:04d}.dpt", depth)
        # MiDaS --grayscale: 16-bit PNG of the prediction normalised per image.
        pred = noisy_disparity(rng, depth)
        png = np.round(65535 * (pred - pred.min()) / (pred.max() - pred.min())).astype(np.uint16)
        (preds / os.path.dirname(name)).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(preds / f"{name}-dpt_beit_large_512.png"), png)  # MiDaS's name
        valid = (depth > 1e-3) & (depth < 72.0)
        expected[name] = ref.score(png.astype(np.float64), depth, valid, 1e-3, 72.0)
    result = run_benchmark("sintel", "--data-dir", root, "--predictions", preds,
                           "--json", tmp_path / "out.json")
    check(result, expected)


# ------------------------------------------------------------------------ Middlebury


def test_middlebury_2014_and_2006(tmp_path, rng):
    root = tmp_path / "middlebury"
    preds = tmp_path / "preds"
    preds.mkdir()
    f, doffs, baseline = 4152.073, 124.343, 176.252
    disparity = rng.uniform(60.0, 250.0, (30, 40)).astype(np.float32)
    disparity[0, :4] = np.inf  # unknown
    _, image = scene(rng, 30, 40)
    write_rgb(root / "Adirondack-perfect" / "im0.png", image)
    write_pfm(root / "Adirondack-perfect" / "disp0.pfm", disparity)
    (root / "Adirondack-perfect" / "calib.txt").write_text(
        f"cam0=[{f} 0 1176.728; 0 {f} 1011.728; 0 0 1]\n"
        f"cam1=[{f} 0 1301.071; 0 {f} 1011.728; 0 0 1]\n"
        f"doffs={doffs}\nbaseline={baseline}\nwidth=40\nheight=30\nndisp=290\n")
    valid = np.isfinite(disparity)
    depth = np.where(valid, baseline * f / (np.where(valid, disparity, 0) + doffs) / 1000, 0)
    pred = (disparity * 0.01 + 0.3 + 0.05 * rng.normal(size=disparity.shape)).astype(np.float32)
    pred[~valid] = 0.0
    np.save(preds / "im0.npy", pred)  # flat folder: matched by stem
    expected = {"Adirondack-perfect/im0": ref.score(pred, depth, valid, None, None)}
    gt = rng.integers(20, 200, (30, 40)).astype(np.uint8)
    gt[-3:] = 0  # unknown
    write_rgb(root / "Aloe" / "view1.png", image)
    assert cv2.imwrite(str(root / "Aloe" / "disp1.png"), gt)
    pred2 = (gt * 0.02 + 0.1 * rng.normal(size=gt.shape)).astype(np.float32)
    np.save(preds / "view1.npy", pred2)
    valid2 = gt > 0
    expected["Aloe/view1"] = ref.score(pred2, np.where(valid2, 1.0 / np.maximum(gt, 1), 0),
                                       valid2, None, None)
    result = run_benchmark("middlebury", "--data-dir", root, "--predictions", preds,
                           "--json", tmp_path / "out.json")
    check(result, expected)


# ------------------------------------------------------------------------ DIW


def test_diw(tmp_path, rng):
    root = tmp_path / "diw"
    preds = tmp_path / "preds"
    preds.mkdir()
    rows, want = [], {}
    for i, (relation, right) in enumerate([(">", True), ("<", True), (">", False)]):
        name = f"DIW_test/img_{i}"
        _, image = scene(rng, 20, 30)
        write_rgb(root / f"{name}.thumb.jpg", image)
        ya, xa, yb, xb = 3, 4, 15, 25  # 1-based in the CSV
        pred = rng.uniform(0.2, 0.8, (20, 30)).astype(np.float32)
        farther_a = (relation == ">") == right
        # Inverse depth: the farther point has the smaller value.
        pred[ya - 1, xa - 1], pred[yb - 1, xb - 1] = (0.1, 0.9) if farther_a else (0.9, 0.1)
        np.save(preds / f"img_{i}.thumb.npy", pred)
        rows += [[f"./{name}.thumb.jpg"], [ya, xa, yb, xb, relation, 30, 20]]
        want[f"{name}.thumb"] = 0.0 if right else 1.0
    with open(root / "DIW_test.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    result = run_benchmark("diw", "--data-dir", root, "--predictions", preds,
                           "--json", tmp_path / "out.json")
    assert {r["name"]: r["whdr"] for r in result["rows"]} == want
    assert result["summary"]["whdr"] == pytest.approx(1 / 3)
    # The same predictions read as depth (larger = farther) order every pair the other way.
    flipped = run_benchmark("diw", "--data-dir", root, "--predictions", preds,
                            "--prediction-kind", "depth", "--align", "depth",
                            "--json", tmp_path / "out2.json")
    assert flipped["summary"]["whdr"] == pytest.approx(2 / 3)


# ------------------------------------------------------------------------ properties


def _sintel_like(tmp_path, rng, depth, pred, name="frame_0001"):
    root = tmp_path / "sintel"
    _, image = scene(rng, *depth.shape)
    write_rgb(root / "training" / "final" / "s" / f"{name}.png", image)
    (root / "training" / "depth" / "s").mkdir(parents=True, exist_ok=True)
    write_dpt(root / "training" / "depth" / "s" / f"{name}.dpt", depth)
    (tmp_path / "preds").mkdir(exist_ok=True)
    np.save(tmp_path / "preds" / f"{name}.npy", pred)
    return root


# Shifts comparable to the disparity's spread: a float32 file of 0.01 / depth + 7 keeps only
# a few hundred levels of it (AbsRel 4e-4 from the input's rounding alone).
@pytest.mark.parametrize("scale, shift", [(1.0, 0.0), (3.5, -0.2), (0.05, 0.02)])
def test_an_affine_map_of_the_true_disparity_is_perfect(scale, shift, tmp_path, rng):
    depth, _ = scene(rng, 30, 40, 1.0, 50.0)
    root = _sintel_like(tmp_path, rng, depth, (scale / depth + shift).astype(np.float32))
    summary = run_benchmark("sintel", "--data-dir", root, "--predictions", tmp_path / "preds",
                            "--json", tmp_path / "o.json")["summary"]
    assert summary["abs_rel"] == pytest.approx(0.0, abs=1e-5)
    assert summary["delta1"] == 1.0 and summary["bad"] == pytest.approx(0.0)


def test_depth_alignment_and_disparity_space(tmp_path, rng):
    depth, _ = scene(rng, 30, 40, 1.0, 50.0)
    pred = (2.0 * depth + 1.0 + rng.normal(size=depth.shape)).astype(np.float32)
    root = _sintel_like(tmp_path, rng, depth, pred)
    valid = (depth > 1e-3) & (depth < 72.0)
    for align, space in (("depth", "depth"), ("depth", "disparity"), ("scale", "depth")):
        result = run_benchmark(
            "sintel", "--data-dir", root, "--predictions", tmp_path / "preds",
            "--prediction-kind", "depth", "--align", align, "--space", space,
            "--json", tmp_path / "o.json")
        want = ref.score(pred, depth, valid, 1e-3, 72.0, align=align, prediction_kind="depth",
                         space=space)
        for key, value in want.items():
            assert result["summary"][key] == pytest.approx(value, abs=TOL), (align, space, key)


def test_crop_and_cap_exclude_what_they_should(tmp_path, rng):
    """At KITTI's 375 x 1242: a prediction perfect inside the Garg crop and wrong outside it,
    and ground truth beyond 80 m inside it (wrong there too)."""
    size = (375, 1242)
    truth = write_kitti(tmp_path / "kitti", rng, frames=(10,), missing=None, size=size)
    name, depth = next(iter(truth.items()))
    inside = ref.crop_box("garg", *size)
    gt_path = tmp_path / "kitti/data_depth_annotated/val" / DRIVE / \
        "proj_depth/groundtruth/image_02/0000000010.png"
    raw = cv2.imread(str(gt_path), cv2.IMREAD_UNCHANGED)
    raw[inside & (np.arange(size[1])[None, :] < 200) & (raw > 0)] = 100 * 256  # beyond the cap
    assert cv2.imwrite(str(gt_path), raw)
    depth = raw / 256.0
    pred = np.where(depth > 0, 0.5 / np.where(depth > 0, depth, 1) + 0.1, 0.0)
    wrong = ~inside | (depth >= 80)
    pred = np.where(wrong, np.random.default_rng(1).uniform(0, 1, size), pred)
    preds = tmp_path / "preds"
    os.makedirs(preds / os.path.dirname(name))
    np.save(preds / f"{name}.npy", pred.astype(np.float32))
    cropped = run_benchmark("kitti", "--data-dir", tmp_path / "kitti", "--predictions", preds,
                            "--json", tmp_path / "a.json")["summary"]
    assert cropped["abs_rel"] == pytest.approx(0.0, abs=1e-5)
    uncropped = run_benchmark("kitti", "--data-dir", tmp_path / "kitti", "--predictions",
                              preds, "--crop", "none", "--json", tmp_path / "b.json")["summary"]
    assert uncropped["abs_rel"] > 0.05


def test_eigen_nyu_crop_is_rows_45_to_470_and_columns_41_to_600():
    mask = protocol_lib.crop_mask("eigen_nyu", 480, 640)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (45, 470, 41, 600)
    assert mask.sum() == 426 * 560
    with pytest.raises(ValueError, match="480x640"):
        protocol_lib.crop_mask("eigen_nyu", 240, 320)


# ------------------------------------------------------------------------ bad data


def test_broken_files_are_named_skipped_and_counted(tmp_path, rng, capsys):
    root = tmp_path / "sintel"
    preds = tmp_path / "preds"
    depths = {}
    for frame in range(1, 6):
        depth, _ = scene(rng, 20, 30, 1.0, 50.0)
        depths[frame] = depth
        _sintel_like(tmp_path, rng, depth, noisy_disparity(rng, depth), f"frame_{frame:04d}")
    (root / "training/final/s/frame_0002.png").write_bytes(b"not a png")  # unreadable
    os.remove(preds / "frame_0003.npy")  # missing prediction
    np.save(preds / "frame_0004.npy", np.ones((20, 60), np.float32))  # another aspect
    write_dpt(root / "training/depth/s/frame_0005.dpt", np.full((20, 30), 1e11, np.float32))
    result = run_benchmark("sintel", "--data-dir", root, "--predictions", preds,
                           "--json", tmp_path / "o.json")
    assert result["summary"]["images"] == 1
    assert result["summary"]["skipped"] == {"unreadable": 1, "missing prediction": 1,
                                            "mis-sized prediction": 1, "no valid pixel": 1}
    assert {s["name"].rsplit("/", 1)[-1] for s in result["skipped"]} == {
        "frame_0002", "frame_0003", "frame_0004", "frame_0005"}
    out = capsys.readouterr()
    assert "4 skipped" in out.out and "frame_0003" in out.err


def test_a_folder_in_another_layout_names_the_expected_one(tmp_path, capsys):
    (tmp_path / "wrong").mkdir()
    assert cli.main(["zero-shot", "sintel", "--data-dir", str(tmp_path / "wrong"),
                     "--predictions", str(tmp_path)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "training/final/SCENE/frame_0001.png" in err and "training/depth" in err
    assert cli.main(["zero-shot", "nyu", "--data-dir", str(tmp_path / "wrong"),
                     "--predictions", str(tmp_path)]) == cli.EXIT_ERROR
    assert "nyu_depth_v2_labeled.mat" in capsys.readouterr().err


def test_alignment_must_match_the_prediction_kind(tmp_path, capsys):
    assert cli.main(["zero-shot", "sintel", "--data-dir", str(tmp_path), "--predictions",
                     str(tmp_path), "--align", "depth"]) == cli.EXIT_ERROR
    assert "--prediction-kind is disparity" in capsys.readouterr().err


# ------------------------------------------------------------------------ a model


def test_a_model_through_the_benchmark(tmp_path, rng, capsys):
    """The tiny model from an export folder on the NYU fixture: the command's numbers equal
    the reference protocol applied to `inference.predict`'s output at the photo's size."""
    import jax

    from depthsense_jax import inference, params_io
    from depthsense_jax.config import load_config
    from depthsense_jax.models import create_variables

    config = load_config("base", ["--config.model.encoder_depth=18",
                                     "--config.model.width=8",
                                     "--config.model.fusion_channels=16"])
    _, variables = create_variables(config.model, jax.random.PRNGKey(0))
    export = tmp_path / "export"
    export.mkdir()
    params_io.write_model_json(str(export), config.model, image_size=64)
    params_io.save_msgpack(str(export), variables)
    truth = write_nyu(tmp_path / "nyu", rng)
    result = run_benchmark("nyu", "--data-dir", tmp_path / "nyu", "--params", export,
                           "--json", tmp_path / "out.json")
    assert result["settings"]["size"] == 64
    model = inference.load_model(params=str(export))
    crop = ref.crop_box("eigen_nyu", 480, 640)
    expected = {}
    for name, (depth, image) in truth.items():
        pred = inference.predict(model, [image])[0]
        valid = (depth > 1e-3) & (depth < 10.0) & crop
        expected[name] = ref.score(pred, depth, valid, 1e-3, 10.0)
    check(result, expected)
    assert "images/s" in capsys.readouterr().out


# ------------------------------------------------------------------------ ReDWeb


def test_redweb_validation_split_scores_whdr(tmp_path, rng):
    """The TFDS build's validation split, relative ground truth 1 - RD/255 with the sky
    masked: the truth itself scores WHDR 0, its reverse about 1, and a noisy prediction the
    aligned WHDR of `metrics.whdr` on the same pairs."""
    import jax

    from depthsense_jax import metrics
    from depthsense_jax.config import load_config
    from depthsense_jax.data import redweb, registry
    from depthsense_jax.sampling import per_image_pairs

    manual = tmp_path / "manual" / "ReDWeb_V1"
    (manual / "Imgs").mkdir(parents=True)
    (manual / "RDs").mkdir()
    stems = [f"img_{i:03d}" for i in range(200)]
    validation = [s for s in stems if redweb.split_of(s) == "validation"][:4]
    truths = {}
    for stem in validation + [s for s in stems if redweb.split_of(s) == "train"][:2]:
        yy, xx = np.mgrid[0:24, 0:32]
        rd = np.clip(40 + 3 * yy + 2 * xx + rng.integers(0, 5, (24, 32)), 0, 254).astype(np.uint8)
        rd[:3] = 255  # sky
        cv2.imwrite(str(manual / "Imgs" / f"{stem}.png"), rng.integers(0, 255, (24, 32, 3),
                                                                      np.uint8))
        cv2.imwrite(str(manual / "RDs" / f"{stem}.png"), rd)
        truths[stem] = rd
    data_dir = tmp_path / "tfds"
    registry.build(load_config("base", ["--config.data.name=redweb",
                                           f"--config.data.data_dir={data_dir}",
                                           f"--config.data.manual_dir={manual.parent}"]).data)
    preds = tmp_path / "preds"
    preds.mkdir()
    noisy = {}
    for kind in ("truth", "reverse", "noisy"):
        for stem in validation:
            truth = 1.0 - truths[stem] / 255.0
            pred = {"truth": truth, "reverse": -truth,
                    "noisy": 3 * truth + 0.05 * rng.normal(size=truth.shape)}[kind]
            noisy[stem] = pred.astype(np.float32)
            np.save(preds / f"{stem}.npy", noisy[stem])
        result = run_benchmark("redweb", "--data-dir", data_dir, "--predictions", preds,
                               "--json", tmp_path / f"{kind}.json")
        assert result["summary"]["images"] == len(validation)
        whdr = {r["name"]: r["whdr"] for r in result["rows"]}
        if kind == "truth":
            # RD levels make some depth ratios exactly 1.02 (51/50): after the float32
            # alignment such a boundary pair can fall either way. A few in 3,000 at most.
            assert max(whdr.values()) <= 3 / 3000 + 1e-6
        elif kind == "reverse":
            assert min(whdr.values()) > 0.9
    order = [r["name"] for r in result["rows"]]
    for index, stem in enumerate(order):
        truth = np.asarray(redweb.rd_to_depth(truths[stem])[0])  # as the pipeline converts
        mask = truths[stem] != 255
        pairs = per_image_pairs(jax.random.fold_in(jax.random.PRNGKey(0), index), mask[None],
                                3000)
        want = metrics.whdr(noisy[stem][None], truth[None], pairs, mask=mask[None])
        assert whdr[stem] == pytest.approx(float(want[0]), abs=1e-7)
