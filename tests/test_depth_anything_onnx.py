"""Depth Anything's ONNX graph (models.depth_anything_onnx) against the live Flax model: both
position-embedding interpolations, sizes below, above and on the checkpoint's position grid
(there the embeddings are used as they are), dynamic batch, and `export.export_all`'s
own check. Random weights at a healthy scale; within 1e-4 of the output range."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from depthsense_jax import onnx_export
from depthsense_jax.models import depth_anything_io, registry

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

MODES = ("dinov2", "transformers")
# On an 8x8 position grid (the releases' is 37x37: what matters is below, above and on it, at
# a tenth of the pixels): 5x6 and 11x13 patches and the grid itself; for "dinov2" also 8x5,
# one axis on the grid: its scale is (8 + 0.1) / 8 there, not 1 (in "transformers" an axis
# on the grid is the identity whatever the other one)
GRID = 8
SIZES = {"dinov2": ((70, 84), (154, 182), (112, 112), (112, 70)),
         "transformers": ((70, 84), (154, 182), (112, 112))}
TOLERANCE = 1e-4  # of the output range


def _config(mode: str):
    return depth_anything_io.model_config_for(32, 4, 2, 16, [8, 16, 32, 32], [0, 1, 2, 3],
                                              GRID, mode)


@pytest.fixture(scope="module")
def variables(healthy_depth_anything) -> dict:
    """One draw for both modes (they have the same variables), at the scale of a trained
    model rather than of the default init (conftest's `_healthy_depth_anything`)."""
    return healthy_depth_anything(_config("dinov2"))


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
    for (h, w), want in (((112, 112), (1, 1)), ((112, 70), (8.1 / 8, 5.1 / 8)),
                         ((70, 112), (5.1 / 8, 8.1 / 8))):
        got = session.run([scales], {"images": np.zeros((1, h, w, 3), np.float32)})[0]
        np.testing.assert_allclose(got, [1, 1, *want], rtol=1e-6)
        if want == (1, 1):
            assert np.array_equal(got, np.ones(4, np.float32))
