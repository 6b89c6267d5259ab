"""Datasets, predictions and results in a bucket (the GCS API on localhost of conftest's `gcs`
fixture): every benchmark dataset, your own folder dataset and every file format read from a
gs:// URL give what the same files give from a local folder; the benchmark writes its JSON
to a URL; a missing bucket or prefix as a dataset root is a FileNotFoundError naming it."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import uuid

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

# The format writers written from each format's description (not with our readers).
from test_zero_shot import write_dpt, write_pfm

from depthsense_jax import cli, storage
from depthsense_jax.data import folder, formats, registry
from depthsense_jax.data.samples import MissingFolder

H, W = 12, 16


def _bucket(gcs) -> str:
    return gcs.bucket(f"sd-{uuid.uuid4().hex[:16]}")


def _uploaded(gcs, local) -> str:
    """A copy of the local folder `local` in a new bucket: its gs:// URL."""
    url = _bucket(gcs) + "/data"
    assert storage.copy_tree(str(local), url)
    return url


# ------------------------------------------------------------------------ writers
# Each format written from its description, with small arrays.


def _depth(seed, near=1.0, far=8.0, shape=(H, W)):
    rng = np.random.default_rng(seed)
    return rng.uniform(near, far, shape).astype(np.float32)


def _rgb(path, seed, shape=(H, W)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (*shape, 3), np.uint8)
    assert cv2.imwrite(str(path), image)


