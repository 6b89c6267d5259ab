"""ONNX export: the graph written from the variables against the live model, its dynamic
sizes, the errors, the CLI and the README's onnxruntime example."""

import json
import os
import re
import subprocess
import sys

import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from depthsense_jax import cli, export, inference, onnx_export, params_io
from depthsense_jax.models import create_variables, depthnet

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def _config(depth: int, dtype: str = "float32") -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"encoder_depth": depth, "width": 8, "fusion_channels": 16,
                                      "dtype": dtype, "pretrained": ""})


@pytest.fixture(scope="module")
def variables_of(like_trained):
    """variables_of(depth): random DepthNet variables with BatchNorm statistics far from
    (0, 1) and a decoder output of order one, so that a wrong statistic or a missed layer
    shows. One draw per depth for the module; each call returns a new tree of its arrays."""
    drawn = {}

    def make(depth: int) -> dict:
        if depth not in drawn:
            _, variables = create_variables(_config(depth), jax.random.PRNGKey(depth))
            variables = like_trained(variables, seed=depth, shift=0.1)
            head = variables["params"]["decoder"]["output"]["conv2"]
            head["kernel"] = (head["kernel"] * 100).astype(np.float32)
            drawn[depth] = variables
        return jax.tree.map(lambda x: x, drawn[depth])

    return make


@pytest.fixture(scope="module", params=[18, pytest.param(50, marks=pytest.mark.slow)])
def model(request, variables_of):
    return inference.LoadedModel(_config(request.param), variables_of(request.param), 64)


def _live(loaded: inference.LoadedModel, x: np.ndarray) -> np.ndarray:
    fn = jax.jit(export.inference_fn(loaded.model_config, loaded.variables))
    return np.asarray(fn(jnp.asarray(x)))


def test_export_all_checks_onnx_against_the_live_model(model, tmp_path):
    lines = []
    report = export.export_all(str(tmp_path), model, formats=("onnx",), log=lines.append)
    assert "model.onnx" in report and "onnxruntime, opset 17" in lines[0]
    assert "batch 1 and 3" in lines[0]
    worst = float(re.search(r"max \|diff\| (\S+) at", lines[0]).group(1))
    assert worst <= 1e-4
    session = onnx_export.load_onnx(os.path.join(str(tmp_path), "model.onnx"))
    # A size and batch the export's own check did not use: the dimensions are dynamic.
    x = np.random.default_rng(7).random((2, 128, 96, 3), dtype=np.float32)
    want = _live(model, x)
    assert want.std() > 1e-2  # the comparison is not between near-zero maps
    got = session.run(None, {"images": x})[0]
    assert got.shape == (2, 128, 96)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_graph_declares_dynamic_sizes_and_the_model_config(model):
    proto = onnx_export.build_model(model.model_config, model.variables)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:3] == ["batch", "height", "width"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[3].dim_value == 3
    assert [d.dim_param for d in proto.graph.output[0].type.tensor_type.shape.dim] == dims[:3]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["model.json"]) == {
        "name": "depthnet", **{k: model.model_config[k] for k in depthnet.CONFIG_KEYS}}
    n_params = sum(v.size for v in params_io.flat(model.variables).values())
    stored = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    assert stored == n_params + 3 + 3 + 1 + 4 * 5  # + mean, std, squeeze axis, 5 x scales


@pytest.mark.slow
def test_bfloat16_models_export_in_float32(tmp_path, variables_of):
    variables = variables_of(18)
    loaded = inference.LoadedModel(_config(18, "bfloat16"), variables, 64)
    lines = []
    export.export_all(str(tmp_path), loaded, formats=("onnx",), log=lines.append)
    session = onnx_export.load_onnx(os.path.join(str(tmp_path), "model.onnx"))
    x = np.random.default_rng(2).random((1, 64, 64, 3), dtype=np.float32)
    f32 = inference.LoadedModel(_config(18), variables, 64)
    np.testing.assert_allclose(session.run(None, {"images": x})[0], _live(f32, x), atol=1e-4)


def test_params_that_do_not_fit_the_graph_are_errors(variables_of):
    variables = variables_of(18)
    extra = jax.tree.map(lambda x: x, variables)
    extra["params"]["decoder"]["new_head"] = {"kernel": np.zeros((3, 3, 16, 1), np.float32)}
    with pytest.raises(ValueError, match="does not use.*new_head"):
        onnx_export.build_model(_config(18), extra)
    missing = jax.tree.map(lambda x: x, variables)
    del missing["params"]["decoder"]["top_conv"]
    with pytest.raises(ValueError, match="no 'params/decoder/top_conv/kernel'"):
        onnx_export.build_model(_config(18), missing)
    with pytest.raises(ValueError, match="encoder_depth"):
        onnx_export.build_model(_config(26), variables)


def test_a_missing_extra_is_named_before_anything_is_written(model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"\[onnx\] extra: pip install 'depthsense-jax\[onnx\]'"):
        export.export_all(str(out), model, formats=("msgpack", "onnx"))
    assert not out.exists()


def test_export_cli_and_the_readme_example_without_jax_or_tf(tmp_path, capsys, monkeypatch,
                                                            variables_of):
    params = tmp_path / "params"
    params.mkdir()
    config, variables = _config(18), variables_of(18)
    params_io.write_model_json(str(params), config, 64)
    params_io.save_msgpack(str(params), variables)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", "--params", str(params), "--out", "exported",
                     "--formats", "onnx"]) == 0
    assert "model.onnx" in capsys.readouterr().out
    photo = np.random.default_rng(0).integers(0, 256, (420, 560, 3), dtype=np.uint8)
    cv2.imwrite("photo.jpg", photo)
    with open(README) as f:
        text = f.read()
    example = re.search(r"<!-- onnx-example -->\s*```python\n(.*?)```", text, re.S).group(1)
    assert len(example.strip().splitlines()) <= 12
    # The example must run where neither JAX nor TensorFlow can be imported.
    guard = "import sys\nsys.modules['jax'] = sys.modules['tensorflow'] = None\n"
    result = subprocess.run([sys.executable, "-c", guard + example], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    depth = cv2.imread("photo_depth.png", cv2.IMREAD_UNCHANGED)
    assert depth.shape == (420, 560) and depth.std() > 0
    # The example predicts what the library does for the same photo.
    want = inference.predict(inference.LoadedModel(config, variables), [cv2.cvtColor(
        cv2.imread("photo.jpg"), cv2.COLOR_BGR2RGB)], size=384)
    want = np.round(255 * (want[0] - want[0].min()) / np.ptp(want[0]))
    assert np.abs(depth.astype(np.float64) - want).max() <= 2
