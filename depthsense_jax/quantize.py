"""fp16 and INT8 versions of a model's ONNX graph (`onnx_export.build_model`), for onnxruntime
on CPUs and other devices, and how far a runtime's output is from the float32 model's.

- fp16: onnxruntime's own converter (`onnxruntime.transformers.float16`, shipped with
  onnxruntime: no other package), weights and activations in float16 with the graph's
  `images` and `depth` kept float32 (keep_io_types), so a caller sees the same interface.
  It is for devices with fast float16 (GPUs, NPUs): onnxruntime has few float16 CPU
  kernels (how it does on this CPU: docs/benchmarks.md, "Runtimes").
- INT8: `onnxruntime.quantization.quantize_static`, QDQ format, int8 weights per output
  channel and uint8 activations (U8S8, onnxruntime's fast x86 path), MinMax ranges from
  rendered scenes at the model's training size (train-split seeds: never a validation
  scene). The graph is first pre-processed (`quant_pre_process`: batch norms folded into
  the convolutions, so their statistics are quantised once, with the weights); its
  symbolic shape inference is skipped, since it cannot follow the dynamic sizes of these
  graphs. The output convolution and what follows it stay float32: on the DepthNet test
  model that halves the largest error (7.6% to 3.7% of the output range) for one layer of
  compute. Static, as QDQ graphs for int8 accelerators take it: the ranges are fixed in the
  graph. In a graph with attention only the convolutions and matrix products are
  quantised (`MATRIX_OPS`: a ViT's layer norms, softmax and residual stream stay float32).
  Dynamic quantization (`to_int8_dynamic`: ranges measured per batch at run time,
  DynamicQuantizeLinear + ConvInteger/MatMulInteger) measured somewhat more accurate on
  the test models (mean |diff| 0.20% vs 0.25% of the range for DepthNet, 1.1% vs 2.1% for
  Depth Anything) and costs the range computation in every run; `speed runtimes` measures
  both.

`agreement` scores an output against a reference (the float32 model's): the largest and
mean |difference| relative to the reference's range per image, WHDR of the output against
the reference's order, and AbsRel after per-image scale-and-shift alignment to it.
`check_agreement` holds it to a format's `TOLERANCE`: `export` uses it for each quantised
file, `speed runtimes` reports it per runtime.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from depthsense_jax import metrics, sampling
from depthsense_jax.onnx_export import require_onnx, require_onnxruntime

CALIBRATION_SCENES = 16
CALIBRATION_SEED = 0  # the synthetic train split's stream: calibration never sees a check scene
VALIDATION_SEED = 1  # the synthetic validation split's stream (data.synthetic.builder)
AGREEMENT_PAIRS = 3000  # random pairs per image for WHDR against the reference's order
NEAR_FACTOR = 20  # AbsRel against a reference: its pixels at most 20x farther than the nearest


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How far an output is from a reference output (both (B, H, W)): max_diff and
    mean_diff, |output - reference| relative to the reference's range (max - min) per
    image, the largest and the mean over all pixels; whdr: the share of random pixel pairs
    whose order (after alignment, `metrics.whdr`) differs from the reference's; abs_rel:
    `metrics.aligned_errors`' AbsRel against the reference (its pixels > 0). Means over
    images."""

    max_diff: float
    mean_diff: float
    whdr: float
    abs_rel: float

    def describe(self) -> str:
        return (f"max |diff| {100 * self.max_diff:.2g}% of the range (mean "
                f"{100 * self.mean_diff:.2g}%), WHDR {100 * self.whdr:.2g}% and AbsRel "
                f"{self.abs_rel:.2g} against fp32")


# What each quantised format must achieve against the float32 model on rendered validation
# scenes at the training size (`export.export_all`'s check), per model family ("*": any
# other). Set at about twice what the test models measured (tests/test_runtimes.py; at the
# training size and at 1.5x its width): fp16 (both families) 0.15-0.21% max and 0.02% mean
# |diff| of the range, WHDR 0.08-0.3%, AbsRel 0.0002-0.0017; INT8 DepthNet 1.4-2.4% max,
# 0.24-0.29% mean, WHDR 1.9-3.1%, AbsRel 0.0026-0.0087 (AbsRel moves most from one
# trained tiny model to another: its bound has more room); INT8 Depth Anything (random
# weights at a trained model's scale; matrix ops alone, MATRIX_OPS) 16% max, 1.0% mean,
# WHDR 3.4%, AbsRel 0.07 (every op quantised: 17% max, 1.4% mean, WHDR 4.5-4.7%).
# Calibrated on black images, INT8 misses every one by far (56-100% max, WHDR 44-62%).
TOLERANCE = {
    "onnx-fp16": {"*": Agreement(max_diff=0.005, mean_diff=0.0005, whdr=0.01, abs_rel=0.005)},
    "onnx-int8": {
        "depthnet": Agreement(max_diff=0.05, mean_diff=0.006, whdr=0.07, abs_rel=0.02),
        "*": Agreement(max_diff=0.35, mean_diff=0.03, whdr=0.10, abs_rel=0.25)},
}


