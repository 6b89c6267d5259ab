"""Export a trained model of any family: params files, a serialized jax.export function, a
TF SavedModel, an ONNX graph.

Layout of an export folder (model.json and the params files: see `params_io`), with S the
model family's stride (32 for DepthNet):
  model.json            the family's name and the fields that rebuild the model
  params.msgpack        the variables by flax.serialization
  params.safetensors    the same, flat names joined by "/" ("params/encoder/conv1/kernel")
  model.jax             jax.export of images (B, S*h, S*w, 3) -> (B, S*h, S*w), params inside
  saved_model/          the same function through jax2tf, for TF Serving
  model.onnx            the same function as an ONNX graph (`onnx_export`), dynamic batch
                        and sizes, float32
  model_fp16.onnx       that graph in float16, images and depth kept float32 (`quantize`)
  model_int8.onnx       that graph in INT8 (QDQ), calibrated on rendered scenes (`quantize`)
  model.tflite          the function as TFLite (`tflite_export`), one static shape: batch 1
                        at the training size
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from depthsense_jax import params_io, storage
from depthsense_jax.models import registry
from depthsense_jax.params_io import LoadedModel

FORMATS = ("msgpack", "safetensors", "jax", "savedmodel", "onnx", "onnx-fp16", "onnx-int8",
           "tflite")
DEFAULT_FORMATS = ("msgpack", "safetensors", "jax", "savedmodel")
ONNX_FORMATS = ("onnx", "onnx-fp16", "onnx-int8")  # need the [onnx] extra
QUANTIZED = {"onnx-fp16": "model_fp16.onnx", "onnx-int8": "model_int8.onnx"}
# Largest |difference| from the live model each reloaded format may show on the check inputs.
# jax.export and the SavedModel run the same XLA program; onnxruntime and LiteRT have their
# own kernels. The quantised formats are held to `quantize.TOLERANCE` instead.
TOLERANCE = {"jax": 1e-5, "savedmodel": 1e-5, "onnx": 1e-4, "tflite": 1e-4}
CHECK_BATCHES = (1, 3)
# Inputs of the quantised and TFLite checks per size: one batch (one compiled shape of the
# live model), the batch `predict` uses for two photos.
QUANTIZED_CHECK_SCENES = 2


def inference_fn(model_config, variables: dict) -> Callable[[jax.Array], jax.Array]:
    """images (B, H, W, 3) float32 [0, 1] -> (B, H, W) float32, params closed over."""
    model = registry.build(model_config)
    variables = jax.tree.map(jnp.asarray, variables)

    def fn(images):
        return registry.infer(model, variables, images)

    return fn


def export_jax(out_dir: str, model_config, variables: dict,
               platforms: tuple[str, ...] = ("cpu",)) -> str:
    """Serialize the inference function with jax.export to DIR/model.jax: batch and spatial
    sizes symbolic (B, S*h, S*w, 3) for the family's stride S, lowered for `platforms`
    ("cpu", "cuda", "tpu")."""
    from jax import export

    stride = registry.family_of(model_config).stride
    b, h, w = export.symbolic_shape("b, h, w")
    spec = jax.ShapeDtypeStruct((b, stride * h, stride * w, 3), jnp.float32)
    exported = export.export(jax.jit(inference_fn(model_config, variables)),
                             platforms=platforms)(spec)
    path = storage.join(out_dir, "model.jax")
    storage.write_bytes(path, exported.serialize())
    return path


def load_jax(path: str):
    """The jax.export.Exported of a model.jax file: `.call(images)` runs it."""
    from jax import export

    return export.deserialize(bytearray(storage.read_bytes(path)))


def export_savedmodel(out_dir: str, model_config, variables: dict) -> str:
    """A TF SavedModel (jax2tf, params as tf.Variables) in DIR/saved_model with the
    signature serving_default(images: (None, None, None, 3) float32) -> depth. TF writes
    it to a local folder; under a URL its files are then uploaded."""
    import tensorflow as tf
    from jax.experimental import jax2tf

    from depthsense_jax._tf import keep_tf_off_accelerators

    keep_tf_off_accelerators()  # on a GPU host the GPU memory is JAX's
    model = registry.build(model_config)
    stride = registry.family_of(model_config).stride
    flat = params_io.flat(variables)
    names = sorted(flat)
    module = tf.Module()
    module.params = [tf.Variable(flat[n], trainable=False, name=n.replace("/", "__"))
                     for n in names]

    def apply(params, images):
        tree = traverse_util.unflatten_dict(dict(zip(names, params, strict=True)), sep="/")
        return registry.infer(model, tree, images)

    shape = f"(b, {stride}*h, {stride}*w, 3)"
    converted = jax2tf.convert(apply, polymorphic_shapes=[None, shape],
                               with_gradient=False)

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def serve(images):
        return {"depth": converted(module.params, images)}

    module.serve = serve
    path = storage.join(out_dir, "saved_model")
    with storage.staged_folder(path) as folder:
        tf.saved_model.save(module, folder, signatures={"serving_default": serve})
    return path


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def check_sizes(model_config) -> tuple[tuple[int, int], ...]:
    """The two input sizes every export is checked at: 2x3 and 3x2 strides (64x96 and
    96x64 for DepthNet)."""
    stride = registry.family_of(model_config).stride
    return ((2 * stride, 3 * stride), (3 * stride, 2 * stride))


def export_all(out_dir: str, model: LoadedModel, formats=DEFAULT_FORMATS,
               platforms: tuple[str, ...] = ("cpu",), sizes=None,
               log: Callable[[str], None] = print, tolerance: dict | None = None,
               calibration: Iterable[np.ndarray] | None = None) -> dict:
    """Write every format of `model`, reload each, run it on random inputs of `sizes`
    (default `check_sizes`) at batch 1 and 3, compare with the live model and report file
    sizes. A mismatch above the format's tolerance (`TOLERANCE`, overridden per format by
    `tolerance`) is a RuntimeError. The quantised ONNX formats and TFLite are checked their
    own way (`_export_quantized`, `_export_tflite`); `calibration`: the INT8 calibration
    batches ((B, h, w, 3) float32 in [0, 1]; default rendered scenes at the training
    size)."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    unknown = sorted(set(platforms) - {"cpu", "cuda", "tpu", "rocm"})
    if unknown or not platforms:
        raise ValueError(f"unknown platform(s) {unknown}; choose from cpu, cuda, tpu, rocm")
    onnx_formats = [f for f in formats if f in ONNX_FORMATS]
    if onnx_formats:  # before anything is written
        from depthsense_jax import onnx_export

        family = registry.family_of(model.model_config)
        if family.onnx is None:
            raise ValueError(f"the {family.name} model family has no ONNX writer, so no "
                             f"{', '.join(onnx_formats)}; choose from "
                             f"{', '.join(f for f in FORMATS if f not in ONNX_FORMATS)}")
        onnx_export.require_onnx()
        onnx_export.require_onnxruntime()
    if "tflite" in formats:
        from depthsense_jax import tflite_export

        tflite_export.require_litert()
    tolerance = {**TOLERANCE, **(tolerance or {})}
    model_config, variables = model.model_config, model.variables
    sizes = sizes or check_sizes(model_config)
    out_dir = storage.normalize(storage.expand(out_dir))
    storage.makedirs(out_dir)
    rng = np.random.default_rng(0)
    inputs = [rng.random((b, h, w, 3), dtype=np.float32)
              for h, w in sizes for b in CHECK_BATCHES]
    # The reference outputs of the formats checked on `inputs`.
    live = jax.jit(inference_fn(model_config, variables))
    expected = ([np.asarray(live(x)) for x in inputs]
                if {"jax", "savedmodel"} & set(formats) else None)
    if "onnx" in formats and (model_config.dtype != "float32" or expected is None):
        # The ONNX graph computes in float32 whatever the training dtype: compare like with
        # like (the bfloat16 model's own rounding is not the exporter's error).
        live32 = jax.jit(inference_fn(float32_config(model_config), variables))
        expected_f32 = [np.asarray(live32(x)) for x in inputs]
    else:
        expected_f32 = expected
    shapes = ", ".join(f"{h}x{w}" for h, w in sizes)
    batches = " and ".join(map(str, CHECK_BATCHES))
    report = {"model.json": params_io.write_model_json(out_dir, model_config, model.image_size)}
    reference = params_io.flat(variables)

    def check_params(path):
        _, loaded = params_io.load_params(path)
        flat = params_io.flat(loaded)
        same = set(flat) == set(reference) and all(
            flat[k].dtype == reference[k].dtype and np.array_equal(flat[k], reference[k])
            for k in reference)
        if not same:
            raise RuntimeError(f"{path}: reloaded params differ from the checkpoint's")
        return "bit-identical"

    def check_fn(path, fn, fmt, reference=expected):
        worst = max(_max_diff(fn(x), e) for x, e in zip(inputs, reference, strict=True))
        if not worst <= tolerance[fmt]:
            raise RuntimeError(f"{path}: output differs from the live model by {worst:.3g} "
                               f"(tolerance {tolerance[fmt]:g})")
        return f"max |diff| {worst:.2g} at {shapes}, batch {batches}"

    for fmt in formats:
        if fmt == "msgpack":
            path = params_io.save_msgpack(out_dir, variables)
            verdict = check_params(path)
        elif fmt == "safetensors":
            path = params_io.save_safetensors(out_dir, variables)
            verdict = check_params(path)
        elif fmt == "jax":
            path = export_jax(out_dir, model_config, variables, platforms)
            exported = load_jax(path)
            verdict = (check_fn(path, exported.call, fmt) if "cpu" in platforms
                       else "not run here (no cpu platform)")
        elif fmt == "onnx":
            from depthsense_jax import onnx_export

            path = onnx_export.export_onnx(out_dir, model_config, variables)
            session = onnx_export.load_onnx(path)
            verdict = check_fn(
                path, lambda x, s=session: s.run(None, {"images": x})[0], fmt, expected_f32)
            verdict += f", onnxruntime, opset {onnx_export.OPSET}"
        elif fmt in QUANTIZED:
            path, verdict = _export_quantized(out_dir, model, fmt, log, calibration)
        elif fmt == "tflite":
            path, verdict = _export_tflite(out_dir, model, tolerance[fmt])
        else:
            import tensorflow as tf

            path = export_savedmodel(out_dir, model_config, variables)
            with storage.local_folder(path) as folder:  # what was written, read back
                served = tf.saved_model.load(folder).signatures["serving_default"]
                verdict = check_fn(
                    path, lambda x, f=served: f(images=tf.constant(x))["depth"].numpy(), fmt)
        size = storage.getsize(path)
        report[storage.basename(path)] = path
        log(f"  {storage.basename(path):<20} {size / 2**20:9.2f} MiB  {verdict}")
    return report