def _pfm(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_pfm(path, array)


def _dpt(path, depth):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_dpt(path, depth)


def _sintel(root):
    for frame in (1, 2):
        _rgb(root / f"training/final/alley_1/frame_{frame:04d}.png", frame)
        _dpt(root / f"training/depth/alley_1/frame_{frame:04d}.dpt", _depth(frame, 1, 60))


def _diode(root):
    for kind in ("indoors", "outdoor"):
        scan = root / "val" / kind / "scene_00001" / "scan_00001"
        _rgb(scan / f"{kind}_000.png", len(kind))
        np.save(scan / f"{kind}_000_depth.npy", _depth(len(kind), 0.3, 40)[..., None])
        np.save(scan / f"{kind}_000_depth_mask.npy", (_depth(3) > 4).astype(np.float32))


def _eth3d(root):
    for scene, shot in (("courtyard", "DSC_0286"), ("pipes", "DSC_0634")):
        _rgb(root / scene / "images" / "dslr_images" / f"{shot}.JPG", len(scene))
        (root / scene / "ground_truth_depth" / "dslr_images").mkdir(parents=True)
        depth = _depth(len(scene), 1, 30)
        depth[:2, :2] = np.inf
        depth.astype("<f4").tofile(root / scene / "ground_truth_depth" / "dslr_images" /
                                   f"{shot}.JPG")


def _middlebury(root):
    _rgb(root / "Adirondack" / "im0.png", 1)
    _pfm(root / "Adirondack" / "disp0.pfm", _depth(1, 60, 250))
    (root / "Adirondack" / "calib.txt").write_text(
        "cam0=[4152.073 0 1176.728; 0 4152.073 1011.728; 0 0 1]\ndoffs=124.343\n"
        "baseline=176.252\n")
    _rgb(root / "Aloe" / "view1.png", 2)
    assert cv2.imwrite(str(root / "Aloe" / "disp1.png"),
                       _depth(2, 0, 200).astype(np.uint8))


def _kitti(root):
    drive = "2011_09_26_drive_0002_sync"
    for frame in (69, 70):
        _rgb(root / f"2011_09_26/{drive}/image_02/data/{frame:010d}.png", frame)
        gt = root / "data_depth_annotated/val" / drive / "proj_depth/groundtruth/image_02"
        gt.mkdir(parents=True, exist_ok=True)
        raw = np.round(_depth(frame, 0, 90) * 256).astype(np.uint16)
        assert cv2.imwrite(str(gt / f"{frame:010d}.png"), raw)
    (root / "test_files.txt").write_text("".join(
        f"2011_09_26/{drive} {frame:010d} l\n" for frame in (69, 70, 71)))  # 71: no files


def _diw(root):
    rows = []
    for i in range(2):
        _rgb(root / "DIW_test" / f"img_{i}.thumb.jpg", i)
        rows += [[f"./DIW_test/img_{i}.thumb.jpg"], [3, 4, 10, 12, ">" if i else "<", W, H]]
    with open(root / "DIW_test.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _nyu(root):
    root.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (3, H, W, 3), np.uint8)
    depths = np.stack([_depth(i, 0.5, 10) for i in range(3)])
    with h5py.File(root / "nyu_depth_v2_labeled.mat", "w") as f:  # MATLAB's transposed axes
        f.create_dataset("images", data=images.transpose(0, 3, 2, 1))
        f.create_dataset("rawDepths", data=depths.transpose(0, 2, 1))
    scipy.io.savemat(root / "splits.mat", {"testNdxs": np.array([[2.0], [3.0]]),
                                          "trainNdxs": [[1.0]]})


DATASETS = {"sintel": _sintel, "diode": _diode, "eth3d": _eth3d, "middlebury": _middlebury,
            "kitti": _kitti, "diw": _diw, "nyu": _nyu}


def _loaded(items) -> dict:
    """{name: Sample, or the FormatError's reason} of benchmark items."""
    out = {}
    for item in items:
        try:
            out[item.name] = item.load()
        except ValueError as err:
            out[item.name] = err.reason
    return out


def _assert_same_samples(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name, sample in want.items():
        if isinstance(sample, str):
            assert got[name] == sample, name
            continue
        for field in dataclasses.fields(sample):
            a, b = getattr(got[name], field.name), getattr(sample, field.name)
            if isinstance(b, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}.{field.name}")
            else:
                assert a == b, (name, field.name)


# ------------------------------------------------------------------------ benchmark data


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_a_benchmark_dataset_reads_the_same_from_a_bucket(dataset, gcs, tmp_path):
    local = tmp_path / dataset
    DATASETS[dataset](local)
    url = _uploaded(gcs, local)
    _, local_items = registry.benchmark(dataset, str(local))
    spec, url_items = registry.benchmark(dataset, url)
    want = _loaded(local_items)
    assert len(want) >= 2 and any(not isinstance(s, str) for s in want.values())
    _assert_same_samples(_loaded(url_items), want)
    assert spec.name == dataset


def test_the_benchmark_scores_a_bucket_and_writes_its_json_there(gcs, tmp_path):
    """Sintel and its predictions in a bucket, the JSON result written to another prefix:
    the same rows and summary as the local run."""
    local = tmp_path / "sintel"
    _sintel(local)
    preds = tmp_path / "preds"
    for frame in (1, 2):  # suffixed names (MiDaS's), matched by stem
        (preds / "training/final/alley_1").mkdir(parents=True, exist_ok=True)
        np.save(preds / f"training/final/alley_1/frame_{frame:04d}-dpt.npy",
                1.0 / _depth(frame, 1, 60) + 0.01 * _depth(frame + 7))
    assert cli.main(["benchmark", "sintel", "--data-dir", str(local), "--predictions",
                     str(preds), "--json", str(tmp_path / "local.json")]) == 0
    bucket = _bucket(gcs)
    data, predictions = bucket + "/sintel", bucket + "/preds"
    storage.copy_tree(str(local), data)
    storage.copy_tree(str(preds), predictions)
    result_url = bucket + "/results/sintel.json"
    assert cli.main(["benchmark", "sintel", "--data-dir", data, "--predictions", predictions,
                     "--json", result_url]) == 0
    got = json.loads(storage.read_text(result_url))
    want = json.loads((tmp_path / "local.json").read_text())
    assert got["summary"]["images"] == 2 and got["skipped"] == []
    assert got["settings"]["data_dir"] == data and got["settings"]["source"] == predictions
    assert got["rows"] == want["rows"]
    del got["summary"]["images_per_s"], want["summary"]["images_per_s"]
    assert got["summary"] == want["summary"]


def test_a_missing_bucket_or_prefix_as_the_dataset_root_names_the_url(gcs, capsys):
    bucket = _bucket(gcs)
    nothing = bucket + "/no/such/folder"
    with pytest.raises(FileNotFoundError, match=f"{nothing}: no such folder") as info:
        registry.benchmark("sintel", nothing)
    assert isinstance(info.value, MissingFolder) and "training/final" in str(info.value)
    gone = f"gs://sd-missing-{uuid.uuid4().hex[:12]}/sintel"
    with pytest.raises(FileNotFoundError, match=f"{gone}: the bucket gs://sd-missing-"):
        registry.benchmark("diode", gone)
    # Through the command: an error naming the URL, no traceback.
    assert cli.main(["benchmark", "eth3d", "--data-dir", gone, "--predictions",
                     nothing]) == cli.EXIT_ERROR
    assert gone in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match=f"--images {nothing}: no such folder"):
        folder.FolderOptions(images=nothing, depth=bucket, kind="depth")


# ------------------------------------------------------------------------ your own folder


def test_a_folder_dataset_reads_the_same_from_a_bucket(gcs, tmp_path):
    root = tmp_path / "own"
    yy, xx = np.mgrid[0:H, 0:W]
    metres = (1.0 + 0.1 * yy + 0.05 * xx).astype(np.float32)
    for i, key in enumerate(("a/b/png16", "a/x", "npy", "pfm", "z/deep/er/tif")):
        _rgb(root / "images" / f"{key}.jpg", i)
        (root / "depth" / key).parent.mkdir(parents=True, exist_ok=True)
        (root / "masks" / key).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / "masks" / f"{key}.png"),
                           np.where(xx > i, 255, 0).astype(np.uint8))
        if key.endswith("png16"):
            assert cv2.imwrite(str(root / "depth" / f"{key}.png"),
                               np.round(metres * 1000).astype(np.uint16))
        elif key == "pfm":
            _pfm(root / "depth" / "pfm.pfm", metres * 1000)
        elif key.endswith("tif"):
            import tifffile

            tifffile.imwrite(root / "depth" / f"{key}.tif", metres * 1000)
        else:
            np.save(root / "depth" / f"{key}.npy", metres * 1000)
    _rgb(root / "images" / "lonely.jpg", 9)  # no ground truth
    (root / "split.txt").write_text("npy validation\na/x train\n")
    url = _uploaded(gcs, root)

    def read(base):
        options = folder.FolderOptions(
            images=storage.join(base, "images"), depth=storage.join(base, "depth"),
            masks=storage.join(base, "masks"), kind="depth", depth_scale=1000,
            split_list=storage.join(base, "split.txt"))
        splits, skipped = folder.pairs(options)
        return ({s: _loaded(items) for s, items in splits.items()},
                [(name, reason) for name, reason, _ in skipped])

    want_splits, want_skipped = read(str(root))
    got_splits, got_skipped = read(url)
    assert want_skipped == got_skipped == [("lonely", "missing depth")]
    assert list(want_splits["validation"]) == ["npy"]
    assert sum(len(s) for s in want_splits.values()) == 5
    for split, want in want_splits.items():
        _assert_same_samples(got_splits[split], want)


