"""Train and eval steps: a step learns, is reproducible, and gives the same params on 8 CPU
devices as on 1 for the same global batch, with the batch really sharded."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from depthsense_jax.config import load_config, model_from_config
from depthsense_jax.train import sharding, state, steps

TINY = ["--config.model.encoder_depth=18", "--config.model.width=8",
        "--config.model.fusion_channels=16", "--config.batch_size=8",
        "--config.optimizer.warmup_steps=0", "--config.optimizer.learning_rate=1e-3"]


def _batch(size=32, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    depth = np.stack([0.2 + 0.6 * (a * yy + (1 - a) * xx) for a in rng.uniform(0, 1, batch)])
    image = np.clip(depth[..., None] + rng.normal(0, 0.05, (batch, size, size, 3)), 0, 1)
    mask = np.ones((batch, size, size), bool)
    mask[:, :3] = False
    return {"image": image.astype(np.float32), "depth": depth.astype(np.float32), "mask": mask}


def _setup(mesh, overrides=()):
    config = load_config("configs/default.py", [*TINY, *overrides])
    model = model_from_config(config.model)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    tx = state.make_optimizer(config.optimizer, total_steps=100)
    train_state = jax.device_put(state.create_train_state(model, variables, tx),
                                 sharding.replicated(mesh))
    return config, model, train_state


def test_train_steps_reduce_the_loss_and_are_reproducible():
    mesh = sharding.make_data_mesh()
    config, model, train_state = _setup(mesh)
    step = steps.make_train_step(model, config.loss.weights, config.loss.options, mesh)
    batch = sharding.global_batch(_batch(), mesh)
    key = jax.random.PRNGKey(config.seed)
    first = None
    for _ in range(8):
        train_state, out = step(train_state, batch, key)
        first = float(out["loss"]) if first is None else first
        assert all(np.isfinite(float(v)) for v in out.values())
    assert float(out["loss"]) < first
    assert int(train_state.step) == 8
    config2, model2, state2 = _setup(mesh)
    step2 = steps.make_train_step(model2, config2.loss.weights, config2.loss.options, mesh)
    for _ in range(8):
        state2, _ = step2(state2, batch, key)
    for a, b in zip(jax.tree.leaves(train_state.params), jax.tree.leaves(state2.params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_eval_step_metrics():
    mesh = sharding.make_data_mesh()
    config, model, train_state = _setup(mesh)
    evaluate = steps.make_eval_step(model, config.loss.weights, config.loss.options, mesh,
                                    num_pairs=200)
    out = evaluate(train_state, sharding.global_batch(_batch(), mesh), jax.random.PRNGKey(0))
    for name in ("weight", "loss", "whdr", "ssim", "mse", "abs_rel", "delta1"):
        assert out[name].shape == (8,) and np.isfinite(np.asarray(out[name])).all()
    assert 0 <= float(out["whdr"].min()) and float(out["whdr"].max()) <= 1


_EIGHT_DEVICES = textwrap.dedent("""
    import jax, numpy as np
    import test_train_steps as t
    from depthsense_jax.train import sharding, steps
    devices = jax.devices()
    assert len(devices) == 8, devices
    results, seen = [], []
    for mesh in (sharding.make_data_mesh(devices[:1]), sharding.make_data_mesh(devices)):
        # SGD: Adam would turn float-noise gradients (e.g. of exactly-zero biases) into full
        # +-lr steps of either sign, hiding real differences behind that noise.
        config, model, train_state = t._setup(mesh, ["--config.optimizer.name=sgd"])
        step = steps.make_train_step(model, config.loss.weights, config.loss.options, mesh,
                                     debug_sharding=lambda s: seen.append(s))
        batch = sharding.global_batch(t._batch(), mesh)
        for _ in range(2):
            train_state, out = step(train_state, batch, jax.random.PRNGKey(0))
        results.append(jax.tree.map(np.asarray, train_state.params))
    # inside the 8-device step, the image batch is split along "data" over 8 devices
    spec = seen[-1]
    assert len(spec.device_set) == 8 and spec.spec[0] == "data", spec
    assert not spec.is_fully_replicated
    worst = max(float(np.abs(a - b).max())
                for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])))
    print("max abs difference", worst)
    assert worst < 1e-5, worst
    try:
        sharding.check_batch_size(12, sharding.make_data_mesh(devices))
    except ValueError as err:
        assert "divisible" in str(err)
    else:
        raise AssertionError("batch 12 on 8 devices was accepted")
    print("OK")
""")


@pytest.mark.slow
def test_eight_cpu_devices_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), os.getcwd(),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _EIGHT_DEVICES], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "OK" in proc.stdout
