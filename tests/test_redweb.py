"""ReDWeb builder: RD conversion, the split, and a fake ReDWeb folder with broken files."""

import os

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from depthsense_jax.data import redweb
from depthsense_jax.data.target import SKY, VALID


def test_rd_to_depth_hand_made_file(tmp_path):
    rd = np.array([[0, 51, 255], [102, 204, 255]], np.uint8)
    path = str(tmp_path / "rd.png")
    cv2.imwrite(path, rd)
    depth, validity = (np.asarray(x) for x in
                       redweb.rd_to_depth(cv2.imread(path, cv2.IMREAD_UNCHANGED)))
    np.testing.assert_allclose(depth, [[1.0, 0.8, 0.0], [0.6, 0.2, 0.0]], atol=1e-6)
    np.testing.assert_array_equal(validity, [[VALID, VALID, SKY], [VALID, VALID, SKY]])
    assert depth.dtype == np.float32 and validity.dtype == np.uint8
    # Nearer (small RD) is larger depth: the order is reversed, affinely.
    assert depth[0, 0] > depth[0, 1] > depth[1, 0] > depth[1, 1]
    # The stored feature (H, W, 1) goes through the same conversion.
    stored_depth, stored_validity = redweb.decode_target(rd[..., None])
    np.testing.assert_array_equal(np.asarray(stored_depth), depth)
    np.testing.assert_array_equal(np.asarray(stored_validity), validity)
    with pytest.raises(ValueError, match="uint8"):
        redweb.rd_to_depth(rd.astype(np.uint16))


def test_split_is_stable_and_about_five_percent():
    stems = [f"img_{i:05d}" for i in range(4000)]
    splits = [redweb.split_of(s) for s in stems]
    assert splits == [redweb.split_of(s) for s in stems]
    fraction = splits.count("validation") / len(stems)
    assert 0.035 < fraction < 0.065


def _write_pair(root, stem, size=(40, 48), image=None, rd=None):
    h, w = size
    rng = np.random.default_rng(abs(hash(stem)) % 2**32)
    if image is None:
        image = rng.integers(0, 256, (h, w, 3), np.uint8)
    if rd is None:
        rd = rng.integers(0, 256, (h, w), np.uint8)
    cv2.imwrite(os.path.join(root, "Imgs", stem + ".jpg"), image)
    if rd is not False:
        cv2.imwrite(os.path.join(root, "RDs", stem + ".png"), rd)


def _fake_redweb(tmp_path, num_good=24):
    root = tmp_path / "manual" / "ReDWeb_V1"
    (root / "Imgs").mkdir(parents=True)
    (root / "RDs").mkdir()
    for i in range(num_good):
        _write_pair(str(root), f"good_{i:03d}")
    _write_pair(str(root), "grey", image=np.full((40, 48), 128, np.uint8))
    _write_pair(str(root), "nodepth", rd=False)
    _write_pair(str(root), "mismatch", rd=np.zeros((20, 48), np.uint8))
    _write_pair(str(root), "truncated")
    data = (root / "Imgs" / "truncated.jpg").read_bytes()
    (root / "Imgs" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    _write_pair(str(root), "corrupt")
    (root / "RDs" / "corrupt.png").write_bytes(b"\x89PNG not really IEND")
    _write_pair(str(root), "rgba_rd", rd=np.zeros((40, 48, 3), np.uint8))
    return root


@pytest.mark.parametrize("name, reason", [
    ("nodepth", "missing depth"), ("mismatch", "size mismatch"), ("truncated", "truncated"),
    ("corrupt", "corrupt"), ("rgba_rd", "format"),
])
def test_read_pair_reports_the_file_and_the_problem(tmp_path, name, reason):
    root = _fake_redweb(tmp_path, num_good=0)
    with pytest.raises(redweb.BadExample) as info:
        redweb.read_pair(str(root / "Imgs" / f"{name}.jpg"), str(root / "RDs" / f"{name}.png"))
    assert info.value.reason == reason
    assert name in str(info.value)


def test_greyscale_image_becomes_rgb(tmp_path):
    root = _fake_redweb(tmp_path, num_good=0)
    image, rd = redweb.read_pair(str(root / "Imgs" / "grey.jpg"), str(root / "RDs" / "grey.png"))
    assert image.shape == (40, 48, 3) and rd.shape == (40, 48)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(ValueError, match="no ReDWeb folder"):
        redweb.find_root(str(tmp_path))
    (tmp_path / "Imgs").mkdir()
    with pytest.raises(ValueError, match="holds no .jpg"):
        redweb.list_examples(redweb.find_root(str(tmp_path)))


def test_builder_on_a_fake_folder(tmp_path, caplog):
    root = _fake_redweb(tmp_path)
    builder = redweb.Redweb(data_dir=str(tmp_path / "data"))
    with caplog.at_level("WARNING"):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(root.parent))
        )
    counts = {s: builder.info.splits[s].num_examples for s in ("train", "validation")}
    assert sum(counts.values()) == 25  # 24 good + the greyscale one; 5 broken skipped
    assert "skipped" in caplog.text
    names = set()
    for split in ("train", "validation"):
        for ex in tfds.as_numpy(builder.as_dataset(split=split)):
            assert ex["image"].dtype == np.uint8 and ex["image"].shape == (40, 48, 3)
            assert ex["depth"].dtype == np.uint8 and ex["depth"].shape == (40, 48, 1)
            name = ex["file_name"].decode()
            assert redweb.split_of(name) == split
            names.add(name)
            rd = cv2.imread(str(root / "RDs" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(ex["depth"][..., 0], rd)  # stored untouched
    assert len(names) == 25


def test_rgba_image_drops_alpha(tmp_path):
    root = tmp_path / "ReDWeb_V1"
    (root / "Imgs").mkdir(parents=True)
    (root / "RDs").mkdir()
    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[..., 2] = 200  # red in OpenCV's BGRA order
    rgba[..., 3] = 7
    cv2.imwrite(str(root / "Imgs" / "a.png"), rgba)
    cv2.imwrite(str(root / "RDs" / "a.png"), np.zeros((8, 10), np.uint8))
    image, _ = redweb.read_pair(str(root / "Imgs" / "a.png"), str(root / "RDs" / "a.png"))
    assert image.shape == (8, 10, 3)
    np.testing.assert_array_equal(image[0, 0], [200, 0, 0])


def test_builder_reads_the_archive(tmp_path):
    import shutil

    root = _fake_redweb(tmp_path / "src", num_good=6)
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.make_archive(str(manual / "ReDWeb_V1"), "zip", root_dir=root.parent,
                        base_dir="ReDWeb_V1")
    builder = redweb.Redweb(data_dir=str(tmp_path / "data"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
    )
    total = sum(builder.info.splits[s].num_examples for s in builder.info.splits)
    assert total == 7  # 6 good + the greyscale one
