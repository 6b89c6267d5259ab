"""A model as an ONNX graph, written from its variables with the `onnx` package.

Why not a converter: with the versions this project pins, neither exports the models
correctly (README, "ONNX"). tf2onnx reads jax2tf's SavedModel as one XlaCallModule op
(StableHLO inside), which it cannot translate; jax2onnx (0.17) pins orbax-checkpoint
< 0.11.37 against our >= 0.12.8, patches flax's max_pool with a version that drops the stem's
padding, and the graph it writes for the residual blocks fails onnxruntime's shape checks.

So each model family writes its own graph (its `onnx` writer, e.g.
`models.depthnet_onnx.write`) with the operations of `Graph`, which hands out every
variable exactly once: a renamed or added parameter is an error here rather than a silently
different model. The live-model comparison in `export.export_all` is the proof of
equivalence.

Graph: images (batch, height, width, 3) float32 in [0, 1], height and width multiples of
the family's stride -> depth (batch, height, width) float32, computed in NCHW (ONNX's
convolution layout) in float32 whatever the training dtype. Opset `OPSET`.
"""

from __future__ import annotations

import json

import numpy as np

from depthsense_jax import errors, params_io, storage
from depthsense_jax.models import registry

OPSET = 17  # Resize with align_corners (>= 11) and Squeeze's axes input (>= 13); TensorRT 8.6+
BN_EPSILON = 1e-5
ONNX_FILE = "model.onnx"


def _require(module: str, what: str):
    return errors.require_extra(module, what, "onnx", "onnx and onnxruntime")


def require_onnx():
    """The onnx module, or a ValueError naming the extra that provides it."""
    return _require("onnx", "ONNX export")


def require_onnxruntime():
    """The onnxruntime module, or a ValueError naming the extra that provides it."""
    return _require("onnxruntime", "checking an ONNX export")


class Graph:
    """Nodes and initializers of one graph, and the operations a family's writer builds it
    with; `var` hands out each variable once (by its "params/..." or "batch_stats/..."
    path)."""

    def __init__(self, variables: dict):
        self.onnx = require_onnx()
        self.nodes: list = []
        self.initializers: list = []
        self.flat = {k: np.asarray(v, np.float32) for k, v in params_io.flat(variables).items()}
        self.used: set[str] = set()
        self._count = 0

    def has(self, path: str) -> bool:
        return path in self.flat

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def var(self, path: str) -> np.ndarray:
        if path not in self.flat:
            raise ValueError(f"the params have no {path!r}: not a model of this version")
        if path in self.used:
            raise ValueError(f"{path!r} used twice")
        self.used.add(path)
        return self.flat[path]

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, prefix: str, stride: int = 1, bias: bool = False) -> str:
        kernel = self.var(f"params/{prefix}/kernel")  # (kh, kw, in, out), Flax's HWIO
        pad = kernel.shape[0] // 2
        inputs = [x, self.const(prefix + "/kernel", np.transpose(kernel, (3, 2, 0, 1)))]
        if bias:
            inputs.append(self.const(prefix + "/bias", self.var(f"params/{prefix}/bias")))
        return self.op("Conv", inputs, prefix, kernel_shape=list(kernel.shape[:2]),
                       strides=[stride, stride], pads=[pad] * 4)

    def batch_norm(self, x: str, prefix: str) -> str:
        inputs = [x] + [
            self.const(f"{prefix}/{key}", self.var(f"{group}/{prefix}/{key}"))
            for group, key in (("params", "scale"), ("params", "bias"),
                               ("batch_stats", "mean"), ("batch_stats", "var"))]
        return self.op("BatchNormalization", inputs, prefix, epsilon=BN_EPSILON)

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def upsample2x(self, x: str) -> str:
        scales = self.const("scales", np.asarray([1, 1, 2, 2], np.float32))
        return self.op("Resize", [x, "", scales], "upsample", mode="linear",
                       coordinate_transformation_mode="align_corners")


