"""A Depth Anything checkpoint (a small random-weight one in the Hugging Face layout) through
every command the DepthNet family has: predict (photos, a folder, a video with --stabilize),
the demo's request handler, model-summary, the zero-shot benchmark, export (msgpack,
safetensors, jax, SavedModel, ONNX) and convert-weights. Most are in the slow tier: the fast
tier has the equivalence with the releases' code (tests/test_depth_anything.py)."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from depthsense_jax import cli, export, inference, params_io
from depthsense_jax.data.synthetic import render_scene, render_sequence
from depthsense_jax.models import depth_anything_io

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from test_depth_anything import _healthy_hf_init_  # noqa: E402

# Width 32, 4 blocks, on a 4x4 position grid (56 px): compiles in seconds.
TINY = dict(embed_dim=32, depth=4, num_heads=2, features=16, out_channels=[8, 16, 32, 32],
            layers=[0, 1, 2, 3], pos_grid=4)


@pytest.fixture(scope="module")
def hf_tiny(tmp_path_factory) -> str:
    from depthsense_jax.models.torch_depth_anything import hf_config

    config = depth_anything_io.model_config_for(**TINY, pos_interpolation="transformers")
    model = _healthy_hf_init_(transformers.DepthAnythingForDepthEstimation(hf_config(config)))
    folder = tmp_path_factory.mktemp("da") / "tiny-hf"
    model.eval().save_pretrained(folder)
    return str(folder)


def _write_photos(folder, count=2):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        image = render_scene(0, i, size=(60 + 8 * i, 90))["image"]
        cv2.imwrite(os.path.join(folder, f"p{i}.png"),
                    cv2.cvtColor((image * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))


@pytest.mark.slow
def test_predict_photos_a_folder_and_a_video(hf_tiny, tmp_path, capsys):
    model = inference.load_model(params=hf_tiny)
    predictor = inference.Predictor(model)
    assert predictor.default_size == 518  # Depth Anything's short side
    assert predictor.model_size(480, 640) == (518, 686)  # multiples of 14
    photos = tmp_path / "photos"
    _write_photos(photos)
    out = tmp_path / "out"
    assert cli.main(["predict", str(photos), "--params", hf_tiny, "--out", str(out),
                     "--size", "112", "--format", "png16,npy"]) == 0
    for i, height in enumerate((60, 68)):
        depth = np.load(out / f"p{i}.npy")
        assert depth.shape == (height, 90) and np.isfinite(depth).all() and depth.std() > 0

    clip = tmp_path / "clip.mp4"
    frames = render_sequence(0, 2, num_frames=5, size=(48, 80))["image"]
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (80, 48))
    for frame in frames:
        writer.write(cv2.cvtColor((frame * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    writer.release()
    assert cli.main(["predict", str(clip), "--params", hf_tiny, "--out", str(out),
                     "--size", "56", "--format", "npy", "--stabilize"]) == 0
    steady = np.load(out / "clip_depth.npy")
    assert steady.shape == (5, 48, 80) and np.isfinite(steady).all()


@pytest.mark.slow
def test_the_demo_answers_a_request(hf_tiny, tmp_path):
    pytest.importorskip("gradio")
    from depthsense_jax.demo import DepthDemo

    photos = tmp_path / "photos"
    _write_photos(photos, 1)
    demo = DepthDemo(inference.load_model(params=hf_tiny), size=56, out_dir=str(tmp_path / "d"))
    photo, colour, png16, npy = demo.run(str(photos / "p0.png"))
    assert photo.shape == colour.shape == (60, 90, 3)
    assert np.load(npy).shape == (60, 90)


def test_model_summary_of_a_checkpoint(hf_tiny, capsys):
    assert cli.main(["model-summary", "--params", hf_tiny]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("DepthAnything(V2, ViT (width 32, 4 blocks)/14")
    assert [line.split()[0] for line in lines[2:5]] == ["encoder", "head", "total"]


def test_the_zero_shot_benchmark(hf_tiny, tmp_path):
    from test_zero_shot import write_nyu

    write_nyu(tmp_path / "nyu", np.random.default_rng(0))
    assert cli.main(["zero-shot", "nyu", "--data-dir", str(tmp_path / "nyu"), "--params",
                     hf_tiny, "--size", "56", "--json", str(tmp_path / "nyu.json")]) == 0
    summary = json.loads((tmp_path / "nyu.json").read_text())["summary"]
    assert summary["images"] == 2 and 0 < summary["abs_rel"] < 10


@pytest.mark.cost(25)
@pytest.mark.slow
def test_export_every_format_and_convert_weights(hf_tiny, tmp_path):
    pytest.importorskip("onnxruntime")
    model = inference.load_model(params=hf_tiny)
    out = str(tmp_path / "exported")
    lines = []
    export.export_all(out, model, formats=("msgpack", "safetensors", "jax", "savedmodel",
                                           "onnx"), log=lines.append)
    assert {"params.msgpack", "params.safetensors", "model.jax", "saved_model",
            "model.onnx"} <= set(os.listdir(out))
    model_json = json.loads(open(os.path.join(out, "model.json")).read())
    assert model_json["name"] == "depth_anything"
    assert model_json["pos_interpolation"] == "transformers"
    # The export folder reads back as the same model.
    again = inference.load_model(params=out)
    x = np.random.default_rng(1).random((1, 56, 70, 3), dtype=np.float32)
    np.testing.assert_allclose(inference.Predictor(again)(x), inference.Predictor(model)(x),
                               atol=1e-6)
    converted = str(tmp_path / "converted")
    assert cli.main(["convert-weights", hf_tiny, converted]) == 0
    assert params_io.load(converted).model_config.to_dict() == model.model_config.to_dict()
