"""Training on your own data: folder datasets in every format and kind, the train splits of
benchmark datasets, mixtures, and starting from a trained model."""

from __future__ import annotations

import json
import os

import cv2
import jax
import numpy as np
import OpenEXR
import optax
import pytest
import tensorflow_datasets as tfds
import tifffile

from depthsense_jax import cli, params_io
from depthsense_jax.config import load_config
from depthsense_jax.data import folder, pipeline, registry
from depthsense_jax.train import state as state_lib

H, W = 12, 16


def _image(path, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (H, W, 3), np.uint8)
    assert cv2.imwrite(str(path), image)
    return image[..., ::-1]


def _pfm(path, array):
    with open(path, "wb") as f:
        f.write(f"Pf\n{W} {H}\n-1.0\n".encode() + np.ascontiguousarray(array[::-1], "<f4")
                .tobytes())


@pytest.fixture(scope="module")
def own_folder(tmp_path_factory):
    """Images and ground truth in every format, each with its hand-computed target (the
    stored values / scale) and mask; plus four broken pairs."""
    root = tmp_path_factory.mktemp("own")
    images, depth, masks = root / "images", root / "depth", root / "masks"
    yy, xx = np.mgrid[0:H, 0:W]
    metres = (1.0 + 0.1 * yy + 0.05 * xx).astype(np.float32)  # 1 .. 2.85 m
    expected = {}

    def add(key, writer, stored, target, mask, ext=".jpg"):
        _image(images / f"{key}{ext}", len(expected))
        writer(depth / key, stored)
        expected[key] = (target.astype(np.float32), mask)

    os.makedirs(depth / "a" / "b", exist_ok=True)
    mm = np.round(metres * 1000).astype(np.uint16)
    mm[0, :3] = 0  # no return
    mm[1, :2] = 65535  # a sensor's "invalid" code (--invalid 65535)
    valid = (mm > 0) & (mm != 65535)
    add("a/b/png16", lambda p, a: cv2.imwrite(f"{p}.png", a), mm,
        np.where(valid, mm / 1000.0, 0), valid)
    small = (metres * 50).astype(np.uint8)
    add("png8", lambda p, a: cv2.imwrite(f"{p}.png", a), small, small / 1000.0, small > 0)
    with_nan = metres.copy()
    with_nan[2, 2] = np.nan
    with_nan[3, 3] = -1.0
    ok = np.isfinite(with_nan) & (with_nan > 0)
    add("npy", lambda p, a: np.save(f"{p}.npy", a), with_nan,
        np.where(ok, with_nan, 0) / 1000, ok)
    add("pfm", lambda p, a: _pfm(f"{p}.pfm", a), metres * 1000, metres, np.ones((H, W), bool))
    add("tiff", lambda p, a: tifffile.imwrite(f"{p}.tif", a), metres * 1000, metres,
        np.ones((H, W), bool))
    add("exr", lambda p, a: _write_exr(f"{p}.exr", a), metres * 1000, metres,
        np.ones((H, W), bool))
    # A mask file removes the left half.
    mask = np.zeros((H, W), np.uint8)
    mask[:, W // 2:] = 255
    os.makedirs(masks, exist_ok=True)
    for key in expected:
        os.makedirs(os.path.dirname(masks / key), exist_ok=True)
        cv2.imwrite(str(masks / f"{key}.png"), mask)
    # Broken pairs: no partner, an unreadable image, another size, nothing valid.
    _image(images / "lonely.jpg", 90)
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    np.save(depth / "broken.npy", metres)
    _image(images / "small.jpg", 91)
    np.save(depth / "small.npy", metres[:5, :5])
    _image(images / "empty.jpg", 92)
    np.save(depth / "empty.npy", np.zeros((H, W), np.float32))
    return root, expected, mask > 0


def _write_exr(path, array):
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"Z": np.asarray(array, np.float32)}) as f:
        f.write(path)