def float32_config(model_config) -> ml_collections.ConfigDict:
    """The same model computing in float32 (what the ONNX and TFLite graphs compute in)."""
    f32 = ml_collections.ConfigDict(dict(model_config))
    f32.dtype = "float32"
    return f32


def train_size(model: LoadedModel) -> int:
    """The side the fixed-size and calibrated exports use: `inference.training_side`."""
    from depthsense_jax import inference

    return inference.training_side(model)


def quantized_check_sizes(model: LoadedModel) -> tuple[tuple[int, int], ...]:
    """Where the quantised formats are checked: the training size, square and 1.5x as wide
    (the scale they were calibrated at; their ranges hold there)."""
    size = train_size(model)
    return ((size, size), (size, model.family.round_size(round(1.5 * size))))


def float32_predictor(model: LoadedModel):
    """An `inference.Predictor` of the model computing in float32 (what the ONNX and TFLite
    graphs compute in): the variables are arguments of its program, not constants, so it
    compiles fast and once per shape."""
    from depthsense_jax import inference

    return inference.Predictor(dataclasses.replace(
        model, model_config=float32_config(model.model_config)))


def _export_quantized(out_dir: str, model: LoadedModel, fmt: str,
                      log: Callable[[str], None],
                      calibration: Iterable[np.ndarray] | None = None) -> tuple[str, str]:
    """Write model_fp16.onnx or model_int8.onnx (INT8 calibrated on `calibration`, default
    `quantize.calibration_batches` at the training size), reload it with onnxruntime and
    hold it to `quantize.tolerance_for` against the float32 model on QUANTIZED_CHECK_SCENES
    rendered validation scenes at each of `quantized_check_sizes`. Returns (path,
    verdict)."""
    from depthsense_jax import onnx_export, quantize

    graph = onnx_export.build_model(model.model_config, model.variables)
    if fmt == "onnx-fp16":
        graph = quantize.to_float16(graph)
    else:
        size = train_size(model)
        log(f"  calibrating INT8 on {quantize.CALIBRATION_SCENES} rendered scenes at "
            f"{size}x{size} ...")
        graph = quantize.to_int8(graph, calibration or quantize.calibration_batches(
            (size, size)))
    path = storage.join(out_dir, QUANTIZED[fmt])
    storage.write_bytes(path, graph.SerializeToString())
    session = onnx_export.load_onnx(path)
    live = float32_predictor(model)
    outputs, references = [], []
    sizes = quantized_check_sizes(model)
    for i, size in enumerate(sizes):
        x = quantize.scenes(quantize.VALIDATION_SEED, QUANTIZED_CHECK_SCENES, size,
                            start=i * QUANTIZED_CHECK_SCENES)
        outputs += list(session.run(None, {"images": x})[0])
        references += list(live(x))
    verdict = quantize.check_agreement(quantize.agreement(outputs, references), fmt, path,
                                       quantize.tolerance_for(fmt, model.family.name))
    shapes = ", ".join(f"{h}x{w}" for h, w in sizes)
    return path, f"{verdict} on {len(outputs)} rendered scenes at {shapes}, onnxruntime"


def _export_tflite(out_dir: str, model: LoadedModel, tolerance: float) -> tuple[str, str]:
    """Write model.tflite (batch 1 at the training size), reload it with LiteRT and compare
    it with the float32 live model on QUANTIZED_CHECK_SCENES random images of that size.
    Returns (path, verdict)."""
    from depthsense_jax import tflite_export

    size = train_size(model)
    path = tflite_export.export_tflite(
        out_dir, inference_fn(float32_config(model.model_config), model.variables),
        (1, size, size, 3))
    runner = tflite_export.TFLiteRunner(path)
    x = np.random.default_rng(1).random((QUANTIZED_CHECK_SCENES, size, size, 3),
                                        dtype=np.float32)
    want = float32_predictor(model)(x)  # one batch: the program of the quantised checks
    worst = max(_max_diff(runner(x[i:i + 1])[0], want[i]) for i in range(len(x)))
    if not worst <= tolerance:
        raise RuntimeError(f"{path}: output differs from the live model by {worst:.3g} "
                           f"(tolerance {tolerance:g})")
    return path, (f"max |diff| {worst:.2g} at {size}x{size}, batch 1 (its static shape), "
                  f"{len(x)} inputs, LiteRT")
