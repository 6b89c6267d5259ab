"""A model as a TFLite (LiteRT) flatbuffer at one fixed input size, and LiteRT's interpreter
to run it.

How: TensorFlow's own converter (`tf.lite.TFLiteConverter.from_concrete_functions`, TF
2.21, already a dependency) on the jax2tf function of the model, the function the
SavedModel export serves. jax2tf (jax 0.10) only serialises natively: the TF graph is one
XlaCallModule op holding StableHLO. TF 2.21's converter legalises that StableHLO to TFLite
builtin operators itself (CONV_2D, FULLY_CONNECTED, BATCH_MATMUL, SOFTMAX, GATHER_ND for the
align_corners resizes, ...): for both model families every operator is a builtin, so no
Flex (select TF ops) delegate is needed, and the test models' outputs match the live model
within 2e-6 of their range. With that working from what is installed, the other routes were
not needed: onnx2tf (our ONNX graph through TF/Keras again, plus onnx_graphsurgeon and
others) and ai-edge-torch (from the PyTorch peers; it needs torch_xla).

The interpreter is LiteRT's (`ai_edge_litert.interpreter`, the [tflite] extra): TF 2.21
still ships `tf.lite.Interpreter` but warns that it is deprecated and due for deletion.

Shapes are static: a .tflite graph is converted for one (batch, height, width, 3), by
default batch 1 at the training size (image_size x image_size), the size the model is
sharpest at; another size is another conversion (`convert(fn, shape)`). Input `images`
float32 RGB in [0, 1] (NHWC), output (batch, height, width) float32 relative inverse depth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from depthsense_jax import errors, storage

TFLITE_FILE = "model.tflite"


def require_litert():
    """LiteRT's interpreter module, or a ValueError naming the extra that provides it."""
    return errors.require_extra("ai_edge_litert.interpreter", "running a TFLite model",
                                "tflite", "ai-edge-litert, LiteRT's interpreter")


def convert(fn: Callable, shape: tuple[int, int, int, int]) -> bytes:
    """The TFLite flatbuffer of `fn` (images (B, H, W, 3) float32 -> (B, H, W) float32, a
    jit-able JAX function with its params closed over, e.g. `export.inference_fn`) for the
    one input shape `shape` = (B, H, W, 3)."""
    import tensorflow as tf
    from jax.experimental import jax2tf

    from depthsense_jax._tf import keep_tf_off_accelerators

    if len(shape) != 4 or shape[3] != 3 or min(shape) < 1:
        raise ValueError(f"a TFLite input shape is (batch, height, width, 3), got {shape}")
    keep_tf_off_accelerators()  # on a GPU host the GPU memory is JAX's
    converted = jax2tf.convert(fn, with_gradient=False)
    serve = tf.function(converted, autograph=False, input_signature=[
        tf.TensorSpec(tuple(int(s) for s in shape), tf.float32, name="images")])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], serve)
    # Builtin operators only: a graph that would need TF ops (Flex) fails here, not on the
    # device.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def export_tflite(out_dir: str, fn: Callable, shape: tuple[int, int, int, int]) -> str:
    """Write DIR/model.tflite (`convert(fn, shape)`); returns its path."""
    path = storage.join(out_dir, TFLITE_FILE)
    storage.write_bytes(path, convert(fn, shape))
    return path


class TFLiteRunner:
    """A .tflite model (a path, local or URL, or its bytes) in LiteRT's interpreter:
    `runner(images)` with images of exactly `runner.shape` -> (B, H, W) float32."""

    def __init__(self, model: str | bytes, threads: int | None = None):
        interpreter_lib = require_litert()
        content = model if isinstance(model, bytes) else storage.read_bytes(model)
        self.interpreter = interpreter_lib.Interpreter(model_content=content,
                                                       num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.shape = tuple(int(s) for s in self._input["shape"])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if images.shape != self.shape:
            raise ValueError(f"this TFLite model takes images of shape {self.shape} (it was "
                             f"converted for one size), got {images.shape}")
        self.interpreter.set_tensor(self._input["index"], images)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self._output["index"]))
