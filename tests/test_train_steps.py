"""Train and eval steps: a step learns, is reproducible, and gives the same params on 8 CPU
devices as on 1 for the same global batch, with the batch really sharded."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from depthsense_jax.config import load_config
from depthsense_jax.models import create_variables, family_of
from depthsense_jax.train import sharding, state, steps

# Batches made here at the shared run's shapes (4 images of 64 px), with its config, so that
# its train and eval steps come from the compilation cache.
SIZE, BATCH, RUN_STEPS = 64, 4, 6


def _batch(size=SIZE, batch=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    depth = np.stack([0.2 + 0.6 * (a * yy + (1 - a) * xx) for a in rng.uniform(0, 1, batch)])
    image = np.clip(depth[..., None] + rng.normal(0, 0.05, (batch, size, size, 3)), 0, 1)
    mask = np.ones((batch, size, size), bool)
    mask[:, :3] = False
    return {"image": image.astype(np.float32), "depth": depth.astype(np.float32), "mask": mask}


def _setup(mesh, overrides, extra=()):
    config = load_config("base", [*overrides, *extra])
    model, variables = create_variables(config.model, jax.random.PRNGKey(0))
    tx = state.make_optimizer(config.optimizer, total_steps=RUN_STEPS,
                              encoder=family_of(config.model).encoder)
    train_state = jax.device_put(state.create_train_state(model, variables, tx),
                                 sharding.replicated(mesh))
    return config, model, train_state


def test_train_steps_reduce_the_loss_and_are_reproducible(run_overrides):
    mesh = sharding.make_data_mesh()
    config, model, train_state = _setup(mesh, run_overrides)
    step = steps.make_train_step(model, family_of(config.model), config.loss.weights,
                                 config.loss.options, mesh)
    batch = sharding.global_batch(_batch(), mesh)
    key = jax.random.PRNGKey(config.seed)
    first = None
    for _ in range(8):
        train_state, out = step(train_state, batch, key)
        first = float(out["loss"]) if first is None else first
        assert all(np.isfinite(float(v)) for v in out.values())
    assert float(out["loss"]) < first
    assert int(train_state.step) == 8
    config2, model2, state2 = _setup(mesh, run_overrides)
    step2 = steps.make_train_step(model2, family_of(config2.model), config2.loss.weights,
                                  config2.loss.options, mesh)
    for _ in range(8):
        state2, _ = step2(state2, batch, key)
    for a, b in zip(jax.tree.leaves(train_state.params), jax.tree.leaves(state2.params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _eval(overrides, batch):
    mesh = sharding.make_data_mesh()
    config, model, train_state = _setup(mesh, overrides)
    predict = steps.make_predict_fn(model, mesh)
    score = steps.make_score_fn(config.loss.weights, config.loss.options, mesh,
                                num_pairs=config.eval.num_pairs)
    batch = sharding.global_batch(batch, mesh)
    pred = predict(steps.variables_of(train_state), batch["image"])
    return jax.tree.map(np.asarray, score(jax.random.PRNGKey(0), pred, batch))


def test_eval_step_metrics(run_overrides):
    out = _eval(run_overrides, _batch())
    for name in steps.EVAL_METRICS:
        values, weights = out["metrics"][name], out["weights"][name]
        assert values.shape == (BATCH,) and np.isfinite(values).all()
        np.testing.assert_array_equal(weights, np.ones(BATCH))
    assert 0 <= out["metrics"]["whdr"].min() and out["metrics"]["whdr"].max() <= 1


def _weighted_means(out):
    return {name: float((out["metrics"][name] * out["weights"][name]).sum()
                        / out["weights"][name].sum()) for name in steps.EVAL_METRICS}


def test_padded_rows_and_unmeasurable_images_do_not_count(run_overrides):
    """2 real images + 2 padded rows (a short last batch) give exactly the means of the 2
    real images alone: the loss is per image, not the batch mean copied to every row (which
    read half its value here). An image with one valid pixel is unmeasurable: weight 0, not
    a perfect WHDR of 0."""
    real = {k: v[:2] for k, v in _batch(batch=2).items()}
    alone = _eval(run_overrides, {k: np.concatenate([v, v]) for k, v in real.items()})
    padded = _eval(run_overrides, sharding.pad_batch(real, BATCH))
    np.testing.assert_array_equal(padded["weights"]["loss"], [1, 1, 0, 0])
    for name in steps.EVAL_METRICS:
        np.testing.assert_allclose(padded["metrics"][name][:2], alone["metrics"][name][:2],
                                   rtol=1e-6, atol=1e-7)
    means = _weighted_means(padded)
    for name in steps.EVAL_METRICS:
        assert means[name] == pytest.approx(float(alone["metrics"][name][:2].mean()),
                                            rel=1e-6, abs=1e-7)
    assert means["loss"] > 0
    one_pixel = _batch()
    one_pixel["mask"][3] = False
    one_pixel["mask"][3, 10, 10] = True
    out = _eval(run_overrides, one_pixel)
    assert out["weights"]["whdr"][3] == 0 and out["weights"]["ssim"][3] == 0
    assert out["weights"]["whdr"][:3].min() == 1


def test_accumulated_schedule_runs_in_updates():
    """With accumulate=4, a 100-step run makes 25 updates: warmup 20 steps = 5 updates to the
    peak, and the cosine reaches its end value at the last update (it used to count 100
    updates: warmup 4x too long, the decay never finishing)."""
    opt = load_config("base", [
        "--config.optimizer.name=sgd", "--config.optimizer.momentum=0.0",
        "--config.optimizer.learning_rate=0.5", "--config.optimizer.warmup_steps=20",
        "--config.optimizer.final_lr_fraction=0.1", "--config.optimizer.clip_norm=1e9",
        "--config.optimizer.accumulate=4"]).optimizer
    assert state.num_updates(opt, 100) == 25
    schedule = state.make_schedule(opt, 100)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(0.5)
    assert float(schedule(25)) == pytest.approx(0.05)
    # The optimizer itself: a constant gradient of 1 moves the parameter only every 4th
    # micro-step, by the schedule's learning rate of that update.
    tx = state.make_optimizer(opt, 100)
    params = jnp.zeros(())
    opt_state = tx.init(params)
    moves = []
    for _ in range(100):
        updates, opt_state = tx.update(jnp.ones(()), opt_state, params)
        new = optax.apply_updates(params, updates)
        moves.append(float(params - new))
        params = new
    moved = [i for i, m in enumerate(moves) if m != 0]
    assert moved == list(range(7, 100, 4))  # update 0 has learning rate 0
    np.testing.assert_allclose([moves[i] for i in range(3, 100, 4)],
                               [float(schedule(u)) for u in range(25)], rtol=1e-5, atol=1e-7)
    # The last update is at the end of the cosine (the buggy schedule was still at its peak).
    assert moves[-1] == pytest.approx(float(schedule(24)), rel=1e-5) and moves[-1] < 0.055


_EIGHT_DEVICES = textwrap.dedent("""
    import json, os
    import jax, numpy as np
    import test_train_steps as t
    from depthsense_jax.train import sharding, steps
    tiny = json.loads(os.environ["TINY_OVERRIDES"])
    devices = jax.devices()
    assert len(devices) == 8, devices
    results, seen = [], []
    for mesh in (sharding.make_data_mesh(devices[:1]), sharding.make_data_mesh(devices)):
        # SGD: Adam would turn float-noise gradients (e.g. of exactly-zero biases) into full
        # +-lr steps of either sign, hiding real differences behind that noise.
        config, model, train_state = t._setup(
            mesh, tiny, ["--config.optimizer.name=sgd", "--config.batch_size=8",
                         "--config.optimizer.warmup_steps=0"])
        step = steps.make_train_step(model, t.family_of(config.model), config.loss.weights,
                                     config.loss.options, mesh,
                                     debug_sharding=lambda s: seen.append(s))
        batch = sharding.global_batch(t._batch(size=32, batch=8), mesh)
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
        sharding.check_batch_size(12, sharding.make_data_mesh(devices).size)
    except ValueError as err:
        assert "divisible" in str(err)
    else:
        raise AssertionError("batch 12 on 8 devices was accepted")
    print("OK")
""")


@pytest.mark.cost(45)
@pytest.mark.slow
def test_eight_cpu_devices_match_one_device(tiny_overrides):
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    env = dict(os.environ, XLA_FLAGS=flags.strip(),
               JAX_PLATFORMS="cpu", TINY_OVERRIDES=json.dumps(tiny_overrides))
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), os.getcwd(),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _EIGHT_DEVICES], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "OK" in proc.stdout
