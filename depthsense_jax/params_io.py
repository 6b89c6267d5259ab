"""Weights on disk, and the one place that loads them by what a path is.

`load(path)` takes any whole model: a training workdir (its checkpoint, params only: no
optimizer is built), an export folder or one of its params files, or a foreign checkpoint
that a model family's `readers` recognise. `--params`, `--workdir`, `init.from` and
`convert-weights` all go through it. `encoder_weights(path, config.model)` takes a
pretrained encoder (`model.pretrained`): what the family's `encoder_weights` reads (for
DepthNet, torchvision ResNet weights or a converted .msgpack). Every folder and file may be
local or a URL (gs://...).

An export folder (`depthsense export`) holds:
  model.json            the model family's name and the fields that rebuild it (for
                        DepthNet: encoder_depth, width, fusion_channels, dtype), and the
                        training image_size (predict's default scale)
  params.msgpack        the variables ({"params"}, and "batch_stats" where the family has
                        them) by flax.serialization
  params.safetensors    the same, flat names joined by "/" ("params/encoder/conv1/kernel")
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization, traverse_util

from depthsense_jax import storage
from depthsense_jax import workdir as workdir_lib
from depthsense_jax.models import registry

MODEL_JSON = "model.json"
PARAMS_FILES = ("params.msgpack", "params.safetensors")


@dataclasses.dataclass
class LoadedModel:
    """A trained model ready to predict: what rebuilds it (a config's model section), its
    variables, and the short side it was trained at (None when unknown)."""

    model_config: ml_collections.ConfigDict
    variables: dict
    image_size: int | None = None
    step: int | None = None  # the checkpoint's step, for a workdir
    source: str = ""  # what the path was: "workdir", "export" or a reader's name

    @property
    def family(self) -> registry.ModelFamily:
        return registry.family_of(self.model_config)


# model.json --------------------------------------------------------------------------------


def model_config_dict(model_config) -> dict:
    """The family's name and the fields that rebuild the model (what model.json holds)."""
    return registry.family_of(model_config).config_dict(model_config)


def write_model_json(out_dir: str, model_config, image_size: int | None = None) -> str:
    """DIR/model.json: the model's name and fields, and the training image_size when
    known."""
    path = storage.join(out_dir, MODEL_JSON)
    data = model_config_dict(model_config)
    if image_size:
        data["image_size"] = int(image_size)
    storage.write_text(path, json.dumps(data, indent=2))
    return path


def read_model_json(path: str) -> ml_collections.ConfigDict:
    """The model config of a model.json (a file without "name" is a DepthNet's; extra keys
    such as image_size are not part of it)."""
    data = json.loads(storage.read_text(path))
    family = registry.get(registry.name_of(data))
    missing = [k for k in family.config_keys if k not in data]
    if missing:
        raise ValueError(f"{path}: the {family.name} model config lacks {missing}; expected "
                         f"the keys {list(family.config_keys)}")
    return ml_collections.ConfigDict(family.config_dict(data))


def trained_size(path: str) -> int | None:
    """The image_size recorded in an export folder's model.json (None if absent)."""
    folder = path if storage.isdir(path) else storage.dirname(path)
    try:
        return json.loads(storage.read_text(storage.join(folder, MODEL_JSON))).get(
            "image_size")
    except (OSError, ValueError):
        return None


# Params files ------------------------------------------------------------------------------


def flat(variables: dict) -> dict[str, np.ndarray]:
    """{"params/encoder/conv1/kernel": array, ...}: contiguous NumPy arrays on the host."""
    tree = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
    return {k: np.ascontiguousarray(np.asarray(v)) for k, v in tree.items()}


def save_msgpack(out_dir: str, variables: dict) -> str:
    path = storage.join(out_dir, "params.msgpack")
    host = jax.tree.map(np.asarray, jax.device_get(variables))
    storage.write_bytes(path, serialization.msgpack_serialize(host))
    return path


def save_safetensors(out_dir: str, variables: dict) -> str:
    from safetensors.numpy import save

    path = storage.join(out_dir, "params.safetensors")
    storage.write_bytes(path, save(flat(variables)))
    return path


def _read_params_file(path: str) -> dict:
    if path.endswith(".msgpack"):
        return serialization.msgpack_restore(storage.read_bytes(path))
    if path.endswith(".safetensors"):
        from safetensors.numpy import load

        return traverse_util.unflatten_dict(load(storage.read_bytes(path)), sep="/")
    raise ValueError(f"{path}: expected a .msgpack or .safetensors params file")


def check_variables(model_config, variables: dict, source: str) -> None:
    """Every leaf the model needs is in `variables` with its shape, and nothing else;
    otherwise one ValueError naming `source` and the mismatches."""
    shapes = registry.variable_shapes(model_config)
    want = {k: v.shape for k, v in traverse_util.flatten_dict(shapes, sep="/").items()}
    have = {k: np.shape(v) for k, v in traverse_util.flatten_dict(variables, sep="/").items()}
    problems = [f"missing {k}" for k in sorted(set(want) - set(have))]
    problems += [f"unexpected {k}" for k in sorted(set(have) - set(want))]
    problems += [f"{k}: shape {have[k]}, model wants {want[k]}"
                 for k in sorted(set(want) & set(have)) if tuple(have[k]) != tuple(want[k])]
    if problems:
        raise ValueError(f"{source} does not fit the model {model_config_dict(model_config)}: "
                         + "; ".join(problems[:10])
                         + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""))


