"""Layer-wise learning-rate decay (`optimizer.layer_decay`, BEiT/DINOv2 style): on a tiny
Depth Anything ViT, SGD's first update of each encoder parameter is exactly the learning
rate times encoder_lr_multiplier * layer_decay ** (L - k) for its layer k (embeddings 0,
blocks_i i + 1, the final norm L = depth + 1), the head's is the full rate, freezing still
freezes, and the bad settings are clear errors."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from depthsense_jax.config import load_config
from depthsense_jax.models import depth_anything_io, registry
from depthsense_jax.train import state as state_lib

LR = 1e-2
DEPTH = 4
TOP = DEPTH + 1  # the final norm's layer


def _tiny_model():
    return depth_anything_io.model_config_for(32, DEPTH, 2, 16, [8, 16, 32, 32], [0, 1, 2, 3],
                                              4, "dinov2")


def _params(model_config) -> dict:
    shapes = registry.variable_shapes(model_config)["params"]
    return jax.tree.map(lambda s: np.ones(s.shape, np.float32), shapes)


def _opt(*overrides: str):
    return load_config("base", ["--config.optimizer.warmup_steps=0",
                                "--config.optimizer.weight_decay=0.0",
                                "--config.optimizer.clip_norm=1e9",
                                f"--config.optimizer.learning_rate={LR}", *overrides]).optimizer


def _expected_layer(path: tuple[str, ...]) -> int:
    part = path[1]
    if part.startswith("blocks_"):
        return int(part.split("_")[1]) + 1
    return TOP if part == "norm" else 0


def _steps(tx, params, grads) -> dict[tuple[str, ...], float]:
    """Each leaf's first update divided by -(learning rate * gradient), by path (the same
    for every element of a leaf)."""
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)  # one program, not op by op
    out = {}
    for path, u in jax.tree_util.tree_leaves_with_path(updates):
        keys = tuple(k.key for k in path)
        ratio = -np.asarray(u, np.float64) / (LR * np.asarray(_at(grads, keys), np.float64))
        assert np.ptp(ratio) <= 1e-6 * abs(float(ratio.mean())), keys
        out[keys] = float(ratio.mean())
    return out


def _at(tree, keys):
    for k in keys:
        tree = tree[k]
    return tree


def test_the_family_orders_every_encoder_parameter():
    """ViT-S (shapes only): embeddings 0, blocks_i i + 1, the final norm 13."""
    family = registry.get("depth_anything")
    from depthsense_jax.models.depth_anything import variant_config

    config = variant_config("vits")
    layers = family.encoder_layers(config)
    assert layers.num_layers == 13
    params = registry.variable_shapes(config)["params"]
    seen = {}
    for path, _ in jax.tree_util.tree_leaves_with_path(params["encoder"]):
        keys = ("encoder", *(k.key for k in path))
        seen[keys[1]] = layers.index(keys)
    assert seen == {"patch_embed": 0, "cls_token": 0, "pos_embed": 0, "norm": 13,
                    **{f"blocks_{i}": i + 1 for i in range(12)}}
    assert registry.get("depthnet").encoder_layers is None


@pytest.mark.parametrize("multiplier, decay", [(0.1, 0.9), (1.0, 0.5), (0.1, 1.0)])
def test_sgd_steps_scale_by_layer(multiplier, decay):
    config = _tiny_model()
    family = registry.get("depth_anything")
    params = _params(config)
    rng = np.random.default_rng(0)
    grads = jax.tree.map(lambda p: rng.uniform(0.5, 1.5, p.shape).astype(np.float32), params)
    tx = state_lib.make_optimizer(
        _opt("--config.optimizer.name=sgd", "--config.optimizer.momentum=0.0",
             f"--config.optimizer.encoder_lr_multiplier={multiplier}",
             f"--config.optimizer.layer_decay={decay}"),
        100, family.encoder, family.encoder_layers(config))
    steps = _steps(tx, params, grads)
    layers_seen = set()
    for keys, ratio in steps.items():
        if keys[0] == "encoder":
            layer = _expected_layer(keys)
            layers_seen.add(layer)
            assert ratio == pytest.approx(multiplier * decay ** (TOP - layer), rel=1e-6), keys
        else:
            assert keys[0] == "head" and ratio == pytest.approx(1.0, rel=1e-6), keys
    assert layers_seen == set(range(TOP + 1))
    # Between neighbouring blocks the ratio is the decay, exactly the BEiT rule.
    block = {i: steps[("encoder", f"blocks_{i}", "fc1", "kernel")] for i in range(DEPTH)}
    for i in range(DEPTH - 1):
        assert block[i] / block[i + 1] == pytest.approx(decay, rel=1e-6)


def test_adamw_first_step_is_the_layers_rate_and_freezing_still_freezes():
    """AdamW's first step moves each parameter by about its group's learning rate."""
    config = _tiny_model()
    family = registry.get("depth_anything")
    layers = family.encoder_layers(config)
    params = _params(config)
    grads = jax.tree.map(lambda p: np.full(p.shape, 0.5, np.float32), params)
    for multiplier in (0.1, 0.0):
        tx = state_lib.make_optimizer(
            _opt(f"--config.optimizer.encoder_lr_multiplier={multiplier}",
                 "--config.optimizer.layer_decay=0.8"), 100, family.encoder, layers)
        updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
        for path, u in jax.tree_util.tree_leaves_with_path(updates):
            keys = tuple(k.key for k in path)
            want = LR * (multiplier * 0.8 ** (TOP - _expected_layer(keys))
                         if keys[0] == "encoder" else 1.0)
            assert float(np.abs(np.asarray(u)).mean()) == pytest.approx(
                want, rel=1e-3, abs=1e-12), keys
        assert isinstance(optax.apply_updates(params, updates), dict)


def test_build_state_takes_the_layers_from_the_family():
    config = load_config("base", ["--config.optimizer.warmup_steps=0",
                                  "--config.optimizer.name=sgd", "--config.optimizer.momentum=0.0",
                                  "--config.optimizer.clip_norm=1e9",
                                  "--config.optimizer.encoder_lr_multiplier=0.5",
                                  "--config.optimizer.layer_decay=0.5",
                                  f"--config.optimizer.learning_rate={LR}"])
    with config.unlocked():
        config.model = _tiny_model()
    _, state = state_lib.build_state(config, 10)
    grads = jax.tree.map(lambda p: np.ones(p.shape, np.float32), state.params)
    updates, _ = jax.jit(state.tx.update)(grads, state.opt_state, state.params)
    step = lambda *keys: -float(np.asarray(_at(updates, keys)).mean()) / LR  # noqa: E731
    assert step("encoder", "norm", "scale") == pytest.approx(0.5, rel=1e-6)
    assert step("encoder", "blocks_3", "fc1", "kernel") == pytest.approx(0.25, rel=1e-6)
    assert step("encoder", "pos_embed") == pytest.approx(0.5 ** 6, rel=1e-6)
    assert step("head", "layer1_rn", "kernel") == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("decay", [0.0, -0.5, 1.5])
def test_layer_decay_outside_zero_one_is_an_error(decay):
    family = registry.get("depth_anything")
    with pytest.raises(ValueError, match=r"layer_decay must be in \(0, 1\]"):
        state_lib.make_optimizer(_opt(f"--config.optimizer.layer_decay={decay}"), 100,
                                 family.encoder, family.encoder_layers(_tiny_model()))


def test_layer_decay_needs_a_family_with_layers():
    with pytest.raises(ValueError, match="no layer order"):  # depthnet: an encoder, no layers
        state_lib.make_optimizer(_opt("--config.optimizer.layer_decay=0.9"), 100,
                                 encoder=("encoder",))
    with pytest.raises(ValueError, match="layer_decay is set, but this model family names no "
                                         "encoder"):
        state_lib.make_optimizer(_opt("--config.optimizer.layer_decay=0.9"), 100)
    odd = registry.EncoderLayers(num_layers=2, index=lambda path: {"a": 0, "b": 3}[path[1]])
    params = {"encoder": {"a": np.ones(2, np.float32), "b": np.ones(2, np.float32),
                          "c": np.ones(2, np.float32)}, "head": np.ones(2, np.float32)}
    tx = state_lib.make_optimizer(_opt("--config.optimizer.layer_decay=0.9"), 100,
                                  ("encoder",), odd)
    with pytest.raises(ValueError, match="encoder/b is in layer 3, outside 0..2"):
        tx.init(params)
    del params["encoder"]["b"]
    with pytest.raises(ValueError, match="encoder parameter encoder/c no layer"):
        tx.init(params)