def build_model(model_config, variables: dict, opset: int = OPSET):
    """onnx.ModelProto of the model of `model_config` with `variables` as initializers:
    images (batch, height, width, 3) -> depth (batch, height, width), both float32, the
    sizes dynamic. Every variable must be used by the family's writer."""
    onnx = require_onnx()
    from onnx import TensorProto, helper

    family = registry.family_of(model_config)
    if family.onnx is None:
        raise ValueError(f"the {family.name} model family has no ONNX writer; export it as "
                         "msgpack, safetensors, jax or savedmodel")
    g = Graph(variables)
    out = family.onnx(g, "images", model_config)
    g.nodes.append(helper.make_node("Squeeze", [out, g.const("axis", np.asarray([1]))],
                                    ["depth"], name="depth"))
    unused = sorted(set(g.flat) - g.used)
    if unused:
        raise ValueError(f"the params hold variables the {family.name} ONNX graph does not "
                         f"use: {unused[:5]}{' ...' if len(unused) > 5 else ''}")
    dims = ["batch", "height", "width"]
    graph = helper.make_graph(
        g.nodes, family.name,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, dims + [3])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, dims)],
        initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="depthsense-jax")
    model.doc_string = ("Relative inverse depth (larger = nearer). images: (batch, height, "
                        f"width, 3) float32 RGB in [0, 1], height and width multiples of "
                        f"{family.stride}.")
    helper.set_model_props(model, {"model.json": json.dumps(
        params_io.model_config_dict(model_config), sort_keys=True)})
    onnx.checker.check_model(model)
    return model


def export_onnx(out_dir: str, model_config, variables: dict, opset: int = OPSET) -> str:
    """Write DIR/model.onnx (see `build_model`); returns its path."""
    path = storage.join(out_dir, ONNX_FILE)
    storage.write_bytes(path, build_model(model_config, variables, opset).SerializeToString())
    return path


def load_onnx(model, threads: int | None = None):
    """An onnxruntime CPU session of a graph: a model.onnx path (local or URL), its bytes or
    an onnx.ModelProto. `session.run(None, {"images": x})[0]`."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if isinstance(model, str) and storage.is_url(model):
        model = storage.read_bytes(model)
    elif not isinstance(model, str | bytes):
        model = model.SerializeToString()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def graph_model_config(model) -> dict | None:
    """The model.json fields an onnx.ModelProto's metadata holds (None when it has none)."""
    props = {p.key: p.value for p in model.metadata_props}
    return json.loads(props["model.json"]) if "model.json" in props else None


def beside(params: str | None) -> str | None:
    """PARAMS/model.onnx when `params` is a folder (an export) that has one, else None."""
    if not params or not storage.isdir(params):
        return None
    path = storage.join(params, ONNX_FILE)
    return path if storage.isfile(path) else None


def runtime_session(model_config, variables: dict, onnx_file: str | None = None,
                    threads: int | None = None):
    """An onnxruntime CPU session that runs the model: the graph of `onnx_file` (an
    export's model.onnx; its metadata must describe the same model as `model_config`) or,
    without one, the graph built in memory from `variables`. float32 whatever the training
    dtype."""
    if onnx_file is None:
        return load_onnx(build_model(model_config, variables), threads)
    onnx = require_onnx()
    graph = onnx.load_from_string(storage.read_bytes(onnx_file))
    theirs, mine = graph_model_config(graph), params_io.model_config_dict(model_config)
    # The training dtype does not change the graph (always float32).
    if theirs is None or {k: v for k, v in theirs.items() if k != "dtype"} != {
            k: v for k, v in mine.items() if k != "dtype"}:
        raise ValueError(f"{onnx_file} describes another model ({theirs}) than the params "
                         f"({mine}): export it again (depthsense export --formats onnx)")
    return load_onnx(graph, threads)