def load_params(path: str) -> tuple[ml_collections.ConfigDict, dict]:
    """(model config, variables) from an export folder (params.msgpack, else
    params.safetensors, with model.json) or from one of those files beside its model.json."""
    path = storage.expand(path)
    folder, file = ((path, None) if storage.isdir(path)
                    else (storage.dirname(path), storage.basename(path)))
    model_json = storage.join(folder, MODEL_JSON)
    if not storage.isfile(model_json):
        if not storage.exists(path):
            storage.require_bucket(path)
            raise FileNotFoundError(f"--params {path!r} does not exist")
        raise FileNotFoundError(f"{model_json} does not exist: an export folder has "
                                "model.json beside its params (`depthsense export`)")
    model_config = read_model_json(model_json)
    candidates = [file] if file else list(PARAMS_FILES)
    for name in candidates:
        full = storage.join(folder, name)
        if storage.isfile(full):
            variables = _read_params_file(full)
            check_variables(model_config, variables, full)
            return model_config, variables
    raise FileNotFoundError(f"no {' or '.join(candidates)} in {folder}")


# Workdir checkpoints -----------------------------------------------------------------------


def _restore_variables(folder: str, step: int, model_config) -> dict:
    """The variables (params, and batch_stats where the family has them) of one orbax
    TrainState checkpoint, as NumPy arrays; the optimizer state on disk is not read."""
    shapes = registry.variable_shapes(model_config)
    target = {c: shapes[c] for c in shapes}
    manager = ocp.CheckpointManager(folder)
    try:
        restored = manager.restore(step, args=ocp.args.PyTreeRestore(
            item=target, partial_restore=True,
            restore_args=jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                      target)))
    finally:
        manager.close()
    restored = {c: restored[c] for c in target}
    check_variables(model_config, restored, f"checkpoint {storage.join(folder, str(step))}")
    return restored


def restore_params(workdir: str, checkpoint: str = "latest",
                   log: Callable[[str], None] = lambda s: None,
                   ) -> tuple[ml_collections.ConfigDict, dict, int]:
    """(model config, variables, step) of a workdir's checkpoint: "latest" (the newest
    readable one of checkpoints/), "best" (best/, the lowest validation WHDR) or a step
    number (from checkpoints/ or best/). Only the params and BatchNorm statistics are read;
    no optimizer is built."""
    config = workdir_lib.load_config(workdir)
    folder, candidates = workdir_lib.resolve_checkpoint(workdir, checkpoint)
    variables, step, failures = workdir_lib.first_readable(
        candidates, lambda s: _restore_variables(folder, s, config.model), log)
    if step is None:
        raise ValueError(f"no readable checkpoint in {folder}:\n  " + "\n  ".join(failures))
    return config.model, variables, step


def workdir_image_size(workdir: str) -> int:
    """The training image_size of a workdir's run."""
    return int(workdir_lib.load_config(workdir).image_size)


# By what a path is -------------------------------------------------------------------------


def is_workdir(path: str) -> bool:
    return storage.isfile(storage.join(storage.expand(path), workdir_lib.CONFIG_FILE))


def _reader_for(path: str) -> tuple[registry.ModelFamily, registry.CheckpointReader] | None:
    for family in registry.all_families():
        for reader in family.readers:
            if reader.matches(path):
                return family, reader
    return None


def accepted() -> str:
    """What `load` accepts, for error messages."""
    names = [f"{r.name} ({f.name})" for f in registry.all_families() for r in f.readers]
    return ", ".join(["a training workdir", "an export folder or its params file",
                      *names])


