"""The training loop: data, steps, orbax checkpoints, automatic resume, logging, evaluation.

A run is a pure function of its config and seed: the batch of step n and the sampling key of
step n depend only on (seed, n), so resuming from the checkpoint of step n continues the run
exactly.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from depthsense_jax import losses
from depthsense_jax.config import create_variables
from depthsense_jax.train import sharding, steps
from depthsense_jax.train import state as state_lib

EVAL_KEYS = ("loss", "whdr", "ssim", "mse", "abs_rel", "delta1")


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Config errors that must stop a run before anything is compiled."""
    if config.image_size % 32:
        raise ValueError(f"config.image_size must be a multiple of 32, got {config.image_size}")
    if config.batch_size % num_devices:
        raise ValueError(
            f"config.batch_size={config.batch_size} is not divisible by the {num_devices} "
            f"devices: use a multiple of {num_devices}"
        )
    unknown = sorted(set(config.loss.weights) - set(losses.LOSS_NAMES))
    if unknown:
        raise ValueError(f"config.loss.weights names unknown loss(es) {unknown}; known: "
                         f"{list(losses.LOSS_NAMES)}")
    if not any(float(w) > 0 for w in config.loss.weights.values()):
        raise ValueError("config.loss.weights gives no loss a positive weight")
    losses.LossOptions.from_mapping(dict(config.loss.options))


def _pad_batch(batch: dict, size: int) -> dict:
    """Pad a short evaluation batch to `size` rows with empty masks (weight 0)."""
    rows = len(batch["image"])
    if rows == size:
        return batch
    out = {}
    for key, value in batch.items():
        pad = [(0, size - rows)] + [(0, 0)] * (value.ndim - 1)
        out[key] = np.pad(value, pad) if value.dtype.kind in "biuf" else value
    return out


def evaluate(config, eval_step, train_state, mesh, split: str, max_batches: int | None = None,
             ) -> dict[str, float]:
    """Means of the evaluation metrics over a split (images with an empty mask excluded)."""
    from depthsense_jax.data import pipeline

    totals = dict.fromkeys(EVAL_KEYS, 0.0)
    weight = 0.0
    key = jax.random.PRNGKey(config.seed + 1)
    data = pipeline.make_dataset(config, split, process_index=jax.process_index(),
                                 process_count=jax.process_count(), training=False)
    host_batch = config.batch_size // jax.process_count()
    for index, batch in enumerate(data):
        if max_batches is not None and index >= max_batches:
            break
        out = jax.device_get(eval_step(
            train_state, sharding.global_batch(_pad_batch(batch, host_batch), mesh), key))
        w = np.asarray(out["weight"])
        weight += float(w.sum())
        for name in EVAL_KEYS:
            totals[name] += float((np.asarray(out[name]) * w).sum())
    return {name: totals[name] / max(weight, 1.0) for name in EVAL_KEYS}


def format_table(epoch: int, train: dict, validation: dict) -> str:
    lines = [f"epoch {epoch}", f"{'split':<12}{'loss':>9}{'SSIM':>8}{'MSE':>9}{'WHDR':>8}"
             f"{'AbsRel':>8}{'delta1':>8}"]
    for name, m in (("train", train), ("validation", validation)):
        row = f"{name:<12}{m['loss']:>9.4f}{m['ssim']:>8.4f}{m['mse']:>9.5f}"
        if name == "validation":
            row += f"{100 * m['whdr']:>7.2f}%{m['abs_rel']:>8.4f}{m['delta1']:>8.4f}"
        lines.append(row)
    return "\n".join(lines)


