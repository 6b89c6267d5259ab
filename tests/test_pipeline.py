"""tf.data pipeline over a fake ReDWeb build: shapes, alignment, masks, hosts, seeds, resume."""

import os

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from depthsense_jax.config import load_config
from depthsense_jax.data import pipeline, redweb

SIZE = 32
NUM = 24


def _marker_example(i, h=48, w=64):
    """An image with a bright square and an RD map that is nearest (RD small) at the same
    place, a sky band (RD 255) at the top, and noise elsewhere."""
    rng = np.random.default_rng(i)
    image = rng.integers(0, 80, (h, w, 3), np.uint8)
    rd = rng.integers(100, 200, (h, w), np.uint8)
    top, left = 16 + i % 8, 8 + (5 * i) % 40
    image[top : top + 8, left : left + 8] = 255
    rd[top : top + 8, left : left + 8] = 0
    rd[:6] = 255
    return image, rd


@pytest.fixture(scope="module")
def data_config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redweb")
    root = tmp / "manual" / "ReDWeb_V1"
    (root / "Imgs").mkdir(parents=True)
    (root / "RDs").mkdir()
    for i in range(NUM):
        image, rd = _marker_example(i)
        cv2.imwrite(str(root / "Imgs" / f"ex_{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "RDs" / f"ex_{i:03d}.png"), rd)
    builder = redweb.Redweb(data_dir=str(tmp / "data"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(root.parent))
    )
    config = load_config("configs/base.py", [
        "--config.data.name=redweb", f"--config.data.data_dir={tmp / 'data'}",
        f"--config.image_size={SIZE}", "--config.batch_size=4", "--config.data.shuffle_buffer=8",
    ])
    return config


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_batch_shapes_dtypes_and_ranges(data_config):
    for split, training in (("train", True), ("train", False)):
        batch = next(iter(pipeline.make_dataset(data_config, split, training=training)))
        assert batch["image"].shape == (4, SIZE, SIZE, 3) and batch["image"].dtype == np.float32
        assert batch["depth"].shape == (4, SIZE, SIZE) and batch["depth"].dtype == np.float32
        assert batch["mask"].shape == (4, SIZE, SIZE) and batch["mask"].dtype == bool
        assert 0 <= batch["image"].min() and batch["image"].max() <= 1
        assert 0 <= batch["depth"].min() and batch["depth"].max() <= 1


def test_masks_follow_the_sky_and_depth_is_zero_there(data_config):
    invalid = 0
    for batch in _take(iter(pipeline.make_dataset(data_config, "train")), 4):
        np.testing.assert_array_equal(batch["depth"][~batch["mask"]], 0)
        assert (batch["depth"][batch["mask"]] > 0).all()
        invalid += (~batch["mask"]).sum()
    assert invalid > 0  # the sky band survives some crops


def test_keep_sky_adds_sky_to_the_ordinal_mask_only(data_config):
    """keep_sky: the sky (RD 255) stays out of `mask` (SSIM, smoothness, metrics) and joins
    `ordinal_mask` (the ranking losses) as depth 0, the farthest value."""
    plain = next(iter(pipeline.make_dataset(data_config, "validation", training=False)))
    assert "ordinal_mask" not in plain
    config = data_config.copy_and_resolve_references()
    config.data.keep_sky = True
    batch = next(iter(pipeline.make_dataset(config, "validation", training=False)))
    np.testing.assert_array_equal(batch["mask"], plain["mask"])
    np.testing.assert_array_equal(batch["depth"], plain["depth"])
    sky = batch["ordinal_mask"] & ~batch["mask"]
    assert sky.any() and (batch["mask"] <= batch["ordinal_mask"]).all()
    assert (batch["depth"][sky] == 0).all()
    assert batch["ordinal_mask"].all()  # the fake data has no invalid pixel but the sky


def test_flips_and_crops_keep_image_and_depth_aligned(data_config):
    # The bright square in the image is where the depth is largest (RD 0 -> depth 1): after
    # scaling, cropping, flipping and colour jitter their centres still coincide.
    seen = 0
    for batch in _take(iter(pipeline.make_dataset(data_config, "train")), 6):
        for image, depth in zip(batch["image"], batch["depth"], strict=True):
            marker_depth = depth > 0.99
            if marker_depth.sum() < 16 or marker_depth[:, [0, -1]].any():
                continue  # cropped away or cut by the frame
            seen += 1
            grey = image.mean(-1)
            marker_image = grey >= np.sort(grey.ravel())[-marker_depth.sum()]
            centre_depth = np.argwhere(marker_depth).mean(0)
            centre_image = np.argwhere(marker_image).mean(0)
            assert np.abs(centre_depth - centre_image).max() < 1.5
    assert seen >= 4


def test_same_seed_same_batches_and_other_seed_differs(data_config):
    a = _take(iter(pipeline.make_dataset(data_config, "train")), 3)
    b = _take(iter(pipeline.make_dataset(data_config, "train")), 3)
    for x, y in zip(a, b, strict=True):
        for key in ("image", "depth", "mask"):
            np.testing.assert_array_equal(x[key], y[key])
    data_config.seed = 1
    try:
        c = _take(iter(pipeline.make_dataset(data_config, "train")), 3)
    finally:
        data_config.seed = 0
    assert any(not np.array_equal(x["image"], z["image"]) for x, z in zip(a, c, strict=True))


def test_start_step_resumes_exactly(data_config):
    full = _take(iter(pipeline.make_dataset(data_config, "train")), 9)
    resumed = _take(iter(pipeline.make_dataset(data_config, "train", start_step=5)), 4)
    for x, y in zip(full[5:], resumed, strict=True):
        for key in ("image", "depth", "mask", "file_name"):
            np.testing.assert_array_equal(x[key], y[key])


def test_two_hosts_see_disjoint_halves_covering_the_split(data_config):
    names = []
    for index in range(2):
        seen = set()
        for batch in pipeline.make_dataset(data_config, "train", process_index=index,
                                           process_count=2, training=False):
            seen.update(batch["file_name"].tolist())
        names.append(seen)
    everything = set()
    for batch in pipeline.make_dataset(data_config, "train", training=False):
        everything.update(batch["file_name"].tolist())
    assert names[0] and names[1] and not names[0] & names[1]
    assert len(names[0]) == len(names[1])
    assert names[0] | names[1] <= everything and len(everything) - len(names[0] | names[1]) <= 1


def test_bad_config_values(data_config):
    data_config.image_size = 0
    with pytest.raises(ValueError, match="image_size must be positive"):
        pipeline.make_tf_dataset(data_config, "train")
    data_config.image_size = SIZE
    with pytest.raises(ValueError, match="not divisible"):
        pipeline.make_tf_dataset(data_config, "train", process_index=0, process_count=3)
    with pytest.raises(ValueError, match="no split"):
        pipeline.make_tf_dataset(data_config, "test")
    other = load_config("configs/base.py", ["--config.data.name=redweb",
                                               f"--config.data.data_dir={os.getcwd()}/nowhere"])
    with pytest.raises(ValueError, match="not built"):
        pipeline.make_tf_dataset(other, "train")


def test_synthetic_tiny_through_the_pipeline(tmp_path):
    # The built-in dataset is generated on first use; depth is stored as inverse depth.
    config = load_config("configs/base.py", [
        "--config.data.name=synthetic_scenes/tiny", f"--config.data.data_dir={tmp_path}",
        "--config.image_size=32", "--config.batch_size=4",
    ])
    for split in ("train", "validation"):
        batch = next(iter(pipeline.make_dataset(config, split)))
        assert batch["image"].shape == (4, 32, 32, 3)
        np.testing.assert_array_equal(batch["depth"] > 0, batch["mask"])
        assert batch["mask"].any()