def load(source: str, checkpoint: str = "latest",
         log: Callable[[str], None] = lambda s: None, what: str = "--params") -> LoadedModel:
    """The whole model at `source`, by what it is: a training workdir (its `checkpoint`:
    "latest", "best" or a step), an export folder or params file (model.json beside it), or
    a foreign checkpoint one of the families' readers recognises. `what` names the
    argument in errors."""
    path = storage.expand(source)
    # Readers first: a Hugging Face folder has a config.json too, as a workdir does.
    found = _reader_for(path)
    if found is None and is_workdir(path):
        model_config, variables, step = restore_params(path, checkpoint, log)
        return LoadedModel(model_config, variables, workdir_image_size(path), step, "workdir")
    if found is not None:
        family, reader = found
        model_config, variables = reader.read(path)
        model_config = ml_collections.ConfigDict(
            family.config_dict({**dict(model_config), "name": family.name}))
        check_variables(model_config, variables, f"{what} {source!r} ({reader.name})")
        return LoadedModel(model_config, variables, None, None, reader.name)
    if not storage.exists(path):
        storage.require_bucket(path)
        raise FileNotFoundError(f"{what} {source!r} does not exist (expected {accepted()})")
    model_config, variables = load_params(path)
    return LoadedModel(model_config, variables, trained_size(path), None, "export")


def load_variables(source: str, model_config, checkpoint: str = "latest") -> dict:
    """All variables of a trained model, for a model of `model_config` to start from
    (`init.from`): anything `load` takes. A ValueError names the parameters that do not
    fit."""
    loaded = load(source, checkpoint, what="init.from")
    if registry.name_of(loaded.model_config) != registry.name_of(model_config):
        raise ValueError(f"init.from {source!r} is a {registry.name_of(loaded.model_config)} "
                         f"model; config.model.name is {registry.name_of(model_config)!r}")
    have, want = model_config_dict(loaded.model_config), model_config_dict(model_config)
    differ = [k for k in want if k != "dtype" and k in have and have[k] != want[k]]
    if differ:
        fix = " ".join(f"--config.model.{k}={_override(have[k])}" for k in differ)
        raise ValueError(f"init.from {source!r} is a {registry.describe(loaded.model_config)};"
                         f" config.model is a {registry.describe(model_config)}. To start from"
                         f" it, set {fix}")
    check_variables(model_config, loaded.variables, f"init.from {source!r}")
    return jax.tree.map(np.asarray, loaded.variables)


def _override(value) -> str:
    """A config value as --config.KEY=VALUE takes it."""
    if isinstance(value, list | tuple):
        return "(" + ",".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def encoder_weights(path: str, model_config) -> dict:
    """The encoder variables in a pretrained-weights file (`model.pretrained`), read by the
    model family's `encoder_weights`."""
    family = registry.family_of(model_config)
    if family.encoder_weights is None:
        raise ValueError(f"the {family.name} model family takes no pretrained encoder "
                         "weights (model.pretrained)")
    return family.encoder_weights(storage.expand(path), model_config)


def with_encoder(variables: dict, encoder: dict, model_config) -> dict:
    """A copy of `variables` whose encoder entries (the family's `encoder`) are replaced by
    those of `encoder` ({"params", maybe "batch_stats"}, as `encoder_weights` returns)."""
    family = registry.family_of(model_config)
    out = {collection: dict(tree) for collection, tree in variables.items()}
    for collection, tree in encoder.items():
        if len(family.encoder) == 1:
            tree = {family.encoder[0]: tree}
        out.setdefault(collection, {}).update(tree)
    return out


def convert_weights(source: str, out: str, model_config,
                    log: Callable[[str], None] = print) -> int:
    """`depthsense convert-weights`: OUT.msgpack gets the encoder variables of pretrained
    weights (`encoder_weights`, loadable as model.pretrained without torch); any other OUT
    becomes an export folder (model.json, params.msgpack, params.safetensors) of a whole
    model `load` reads. Returns the number of parameters written."""
    if str(out).lower().endswith(".msgpack"):
        converted = encoder_weights(source, model_config)
        storage.write_bytes(out, serialization.msgpack_serialize(
            jax.tree.map(np.asarray, converted)))
        count = sum(int(np.size(x)) for x in jax.tree.leaves(converted.get("params", {})))
        log(f"wrote {out}: the {registry.name_of(model_config)} encoder, {count:,} parameters;"
            f" use it with --config.model.pretrained={out}")
        return count
    loaded = load(source, what="convert-weights SRC")
    storage.makedirs(out)
    write_model_json(out, loaded.model_config, loaded.image_size)
    save_msgpack(out, loaded.variables)
    save_safetensors(out, loaded.variables)
    count = sum(int(np.size(x)) for x in jax.tree.leaves(loaded.variables["params"]))
    log(f"wrote {out}: {model_config_dict(loaded.model_config)}, {count:,} parameters; use "
        f"it with --params {out} or --config.init.from={out}")
    return count