def test_every_format_reads_to_the_hand_computed_target_and_mask(own_folder):
    root, expected, _ = own_folder
    options = folder.FolderOptions(images=str(root / "images"), depth=str(root / "depth"),
                                   kind="depth", depth_scale=1000, invalid=(65535,))
    splits, skipped = folder.pairs(options)
    assert [name for name, reason, _ in skipped] == ["lonely"]
    items = {i.name: i for s in splits.values() for i in s}
    for key, (target, mask) in expected.items():
        sample = items[key].load()
        np.testing.assert_array_equal(sample.mask, mask, err_msg=key)
        np.testing.assert_allclose(sample.target, target, rtol=1e-6, err_msg=key)
        assert sample.kind == "depth" and sample.image.shape == (H, W, 3)
    reasons = {}
    for key in ("broken", "small", "empty"):
        with pytest.raises(ValueError) as info:
            items[key].load()
        reasons[key] = info.value.reason
    assert reasons == {"broken": "unreadable", "small": "size mismatch",
                       "empty": "no valid pixel"}


def test_masks_split_lists_and_bad_options(own_folder, tmp_path):
    root, expected, half = own_folder
    listing = tmp_path / "split.txt"
    listing.write_text("a/b/png16.jpg\npfm validation\nnpy train\n")
    options = folder.FolderOptions(images=str(root / "images"), depth=str(root / "depth"),
                                   masks=str(root / "masks"), kind="relative",
                                   split_list=str(listing))
    splits, skipped = folder.pairs(options)
    assert sorted(i.name for i in splits["validation"]) == ["a/b/png16", "pfm"]
    assert {name for name, _, _ in skipped} >= {"lonely", "broken"}  # no mask for those
    sample = next(i for i in splits["validation"] if i.name == "pfm").load()
    np.testing.assert_array_equal(sample.mask, half)
    with pytest.raises(ValueError, match="--kind"):
        folder.FolderOptions(images=str(root), depth=str(root), kind="metric")
    with pytest.raises(ValueError, match="--depth 'nowhere' is not a folder"):
        folder.FolderOptions(images=str(root), depth="nowhere", kind="depth")


def _decoded(data_dir, name, split):
    """{file_name: (target, validity)} of a build, through the pipeline's own decoding."""
    config = load_config("base", [f"--config.data.name={name}",
                                     f"--config.data.data_dir={data_dir}"])
    prepared = registry.prepared(config.data)
    out = {}
    for example in prepared.builder.as_dataset(split=split):
        target, validity = prepared.decode_target(example)
        out[example["file_name"].numpy().decode()] = (target.numpy(), validity.numpy())
    return out


