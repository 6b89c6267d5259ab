"""Map a torchvision ResNet state dict onto `ResNet` params and batch_stats.

Sources: a `.pth`/`.pt` checkpoint (needs torch), or `.safetensors` / `.npz` holding the same
key names (`conv1.weight`, `layer1.0.bn1.running_mean`, ...). The classifier (`fc.*`) and
`num_batches_tracked` counters are not used. Every other key must land on an encoder
variable of the same shape, and every encoder variable must be filled; otherwise a
ValueError lists what does not fit. This is the DepthNet family's `encoder_weights`
(`model.pretrained`); `depthsense convert-weights` writes the encoder's own variables as
`.msgpack` (no torch needed to read it), which `read_encoder` loads as well. Every path may
be a local file or a URL (gs://...).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping

import numpy as np

from depthsense_jax import storage

_IGNORED = re.compile(r"(^fc\.|num_batches_tracked$)")
_BN_FIELDS = {
    "weight": ("params", "scale"),
    "bias": ("params", "bias"),
    "running_mean": ("batch_stats", "mean"),
    "running_var": ("batch_stats", "var"),
}


def _require(path: str) -> None:
    """A FileNotFoundError naming `path` (and a URL's missing bucket) when it is not there."""
    if not storage.exists(path):
        bucket = (f" ({storage.missing(path)})"
                  if storage.is_url(path) and not storage.bucket_exists(path) else "")
        raise FileNotFoundError(f"weights file {path!r} does not exist{bucket}")


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Read a torchvision-layout state dict (a local file or a URL) as {key: float32
    ndarray}."""
    _require(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".safetensors":
        from safetensors.numpy import load

        raw = load(storage.read_bytes(path))
    elif ext == ".npz":
        with np.load(io.BytesIO(storage.read_bytes(path))) as data:
            raw = {k: data[k] for k in data.files}
    elif ext in (".pth", ".pt", ".bin"):
        try:
            import torch
        except ImportError as err:
            raise ValueError(
                f"{path!r} is a PyTorch file and torch is not installed; install torch or "
                "convert it to .safetensors/.npz with torchvision key names"
            ) from err
        raw = torch.load(io.BytesIO(storage.read_bytes(path)), map_location="cpu",
                         weights_only=True)
        if isinstance(raw, Mapping) and "state_dict" in raw:
            raw = raw["state_dict"]
        raw = {k: v.detach().float().numpy() for k, v in raw.items()}
    else:
        raise ValueError(
            f"{path!r}: unknown weights format {ext!r}; expected .pth, .pt, .safetensors or .npz"
        )
    return {k.removeprefix("module."): np.asarray(v, np.float32) for k, v in raw.items()}


_BLOCK_MODULES = {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"}


def _target(key: str) -> tuple[str, tuple[str, ...]] | None:
    """torchvision key -> (collection, path in the encoder), or None if it is not one of the
    exact forms `conv1.weight`, `bn1.<field>`, `layerX.Y.<module>.<field>` or
    `layerX.Y.downsample.{0,1}.<field>`."""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] in ("conv1", "bn1"):
        path, field = (parts[0],), parts[1]
    elif (len(parts) == 4 and re.fullmatch(r"layer[1-4]", parts[0]) and parts[1].isdigit()
          and parts[2] in _BLOCK_MODULES):
        path, field = (f"{parts[0]}_{parts[1]}", parts[2]), parts[3]
    elif (len(parts) == 5 and re.fullmatch(r"layer[1-4]", parts[0]) and parts[1].isdigit()
          and parts[2] == "downsample" and parts[3] in ("0", "1")):
        module = "downsample_conv" if parts[3] == "0" else "downsample_bn"
        path, field = (f"{parts[0]}_{parts[1]}", module), parts[4]
    else:
        return None
    if "conv" in path[-1]:
        return ("params", (*path, "kernel")) if field == "weight" else None
    if field in _BN_FIELDS:
        collection, name = _BN_FIELDS[field]
        return collection, (*path, name)
    return None


def _flatten(tree: Mapping, prefix=()) -> dict[tuple[str, ...], np.ndarray]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


def _unflatten(flat: Mapping[tuple[str, ...], np.ndarray]) -> dict:
    out: dict = {}
    for path, value in flat.items():
        node = out
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    return out


def convert_state_dict(state: Mapping[str, np.ndarray], encoder_variables: Mapping) -> dict:
    """Return {"params": ..., "batch_stats": ...} for the encoder, filled from `state`.

    encoder_variables: the encoder's variables as initialised (shapes to check against),
    e.g. `{"params": v["params"]["encoder"], "batch_stats": v["batch_stats"]["encoder"]}`.
    """
    expected = {
        (collection, *path): np.shape(value)
        for collection in ("params", "batch_stats")
        for path, value in _flatten(encoder_variables.get(collection, {})).items()
    }
    filled: dict[tuple[str, ...], np.ndarray] = {}
    unused, mismatched = [], []
    for key, value in state.items():
        if _IGNORED.search(key):
            continue
        target = _target(key)
        full = None if target is None else (target[0], *target[1])
        if full is None or full not in expected:
            unused.append(key)
            continue
        value = np.asarray(value, np.float32)
        if value.ndim == 4:  # (O, I, kh, kw) -> (kh, kw, I, O)
            value = value.transpose(2, 3, 1, 0)
        if value.shape != expected[full]:
            mismatched.append(f"{key}: {np.shape(state[key])} -> {value.shape}, expected "
                              f"{expected[full]} at {'/'.join(full)}")
            continue
        filled[full] = value
    missing = sorted("/".join(p) for p in set(expected) - set(filled))
    if unused or mismatched or missing:
        lines = []
        if mismatched:
            lines.append("shape mismatches:\n  " + "\n  ".join(mismatched))
        if unused:
            lines.append("keys with no place in the encoder:\n  " + "\n  ".join(sorted(unused)))
        if missing:
            lines.append("encoder variables not in the file:\n  " + "\n  ".join(missing))
        raise ValueError(
            "the state dict does not fit this ResNet encoder (check the depth and width):\n"
            + "\n".join(lines)
        )
    grouped = _unflatten(filled)
    return {"params": grouped.get("params", {}), "batch_stats": grouped.get("batch_stats", {})}


def _read_encoder_msgpack(path: str, encoder_variables: Mapping) -> dict:
    """Encoder variables from a `convert_file` .msgpack, checked leaf by leaf against
    `encoder_variables` (same names, same shapes)."""
    from flax import serialization

    loaded = serialization.msgpack_restore(storage.read_bytes(path))
    if not isinstance(loaded, Mapping) or "params" not in loaded:
        raise ValueError(f"{path!r} is not an encoder .msgpack from `depthsense "
                         "convert-weights` (no 'params' in it)")
    want = {(c, *p): np.shape(v) for c in ("params", "batch_stats")
            for p, v in _flatten(encoder_variables.get(c, {})).items()}
    have = {(c, *p): np.shape(v) for c in ("params", "batch_stats")
            for p, v in _flatten(loaded.get(c, {})).items()}
    problems = [f"missing {'/'.join(k)}" for k in sorted(set(want) - set(have))]
    problems += [f"unexpected {'/'.join(k)}" for k in sorted(set(have) - set(want))]
    problems += [f"{'/'.join(k)}: shape {have[k]}, the encoder wants {want[k]}"
                 for k in sorted(set(want) & set(have)) if have[k] != want[k]]
    if problems:
        raise ValueError(f"{path!r} does not fit this ResNet encoder (check the depth and "
                         "width):\n  " + "\n  ".join(problems[:20]))
    return {c: _as_float32(loaded.get(c, {})) for c in ("params", "batch_stats")}


def _as_float32(tree: Mapping) -> dict:
    return {k: _as_float32(v) if isinstance(v, Mapping) else np.asarray(v, np.float32)
            for k, v in tree.items()}


def encoder_shapes(depth: int, width: int) -> dict:
    """The variables of `ResNet(depth, width)` as ShapeDtypeStructs (nothing computed)."""
    import jax
    import jax.numpy as jnp

    from depthsense_jax.models.resnet import ResNet

    return jax.eval_shape(lambda: dict(ResNet(depth=depth, width=width).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)))))


def read_encoder(path: str, encoder_variables: Mapping) -> dict:
    """The encoder variables {"params", "batch_stats"} in `path`, checked against
    `encoder_variables` (the encoder's own, or their shapes): a torchvision ResNet state
    dict (.pth, .pt, .safetensors, .npz) or the .msgpack `depthsense convert-weights`
    writes."""
    if str(path).lower().endswith(".msgpack"):
        _require(path)
        return _read_encoder_msgpack(path, encoder_variables)
    return convert_state_dict(load_state_dict(path), encoder_variables)