def tolerance_for(fmt: str, family: str) -> Agreement:
    """TOLERANCE of a quantised format for a model family."""
    table = TOLERANCE[fmt]
    return table.get(family, table["*"])


@functools.partial(jax.jit, static_argnames=("num_pairs",))
def _per_image(output: jax.Array, reference: jax.Array, valid: jax.Array, key: jax.Array,
               num_pairs: int) -> dict[str, jax.Array]:
    """`Agreement`'s numbers per image of (B, H, W) maps over their `valid` pixels (the
    maps padded to one shape: one program for a whole check)."""
    top = jnp.max(jnp.where(valid, reference, -jnp.inf), axis=(1, 2))
    bottom = jnp.min(jnp.where(valid, reference, jnp.inf), axis=(1, 2))
    magnitude = jnp.max(jnp.where(valid, jnp.abs(reference), 0.0), axis=(1, 2))
    span = top - bottom
    span = jnp.where(span > 0, span, jnp.where(magnitude > 0, magnitude, 1.0))
    diff = jnp.where(valid, jnp.abs(output - reference) / span[:, None, None], 0.0)
    pairs = sampling.per_image_pairs(key, valid, num_pairs)
    # AbsRel divides by the reference: pixels near 0 (the far background of a relative map)
    # would dominate it, so only those within NEAR_FACTOR of the nearest count (as
    # benchmarks cap depth).
    near = valid & (reference > 0) & (reference >= top[:, None, None] / NEAR_FACTOR)
    return {"max_diff": jnp.max(diff, axis=(1, 2)),
            "mean_diff": jnp.sum(diff, axis=(1, 2)) / jnp.sum(valid, axis=(1, 2)),
            "whdr": metrics.whdr(output, reference, pairs, mask=valid),
            "abs_rel": metrics.aligned_errors(output, reference, near)["abs_rel"],
            "measurable": jnp.sum(near, axis=(1, 2)) >= 2}


def agreement(outputs, references, seed: int = 0) -> Agreement:
    """`Agreement` of outputs against references: each a (B, H, W) array or a sequence of
    (H, W) maps (of any sizes), float32 relative inverse depth (larger = nearer). Finite for
    constant maps (a constant reference's range counts as its magnitude, or 1 when 0)."""
    if len(outputs) != len(references) or not len(outputs):
        raise ValueError(f"{len(outputs)} outputs for {len(references)} references")
    for i, (output, reference) in enumerate(zip(outputs, references, strict=True)):
        if np.shape(output) != np.shape(reference) or np.ndim(output) != 2:
            raise ValueError(f"output {i} {np.shape(output)} and its reference "
                             f"{np.shape(reference)} must be the same (H, W)")
    height = max(np.shape(r)[0] for r in references)
    width = max(np.shape(r)[1] for r in references)
    padded = np.zeros((2, len(outputs), height, width), np.float32)
    valid = np.zeros((len(outputs), height, width), bool)
    for i, (output, reference) in enumerate(zip(outputs, references, strict=True)):
        h, w = np.shape(reference)
        padded[0, i, :h, :w], padded[1, i, :h, :w], valid[i, :h, :w] = output, reference, True
    rows = jax.device_get(_per_image(padded[0], padded[1], valid, jax.random.PRNGKey(seed),
                                     AGREEMENT_PAIRS))
    measurable = rows["measurable"]
    return Agreement(
        max_diff=float(rows["max_diff"].max()), mean_diff=float(rows["mean_diff"].mean()),
        whdr=float(rows["whdr"].mean()),
        abs_rel=float(rows["abs_rel"][measurable].mean()) if measurable.any() else 0.0)


def check_agreement(measured: Agreement, fmt: str, what: str,
                    tolerance: Agreement) -> str:
    """`measured.describe()` when every field is within `tolerance` (`tolerance_for`);
    else a RuntimeError naming `what`, the format and each field that is not."""
    worse = [f"{f.name} {getattr(measured, f.name):.3g} > {getattr(tolerance, f.name):g}"
             for f in dataclasses.fields(Agreement)
             if not getattr(measured, f.name) <= getattr(tolerance, f.name)]
    if worse:
        raise RuntimeError(f"{what}: the {fmt} model is further from the float32 model than "
                           f"its tolerance: {', '.join(worse)}")
    return measured.describe()