@pytest.mark.parametrize("kind", ["depth", "disparity", "relative"])
def test_build_folder_turns_each_kind_into_the_training_target(kind, own_folder, tmp_path,
                                                               capsys):
    root, expected, _ = own_folder
    data_dir = tmp_path / "tfds"
    assert cli.main(["data", "build", "folder", "--name", "mine", "--images",
                     str(root / "images"), "--depth", str(root / "depth"), "--kind", kind,
                     "--depth-scale", "1000", "--invalid", "65535", "--validation-percent",
                     "0", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "built rgbd/mine" in out and "--config.data.name=rgbd/mine" in out
    summary = out[out.index("skipped 4 ("):].splitlines()[0]
    for reason in ("1 missing depth", "1 unreadable", "1 size mismatch", "1 no valid pixel"):
        assert reason in summary
    # Each skipped pair is named on the console, not only in depthsense.json.
    named = [line.split()[1] for line in out.splitlines() if line.startswith("  skipped ")]
    record = json.loads((data_dir / "rgbd/mine/1.0.0/depthsense.json").read_text())
    assert sorted(named) == sorted(f["name"] for f in record["skipped_files"])
    assert len(named) == 4
    decoded = _decoded(data_dir, "rgbd/mine", "train")
    assert set(decoded) == set(expected)
    for key, (target, mask) in expected.items():
        got, validity = decoded[key]
        np.testing.assert_array_equal(validity == 1, mask, err_msg=key)
        want = 1.0 / np.where(mask, target, 1) if kind == "depth" else target
        np.testing.assert_allclose(got, np.where(mask, want, 0), rtol=1e-6, err_msg=key)
    assert record["kind"] == kind and record["skipped"]["size mismatch"] == 1
    # The same name again is refused rather than silently kept.
    assert cli.main(["data", "build", "folder", "--name", "mine", "--images",
                     str(root / "images"), "--depth", str(root / "depth"), "--kind", kind,
                     "--data-dir", str(data_dir)]) == cli.EXIT_ERROR
    assert "exists" in capsys.readouterr().err


def test_many_skipped_files_show_the_first_20_and_where_the_rest_are():
    from depthsense_jax.data import rgbd

    skipped = [(f"img_{i:03d}", "missing depth", f"no img_{i:03d}.png") for i in range(25)]
    lines = rgbd.skipped_lines(skipped, "DIR/depthsense.json")
    assert len(lines) == 21 and lines[0] == "  skipped img_000 (missing depth): no img_000.png"
    assert lines[-1] == "  ... and 5 more, all listed in DIR/depthsense.json"
    assert len(rgbd.skipped_lines(skipped[:20], "x")) == 20  # few: every one, no pointer


def test_a_folder_without_images_or_usable_pairs_is_one_clear_error(tmp_path, capsys):
    images, depth = tmp_path / "images", tmp_path / "depth"
    images.mkdir()
    depth.mkdir()
    (images / "notes.txt").write_text("no photos here")
    build = ["data", "build", "folder", "--name", "empty", "--images", str(images), "--depth",
             str(depth), "--kind", "depth", "--data-dir", str(tmp_path / "tfds")]
    assert cli.main(build) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: --images") and "holds no images" in err
    # Images, but not one with ground truth: nothing is built, and each is named.
    for i in range(3):
        assert cv2.imwrite(str(images / f"p{i}.png"), np.zeros((8, 8, 3), np.uint8))
    assert cli.main(build) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "rgbd/empty: no usable example; all 3 skipped (3 missing depth)" in err
    assert all(f"skipped p{i} (missing depth)" in err for i in range(3))
    assert not list((tmp_path / "tfds").glob("rgbd/empty/*/dataset_info.json"))


@pytest.fixture(scope="module")
def scenes_folder(tmp_path_factory):
    """Rendered scenes written as photos and 16-bit millimetre depth PNGs, built as
    rgbd/scenes (depth kind)."""
    from depthsense_jax.data.synthetic import render_scene

    root = tmp_path_factory.mktemp("scenes")
    (root / "images").mkdir()
    (root / "depth").mkdir()
    for i in range(40):
        scene = render_scene(5, i, (64, 80))
        assert cv2.imwrite(str(root / "images" / f"s{i:02d}.jpg"), scene["image"][..., ::-1])
        metres = np.where(scene["mask"], 1.0 / np.maximum(scene["depth"], 1e-3), 0.0)
        assert cv2.imwrite(str(root / "depth" / f"s{i:02d}.png"),
                           np.round(np.minimum(metres, 60) * 1000).astype(np.uint16))
    data_dir = root / "tfds"
    registry.build_folder("scenes", folder.FolderOptions(
        images=str(root / "images"), depth=str(root / "depth"), kind="depth",
        depth_scale=1000, validation_percent=20), str(data_dir))
    return root, data_dir


def test_a_folder_trains_shows_and_benchmarks(scenes_folder, tiny_overrides, tmp_path, capsys):
    root, data_dir = scenes_folder
    overrides = [*tiny_overrides, "--config.data.name=rgbd/scenes",
                 f"--config.data.data_dir={data_dir}"]
    config = load_config("base", overrides)
    batch = next(iter(pipeline.make_dataset(config, "train")))
    assert batch["image"].shape == (4, 64, 64, 3) and batch["mask"].any()
    assert set(batch["source"]) == {b"rgbd/scenes"}
    assert cli.main(["data", "show", "rgbd/scenes", "--data-dir", str(data_dir), "--num", "2",
                     "--size", "32", "--out", str(tmp_path / "grid.png")]) == 0
    assert "from rgbd/scenes x2" in capsys.readouterr().out
    preds = tmp_path / "preds"
    preds.mkdir()
    builder = registry.prepared(config.data).builder
    for example in tfds.as_numpy(builder.as_dataset(split="validation")):
        np.save(preds / f"{example['file_name'].decode()}.npy",
                np.where(example["mask"], 1.0 / np.maximum(example["ground_truth"], 1e-3), 0))
    assert cli.main(["benchmark", "rgbd/scenes", "--data-dir", str(data_dir), "--predictions",
                     str(preds), "--json", str(tmp_path / "b.json")]) == 0
    summary = json.loads((tmp_path / "b.json").read_text())["summary"]
    assert summary["images"] == builder.info.splits["validation"].num_examples > 0
    assert summary["abs_rel"] == pytest.approx(0.0, abs=1e-4)  # the truth itself
    assert summary["whdr"] == 0.0
    # The truth as disparity read as depth (nearer = smaller) orders every pair backwards:
    # its fitted scale clamps to 0 and every unequal pair counts as wrong.
    assert cli.main(["benchmark", "rgbd/scenes", "--data-dir", str(data_dir), "--predictions",
                     str(preds), "--prediction-kind", "depth", "--align", "depth",
                     "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["whdr"] > 0.95
    assert cli.main(["benchmark", "nyu", "--predictions", str(preds)]) == cli.EXIT_ERROR
    assert "zero-shot nyu needs --data-dir" in capsys.readouterr().err


def test_benchmark_train_splits_build_into_rgbd(tmp_path, rng):
    """NYU's 795-image train split (trainNdxs), from the folder `benchmark` reads."""
    from test_zero_shot import write_nyu

    write_nyu(tmp_path / "nyu", rng, count=3)  # its splits.mat: trainNdxs = [1]
    config = load_config("base", ["--config.data.name=nyu",
                                     f"--config.data.data_dir={tmp_path / 'tfds'}",
                                     f"--config.data.manual_dir={tmp_path / 'nyu'}"])
    registry.build(config.data)
    prepared = registry.prepared(config.data)
    assert prepared.kind == "depth"
    assert sum(s.num_examples for s in prepared.builder.info.splits.values()) == 1


# ------------------------------------------------------------------------ mixtures


def test_mixture_shares_follow_the_weights_and_resume_exactly(scenes_folder, tiny_overrides):
    _, data_dir = scenes_folder
    # One data_dir holds both: the tiny scenes are built there too.
    config = load_config("base", [*tiny_overrides, f"--config.data.data_dir={data_dir}",
                                     "--config.data.mixture=synthetic_scenes/tiny:3,"
                                     "rgbd/scenes:1"])
    assert pipeline.mixture(config.data) == [("synthetic_scenes/tiny", 0.75),
                                             ("rgbd/scenes", 0.25)]
    stream = iter(pipeline.make_dataset(config, "train"))
    batches = [next(stream) for _ in range(60)]
    sources = np.concatenate([b["source"] for b in batches])
    share = float(np.mean(sources == b"rgbd/scenes"))
    assert abs(share - 0.25) < 3 * np.sqrt(0.25 * 0.75 / len(sources))  # within 3 sigma
    counts = pipeline.mixture_counts([0.75, 0.25], config.seed, len(sources))
    assert counts[1] == int(np.sum(sources == b"rgbd/scenes"))
    resumed = iter(pipeline.make_dataset(config, "train", start_step=37))
    for want in batches[37:45]:
        got = next(resumed)
        np.testing.assert_array_equal(got["source"], want["source"])
        np.testing.assert_array_equal(got["file_name"], want["file_name"])
        np.testing.assert_array_equal(got["image"], want["image"])
    with pytest.raises(ValueError, match="NAME:WEIGHT"):
        pipeline.mixture(load_config("base", ["--config.data.mixture=synthetic:0"]).data)


# ------------------------------------------------------------------------ init.from


def test_init_from_a_workdir_or_an_export_loads_every_variable(trained, tmp_path):
    _, restored, _ = params_io.restore_params(trained.workdir)
    config = load_config("base", [*trained.overrides,
                                     f"--config.init.from={trained.workdir}"])
    _, state = state_lib.build_state(config, 10)
    for got, want in zip(jax.tree.leaves({"params": state.params,
                                          "batch_stats": state.batch_stats}),
                         jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    export = tmp_path / "export"
    export.mkdir()
    params_io.write_model_json(str(export), config.model)
    params_io.save_msgpack(str(export), restored)
    config = load_config("base", [*trained.overrides, f"--config.init.from={export}"])
    _, state = state_lib.build_state(config, 10)
    np.testing.assert_array_equal(
        np.asarray(state.params["decoder"]["output"]["conv2"]["kernel"]),
        np.asarray(restored["params"]["decoder"]["output"]["conv2"]["kernel"]))
    wider = load_config("base", [*trained.overrides, "--config.model.fusion_channels=32",
                                    f"--config.init.from={trained.workdir}"])
    # A model of another size: the error names the field that differs and the override.
    with pytest.raises(ValueError, match=r"is a DepthNet\(.*fusion_channels=16.*config.model "
                                         r"is a DepthNet\(.*fusion_channels=32.*set "
                                         r"--config.model.fusion_channels=16"):
        state_lib.build_state(wider, 10)
    with pytest.raises(FileNotFoundError, match="init.from"):
        state_lib.build_state(load_config("base", [*trained.overrides,
                                                      "--config.init.from=/nowhere"]), 10)


def test_encoder_learning_rate_multiplier_and_freezing():
    """AdamW's first step moves every parameter by about the learning rate: the encoder's
    by the multiplier times it, and not at all when frozen."""
    params = {"encoder": np.ones(3, np.float32), "decoder": np.ones(2, np.float32)}
    grads = {"encoder": np.full(3, 0.5, np.float32), "decoder": np.full(2, 0.5, np.float32)}
    for multiplier, ratio in ((0.1, 0.1), (0.0, 0.0), (1.0, 1.0)):
        opt = load_config("base", ["--config.optimizer.warmup_steps=0",
                                      "--config.optimizer.weight_decay=0.0",
                                      f"--config.optimizer.encoder_lr_multiplier={multiplier}"]
                          ).optimizer
        tx = state_lib.make_optimizer(opt, 100, encoder=("encoder",))
        updates, _ = tx.update(grads, tx.init(params), params)
        step = {k: float(np.abs(np.asarray(v)).mean()) for k, v in updates.items()}
        assert step["decoder"] == pytest.approx(1e-4, rel=1e-3)
        assert step["encoder"] == pytest.approx(ratio * step["decoder"], rel=1e-3, abs=1e-12)
        assert isinstance(optax.apply_updates(params, updates), dict)
    with pytest.raises(ValueError, match="names no encoder"):
        state_lib.make_optimizer(load_config("base", [
            "--config.optimizer.encoder_lr_multiplier=0.5"]).optimizer, 100)


@pytest.mark.cost(25)
@pytest.mark.slow
def test_fine_tuning_with_a_frozen_encoder(trained, scenes_folder, tmp_path):
    """Two steps on rgbd/scenes from the trained run, the encoder frozen: its weights and
    BatchNorm statistics stay, the decoder moves, and the run logs where it started."""
    from depthsense_jax.train import loop

    _, data_dir = scenes_folder
    _, start, _ = params_io.restore_params(trained.workdir)
    config = load_config("base", [
        *trained.overrides, "--config.data.name=rgbd/scenes",
        f"--config.data.data_dir={data_dir}", f"--config.init.from={trained.workdir}",
        "--config.optimizer.encoder_lr_multiplier=0.0", "--config.num_epochs=1",
        "--config.steps_per_epoch=2"])
    lines = []
    state = loop.train_and_evaluate(config, str(tmp_path / "run"), log=lines.append)
    assert any("before training, the model of init.from" in line for line in lines)
    for collection in ("params", "batch_stats"):
        for got, want in zip(jax.tree.leaves(getattr(state, collection)["encoder"]),
                             jax.tree.leaves(start[collection]["encoder"]), strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(
        jax.tree.leaves(state.params["decoder"]), jax.tree.leaves(start["params"]["decoder"]),
        strict=True))
    assert moved > 1e-6
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in records if r["split"] == "validation"] == [0, 2]
