"""Tests for models.torchvision_import: torchvision ResNet state dicts -> the Flax `ResNet`.

Reference: `depthsense_jax.models.torch_depthnet`, a plain-PyTorch ResNet with torchvision's
module layout and state-dict keys, with random weights, BN affine params and BN running
statistics. Converted
weights must make the Flax encoder (train=False) reproduce the torch stage outputs C2..C5 to
1e-4 relative; the file readers (.pth/.pt/.bin, .safetensors, .npz) must agree with each other;
state dicts that do not fit must raise and name what does not fit.
"""

from __future__ import annotations

import functools
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import ml_collections  # noqa: E402

from depthsense_jax import params_io  # noqa: E402
from depthsense_jax.models import DepthNet, ResNet, stage_channels  # noqa: E402
from depthsense_jax.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from depthsense_jax.models.torch_depthnet import make_resnet  # noqa: E402
from depthsense_jax.models.torchvision_import import (  # noqa: E402
    convert_state_dict,
    load_state_dict,
)

RTOL = 1e-4
TINY = ml_collections.ConfigDict({"name": "depthnet", "encoder_depth": 18, "width": 8,
                                  "fusion_channels": 16, "dtype": "float32"})


def load_encoder_weights(path, variables, model_config=TINY):
    """model.pretrained's path: the family's encoder weights into a copy of `variables`."""
    return params_io.with_encoder(variables, params_io.encoder_weights(path, model_config),
                                  model_config)


# --------------------------------------------------------------------------------------------
# Helpers (cached: each torch model / Flax init / jitted apply is built once per session)


@functools.cache
def _torch_model(depth: int, width: int, seed: int = 0):
    return make_resnet(depth, width, seed)


def _state(depth: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A fresh {key: ndarray} copy of the reference model's state dict."""
    sd = _torch_model(depth, width, seed).state_dict()
    return {k: v.detach().numpy().copy() for k, v in sd.items()}


@functools.cache
def _encoder_init(depth: int, width: int) -> dict:
    """Concrete initial variables of ResNet(depth, width), as the docstrings describe (slow on
    CPU: several seconds per model, so used once)."""
    init = jax.jit(ResNet(depth, width).init)
    v = init(jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.float32))
    return {"params": v["params"], "batch_stats": v["batch_stats"]}


@functools.cache
def _encoder_shapes(depth: int, width: int) -> dict:
    """Initial variables of ResNet(depth, width) as shapes only (jax.eval_shape of init), which
    is all convert_state_dict reads from them."""
    v = jax.eval_shape(
        ResNet(depth, width).init, jax.random.key(0),
        jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32),
    )
    return {"params": v["params"], "batch_stats": v["batch_stats"]}


