"""Depth Anything's ONNX graph (models.depth_anything_onnx) against the live Flax model: both
position-embedding interpolations, sizes below, above and on the checkpoint's 37x37 patch
grid (there the embeddings are used as they are), dynamic batch, and `export.export_all`'s
own check. Random weights at a healthy scale; within 1e-4 of the output range."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import traverse_util

from depthsense_jax import onnx_export
from depthsense_jax.models import depth_anything_io, registry

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

MODES = ("dinov2", "transformers")
# 18x23 and 29x39 patches (below and above the 37x37 grid) and the grid itself; for "dinov2"
# also 37x18, one axis on the grid: its scale is (37 + 0.1) / 37 there, not 1 (in
# "transformers" an axis on the grid is the identity whatever the other one)
SIZES = {"dinov2": ((252, 322), (406, 546), (518, 518), (518, 252)),
         "transformers": ((252, 322), (406, 546), (518, 518))}
TOLERANCE = 1e-4  # of the output range


def _config(mode: str):
    return depth_anything_io.model_config_for(32, 6, 2, 16, [8, 16, 24, 32], [1, 2, 3, 5], 37,
                                              mode)


@pytest.fixture(scope="module")
def variables() -> dict:
    """One draw for both modes (they have the same variables), at the scale of a trained
    model rather than of the default init (whose zero biases and near-zero tokens would hide
    a dropped bias or embedding): kernels N(0, 1/fan_in), biases N(0, 0.1), norm scales
    1 + N(0, 0.1), LayerScale N(0.5, 0.1), the tokens N(0, 0.5). Drawn in NumPy on the
    model's variable shapes: compiling the random initialisers of `create_variables` would
    take ~25 s here."""
    shapes = registry.variable_shapes(_config("dinov2"), size=56)
    rng = np.random.default_rng(0)
    flat = {}
    for name, shape in traverse_util.flatten_dict(shapes, sep="/").items():
        noise = rng.normal(size=shape.shape)
        if name.endswith(("cls_token", "pos_embed")):
            value = 0.5 * noise
        elif name.endswith(("/ls1", "/ls2")):
            value = 0.5 + 0.1 * noise
        elif name.endswith("/scale"):
            value = 1 + 0.1 * noise
        elif name.endswith("/bias"):
            value = 0.1 * noise
        else:
            value = noise / np.sqrt(np.prod(shape.shape[:-1]))
        flat[name] = value.astype(np.float32)
    variables = traverse_util.unflatten_dict(flat, sep="/")
    # The last (1x1) convolution's bias shifted so that ~60% of the pixels are > 0 (the
    # draw leaves nearly all of them positive): calibrated on the graph's output, which is
    # this pre-activation wherever it is positive.
    session = ort.InferenceSession(onnx_export.build_model(_config("dinov2"), variables)
                                   .SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": rng.random((1, 252, 322, 3), dtype=np.float32)})[0]
    variables["params"]["head"]["output_conv3"]["bias"] -= np.quantile(out, 0.4).astype(
        np.float32)
    return variables


@pytest.fixture(scope="module")
def live(variables):
    """live(mode, images) -> the Flax model's output (one jit per mode)."""
    fns = {}

    def run(mode: str, images: np.ndarray) -> np.ndarray:
        if mode not in fns:
            module = registry.build(_config(mode))
            fns[mode] = jax.jit(lambda v, x: registry.infer(module, v, x))
        return np.asarray(fns[mode](variables, images))

    return run


@pytest.mark.parametrize("mode", MODES)
def test_the_graph_predicts_as_the_flax_model(mode, variables, live):
    proto = onnx_export.build_model(_config(mode), variables)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for size in SIZES[mode]:
        images = rng.random((2, *size, 3), dtype=np.float32)
        want = live(mode, images)
        span = float(want.max() - want.min())
        assert span > 0.1 and 0.2 < float((want > 0).mean()) < 0.95  # a healthy, varied map
        for got, expected in ((session.run(None, {"images": images})[0], want),
                              (session.run(None, {"images": images[:1]})[0], want[:1])):
            assert got.shape == expected.shape
            err = float(np.abs(got - expected).max())
            assert err <= TOLERANCE * span, (
                f"{mode} {size} batch {len(got)}: max |onnx - flax| = {err:.3g}, "
                f"range {span:.3g}")


# export_all's ONNX check on this family: tests/test_depth_anything_commands.py.


def test_at_the_checkpoints_grid_the_dinov2_scales_are_exactly_one(variables):
    # onnxruntime's Resize copies its input whenever the output size equals it, so the
    # comparison above cannot see the Where that makes the scales 1 there for any runtime:
    # read the scales themselves.
    proto = onnx_export.build_model(_config("dinov2"), variables)
    (scales,) = [n.output[0] for n in proto.graph.node
                 if n.op_type == "Concat" and n.output[0].startswith("scales_")]
    proto.graph.output.append(onnx.helper.make_tensor_value_info(
        scales, onnx.TensorProto.FLOAT, [4]))
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for (h, w), want in (((518, 518), (1, 1)), ((518, 252), (37.1 / 37, 18.1 / 37)),
                         ((252, 518), (18.1 / 37, 37.1 / 37))):
        got = session.run([scales], {"images": np.zeros((1, h, w, 3), np.float32)})[0]
        np.testing.assert_allclose(got, [1, 1, *want], rtol=1e-6)
        if want == (1, 1):
            assert np.array_equal(got, np.ones(4, np.float32))