# ------------------------------------------------------------------------ builds from a URL


def _config(name, data_dir, manual_dir):
    from depthsense_jax.config import load_config

    return load_config("base", [f"--config.data.name={name}",
                                   f"--config.data.data_dir={data_dir}",
                                   f"--config.data.manual_dir={manual_dir}"]).data


def test_redweb_builds_from_a_manual_dir_url(gcs, tmp_path):
    root = tmp_path / "manual" / "ReDWeb_V1"
    (root / "Imgs").mkdir(parents=True)
    (root / "RDs").mkdir()
    for i in range(5):
        _rgb(root / "Imgs" / f"img_{i}.jpg", i)
        assert cv2.imwrite(str(root / "RDs" / f"img_{i}.png"),
                           _depth(i, 0, 255).astype(np.uint8))
    _rgb(root / "Imgs" / "nodepth.jpg", 7)  # skipped: no RD map
    url = _uploaded(gcs, tmp_path / "manual")
    from depthsense_jax.data import redweb

    assert redweb.find_root(url) == storage.join(url, "ReDWeb_V1")
    assert [stem for stem, _, _ in redweb.list_examples(storage.join(url, "ReDWeb_V1"))] == [
        "img_0", "img_1", "img_2", "img_3", "img_4", "nodepth"]
    builder = registry.build(_config("redweb", tmp_path / "data", url))
    assert sum(s.num_examples for s in builder.info.splits.values()) == 5