def _random_variables(shapes, seed: int = 0):
    """Concrete random variables for a tree of shapes (BN scales and variances positive)."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['var']") or name.endswith("['scale']"):
            return rng.uniform(0.5, 1.5, leaf.shape).astype(leaf.dtype)
        return (0.1 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@functools.cache
def _flax_apply(depth: int, width: int):
    model = ResNet(depth, width)
    return jax.jit(lambda variables, x: model.apply(variables, x, train=False))


def _torch_features(depth: int, width: int, x_nhwc: np.ndarray) -> list[np.ndarray]:
    model = _torch_model(depth, width)
    with torch.no_grad():
        feats = model.forward_features(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy()))
    return [f.numpy().transpose(0, 2, 3, 1) for f in feats]


def _assert_features_close(got, ref):
    assert len(got) == len(ref) == 4
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        g = np.asarray(g)
        assert g.shape == r.shape, f"C{i + 2}: {g.shape} vs {r.shape}"
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(
            g, r, rtol=RTOL, atol=RTOL * float(np.abs(r).max()), err_msg=f"stage C{i + 2}"
        )


def _flat(tree) -> dict[str, np.ndarray]:
    return {
        jax.tree_util.keystr(path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def _assert_trees_equal(a, b):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


# --------------------------------------------------------------------------------------------
# Numerical equivalence with the torch reference


@pytest.mark.parametrize(
    ("depth", "width", "shape"),
    [
        (18, 8, (2, 64, 96, 3)),
        (18, 8, (1, 45, 71, 3)),  # odd sizes: stride-2 padding must be torch's symmetric one
        (18, 64, (2, 64, 96, 3)),
        (50, 8, (2, 64, 96, 3)),
        (50, 16, (2, 64, 96, 3)),
    ],
)
def test_stage_outputs_match_torch(depth, width, shape):
    shapes = _encoder_shapes(depth, width)
    converted = convert_state_dict(_state(depth, width), shapes)
    # Same tree and shapes as the initial variables, float32.
    assert jax.tree.structure(converted) == jax.tree.structure(shapes)
    for got, want in zip(jax.tree.leaves(converted), jax.tree.leaves(shapes), strict=True):
        assert np.shape(got) == tuple(want.shape)
        assert np.asarray(got).dtype == np.float32

    x = np.random.default_rng(depth + width).standard_normal(shape).astype(np.float32)
    got = _flax_apply(depth, width)(converted, x)
    _assert_features_close(got, _torch_features(depth, width, x))
    assert tuple(g.shape[-1] for g in got) == stage_channels(depth, width)


@pytest.mark.slow
def test_convert_with_initialised_variables():
    """The documented call: encoder variables from `ResNet.init` (concrete arrays)."""
    init = _encoder_init(18, 8)
    converted = convert_state_dict(_state(18, 8), init)
    assert jax.tree.structure(converted) == jax.tree.structure(init)
    for got, want in zip(jax.tree.leaves(converted), jax.tree.leaves(init), strict=True):
        assert np.shape(got) == np.shape(want)
        assert np.asarray(got).dtype == np.float32
    # The result does not depend on the initial values, only on their shapes.
    _assert_trees_equal(converted, convert_state_dict(_state(18, 8), _encoder_shapes(18, 8)))
    x = np.random.default_rng(3).standard_normal((1, 64, 64, 3)).astype(np.float32)
    _assert_features_close(_flax_apply(18, 8)(converted, x), _torch_features(18, 8, x))


@pytest.mark.parametrize("depth", [34, 101])
def test_deep_encoders_convert_and_match(depth):
    width = 8
    shapes = _encoder_shapes(depth, width)
    converted = convert_state_dict(_state(depth, width), shapes)
    assert jax.tree.structure(converted) == jax.tree.structure(shapes)
    for got, want in zip(jax.tree.leaves(converted), jax.tree.leaves(shapes), strict=True):
        assert np.shape(got) == tuple(want.shape)
    n_blocks = sum(1 for k in converted["params"] if k.startswith("layer"))
    assert n_blocks == {34: 16, 101: 33}[depth]

    x = np.random.default_rng(depth).standard_normal((1, 32, 32, 3)).astype(np.float32)
    got = _flax_apply(depth, width)(converted, x)
    _assert_features_close(got, _torch_features(depth, width, x))


def test_ignored_keys_are_optional_and_unused():
    """fc.* and num_batches_tracked are not needed, and their content does not matter."""
    init = _encoder_shapes(18, 8)
    full = _state(18, 8)
    stripped = {k: v for k, v in full.items()
                if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    assert len(stripped) < len(full)
    # A different classifier head (10 classes) is ignored too.
    other_head = dict(full, **{"fc.weight": np.zeros((10, 64), np.float32),
                               "fc.bias": np.zeros(10, np.float32)})
    ref = convert_state_dict(full, init)
    _assert_trees_equal(convert_state_dict(stripped, init), ref)
    _assert_trees_equal(convert_state_dict(other_head, init), ref)


def test_convert_does_not_modify_inputs():
    init = _encoder_init(18, 8)
    before = jax.tree.map(np.array, init)
    state = _state(18, 8)
    state_before = {k: v.copy() for k, v in state.items()}
    convert_state_dict(state, init)
    _assert_trees_equal(init, before)
    assert state.keys() == state_before.keys()
    for k in state:
        np.testing.assert_array_equal(state[k], state_before[k], err_msg=k)


# --------------------------------------------------------------------------------------------
# File formats


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """The same depth-18 width-8 state dict in every supported format."""
    d = tmp_path_factory.mktemp("weights")
    tensors = _torch_model(18, 8).state_dict()
    arrays = _state(18, 8)
    torch.save(tensors, d / "w.pth")
    torch.save(tensors, d / "w.pt")
    torch.save(tensors, d / "w.bin")
    torch.save({"state_dict": tensors, "epoch": 3}, d / "wrapped.pth")
    torch.save({"module." + k: v for k, v in tensors.items()}, d / "dp.pth")
    safetensors_numpy.save_file(arrays, str(d / "w.safetensors"))
    safetensors_numpy.save_file({"module." + k: v for k, v in arrays.items()},
                                str(d / "dp.safetensors"))
    safetensors_numpy.save_file({k: v.astype(np.float16) for k, v in arrays.items()},
                                str(d / "half.safetensors"))
    np.savez(d / "w.npz", **arrays)
    np.savez(d / "dp.npz", **{"module." + k: v for k, v in arrays.items()})
    with open(d / "upper.NPZ", "wb") as f:  # np.savez(path) would append ".npz" to the name
        np.savez(f, **arrays)
    return d


FILES = ["w.pth", "w.pt", "w.bin", "wrapped.pth", "dp.pth", "w.safetensors", "dp.safetensors",
         "w.npz", "dp.npz", "upper.NPZ"]


@pytest.mark.parametrize("name", FILES)
def test_formats_load_identical_arrays(weights_dir, name):
    ref = _state(18, 8)
    loaded = load_state_dict(str(weights_dir / name))
    assert loaded.keys() == ref.keys()
    for k, v in loaded.items():
        assert isinstance(v, np.ndarray), k
        assert v.shape == ref[k].shape, k
        np.testing.assert_array_equal(v, ref[k], err_msg=k)
    converted = convert_state_dict(loaded, _encoder_shapes(18, 8))
    _assert_trees_equal(converted, convert_state_dict(ref, _encoder_shapes(18, 8)))


@pytest.mark.parametrize("name", ["w.pth", "w.safetensors", "w.npz", "half.safetensors"])
def test_formats_return_float32(weights_dir, name):
    """load_state_dict's docstring: {key: float32 ndarray}, whatever the file format (the
    .pth reader casts; the state dict holds int64 num_batches_tracked counters, and
    half.safetensors is a float16 export)."""
    loaded = load_state_dict(str(weights_dir / name))
    bad = sorted(f"{k}: {v.dtype}" for k, v in loaded.items() if v.dtype != np.float32)
    assert not bad, f"{name}: {len(bad)} non-float32 arrays, e.g. {bad[:2]}"


def test_npz_and_safetensors_load_without_torch(weights_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    for name in ("w.npz", "w.safetensors"):
        assert load_state_dict(str(weights_dir / name)).keys() == _state(18, 8).keys()
    path = str(weights_dir / "w.pth")
    with pytest.raises(ValueError, match=re.escape(path)) as err:
        load_state_dict(path)
    assert "torch" in str(err.value)


# --------------------------------------------------------------------------------------------
# model.pretrained into a full DepthNet


def test_load_encoder_weights_into_depthnet(weights_dir):
    model = DepthNet(encoder_depth=18, width=8, fusion_channels=16)
    images = np.random.default_rng(1).uniform(0.0, 1.0, (1, 64, 96, 3)).astype(np.float32)
    # Random concrete variables with DepthNet's tree (DepthNet.init itself takes ~15 s on CPU).
    variables = _random_variables(jax.eval_shape(model.init, jax.random.key(0), images), seed=2)
    snapshot = jax.tree.map(np.array, variables)

    path = str(weights_dir / "w.npz")
    new = load_encoder_weights(path, variables)

    # The input tree is left as it was.
    _assert_trees_equal(variables, snapshot)
    # Encoder replaced by exactly the converted weights; decoder untouched.
    encoder = {"params": variables["params"]["encoder"],
               "batch_stats": variables["batch_stats"]["encoder"]}
    converted = convert_state_dict(load_state_dict(path), encoder)
    _assert_trees_equal(new["params"]["encoder"], converted["params"])
    _assert_trees_equal(new["batch_stats"]["encoder"], converted["batch_stats"])
    _assert_trees_equal(new["params"]["decoder"], variables["params"]["decoder"])
    _assert_trees_equal(new["batch_stats"]["decoder"], variables["batch_stats"]["decoder"])
    assert jax.tree.structure(new) == jax.tree.structure(variables)

    # It runs, and the encoder inside DepthNet reproduces torch on the normalised images.
    @jax.jit
    def run(v, x):
        out, state = model.apply(
            v, x, capture_intermediates=lambda mdl, _: mdl.name == "encoder",
            mutable=["intermediates"],
        )
        return out, state["intermediates"]["encoder"]["__call__"][0]

    out, feats = run(new, images)
    assert out.shape == (1, 64, 96) and out.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(out)))
    assert not np.allclose(np.asarray(out), np.asarray(run(variables, images)[0]))
    mean, std = np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD)
    normalised = ((images - mean) / std).astype(np.float32)
    _assert_features_close(feats, _torch_features(18, 8, normalised))


# --------------------------------------------------------------------------------------------
# Errors


def _raises_naming(state, encoder, *names):
    with pytest.raises(ValueError) as err:
        convert_state_dict(state, encoder)
    message = str(err.value)
    for name in names:
        assert name in message, f"{name!r} not in error message:\n{message}"
    return message


def test_depth50_into_depth18_raises():
    _raises_naming(_state(50, 8), _encoder_shapes(18, 8),
                   "layer1.0.conv3.weight",       # no conv3 in a BasicBlock
                   "layer3.5.conv1.weight",       # ResNet-18 has 2 blocks in layer3
                   "layer1.0.conv1.weight")       # 1x1 in a bottleneck, 3x3 in a basic block


def test_depth18_into_depth50_raises():
    _raises_naming(_state(18, 8), _encoder_shapes(50, 8),
                   "layer1_0/conv3/kernel", "layer3_5/conv1/kernel")


def test_wrong_width_raises():
    message = _raises_naming(_state(18, 16), _encoder_shapes(18, 8),
                             "conv1.weight", "layer4.1.conv2.weight", "bn1.running_var")
    assert "(7, 7, 3, 8)" in message  # the expected shape is spelled out


@pytest.mark.parametrize(
    ("key", "flax_path"),
    [
        ("layer1.0.conv1.weight", "layer1_0/conv1/kernel"),
        ("layer2.0.downsample.0.weight", "layer2_0/downsample_conv/kernel"),
        ("layer3.1.bn2.running_var", "layer3_1/bn2/var"),
        ("bn1.bias", "bn1/bias"),
    ],
)
def test_missing_key_raises(key, flax_path):
    state = _state(18, 8)
    del state[key]
    _raises_naming(state, _encoder_shapes(18, 8), flax_path)


@pytest.mark.parametrize(
    "extra",
    [
        "extra",
        "head.weight",
        "conv1.bias",                      # torchvision's convs have no bias
        "layer1.0.se.fc1.weight",
        "layer5.0.conv1.weight",
        "layer1.2.conv1.weight",           # ResNet-18 has 2 blocks per stage
        # Keys that look like known ones but are not torchvision keys:
        "layer2.0.downsample.2.weight",
        "layer1.0.bn1.extra.weight",
        "layer1.0.conv1.extra.weight",
    ],
)
def test_extra_key_raises(extra):
    state = _state(18, 8)
    # Where the key resembles an existing one, give it that key's shape so only its name is wrong.
    lookalike = {
        "layer2.0.downsample.2.weight": "layer2.0.downsample.1.weight",
        "layer1.0.bn1.extra.weight": "layer1.0.bn1.weight",
        "layer1.0.conv1.extra.weight": "layer1.0.conv1.weight",
        "layer1.2.conv1.weight": "layer1.1.conv1.weight",
    }.get(extra)
    state[extra] = (state[lookalike] + 1.0) if lookalike else np.ones((4, 4), np.float32)
    _raises_naming(state, _encoder_shapes(18, 8), extra)


def test_nonexistent_path_raises(tmp_path):
    for name in ("missing.pth", "missing.npz", "missing.ckpt"):
        path = str(tmp_path / name)
        with pytest.raises(FileNotFoundError, match=re.escape(path)):
            load_state_dict(path)
        with pytest.raises(FileNotFoundError, match=re.escape(path)):
            params_io.encoder_weights(path, TINY)


@pytest.mark.parametrize("name", ["w.ckpt", "w.h5", "weights"])
def test_unknown_extension_raises(tmp_path, name):
    path = tmp_path / name
    np.savez(tmp_path / "tmp.npz", a=np.zeros(3))
    (tmp_path / "tmp.npz").rename(path)  # a readable file, under a name the loader must refuse
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_state_dict(str(path))
