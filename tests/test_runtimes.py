"""Runtimes for CPUs and devices: the fp16, INT8 and TFLite exports of each family reloaded
with their own runtimes and checked against the live model, the INT8 check failing on a
broken calibration, `quantize.agreement` against NumPy, `predict --runtime onnx` against JAX,
the missing extras, and `speed runtimes` at tiny settings."""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np
import pytest

from depthsense_jax import cli, export, inference, onnx_export, params_io, quantize
from depthsense_jax.data.synthetic.scenes import render_scene

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

FAMILIES = ["depthnet", "depth_anything"]


def _photos(n: int = 2) -> list[np.ndarray]:
    """Small photos at an aspect the models did not train at (60x90)."""
    return [render_scene(7, i, size=(60, 90))["image"].astype(np.float32) / 255
            for i in range(n)]


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / range of b, per image, in float64: (B, H, W)."""
    b = np.asarray(b, np.float64)
    span = b.max(axis=(1, 2), keepdims=True) - b.min(axis=(1, 2), keepdims=True)
    return np.abs(np.asarray(a, np.float64) - b) / span


@pytest.fixture(scope="module")
def exported(tiny_models, tmp_path_factory):
    """exported(family): an export folder of the fp16, INT8 and TFLite formats and the lines
    export_all logged (one export per family for the module)."""
    pytest.importorskip("ai_edge_litert")
    done = {}

    def make(family: str):
        if family not in done:
            out = tmp_path_factory.mktemp(f"runtimes-{family}")
            lines = []
            export.export_all(str(out), tiny_models.loaded(family),
                              formats=("onnx-fp16", "onnx-int8", "tflite"), log=lines.append)
            done[family] = (out, lines)
        return done[family]

    return make


@pytest.mark.parametrize("family", FAMILIES)
def test_fp16_int8_and_tflite_are_written_reloaded_and_checked(family, exported, tiny_models):
    out, lines = exported(family)
    model = tiny_models.loaded(family)
    size = model.image_size
    report = {line.split()[0]: line for line in lines if line.strip().startswith("model")}
    assert set(report) == {"model_fp16.onnx", "model_int8.onnx", "model.tflite"}
    for name in ("model_fp16.onnx", "model_int8.onnx"):
        assert re.search(r"max \|diff\| \S+% of the range \(mean \S+%\), WHDR \S+% and AbsRel "
                         r"\S+ against fp32 on 4 rendered scenes", report[name]), report[name]
    # Independent of the export's own check: other scenes, NumPy, each file's own runtime.
    x = np.stack([render_scene(3, i, size=(size, size))["image"] for i in range(2)]).astype(
        np.float32) / 255
    want = inference.Predictor(model)(x)
    fp16 = onnx.load(str(out / "model_fp16.onnx"))
    assert {t.data_type for t in fp16.graph.initializer} >= {onnx.TensorProto.FLOAT16}
    for value in (*fp16.graph.input, *fp16.graph.output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
    int8 = onnx.load(str(out / "model_int8.onnx"))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in int8.graph.node}
    assert onnx.TensorProto.INT8 in {t.data_type for t in int8.graph.initializer}
    assert json.loads({p.key: p.value for p in int8.metadata_props}["model.json"])[
        "name"] == family
    # A ViT's layer norms, softmax and GELU read float32 (quantize.MATRIX_OPS); with every
    # op quantised, all of them would read a DequantizeLinear.
    dequantized = {n.output[0] for n in int8.graph.node if n.op_type == "DequantizeLinear"}
    reads_int8 = {n.op_type for n in int8.graph.node if set(n.input) & dequantized}
    assert {"Conv", "MatMul" if family == "depth_anything" else "Add"} <= reads_int8
    assert not reads_int8 & {"LayerNormalization", "Softmax", "Erf"}
    for name, fmt in (("model_fp16.onnx", "onnx-fp16"), ("model_int8.onnx", "onnx-int8")):
        session = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        got = session.run(None, {"images": x})[0]
        assert got.shape == want.shape and np.isfinite(got).all()
        diff, tolerance = _relative(got, want), quantize.tolerance_for(fmt, family)
        assert diff.max() < tolerance.max_diff and diff.mean() < tolerance.mean_diff, (
            name, diff.max(), diff.mean())
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(out / "model.tflite"))
    interpreter.allocate_tensors()
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape"]) == [1, size, size, 3]
    for i in range(len(x)):
        interpreter.set_tensor(inp["index"], x[i:i + 1])
        interpreter.invoke()
        np.testing.assert_allclose(interpreter.get_tensor(outp["index"])[0], want[i],
                                   atol=1e-4 * np.ptp(want[i]) + 1e-6, rtol=0)


def test_int8_fails_loudly_when_its_calibration_is_broken(tiny_models, tmp_path):
    model = tiny_models.loaded("depthnet")
    size = model.image_size
    black = [np.zeros((1, size, size, 3), np.float32)] * 2
    with pytest.raises(RuntimeError, match=r"model_int8.onnx: the onnx-int8 model is further "
                       r"from the float32 model than its tolerance: max_diff"):
        export.export_all(str(tmp_path), model, formats=("onnx-int8",), calibration=black,
                          log=lambda s: None)


def test_agreement_against_numpy(rng):
    reference = rng.uniform(0.1, 1.0, (2, 16, 24)).astype(np.float32)
    noisy = reference + rng.normal(0, 0.01, reference.shape).astype(np.float32)
    got = quantize.agreement(noisy, reference)
    diff = _relative(noisy, reference)
    assert got.max_diff == pytest.approx(diff.max(), rel=1e-5)
    assert got.mean_diff == pytest.approx(diff.mean(), rel=1e-5)
    same = quantize.agreement(reference, reference)
    assert same.max_diff == same.mean_diff == same.whdr == 0 and same.abs_rel < 1e-6
    # An affine copy is the same relative depth: WHDR and AbsRel see no difference.
    affine = quantize.agreement(3 * reference + 1, reference)
    assert affine.whdr == 0 and affine.abs_rel < 1e-5
    # The order reversed: every ordered pair is wrong (the alignment's scale is clamped at 0).
    reversed_ = quantize.agreement(-reference, reference)
    assert reversed_.whdr > 0.9
    # Maps of different sizes, and constant maps, stay finite.
    mixed = quantize.agreement([reference[0], np.ones((5, 7), np.float32)],
                               [reference[0], np.zeros((5, 7), np.float32)])
    assert all(np.isfinite(v) for v in (mixed.max_diff, mixed.mean_diff, mixed.whdr,
                                        mixed.abs_rel))
    assert mixed.max_diff == 1.0  # |1 - 0| over a constant reference's fallback range 1
    with pytest.raises(RuntimeError, match="max_diff 1 > 0.005"):
        quantize.check_agreement(mixed, "onnx-fp16", "test",
                                 quantize.tolerance_for("onnx-fp16", "depthnet"))


@pytest.mark.parametrize("family", FAMILIES)
def test_predictor_onnx_runtime_predicts_as_jax(family, tiny_models):
    model = tiny_models.loaded(family)
    photos = _photos()
    jax_depths = inference.Predictor(model).predict(photos, batch_size=2)
    onnx_predictor = inference.Predictor(model, runtime="onnx")
    assert onnx_predictor.runtime == "onnx"
    onnx_depths = onnx_predictor.predict(photos, batch_size=2)
    for a, b in zip(onnx_depths, jax_depths, strict=True):
        assert a.shape == (60, 90) and b.std() > 0
        np.testing.assert_allclose(a, b, atol=1e-4 * np.ptp(b), rtol=0)


def test_predict_cli_runs_an_exports_model_onnx(tiny_models, tmp_path, capsys):
    model = tiny_models.loaded("depthnet")
    folder = tmp_path / "export"
    params_io.write_model_json(str(folder), model.model_config, model.image_size)
    params_io.save_msgpack(str(folder), model.variables)
    onnx_export.export_onnx(str(folder), model.model_config, model.variables)
    photos = tmp_path / "photos"
    photos.mkdir()
    import cv2

    for i, photo in enumerate(_photos()):
        cv2.imwrite(str(photos / f"p{i}.png"), cv2.cvtColor(
            np.round(photo * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    for runtime in ("jax", "onnx"):
        assert cli.main(["predict", str(photos), "--params", str(folder), "--out",
                         str(tmp_path / runtime), "--format", "npy", "--batch", "2",
                         "--runtime", runtime]) == 0
    assert f"running {folder / 'model.onnx'} with onnxruntime" in capsys.readouterr().out
    for i in range(2):
        want = np.load(tmp_path / "jax" / f"p{i}.npy")
        np.testing.assert_allclose(np.load(tmp_path / "onnx" / f"p{i}.npy"), want,
                                   atol=1e-4 * np.ptp(want), rtol=0)
    # A model.onnx of another model beside the params is an error, not a silent mix-up.
    other = tiny_models.loaded("depth_anything")
    onnx_export.export_onnx(str(folder), other.model_config, other.variables)
    with pytest.raises(ValueError, match="describes another model"):
        inference.Predictor(model, runtime="onnx", onnx_file=str(folder / "model.onnx"))
    with pytest.raises(ValueError, match="runtime must be one of jax, onnx"):
        inference.Predictor(model, runtime="tensorrt")


def test_missing_extras_are_named(tiny_models, tmp_path, monkeypatch):
    model = tiny_models.loaded("depthnet")
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"\[tflite\] extra: pip install "
                       r"'depthsense-jax\[tflite\]' \(ai-edge-litert"):
        export.export_all(str(out), model, formats=("msgpack", "tflite"))
    assert not out.exists()  # nothing written before the error
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ValueError, match=r"\[onnx\] extra"):
        inference.Predictor(model, runtime="onnx")
    with pytest.raises(ValueError, match=r"\[onnx\] extra"):
        export.export_all(str(out), model, formats=("onnx-int8",))


# Depth Anything in every runtime; DepthNet (whose exports the tests above check in each
# format) with the JAX reference and its own way into the PyTorch peer only, to save time.
@pytest.mark.slow
@pytest.mark.parametrize("family, only, count", [("depth_anything", None, 7),
                                                 ("depthnet", "PyTorch", 2)])
def test_speed_runtimes_at_tiny_settings(family, only, count, tiny_models, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("ai_edge_litert")
    out = tmp_path / "runtimes.json"
    assert cli.main(["speed", "runtimes", "--params", tiny_models.paths[family],
                     "--sizes", "train", "--scenes", "2", "--batch", "2", "--repeats", "1",
                     "--warmup", "1", "--json", str(out)] + (["--only", only] if only else [])
                    ) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ") and "x" in
            line.split("|")[1]]
    names = [r.split("|")[2].strip() for r in rows]
    assert names[0] == "JAX (jit), float32" and len(rows) == count, table
    result = json.loads(out.read_text())["result"]
    size = tiny_models.loaded(family).image_size
    assert [r["size"] for r in result] == [[size, size]] * count
    aloe = os.path.isfile("/usr/share/doc/opencv-doc/examples/data/aloeL.jpg")
    for row in result:
        assert not row["note"], row
        assert row["images_per_s"] > 0 and 0 <= row["val_whdr"] <= 1
        assert not aloe or (0 <= row["aloe_whdr"] <= 1 and np.isfinite(row["aloe_abs_rel"]))
    by_name = {r["runtime"]: r for r in result}
    same_weights = [r for n, r in by_name.items() if n.startswith("PyTorch") or (
        n.startswith("onnxruntime") and n.endswith("float32"))]
    assert len(same_weights) == (2 if only is None else 1)  # onnxruntime fp32, PyTorch
    for row in same_weights:  # the same weights, other kernels
        assert row["max_diff"] < 1e-3 and row["val_whdr"] == pytest.approx(
            result[0]["val_whdr"], abs=0.01)
    if only is None:
        int8 = next(r for n, r in by_name.items() if n.endswith("INT8 (QDQ, static)"))
        assert 0 < int8["max_diff"] <= quantize.tolerance_for("onnx-int8", family).max_diff


def test_static_int8_is_calibrated_at_each_size_it_is_measured_at(tiny_models, monkeypatch):
    """Activation ranges change with the input size: `speed runtimes` builds static INT8
    again for each side, calibrated there, and every other runtime once."""
    from depthsense_jax.speed import runtimes

    calibrated = []
    monkeypatch.setattr(quantize, "calibration_batches",
                        lambda size, *a, **k: calibrated.append(size) or [])
    monkeypatch.setattr(quantize, "to_int8", lambda graph, batches: graph)  # the fp32 graph
    table = {name: (build, per_size) for name, build, per_size in runtimes.runtimes(
        tiny_models.loaded("depth_anything"), log=lambda s: None)}
    static = [name for name in table if name.endswith("INT8 (QDQ, static)")]
    assert len(static) == 1 and [n for n, (_, per) in table.items() if per] == static
    images = np.zeros((1, 56, 70, 3), np.float32)
    for side in (56, 70):
        assert np.shape(table[static[0]][0](side)(images)) == (1, 56, 70)
    assert calibrated == [(56, 56), (70, 70)]

    # bench_runtimes builds a per-size runtime at each side, the others once.
    builds = []

    def fake(name, per_size):
        def build(side):
            builds.append((name, side))
            return lambda x: x.mean(axis=-1)
        return name, build, per_size

    monkeypatch.setattr(runtimes, "runtimes", lambda model, log: [
        fake(runtimes.REFERENCE, False), fake("per size", True), fake("once", False)])
    # Scoring is not what this checks (test_speed_runtimes_at_tiny_settings does it).
    monkeypatch.setattr(runtimes, "_aloe", lambda: None)
    monkeypatch.setattr(quantize, "agreement", lambda *a, **k: quantize.Agreement(0, 0, 0, 0))
    monkeypatch.setattr(runtimes, "validation_scores", lambda *a: (None, None))
    rows = runtimes.bench_runtimes(tiny_models.loaded("depth_anything"), [56, 70],
                                   repeats=1, warmup=0, scenes=1, log=lambda s: None)
    assert [(r.runtime, r.size[0]) for r in rows] == [
        (n, side) for side in (56, 70) for n in (runtimes.REFERENCE, "per size", "once")]
    assert builds == [(runtimes.REFERENCE, 56), ("per size", 56), ("once", 56),
                      ("per size", 70)]