def rendered(seed: int, num: int, size: tuple[int, int], start: int = 0) -> dict:
    """`num` rendered synthetic scenes (every scene family, as the synthetic v2 data) of the
    stream `seed`, scenes start .. start + num - 1: {"image": (num, h, w, 3) float32 in
    [0, 1], "depth": (num, h, w) float32 relative inverse depth (0 on sky), "mask": (num, h,
    w) bool}."""
    from depthsense_jax.data.synthetic.scenes import render_scene
    from depthsense_jax.data.synthetic.worlds import FAMILIES

    drawn = [render_scene(seed, start + i, size, tuple(FAMILIES)) for i in range(num)]
    return {"image": np.stack([d["image"] for d in drawn]).astype(np.float32) / 255.0,
            "depth": np.stack([d["depth"] for d in drawn]).astype(np.float32),
            "mask": np.stack([d["mask"] for d in drawn])}


def scenes(seed: int, num: int, size: tuple[int, int], start: int = 0) -> np.ndarray:
    """The images of `rendered`: (num, h, w, 3) float32 in [0, 1]."""
    return rendered(seed, num, size, start)["image"]


def to_float16(model):
    """The float16 version of an onnx.ModelProto: weights and computation in float16,
    `images` and `depth` kept float32."""
    require_onnx()
    require_onnxruntime()
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True)


def _float_tail(model) -> list[str]:
    """Names of the nodes from the last convolution to the output: kept float32."""
    nodes = list(model.graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type in ("Conv", "ConvTranspose")]
    return [n.name for n in nodes[convs[-1]:]] if convs else []


def _quantized(model, quantize_fn):
    """Pre-process an onnx.ModelProto (`quant_pre_process`) and quantise it with
    quantize_fn(prepared_path, output_path, prepared_model), in a temporary folder (nothing
    is written elsewhere); the result keeps the model's metadata (model.json)."""
    onnx = require_onnx()
    require_onnxruntime()
    from onnxruntime import quantization

    with tempfile.TemporaryDirectory(prefix="depthsense-int8-") as folder:
        source, prepared, quantized = (os.path.join(folder, name) for name in
                                       ("model.onnx", "prepared.onnx", "int8.onnx"))
        onnx.save(model, source)
        quantization.quant_pre_process(source, prepared, skip_symbolic_shape=True)
        quantize_fn(prepared, quantized, onnx.load(prepared))
        out = onnx.load(quantized)
    onnx.helper.set_model_props(out, {p.key: p.value for p in model.metadata_props})
    return out


# In a graph with attention (Softmax: a ViT), static INT8 quantises only these: the layer
# norms, softmax, GELU and residual adds stay float32. Quantising those too, the tiny Depth
# Anything of the tests reordered 19-24% of pixel pairs against float32 at 378 px (4.6% so),
# and ran slower (44.7 against 53.4 images/s on the 2-core CPU). Convolutional graphs keep
# onnxruntime's default (every op it can quantise): the DepthNet test model measured WHDR
# 1.8-3.8% against fp32 so, 2.5-5.2% with convolutions alone.
MATRIX_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _op_types_to_quantize(model) -> list[str] | None:
    """The op types static INT8 quantises in an onnx.ModelProto (None: onnxruntime's
    default)."""
    if any(node.op_type == "Softmax" for node in model.graph.node):
        return list(MATRIX_OPS)
    return None


def to_int8(model, calibration: Iterable[np.ndarray]):
    """The INT8 (QDQ) version of an onnx.ModelProto, its activation ranges calibrated on
    `calibration`: batches (B, h, w, 3) float32 in [0, 1] (`calibration_batches`)."""
    require_onnxruntime()
    from onnxruntime import quantization

    class Reader(quantization.CalibrationDataReader):
        def __init__(self, batches):
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": np.asarray(batch, np.float32)}

    return _quantized(model, lambda prepared, out, graph: quantization.quantize_static(
        prepared, out, Reader(calibration), quant_format=quantization.QuantFormat.QDQ,
        per_channel=True, activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        calibrate_method=quantization.CalibrationMethod.MinMax,
        op_types_to_quantize=_op_types_to_quantize(graph),
        nodes_to_exclude=_float_tail(graph)))


def to_int8_dynamic(model):
    """The dynamically quantised INT8 version of an onnx.ModelProto: int8 weights per
    channel, activation ranges measured per batch at run time (ConvInteger, MatMulInteger)."""
    require_onnxruntime()
    from onnxruntime import quantization

    return _quantized(model, lambda prepared, out, graph: quantization.quantize_dynamic(
        prepared, out, per_channel=True, weight_type=quantization.QuantType.QInt8))


def calibration_batches(size: tuple[int, int], num: int = CALIBRATION_SCENES
                        ) -> Iterator[np.ndarray]:
    """Rendered train-split scenes at `size` (h, w), one (1, h, w, 3) batch each: what
    `to_int8` calibrates on by default."""
    for i in range(num):
        yield scenes(CALIBRATION_SEED, 1, size, start=i)