def test_a_train_split_builds_from_a_url_and_its_build_is_found_in_a_bucket(gcs, tmp_path):
    """Middlebury's scenes read from a bucket into a local rgbd/ build; that build copied to a
    bucket is found there, with its record. (Its TFRecords are read by TensorFlow's own GCS
    client, which has no emulator setting: not here.)"""
    from depthsense_jax.data import rgbd

    _middlebury(tmp_path / "middlebury")
    url = _uploaded(gcs, tmp_path / "middlebury")
    builder = registry.build(_config("middlebury", tmp_path / "data", url))
    assert builder.info.splits["train"].num_examples == 2
    data = _uploaded(gcs, tmp_path / "data")
    assert rgbd.folder_of("middlebury", data) == storage.join(data, "rgbd/middlebury/1.0.0")
    found, record = rgbd.load("middlebury", data, "build it")
    assert record["source"]["folder"] == url and record["kind"] == "depth"
    assert found.info.splits["train"].num_examples == 2
    with pytest.raises(ValueError, match=f"not built in '{data}/elsewhere'"):
        rgbd.load("middlebury", data + "/elsewhere", "build it")
    gone = f"gs://sd-missing-{uuid.uuid4().hex[:12]}/data"
    with pytest.raises(FileNotFoundError, match="the bucket gs://sd-missing-"):
        rgbd.load("middlebury", gone, "build it")


# ------------------------------------------------------------------------ file formats


def test_every_format_reads_the_same_from_a_url(gcs, tmp_path):
    import OpenEXR
    import tifffile

    depth = _depth(0)
    np.save(tmp_path / "m.npy", depth[None])
    _pfm(tmp_path / "m.pfm", depth)
    _dpt(tmp_path / "m.dpt", depth)
    assert cv2.imwrite(str(tmp_path / "m.png"), np.round(depth * 1000).astype(np.uint16))
    tifffile.imwrite(tmp_path / "m.tif", depth)
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION,
                       "type": OpenEXR.scanlineimage}, {"Z": depth}) as f:
        f.write(str(tmp_path / "m.exr"))
    depth.astype("<f4").tofile(tmp_path / "m.raw")
    _rgb(tmp_path / "m.jpg", 1)
    url = _uploaded(gcs, tmp_path)
    for name in ("m.npy", "m.pfm", "m.dpt", "m.png", "m.tif", "m.exr"):
        want = formats.read_map(str(tmp_path / name))
        np.testing.assert_array_equal(formats.read_map(storage.join(url, name)), want,
                                      err_msg=name)
    np.testing.assert_array_equal(formats.read_raw_float32(storage.join(url, "m.raw"), H, W),
                                  depth)
    for reader in (formats.read_rgb, formats.read_png_gray):
        name = "m.jpg" if reader is formats.read_rgb else "m.png"
        np.testing.assert_array_equal(reader(storage.join(url, name)),
                                      reader(str(tmp_path / name)))
    for name in ("nothing.npy", "nothing.png", "nothing.exr", "nothing.tif"):
        missing = storage.join(url, name)
        with pytest.raises(formats.FormatError, match=f"{missing}: no such file") as info:
            formats.read_map(missing)
        assert info.value.reason == "missing file"
    gone = f"gs://sd-missing-{uuid.uuid4().hex[:12]}/m.npy"
    with pytest.raises(formats.FormatError, match="the bucket gs://sd-missing-"):
        formats.read_map(gone)


# ------------------------------------------------------------------------ weights and timings


def test_weights_from_a_url_and_a_timing_record_written_to_one(gcs, tmp_path):
    from safetensors.numpy import save_file

    from depthsense_jax.models.torchvision_import import load_state_dict
    from depthsense_jax.speed import timing

    state = {"conv1.weight": _depth(0, shape=(4, 3, 2, 2)), "bn1.running_var": _depth(1)}
    np.savez(tmp_path / "w.npz", **state)
    save_file(state, str(tmp_path / "w.safetensors"))
    url = _uploaded(gcs, tmp_path)
    for name in ("w.npz", "w.safetensors"):
        loaded = load_state_dict(storage.join(url, name))
        assert loaded.keys() == state.keys()
        for key, value in state.items():
            np.testing.assert_array_equal(loaded[key], value)
    missing = storage.join(url, "nothing.pth")
    with pytest.raises(FileNotFoundError, match=missing):
        load_state_dict(missing)

    @dataclasses.dataclass
    class Result:
        ms: float

    record = storage.join(url, "bench", "record.json")
    timing.write_json(record, [Result(1.5)], batch=2)
    written = json.loads(storage.read_text(record))
    assert written["result"] == [{"ms": 1.5}] and written["settings"] == {"batch": 2}
