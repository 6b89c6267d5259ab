"""`depthsense speed train`: steady-state speed of the loop `depthsense train` runs (data
pipeline + sharded jitted step), and where a step's time goes."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

import jax
import numpy as np

from depthsense_jax.data import pipeline
from depthsense_jax.models import registry
from depthsense_jax.speed import timing
from depthsense_jax.train import loop, sharding, steps
from depthsense_jax.train import state as state_lib


@dataclasses.dataclass
class TrainLoopTiming:
    """Steady-state speed of the real training loop (data pipeline + sharded jitted step)."""

    config: str
    batch: int
    size: int
    devices: int
    compile_s: float  # the first step: compile and run
    images_per_s: float  # pipelined, as `depthsense train` runs
    step_ms: float  # median of whole blocked steps (not the sum of the medians below)
    input_wait_ms: float  # waiting for the next host batch from tf.data
    host_ms: float  # placing the batch on the devices and dispatching the step
    device_ms: float  # from dispatch until the step's results are ready
    device_kind: str = ""
    train_step_flops: float | None = None  # one training step of the whole global batch

    @property
    def input_wait_fraction(self) -> float:
        return self.input_wait_ms / max(self.step_ms, 1e-9)

    @property
    def mfu(self) -> float | None:
        """Over the pipelined steady state: step FLOPs x steps/s / (peak x devices)."""
        return timing.mfu(self.train_step_flops, self.batch / self.images_per_s, self.devices,
                          self.device_kind)

    def derived(self) -> dict:
        return {"input_wait_fraction": self.input_wait_fraction, "mfu": self.mfu}


def bench_train(
    config,
    config_name: str,
    num_steps: int = 20,
    warmup: int = 3,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> TrainLoopTiming:
    """Time `num_steps` training steps of the loop `depthsense train` runs.

    Two passes over fresh batches: one pipelined (dispatch runs ahead, as in training) for
    images/s, and one that waits for each step, for the split of a step into input wait,
    host work (batch placement, dispatch) and device time (medians).
    """
    mesh = sharding.make_data_mesh()
    steps.validate(config, mesh.size)
    # The optimizer of the run `depthsense train` would make: the same compiled step.
    model, state = state_lib.build_state(
        config, total_steps=config.num_epochs * loop.steps_per_epoch_of(config))
    state = jax.device_put(state, sharding.replicated(mesh))
    train_step = steps.make_train_step(
        model, registry.family_of(config.model), config.loss.weights, config.loss.options, mesh,
        freeze_encoder=state_lib.encoder_frozen(config.optimizer))
    data = iter(pipeline.make_dataset(config, "train", process_index=jax.process_index(),
                                      process_count=jax.process_count()))
    key = jax.random.PRNGKey(config.seed)
    log(f"[speed] {config_name}: compiling the training step at "
        f"{config.batch_size}x{config.image_size}x{config.image_size} on {mesh.size} device(s)")
    batch = sharding.global_batch(next(data), mesh)
    flops = timing.lowered_flops(train_step, state, batch, key)
    start = time.perf_counter()
    state, out = train_step(state, batch, key)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        state, out = train_step(state, sharding.global_batch(next(data), mesh), key)
    jax.block_until_ready(out)

    start = time.perf_counter()
    for _ in range(num_steps):
        state, out = train_step(state, sharding.global_batch(next(data), mesh), key)
    jax.block_until_ready((state, out))
    images_per_s = num_steps * config.batch_size / (time.perf_counter() - start)

    waits, hosts, devices, totals = [], [], [], []
    for _ in range(num_steps):
        t0 = time.perf_counter()
        host_batch = next(data)
        t1 = time.perf_counter()
        state, out = train_step(state, sharding.global_batch(host_batch, mesh), key)
        t2 = time.perf_counter()
        jax.block_until_ready((state, out))
        t3 = time.perf_counter()
        waits.append(t1 - t0)
        hosts.append(t2 - t1)
        devices.append(t3 - t2)
        totals.append(t3 - t0)
    wait, host, device, step = (1e3 * float(np.median(x))
                                for x in (waits, hosts, devices, totals))
    return TrainLoopTiming(
        config=config_name, batch=config.batch_size, size=config.image_size, devices=mesh.size,
        compile_s=compile_s, images_per_s=images_per_s, step_ms=step,
        input_wait_ms=wait, host_ms=host, device_ms=device,
        device_kind=jax.devices()[0].device_kind, train_step_flops=flops,
    )


def format_table(t: TrainLoopTiming) -> str:
    lines = [
        f"training loop {t.config}: batch {t.batch} at {t.size}x{t.size} on {t.devices} "
        f"{jax.devices()[0].device_kind} device(s)",
        f"  first step (compile)     {t.compile_s:8.1f} s",
        f"  steady state             {t.images_per_s:8.1f} images/s (pipelined)",
        f"  step (waited on)         {t.step_ms:8.1f} ms",
        f"    input wait             {t.input_wait_ms:8.1f} ms  "
        f"({100 * t.input_wait_fraction:.1f}% of the step)",
        f"    host (place+dispatch)  {t.host_ms:8.1f} ms",
        f"    device                 {t.device_ms:8.1f} ms",
    ]
    if t.train_step_flops:
        line = (f"  train step FLOPs         {t.train_step_flops / t.batch / 1e9:8.1f} "
                "GFLOP/image")
        if t.mfu is not None:
            line += f"  ->  MFU {100 * t.mfu:.1f}%"
        lines.append(line)
    return "\n".join(lines)


