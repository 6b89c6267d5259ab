"""Using a trained model: reading photos, predicting at any size, predict CLI, exports."""

import json
import os

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from depthsense_jax import cli, export, inference, params_io
from depthsense_jax.models import create_variables

TINY_MODEL = ml_collections.ConfigDict(
    {"name": "depthnet", "encoder_depth": 18, "width": 8, "fusion_channels": 16,
     "dtype": "float32", "pretrained": ""})


@pytest.fixture(scope="module")
def tiny(like_trained):
    model, variables = create_variables(TINY_MODEL, jax.random.PRNGKey(0))
    # Nonzero decoder output and non-trivial BatchNorm statistics, like a trained model.
    return model, like_trained(variables, seed=1)


@pytest.fixture(scope="module")
def export_dir(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    params_io.write_model_json(str(out), TINY_MODEL)
    params_io.save_msgpack(str(out), tiny[1])
    return str(out)


def _apply(model, variables, images):
    # Jitted: one program, not each of the forward pass's operations compiled on its own.
    return np.asarray(jax.jit(model.apply)(variables, jnp.asarray(images)))


def test_model_size_keeps_aspect_in_multiples_of_the_stride():
    """The short side is `size`, as in training (short side to image_size, then crop)."""
    assert inference.model_size(480, 640, 384, 32) == (384, 512)
    assert inference.model_size(640, 480, 384, 32) == (512, 384)
    assert inference.model_size(1, 1, 384, 32) == (384, 384)
    assert inference.model_size(333, 517, 256, 32) == (256, 384)
    assert inference.model_size(90, 160, 96, 32) == (96, 160)  # 16:9 at the synthetic default
    # A panorama: the long side stops at MAX_ASPECT x size; never below one stride.
    assert inference.model_size(1, 1000, 384, 32) == (32, 384 * inference.MAX_ASPECT)
    for bad in (0, 100, -32):
        with pytest.raises(ValueError, match="multiple of the model's stride 32"):
            inference.model_size(10, 10, bad, 32)
    # Another family's stride (Depth Anything's 14): 518 on the short side of a 4:3 photo.
    assert inference.model_size(480, 640, 518, 14) == (518, 686)
    with pytest.raises(ValueError, match="stride 14"):
        inference.model_size(480, 640, 512, 14)


def test_read_photo_formats(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb[..., ::-1])
    np.testing.assert_allclose(inference.read_photo(str(tmp_path / "rgb.png")), rgb / 255.0,
                               atol=1e-7)
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 7, np.uint8)], axis=2)
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    np.testing.assert_allclose(inference.read_photo(str(tmp_path / "rgba.png")), rgb / 255.0,
                               atol=1e-7)
    grey = rgb[..., 0]
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    out = inference.read_photo(str(tmp_path / "grey.png"))
    assert out.shape == (20, 30, 3)
    np.testing.assert_allclose(out, np.repeat(grey[..., None], 3, 2) / 255.0, atol=1e-7)
    deep = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    np.testing.assert_allclose(inference.read_photo(str(tmp_path / "deep.png")),
                               deep / 65535.0, atol=1e-7)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("broken.jpg", "empty.png"):
        with pytest.raises(ValueError, match="not a readable image"):
            inference.read_photo(str(tmp_path / name))


def test_read_photo_applies_exif_rotation_as_viewers_do(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    from PIL import ImageOps

    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:10, :20] = (255, 0, 0)  # a red block at the top left of a wide image
    for orientation in (3, 6, 8):
        exif = pil.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"exif{orientation}.jpg"
        pil.fromarray(pixels).save(path, exif=exif.tobytes(), quality=100)
        seen = np.asarray(ImageOps.exif_transpose(pil.open(path)), np.float32) / 255.0
        ours = inference.read_photo(str(path))
        assert ours.shape == seen.shape
        assert ours.shape[:2] == ((80, 40) if orientation in (6, 8) else (40, 80))
        np.testing.assert_allclose(ours, seen, atol=2 / 255)