class _Jsonl:
    def __init__(self, path: str):
        self.path = path

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    log: Callable[[str], None] = lambda s: print(s, flush=True),
):
    """Train `config` in `workdir`, resuming from its latest checkpoint; return the state."""
    from depthsense_jax.data import pipeline

    mesh = sharding.make_data_mesh()
    validate(config, mesh.size)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))

    builder = pipeline.builder_for(config.data)
    train_examples = builder.info.splits["train"].num_examples
    steps_per_epoch = config.steps_per_epoch or max(1, train_examples // config.batch_size)
    total_steps = config.num_epochs * steps_per_epoch

    model, variables = create_variables(config.model, jax.random.PRNGKey(config.seed))
    tx = state_lib.make_optimizer(config.optimizer, total_steps)
    train_state = state_lib.create_train_state(model, variables, tx)

    manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=config.checkpoint.keep, enable_async_checkpointing=False
        ),
    )
    start_step = 0
    failures = []
    for candidate in sorted(manager.all_steps(), reverse=True):
        try:
            train_state = manager.restore(candidate, args=ocp.args.StandardRestore(train_state))
        except Exception as err:  # a half-written checkpoint: fall back to the one before
            failures.append(f"step {candidate}: {type(err).__name__}: {str(err)[:300]}")
            log(f"warning: checkpoint {candidate} cannot be read; trying the previous one")
            continue
        start_step = candidate
        log(f"resumed from the checkpoint of step {start_step} in {workdir}")
        break
    if failures and start_step == 0:
        # Not one checkpoint fits: most likely the config changed (another model size).
        raise ValueError(
            f"no checkpoint in {workdir}/checkpoints fits this config (a different model or "
            "optimizer?); use a new --workdir or the config that wrote them:\n  "
            + "\n  ".join(failures)
        )
    train_state = jax.device_put(train_state, sharding.replicated(mesh))

    train_step = steps.make_train_step(model, config.loss.weights, config.loss.options, mesh)
    eval_step = steps.make_eval_step(model, config.loss.weights, config.loss.options, mesh,
                                     num_pairs=config.eval.num_pairs)
    data = iter(pipeline.make_dataset(config, "train", process_index=jax.process_index(),
                                      process_count=jax.process_count(), start_step=start_step))
    key = jax.random.PRNGKey(config.seed)
    metrics_log = _Jsonl(os.path.join(workdir, "metrics.jsonl"))

    stop = {"requested": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    epoch_loss, epoch_count, tick = 0.0, 0, time.perf_counter()
    try:
        for step in range(start_step, total_steps):
            batch = sharding.global_batch(next(data), mesh)
            train_state, out = train_step(train_state, batch, key)
            done = step + 1
            if done % config.log_every == 0 or done == total_steps:
                out = {k: float(v) for k, v in jax.device_get(out).items()}
                if not all(math.isfinite(v) for v in out.values()):
                    raise NonFiniteLoss(
                        f"non-finite loss at step {done}: {out}; the last good checkpoint "
                        f"(step {manager.latest_step()}) is kept"
                    )
                elapsed = time.perf_counter() - tick
                rate = config.log_every * config.batch_size / max(elapsed, 1e-9)
                tick = time.perf_counter()
                epoch_loss += out["loss"]
                epoch_count += 1
                log(f"step {done}/{total_steps}  loss {out['loss']:.4f}  {rate:.1f} images/s")
                metrics_log.write({"step": done, "split": "train", **out})
            if done % config.checkpoint.every == 0 or done == total_steps or stop["requested"]:
                manager.save(done, args=ocp.args.StandardSave(train_state))
            if stop["requested"]:
                log(f"SIGTERM: saved the checkpoint of step {done}; stopping")
                break
            if done % steps_per_epoch == 0 or done == total_steps:
                epoch = done // steps_per_epoch
                val = evaluate(config, eval_step, train_state, mesh, "validation")
                train_eval = evaluate(config, eval_step, train_state, mesh, "train",
                                      max_batches=config.eval.train_batches)
                log(format_table(epoch, train_eval, val))
                metrics_log.write({"step": done, "split": "validation", **val})
                metrics_log.write({"step": done, "split": "train_eval", **train_eval})
    finally:
        signal.signal(signal.SIGTERM, previous)
        manager.wait_until_finished()
        manager.close()
    return train_state


def main_train(config, workdir: str) -> int:
    try:
        train_and_evaluate(config, workdir)
    except (ValueError, NonFiniteLoss) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
