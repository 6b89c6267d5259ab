"""Multi-host for real: two processes joined by jax.distributed (localhost coordinator, gloo
CPU collectives) train a few steps and end with the params of a one-process run that is fed
the same global batches."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from depthsense_jax.config import load_config
from depthsense_jax.data import pipeline
from depthsense_jax.models import family_of
from depthsense_jax.train import checkpoints, sharding, steps
from depthsense_jax.train import state as state_lib

STEPS = 3
# On top of the shared tiny config (its data built once for the session).
MULTIHOST = [
    "--config.checkpoint.every=100", "--config.loss.weights.smoothness=0.1",
    "--config.num_epochs=1", f"--config.steps_per_epoch={STEPS}",
    # SGD, not Adam: Adam's first steps are about sign(gradient), which float summation order
    # flips for gradients near zero; SGD keeps the comparison at float tolerance.
    "--config.optimizer.name=sgd", "--config.optimizer.learning_rate=0.05",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference_params(config):
    """One process, one device, the global batch of step n = host 0's rows then host 1's."""
    mesh = sharding.make_data_mesh(jax.devices()[:1])
    model, state = state_lib.build_state(config, config.num_epochs * config.steps_per_epoch)
    state = jax.device_put(state, sharding.replicated(mesh))
    train_step = steps.make_train_step(model, family_of(config.model), config.loss.weights,
                                       config.loss.options, mesh)
    hosts = [iter(pipeline.make_dataset(config, "train", process_index=i, process_count=2))
             for i in range(2)]
    key = jax.random.PRNGKey(config.seed)
    names = [set(), set()]
    for _ in range(STEPS):
        halves = [next(h) for h in hosts]
        for i, half in enumerate(halves):
            names[i].update(half["file_name"].tolist())
        batch = {k: np.concatenate([h[k] for h in halves]) for k in ("image", "depth", "mask")}
        state, _ = train_step(state, sharding.global_batch(batch, mesh), key)
    return jax.device_get(state.params), names


@pytest.mark.cost(120)
@pytest.mark.slow
def test_two_processes_match_one_process(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, *MULTIHOST]
    config = load_config("base", overrides)
    workdir = tmp_path / "run"
    port = _free_port()
    # One CPU device per process: the session's XLA flags without a forced device count.
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(flags))
    logs = [open(tmp_path / f"process{i}.log", "w+") for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "depthsense_jax.cli", "train", "--config", "base",
             "--workdir", str(workdir), *overrides,
             "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
             "--process-id", str(i)],
            env=env, stdout=logs[i], stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    ]
    # The one-process reference while they run: they spend much of their time waiting on
    # each other (process 1 compiles every program; the cache serves process 0 only).
    try:
        expected, names = _reference_params(config)
    finally:
        outputs = []
        for proc, log in zip(procs, logs, strict=True):
            try:
                proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                raise
            log.seek(0)
            outputs.append(log.read())
            log.close()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-4000:]
    assert "on 2 device(s) of 2 process(es)" in outputs[0]
    assert "epoch 1" in outputs[0]  # the evaluation ran across both processes

    assert names[0] and names[1] and not names[0] & names[1]  # each host its own half
    manager, best = checkpoints.managers(str(workdir), keep=3)
    assert manager.latest_step() == STEPS
    _, fresh = state_lib.build_state(config, STEPS)
    restored, step = checkpoints.restore(manager, jax.tree.map(np.copy, fresh), print,
                                         str(workdir))
    assert step == STEPS and best.latest_step() == STEPS
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(
        jax.tree.leaves(restored.params), jax.tree.leaves(fresh.params), strict=True))
    assert moved > 1e-3  # the steps did something, far above the tolerance below
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(expected), strict=True):
        # Summation order differs (a gloo all-reduce against one device): float tolerance.
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=2e-5)
    assert os.path.exists(workdir / "predictions.png")
