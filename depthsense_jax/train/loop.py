"""The training loop: data, jitted steps, checkpoints, automatic resume, logging, and the
evaluation of each epoch.

A run is a pure function of its config and seed: the batch of step n and the sampling key of
step n depend only on (seed, n), so resuming from the checkpoint of step n continues the run
exactly.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable

import jax
import ml_collections

from depthsense_jax import storage, viz
from depthsense_jax import workdir as workdir_lib
from depthsense_jax.data import pipeline
from depthsense_jax.errors import RunError
from depthsense_jax.models import registry
from depthsense_jax.train import checkpoints, sharding, steps, validation, writers
from depthsense_jax.train import state as state_lib


class NonFiniteLoss(RunError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


def steps_per_epoch_of(config: ml_collections.ConfigDict) -> int:
    """config.steps_per_epoch, or one pass over the training examples (of all the datasets
    of a mixture)."""
    return config.steps_per_epoch or max(1, pipeline.train_examples(config) // config.batch_size)


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    log: Callable[[str], None] = lambda s: print(s, flush=True),
    progress: bool = False,
):
    """Train `config` in `workdir`, resuming from its latest checkpoint; return the state.

    Writes DIR/config.json, DIR/checkpoints (last config.checkpoint.keep), DIR/best (lowest
    validation WHDR), DIR/metrics.jsonl, DIR/tensorboard and, at the end,
    DIR/predictions.png. progress: a tqdm bar when stderr is a terminal.
    """
    workdir = workdir_lib.path(workdir)
    mesh = sharding.make_data_mesh()
    steps.validate(config, mesh.size)
    chief = jax.process_index() == 0
    storage.makedirs(workdir)  # for a URL: a missing bucket stops the run here
    if chief:
        workdir_lib.write_config(workdir, config)

    steps_per_epoch = steps_per_epoch_of(config)
    total_steps = config.num_epochs * steps_per_epoch
    model, train_state = state_lib.build_state(config, total_steps)
    manager, best = checkpoints.managers(workdir, config.checkpoint.keep)
    train_state, start_step = checkpoints.restore(manager, train_state, log, workdir)
    if start_step:
        log(f"resumed from the checkpoint of step {start_step} in {workdir}")
    train_state = jax.device_put(train_state, sharding.replicated(mesh))

    train_step = steps.make_train_step(
        model, registry.family_of(config.model), config.loss.weights, config.loss.options,
        mesh, freeze_encoder=state_lib.encoder_frozen(config.optimizer))
    val_eval = validation.split_evaluator(config, model, mesh, "validation")
    train_eval = validation.split_evaluator(config, model, mesh, "train")
    data = iter(pipeline.make_dataset(config, "train", process_index=jax.process_index(),
                                      process_count=jax.process_count(), start_step=start_step))
    key = jax.random.PRNGKey(config.seed)
    metrics_log = writers.Jsonl(
        workdir_lib.path(workdir, workdir_lib.METRICS_FILE) if chief else None)
    board = writers.TensorBoard(
        workdir_lib.path(workdir, workdir_lib.TENSORBOARD) if chief else None)
    bar = writers.Progress(total_steps, start_step, log, enabled=progress and chief)
    log(f"training {total_steps} steps ({config.num_epochs} epochs of {steps_per_epoch}), "
        f"global batch {config.batch_size} on {mesh.size} device(s) of {jax.process_count()} "
        f"process(es); workdir {workdir}")

    source = config.get("init", {}).get("from", "")
    if source and start_step == 0:
        # Where fine-tuning starts: the trained model's score on this data.
        before = val_eval.run(steps.variables_of(train_state)).means
        bar.write(f"before training, the model of init.from {source}: validation WHDR "
                  f"{100 * before['whdr']:.2f}%, AbsRel {before['abs_rel']:.4f}")
        metrics_log.write({"step": 0, "split": "validation", **before})
        board.scalars(0, before, "validation")

    stop = {"requested": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    tick, tick_step = time.perf_counter(), start_step
    try:
        for step in range(start_step, total_steps):
            batch = sharding.global_batch(next(data), mesh)
            train_state, out = train_step(train_state, batch, key)
            done = step + 1
            bar.update()
            if done % config.log_every == 0 or done == total_steps:
                out = {k: float(v) for k, v in jax.device_get(out).items()}
                if not all(math.isfinite(v) for v in out.values()):
                    raise NonFiniteLoss(
                        f"non-finite loss at step {done}: {out}; the last good checkpoint "
                        f"(step {manager.latest_step()}) is kept in {workdir}/checkpoints"
                    )
                now = time.perf_counter()
                rate = (done - tick_step) * config.batch_size / max(now - tick, 1e-9)
                tick, tick_step = now, done
                bar.report(f"step {done}/{total_steps}  loss {out['loss']:.4f}  "
                           f"{rate:.1f} images/s", loss=f"{out['loss']:.4f}",
                           images_per_s=f"{rate:.1f}")
                metrics_log.write({"step": done, "split": "train", **out})
                board.scalars(done, {**out, "images_per_s": rate}, "train")
            if done % config.checkpoint.every == 0 or done == total_steps or stop["requested"]:
                checkpoints.save(manager, done, train_state)
            if stop["requested"]:
                bar.write(f"SIGTERM: saved the checkpoint of step {done}; stopping")
                break
            if done % steps_per_epoch == 0 or done == total_steps:
                epoch = -(-done // steps_per_epoch)
                variables = steps.variables_of(train_state)
                val = val_eval.run(variables).means
                on_train = train_eval.run(variables,
                                          max_batches=config.eval.train_batches).means
                bar.write(validation.format_table(epoch, on_train, val))
                metrics_log.write({"step": done, "split": "validation", **val})
                metrics_log.write({"step": done, "split": "train_eval", **on_train})
                board.scalars(done, val, "validation")
                board.scalars(done, on_train, "train_eval")
                checkpoints.save(best, done, train_state, metrics={"whdr": val["whdr"]})
                tick = time.perf_counter()  # evaluation time is not training speed
        else:
            picture_path = workdir_lib.path(workdir, workdir_lib.PICTURE)
            if total_steps > start_step or not storage.exists(picture_path):
                picture = validation.prediction_picture(config, model,
                                                        steps.variables_of(train_state), mesh)
                if chief:
                    viz.write_rgb(picture_path, picture)
                    board.image(total_steps, "predictions", picture)
                    log(f"wrote {picture_path} (input | ground truth | prediction)")
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
        board.close()
        for m in (manager, best):
            m.wait_until_finished()
            m.close()
    return train_state
