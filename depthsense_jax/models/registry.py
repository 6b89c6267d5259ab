"""Model families: what the rest of the package knows of a kind of model, by name.

`config.model.name` names a family ("depthnet" where a config, model.json or workdir gives
no name). Training, inference, export, the evaluations, the speed benchmarks and
`model-summary` ask the family for everything model-specific: they never name a model
class. A family is a `ModelFamily`; the built-in ones are imported on first use, and
`register` adds another (a test's toy family, a user's own model). docs/architecture.md,
"Adding a model family", says what each field must do.

Every family's module follows one calling convention:
  module.apply(variables, images, train=False) -> (B, H, W) float32 relative inverse depth
  images: (B, H, W, 3) float32 RGB in [0, 1], H and W multiples of `stride`; the module
  normalises them itself. A family with BatchNorm statistics (`batch_stats=True`) also
  takes `encoder_train` (False keeps the encoder's statistics while the rest trains) and
  is applied with mutable=["batch_stats"] in training.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

DEFAULT_FAMILY = "depthnet"
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Built-in families: imported when first asked for, so that importing the registry builds
# nothing.
_BUILTIN = {"depthnet": "depthsense_jax.models.depthnet",
            "depth_anything": "depthsense_jax.models.depth_anything"}
_FAMILIES: dict[str, ModelFamily] = {}


@dataclasses.dataclass(frozen=True)
class CheckpointReader:
    """A foreign whole-model checkpoint format (another framework's release) that
    `--params`, `init.from` and `convert-weights` accept: `matches(path)` says whether a
    path is one, `read(path)` returns (model config section, variables)."""

    name: str
    matches: Callable[[str], bool]
    read: Callable[[str], tuple[ml_collections.ConfigDict, dict]]


@dataclasses.dataclass(frozen=True)
class EncoderLayers:
    """The depth order of an encoder's parameters, for layer-wise learning-rate decay
    (`optimizer.layer_decay`): `index(path)` is the layer, 0 (the input end, e.g. the
    embeddings) to `num_layers` (the output end, e.g. a final norm), of the parameter at
    `path`, the tuple of keys from the top of params (("encoder", "blocks_3", "attn",
    "qkv", "kernel")); it is asked only of paths under the family's `encoder` entries."""

    num_layers: int
    index: Callable[[tuple[str, ...]], int]


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """A kind of model and what the package needs to know of it.

    name: what `config.model.name` and model.json's "name" say.
    build: config.model -> the Flax module (see the module docstring for its calling
      convention).
    config_keys: the fields of config.model that rebuild the module (model.json holds
      them); "dtype" ("float32" or "bfloat16", the compute dtype) is always one.
    stride: input height and width must be multiples of it.
    default_size: the short side photos are resized to when neither the user nor the
      training image_size says.
    encoder: the top-level entries of params that are the encoder
      (`optimizer.encoder_lr_multiplier` scales their learning rate, 0 freezes them).
    batch_stats: whether the module keeps BatchNorm statistics (`encoder_train`, mutable
      "batch_stats" in training).
    encoder_weights: (path, config.model) -> the encoder's variables {"params", maybe
      "batch_stats"} from a pretrained-weights file (`model.pretrained`,
      `convert-weights SRC OUT.msgpack`); None: the family has none.
    readers: foreign whole-model checkpoint formats (`CheckpointReader`).
    onnx: writes the module into an ONNX graph: (graph, images, config.model) -> the
      name of its (B, 1, H, W) output; the graph's methods are `onnx_export.Graph`'s.
      None: no ONNX export.
    describe: config.model -> the first line of `model-summary`.
    torch_peer: config.model -> the same architecture in plain PyTorch (a torch.nn.Module,
      (B, 3, H, W) images in [0, 1] -> (B, H, W)) that `speed model --compare` times; None:
      no peer.
    encoder_layers: config.model -> `EncoderLayers`, the layer of each encoder parameter:
      with `optimizer.layer_decay` = d < 1, layer k of num_layers L learns at
      encoder_lr_multiplier * d ** (L - k) of the rate (BEiT, DINOv2). None: the family
      has no layer order and layer_decay must stay 1.
    """

    name: str
    build: Callable[[ml_collections.ConfigDict], nn.Module]
    config_keys: tuple[str, ...]
    stride: int
    default_size: int
    encoder: tuple[str, ...] = ()
    batch_stats: bool = False
    encoder_weights: Callable[[str, ml_collections.ConfigDict], dict] | None = None
    readers: tuple[CheckpointReader, ...] = ()
    onnx: Callable[[Any, str, ml_collections.ConfigDict], str] | None = None
    describe: Callable[[ml_collections.ConfigDict], str] | None = None
    torch_peer: Callable[[ml_collections.ConfigDict], Any] | None = None
    encoder_layers: Callable[[ml_collections.ConfigDict], EncoderLayers] | None = None

    def __post_init__(self):
        if "dtype" not in self.config_keys:
            raise ValueError(f"model family {self.name!r}: config_keys must include 'dtype'")
        if self.stride < 1 or self.default_size % self.stride:
            raise ValueError(f"model family {self.name!r}: default_size {self.default_size} "
                             f"is not a multiple of the stride {self.stride}")

    def config_dict(self, model_config: Mapping) -> dict:
        """{"name", *config_keys}: what model.json holds (and what rebuilds the module)."""
        missing = [k for k in self.config_keys if k not in model_config]
        if missing:
            raise ValueError(f"the {self.name} model config lacks {missing}; it needs "
                             f"{list(self.config_keys)}")
        return {"name": self.name, **{k: model_config[k] for k in self.config_keys}}

    def round_size(self, size: int) -> int:
        """`size` rounded to the nearest multiple of the stride (at least one stride)."""
        return max(self.stride, int(round(size / self.stride)) * self.stride)


def register(family: ModelFamily, replace: bool = False) -> ModelFamily:
    """Make `family` known by its name (an existing name needs replace=True)."""
    builtin = _BUILTIN.get(family.name) == family.build.__module__
    if not replace and (family.name in _FAMILIES or family.name in _BUILTIN and not builtin):
        raise ValueError(f"a model family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    """Forget a family added with `register` (built-in ones come back when asked for)."""
    _FAMILIES.pop(name, None)


def names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_FAMILIES))


def get(name: str) -> ModelFamily:
    """The family called `name`; a ValueError listing the known ones otherwise."""
    if name not in _FAMILIES and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])  # registers itself
    if name not in _FAMILIES:
        raise ValueError(f"unknown model family {name!r} (config.model.name); known: "
                         f"{', '.join(names())}")
    return _FAMILIES[name]


def name_of(model_config: Mapping) -> str:
    """config.model.name, "depthnet" where absent (configs, model.json and workdirs written
    before families had names)."""
    return model_config.get("name", DEFAULT_FAMILY) or DEFAULT_FAMILY


def family_of(model_config: Mapping) -> ModelFamily:
    return get(name_of(model_config))


def all_families() -> list[ModelFamily]:
    return [get(name) for name in names()]


def dtype_of(model_config: Mapping) -> Any:
    """The compute dtype of config.model.dtype; a ValueError naming the choices."""
    dtype = model_config.get("dtype", "float32")
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def build(model_config: ml_collections.ConfigDict) -> nn.Module:
    """The Flax module of a config's model section."""
    family = family_of(model_config)
    dtype_of(model_config)
    return family.build(model_config)


def init_size(model_config: Mapping) -> int:
    """The square input size variables are initialised with: two strides."""
    return 2 * family_of(model_config).stride


def _dummy(model_config: Mapping, size: int | None) -> jax.Array:
    size = size or init_size(model_config)
    return jnp.zeros((1, size, size, 3), jnp.float32)


@functools.partial(jax.jit, static_argnums=0)
def _init(module: nn.Module, key: jax.Array, images: jax.Array) -> dict:
    # One program: eager init compiles each initialiser and layer apart (~200 programs for
    # a ResNet-18 DepthNet: 8.1 s against 3.4 s cold, 2.2 s against 1.1 s from the cache).
    # The module is a static argument (modules hash by their fields), so a second init of
    # the same model in a process reuses the program: 0.8 s -> 0 s for a tiny DepthNet.
    return dict(module.init(key, images))


def create_variables(model_config: ml_collections.ConfigDict, key: jax.Array,
                     size: int | None = None) -> tuple[nn.Module, dict]:
    """(module, variables) initialised from `key` (size x size inputs; two strides by
    default). Pretrained weights are loaded by `params_io`, not here."""
    module = build(model_config)
    return module, _init(module, key, _dummy(model_config, size))


def variable_shapes(model_config: ml_collections.ConfigDict, size: int | None = None) -> dict:
    """The model's variables as ShapeDtypeStructs (nothing is computed)."""
    module = build(model_config)
    return jax.eval_shape(lambda: dict(module.init(jax.random.PRNGKey(0),
                                                   _dummy(model_config, size))))


def infer(module: nn.Module, variables: Mapping, images: jax.Array) -> jax.Array:
    """The eval-mode forward pass every evaluation, predictor, export and benchmark calls:
    images (B, H, W, 3) float32 in [0, 1], H and W multiples of the family's stride ->
    (B, H, W) float32 relative inverse depth."""
    return module.apply(variables, images, train=False)


def apply_train(family: ModelFamily, module: nn.Module, variables: Mapping,
                images: jax.Array, freeze_encoder: bool = False) -> tuple[jax.Array, dict]:
    """The training-mode forward pass: (prediction (B, H, W), new batch_stats or {}).
    freeze_encoder: the encoder's BatchNorm keeps its statistics."""
    if family.batch_stats:
        pred, updates = module.apply(variables, images, train=True,
                                     encoder_train=not freeze_encoder, mutable=["batch_stats"])
        return pred, updates["batch_stats"]
    return module.apply(variables, images, train=True), {}


def describe(model_config: ml_collections.ConfigDict) -> str:
    """One line naming the model and its fields (the family's `describe`, else
    NAME(key=value, ...))."""
    family = family_of(model_config)
    if family.describe is not None:
        return family.describe(model_config)
    return f"{family.name}(" + ", ".join(f"{k}={model_config[k]}"
                                         for k in family.config_keys) + ")"


def summary(model_config: ml_collections.ConfigDict, size: int | None = None,
            table: bool = False) -> str:
    """Parameter (and BatchNorm-statistic) counts of the config's model per top-level part,
    and flax's module table for size x size inputs with `table`."""
    family = family_of(model_config)
    size = size or init_size(model_config)
    shapes = variable_shapes(model_config, size)
    stats = shapes.get("batch_stats", {})
    lines = [describe(model_config), f"{'module':<12}{'parameters':>14}"
             + (f"{'batch_stats':>14}" if family.batch_stats else "")]
    total = 0
    params = shapes["params"]
    parts = [*(p for p in family.encoder if p in params),
             *(p for p in params if p not in family.encoder)]
    for part in parts:  # the encoder first
        n = sum(x.size for x in jax.tree.leaves(params[part]))
        total += n
        row = f"{part:<12}{n:>14,}"
        if family.batch_stats:
            row += f"{sum(x.size for x in jax.tree.leaves(stats.get(part, {}))):>14,}"
        lines.append(row)
    lines.append(f"{'total':<12}{total:>14,}   ({total / 1e6:.1f}M parameters)")
    if table:
        lines.append(build(model_config).tabulate(
            jax.random.PRNGKey(0), _dummy(model_config, size), depth=2,
            console_kwargs={"width": 140}))
    return "\n".join(lines)