def test_predict_matches_the_model_and_handles_any_size(tiny):
    model, variables = tiny
    predictor = inference.Predictor(inference.LoadedModel(TINY_MODEL, variables))
    rng = np.random.default_rng(0)
    exact = rng.random((96, 128, 3), dtype=np.float32)  # already the model's size: no resize
    photos = [exact, rng.random((1, 1, 3), dtype=np.float32),
              rng.random((37, 51, 3), dtype=np.float32), rng.random((200, 13, 3), np.float32),
              rng.random((96, 128, 3), dtype=np.float32)]
    out = predictor.predict(photos, size=96, batch_size=3)
    assert [o.shape for o in out] == [p.shape[:2] for p in photos]
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in out)
    assert all(o.std() > 0 for o in out[2:])  # real maps, not a constant
    np.testing.assert_allclose(out[0], _apply(model, variables, exact[None])[0], atol=1e-5)
    # Batching and padding do not change a photo's prediction (eval-mode BatchNorm).
    alone = [predictor.predict([p], size=96, batch_size=1)[0] for p in photos]
    for a, b in zip(out, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor.predict([np.zeros((8, 8))], size=96)


def test_expand_inputs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.jpg", "a/b/y.PNG", "a/notes.txt", "z.png"):
        (tmp_path / name).write_bytes(b"")
    found = inference.expand_inputs([str(tmp_path / "a"), str(tmp_path / "*.png"),
                                     str(tmp_path / "z.png")])
    assert [os.path.relpath(p, tmp_path) for p in found] == ["a/b/y.PNG", "a/x.jpg", "z.png"]
    with pytest.raises(ValueError, match="no file, folder or matching pattern"):
        inference.expand_inputs([str(tmp_path / "missing*.jpg")])


def test_predict_cli_writes_every_format_and_skips_bad_files(tiny, export_dir, tmp_path,
                                                             capsys):
    model, variables = tiny
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (70, 45, 3), dtype=np.uint8)
    cv2.imwrite(str(photos / "one.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 100])
    cv2.imwrite(str(photos / "sub" / "two.png"), rng.integers(0, 256, (5, 9), np.uint8))
    (photos / "sub" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    code = cli.main(["predict", str(photos), "--params", export_dir, "--out", str(out),
                     "--format", "png16,color,npy,side", "--size", "64"])
    assert code == 0
    captured = capsys.readouterr()
    assert "skipped 1 unreadable file" in captured.out and "bad.png" in captured.err
    depth = np.load(out / "one.npy")
    assert depth.shape == (70, 45) and depth.dtype == np.float32
    png = cv2.imread(str(out / "one_depth.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == (70, 45)
    np.testing.assert_array_equal(png, inference.to_png16(depth))
    assert png.min() == 0 and png.max() == 65535
    assert cv2.imread(str(out / "one_color.png")).shape == (70, 45, 3)
    assert cv2.imread(str(out / "one_side.png")).shape == (70, 90, 3)
    assert np.load(out / "sub" / "two.npy").shape == (5, 9)
    assert not (out / "sub" / "bad.npy").exists()
    # The same photo through the library gives the same depth: the export folder loaded, or
    # the variables in memory, through `predict` or a kept Predictor.
    photo = inference.read_photo(str(photos / "one.jpg"))
    for model in (inference.load_model(params=export_dir),
                  inference.LoadedModel(TINY_MODEL, variables)):
        for again in (inference.predict(model, [photo], size=64)[0],
                      inference.Predictor(model).predict([photo], size=64)[0]):
            np.testing.assert_allclose(depth, again, atol=1e-6)
    assert cli.main(["predict", str(photos / "one.jpg"), "--params", export_dir, "--out",
                     str(out), "--format", "jpeg"]) == 2
    assert "choose from" in capsys.readouterr().err
    assert cli.main(["predict", str(photos / "one.jpg"), "--out", str(out)]) == 2
    assert "exactly one of --workdir" in capsys.readouterr().err


def test_to_png16_constant_map_is_finite():
    np.testing.assert_array_equal(inference.to_png16(np.full((3, 4), 2.5, np.float32)), 0)


@pytest.mark.cost(21)
@pytest.mark.slow
def test_export_round_trips(tiny, tmp_path, capsys):
    model, variables = tiny
    out = str(tmp_path / "exported")
    lines = []
    export.export_all(out, inference.LoadedModel(TINY_MODEL, variables), log=lines.append)
    text = "\n".join(lines)
    for name in ("params.msgpack", "params.safetensors", "model.jax", "saved_model"):
        assert name in text and "MiB" in text
    assert text.count("bit-identical") == 2
    flat = params_io.flat(variables)
    for name in ("params.msgpack", "params.safetensors"):
        config, loaded = params_io.load_params(os.path.join(out, name))
        assert dict(config) == params_io.model_config_dict(TINY_MODEL)
        got = params_io.flat(loaded)
        assert set(got) == set(flat)
        for k in flat:
            assert got[k].dtype == flat[k].dtype
            np.testing.assert_array_equal(got[k], flat[k])
    # Sizes not used by the command's own check: symbolic batch and spatial dimensions.
    x = np.random.default_rng(3).random((3, 32, 128, 3), dtype=np.float32)
    want = _apply(model, variables, x)
    exported = export.load_jax(os.path.join(out, "model.jax"))
    np.testing.assert_allclose(np.asarray(exported.call(x)), want, atol=1e-5)
    import tensorflow as tf

    served = tf.saved_model.load(os.path.join(out, "saved_model")).signatures["serving_default"]
    np.testing.assert_allclose(served(images=tf.constant(x))["depth"].numpy(), want, atol=1e-5)


def test_load_params_errors(tiny, export_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        params_io.load_params(str(tmp_path))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    other = ml_collections.ConfigDict(dict(TINY_MODEL, width=16))
    params_io.write_model_json(str(wrong), other)
    params_io.save_msgpack(str(wrong), tiny[1])
    with pytest.raises(ValueError, match="does not fit the model"):
        params_io.load_params(str(wrong))


def test_workdir_export_and_predict_agree(trained, tmp_path, capsys):
    """Export from a trained workdir, then predict from the workdir and from the exported
    params: identical files. The workdir's params are restored without an optimizer and
    equal the checkpoint's."""
    workdir = trained.workdir
    exported = str(tmp_path / "exported")
    assert cli.main(["export", "--workdir", workdir, "--out", exported,
                     "--formats", "msgpack,safetensors"]) == 0
    assert capsys.readouterr().out.count("bit-identical") == 2
    assert params_io.trained_size(exported) == 64
    _, variables, step = params_io.restore_params(workdir)
    latest = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    full = latest.restore(latest.latest_step())
    assert step == 6
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(
            {"params": full["params"], "batch_stats": full["batch_stats"]}), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), rng.integers(0, 256, (50, 77, 3), dtype=np.uint8))
    outputs = {}
    for name, source in [("workdir", ["--workdir", workdir]),
                         ("msgpack", ["--params", exported]),
                         ("safetensors", ["--params", f"{exported}/params.safetensors"])]:
        out = tmp_path / name
        assert cli.main(["predict", str(photo), *source, "--out", str(out),
                         "--format", "png16,color,npy"]) == 0
        assert "short side 64" in capsys.readouterr().out  # the training image_size
        outputs[name] = [(out / f).read_bytes() for f in
                         ("photo_depth.png", "photo_color.png", "photo.npy")]
    assert outputs["workdir"] == outputs["msgpack"] == outputs["safetensors"]
    depth = np.load(tmp_path / "workdir" / "photo.npy")
    assert depth.shape == (50, 77) and depth.std() > 0


def test_an_output_path_that_is_a_file_is_one_clear_error(export_dir, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    for out in (taken, taken / "sub"):
        assert cli.main(["export", "--params", export_dir, "--out", str(out),
                         "--formats", "msgpack"]) == cli.EXIT_ERROR
        err = capsys.readouterr().err
        assert err.startswith(f"error: '{out}'") and "a file, not a folder" in err
    assert taken.read_text() == "a file"
    assert cli.main(["train", "--workdir", str(taken)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: '{taken}' is a file, not a folder") and "Traceback" not in err


def test_a_model_json_without_a_name_is_a_depthnet(tiny, tmp_path):
    """Export folders (and workdirs) written before model families had names."""
    old = tmp_path / "old"
    old.mkdir()
    fields = {k: TINY_MODEL[k] for k in ("encoder_depth", "width", "fusion_channels", "dtype")}
    (old / "model.json").write_text(json.dumps({**fields, "image_size": 64}))
    params_io.save_msgpack(str(old), tiny[1])
    model = inference.load_model(params=str(old))
    assert model.family.name == "depthnet" and model.image_size == 64
    assert dict(model.model_config) == {"name": "depthnet", **fields}


def test_jax_export_for_accelerators_from_a_cpu_machine(tiny, export_dir, tmp_path, capsys):
    out = str(tmp_path / "multi")
    assert cli.main(["export", "--params", export_dir, "--out", out, "--formats", "jax",
                     "--platforms", "cpu,cuda,tpu"]) == 0
    assert "model.jax" in capsys.readouterr().out
    exported = export.load_jax(os.path.join(out, "model.jax"))
    assert tuple(exported.platforms) == ("cpu", "cuda", "tpu")
    x = np.random.default_rng(5).random((1, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(exported.call(x)), _apply(*tiny, x), atol=1e-5)
    assert cli.main(["export", "--params", export_dir, "--out", out, "--formats", "coreml"]) == 2
    assert "unknown export format" in capsys.readouterr().err
