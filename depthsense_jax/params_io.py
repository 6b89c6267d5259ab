"""Params on disk: what rebuilds a model (model.json), its variables as msgpack or
safetensors, and the variables of a training workdir's checkpoint, restored without building
an optimizer. Every folder and file may be local or a URL (gs://...).

An export folder (`depthsense export`) holds:
  model.json            the DepthNet fields (encoder_depth, width, fusion_channels, dtype) and
                        the training image_size (predict's default scale)
  params.msgpack        {"params", "batch_stats"} by flax.serialization
  params.safetensors    the same, flat names joined by "/" ("params/encoder/conv1/kernel")
"""

from __future__ import annotations

import json
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization, traverse_util

from depthsense_jax import storage
from depthsense_jax import workdir as workdir_lib
from depthsense_jax.models import MODEL_KEYS, model_from_config, variable_shapes

COLLECTIONS = ("params", "batch_stats")


def model_config_dict(model_config) -> dict:
    """The fields that rebuild DepthNet (what model.json holds)."""
    return {key: model_config[key] for key in MODEL_KEYS}


def write_model_json(out_dir: str, model_config, image_size: int | None = None) -> str:
    """DIR/model.json: the DepthNet fields, and the training image_size when known."""
    path = storage.join(out_dir, "model.json")
    data = model_config_dict(model_config)
    if image_size:
        data["image_size"] = int(image_size)
    storage.write_text(path, json.dumps(data, indent=2))
    return path


def read_model_json(path: str) -> ml_collections.ConfigDict:
    """The model config of a model.json (extra keys such as image_size are ignored)."""
    data = json.loads(storage.read_text(path))
    missing = [k for k in MODEL_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: model config lacks {missing}; expected the keys "
                         f"{list(MODEL_KEYS)}")
    return ml_collections.ConfigDict({k: data[k] for k in MODEL_KEYS})


def trained_size(path: str) -> int | None:
    """The image_size recorded in an export folder's model.json (None if absent)."""
    folder = path if storage.isdir(path) else storage.dirname(path)
    try:
        return json.loads(storage.read_text(storage.join(folder, "model.json"))).get(
            "image_size")
    except (OSError, ValueError):
        return None


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


def check_variables(model_config, variables: dict, source: str) -> None:
    """Every leaf the model needs is in `variables` with its shape; otherwise one
    ValueError naming `source` and the mismatches."""
    shapes = variable_shapes(model_from_config(model_config))
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
    model_json = storage.join(folder, "model.json")
    if not storage.isfile(model_json):
        if not storage.exists(path):
            storage.require_bucket(path)
            raise FileNotFoundError(f"--params {path!r} does not exist")
        raise FileNotFoundError(f"{model_json} does not exist: an export folder has "
                                "model.json beside its params (`depthsense export`)")
    model_config = read_model_json(model_json)
    candidates = [file] if file else ["params.msgpack", "params.safetensors"]
    for name in candidates:
        full = storage.join(folder, name)
        if not storage.isfile(full):
            continue
        if name.endswith(".msgpack"):
            variables = serialization.msgpack_restore(storage.read_bytes(full))
        elif name.endswith(".safetensors"):
            from safetensors.numpy import load

            variables = traverse_util.unflatten_dict(load(storage.read_bytes(full)), sep="/")
        else:
            raise ValueError(f"{full}: expected a .msgpack or .safetensors params file")
        check_variables(model_config, variables, full)
        return model_config, variables
    raise FileNotFoundError(f"no {' or '.join(candidates)} in {folder}")


def _restore_variables(folder: str, step: int, model_config) -> dict:
    """params and batch_stats of one orbax TrainState checkpoint, as NumPy arrays; the
    optimizer state on disk is not read."""
    shapes = variable_shapes(model_from_config(model_config))
    target = {c: shapes[c] for c in COLLECTIONS}
    args = ocp.args.PyTreeRestore(
        item=target, partial_restore=True,
        restore_args=jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target))
    # StandardSave writes the TrainState as the item "default" of each step.
    restored = ocp.PyTreeCheckpointer().restore(storage.join(folder, str(step), "default"),
                                                args=args)
    check_variables(model_config, restored, f"checkpoint {storage.join(folder, str(step))}")
    return restored


def restore_params(workdir: str, checkpoint: str = "latest",
                   log: Callable[[str], None] = lambda s: None,
                   ) -> tuple[ml_collections.ConfigDict, dict, int]:
    """(model config, variables {"params", "batch_stats"}, step) of a workdir's checkpoint:
    "latest" (the newest readable one of checkpoints/), "best" (best/, the lowest
    validation WHDR) or a step number (from checkpoints/ or best/). Only the params and
    BatchNorm statistics are read; no optimizer is built."""
    config = workdir_lib.load_config(workdir)
    folder, candidates = workdir_lib.resolve_checkpoint(workdir, checkpoint)
    variables, step, failures = workdir_lib.first_readable(
        candidates, lambda s: _restore_variables(folder, s, config.model), log)
    if step is None:
        raise ValueError(f"no readable checkpoint in {folder}:\n  " + "\n  ".join(failures))
    return config.model, variables, step


def load_variables(source: str, model_config, checkpoint: str = "latest") -> dict:
    """All variables {"params", "batch_stats"} of a trained model, for a model of
    `model_config` to start from: `source` is a training workdir (its `checkpoint`) or an
    export folder / params file. A ValueError names the parameters that do not fit."""
    path = storage.expand(source)
    if storage.isfile(storage.join(path, workdir_lib.CONFIG_FILE)):
        _, variables, _ = restore_params(path, checkpoint)
    elif storage.exists(path):
        _, variables = load_params(path)
    else:
        storage.require_bucket(path)
        raise FileNotFoundError(f"init.from {source!r} does not exist (a training workdir or "
                                "an export folder)")
    check_variables(model_config, variables, f"init.from {source!r}")
    return jax.tree.map(np.asarray, variables)


def workdir_image_size(workdir: str) -> int:
    """The training image_size of a workdir's run."""
    return int(workdir_lib.load_config(workdir).image_size)
