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
from jax.experimental import multihost_utils

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
    def __init__(self, path: str | None):
        self.path = path

    def write(self, record: dict) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


class _TensorBoard:
    """Scalar and image summaries in DIR/tensorboard (process 0 only; TF on the CPU)."""

    def __init__(self, logdir: str | None):
        self.writer = None
        if logdir is not None:
            import tensorflow as tf

            self.tf = tf
            self.writer = tf.summary.create_file_writer(logdir)

    def scalars(self, step: int, values: dict, prefix: str) -> None:
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                self.tf.summary.scalar(f"{prefix}/{name}", value)
        self.writer.flush()

    def image(self, step: int, name: str, rgb: np.ndarray) -> None:
        if self.writer is not None:
            with self.writer.as_default(step=step):
                self.tf.summary.image(name, rgb[None])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _Progress:
    """A tqdm bar (step, images/s, loss) on a terminal; plain log lines elsewhere."""

    def __init__(self, total: int, initial: int, log: Callable[[str], None], enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            desc="train")
        self.log = log

    def update(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def report(self, line: str, **postfix) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=True)
        else:
            self.log(line)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            self.log(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def maybe_initialize_distributed(coordinator: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None,
                                 force: bool = False) -> bool:
    """jax.distributed.initialize() when asked or when the environment is a multi-process
    one: a coordinator address (argument or JAX_COORDINATOR_ADDRESS), a multi-host Cloud TPU
    slice (TPU_WORKER_HOSTNAMES lists several), Slurm or Open MPI with several tasks.
    Must run before anything touches a JAX device. Returns whether it initialised."""
    env = os.environ
    multi_host_tpu = "," in env.get("TPU_WORKER_HOSTNAMES", "")
    launcher = any(int(env.get(name, "1") or 1) > 1
                   for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"))
    wanted = force or coordinator or env.get("JAX_COORDINATOR_ADDRESS") or multi_host_tpu \
        or launcher
    if not wanted:
        return False
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
    return True


def steps_per_epoch_of(config: ml_collections.ConfigDict, builder) -> int:
    train_examples = builder.info.splits["train"].num_examples
    return config.steps_per_epoch or max(1, train_examples // config.batch_size)


def build_state(config: ml_collections.ConfigDict, total_steps: int):
    """(model, freshly initialised TrainState on the host) for `config`."""
    model, variables = create_variables(config.model, jax.random.PRNGKey(config.seed))
    tx = state_lib.make_optimizer(config.optimizer, total_steps)
    return model, state_lib.create_train_state(model, variables, tx)


def checkpoint_managers(workdir: str, keep: int):
    """(latest, best): the last `keep` checkpoints in DIR/checkpoints, and the one with the
    lowest validation WHDR in DIR/best."""
    options = dict(enable_async_checkpointing=False)
    latest = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, **options),
    )
    best = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "best")),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: m["whdr"], best_mode="min",
            keep_checkpoints_without_metrics=False, **options),
    )
    return latest, best


def restore(manager, train_state, log: Callable[[str], None], workdir: str,
            step: int | None = None):
    """(state, step) from the newest readable checkpoint of `manager` (or exactly `step`);
    (train_state, 0) when there is none. A damaged newest checkpoint falls back to the one
    before with a warning; when none fits the config, a ValueError says so."""
    candidates = sorted(manager.all_steps(), reverse=True)
    if step is not None:
        if step not in candidates:
            raise ValueError(f"no checkpoint of step {step} in {manager.directory}; there are "
                             f"{sorted(candidates)}")
        candidates = [step]
    failures = []
    for candidate in candidates:
        try:
            restored = manager.restore(candidate, args=ocp.args.StandardRestore(train_state))
        except Exception as err:  # a half-written checkpoint: fall back to the one before
            failures.append(f"step {candidate}: {type(err).__name__}: {str(err)[:300]}")
            log(f"warning: checkpoint {candidate} cannot be read; trying the previous one")
            continue
        return restored, candidate
    if failures:
        # Not one checkpoint fits: most likely the config changed (another model size).
        raise ValueError(
            f"no checkpoint in {manager.directory} fits this config (a different model or "
            f"optimizer?); use a new --workdir or the config that wrote {workdir}:\n  "
            + "\n  ".join(failures)
        )
    return train_state, 0


def make_predict_fn(model, mesh):
    """jit(fn)(state, images (B, S, S, 3)) -> (B, S, S) float32, eval-mode BatchNorm."""
    from depthsense_jax.train.sharding import batch_sharding, replicated

    def predict(state, images):
        return model.apply({"params": state.params, "batch_stats": state.batch_stats},
                           images, train=False)

    return jax.jit(predict, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                   out_shardings=batch_sharding(mesh))


def prediction_picture(config, predict_fn, train_state, mesh, num: int = 4,
                       split: str = "validation") -> np.ndarray:
    """Rows of input | ground truth | prediction colour maps for the first `num` images of
    `split`: (rows * (S + 2), 3 * (S + 2), 3) uint8 RGB. The prediction is aligned to the
    ground truth (per-image least-squares scale and shift) so that both share one colour
    scale."""
    from depthsense_jax import metrics
    from depthsense_jax.data import pipeline, show

    host_batch = config.batch_size // jax.process_count()
    batch = next(iter(pipeline.make_dataset(
        config, split, process_index=jax.process_index(), process_count=jax.process_count(),
        training=False)))
    rows = len(batch["image"])
    pred = predict_fn(train_state, sharding.global_batch(_pad_batch(batch, host_batch),
                                                         mesh)["image"])
    start = jax.process_index() * host_batch  # this host's rows in the global batch
    pred = np.asarray(multihost_utils.process_allgather(pred, tiled=True))[start:start + rows]
    depth, mask = batch["depth"], batch["mask"]
    aligned = np.asarray(metrics.align_scale_shift(pred, depth, mask))
    tiles = []
    for i in range(min(num, rows)):
        valid = mask[i]
        # One colour scale for truth and prediction: the truth's range over its mask.
        span = (depth[i][valid].min(), depth[i][valid].max()) if valid.any() else (0.0, 1.0)
        image = (np.clip(batch["image"][i], 0, 1) * 255).astype(np.uint8)
        truth = show.colorize(depth[i], valid, value_range=span)
        predicted = show.colorize(aligned[i], value_range=span)
        row = [np.pad(t, ((0, 2), (0, 2), (0, 0)), constant_values=255)
               for t in (image, truth, predicted)]
        tiles.append(np.concatenate(row, axis=1))
    return np.concatenate(tiles, axis=0)


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
    from depthsense_jax.data import pipeline, show

    if "://" in workdir:
        raise ValueError(f"--workdir {workdir!r}: use a file-system path (mount a bucket with "
                         "gcsfuse for a shared one; docs/tpu.md)")
    mesh = sharding.make_data_mesh()
    validate(config, mesh.size)
    chief = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    if chief:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))

    steps_per_epoch = steps_per_epoch_of(config, pipeline.builder_for(config.data))
    total_steps = config.num_epochs * steps_per_epoch
    model, train_state = build_state(config, total_steps)
    manager, best = checkpoint_managers(workdir, config.checkpoint.keep)
    train_state, start_step = restore(manager, train_state, log, workdir)
    if start_step:
        log(f"resumed from the checkpoint of step {start_step} in {workdir}")
    train_state = jax.device_put(train_state, sharding.replicated(mesh))

    train_step = steps.make_train_step(model, config.loss.weights, config.loss.options, mesh)
    eval_step = steps.make_eval_step(model, config.loss.weights, config.loss.options, mesh,
                                     num_pairs=config.eval.num_pairs)
    data = iter(pipeline.make_dataset(config, "train", process_index=jax.process_index(),
                                      process_count=jax.process_count(), start_step=start_step))
    key = jax.random.PRNGKey(config.seed)
    metrics_log = _Jsonl(os.path.join(workdir, "metrics.jsonl") if chief else None)
    board = _TensorBoard(os.path.join(workdir, "tensorboard") if chief else None)
    bar = _Progress(total_steps, start_step, log, enabled=progress and chief)
    log(f"training {total_steps} steps ({config.num_epochs} epochs of {steps_per_epoch}), "
        f"global batch {config.batch_size} on {mesh.size} device(s) of {jax.process_count()} "
        f"process(es); workdir {workdir}")

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
                manager.save(done, args=ocp.args.StandardSave(train_state))
            if stop["requested"]:
                bar.write(f"SIGTERM: saved the checkpoint of step {done}; stopping")
                break
            if done % steps_per_epoch == 0 or done == total_steps:
                epoch = -(-done // steps_per_epoch)
                val = evaluate(config, eval_step, train_state, mesh, "validation")
                train_eval = evaluate(config, eval_step, train_state, mesh, "train",
                                      max_batches=config.eval.train_batches)
                bar.write(format_table(epoch, train_eval, val))
                metrics_log.write({"step": done, "split": "validation", **val})
                metrics_log.write({"step": done, "split": "train_eval", **train_eval})
                board.scalars(done, val, "validation")
                board.scalars(done, train_eval, "train_eval")
                best.save(done, args=ocp.args.StandardSave(train_state),
                          metrics={"whdr": val["whdr"]})
                tick = time.perf_counter()  # evaluation time is not training speed
        else:
            if total_steps > start_step or not os.path.exists(
                    os.path.join(workdir, "predictions.png")):
                picture = prediction_picture(config, make_predict_fn(model, mesh),
                                             train_state, mesh)
                if chief:
                    path = os.path.join(workdir, "predictions.png")
                    show.write_rgb(path, picture)
                    board.image(total_steps, "predictions", picture)
                    log(f"wrote {path} (input | ground truth | prediction)")
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
        board.close()
        for m in (manager, best):
            m.wait_until_finished()
            m.close()
    return train_state


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a run saved in DIR/config.json."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: is {workdir!r} a training workdir "
                                "(made by `depthsense train`)?")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def restore_named(workdir: str, config, train_state, checkpoint: str = "latest",
                  log: Callable[[str], None] = print):
    """(state, step) of a workdir's checkpoint: "latest", "best" (lowest validation WHDR) or
    a step number (from checkpoints/ or best/)."""
    manager, best = checkpoint_managers(workdir, config.checkpoint.keep)
    try:
        if checkpoint in ("latest", "best"):
            chosen = manager if checkpoint == "latest" else best
            if not chosen.all_steps():
                raise ValueError(f"{workdir} has no {checkpoint} checkpoint yet (in "
                                 f"{chosen.directory})")
            return restore(chosen, train_state, log, workdir)
        try:
            wanted = int(checkpoint)
        except ValueError:
            raise ValueError(f"--checkpoint must be 'latest', 'best' or a step number, got "
                             f"{checkpoint!r}") from None
        in_best_only = wanted in best.all_steps() and wanted not in manager.all_steps()
        return restore(best if in_best_only else manager, train_state, log, workdir,
                       step=wanted)
    finally:
        manager.close()
        best.close()


def evaluate_checkpoint(workdir: str, split: str = "validation", checkpoint: str = "latest",
                        max_batches: int | None = None,
                        log: Callable[[str], None] = lambda s: print(s, flush=True),
                        ) -> dict:
    """Metrics (EVAL_KEYS, plus "step" and "split") of one checkpoint of a workdir on
    `split`: checkpoint "latest", "best" (lowest validation WHDR) or a step number. Also
    written to DIR/eval/{split}_step{N}.json."""
    from depthsense_jax.data import pipeline

    config = load_workdir_config(workdir)
    mesh = sharding.make_data_mesh()
    validate(config, mesh.size)
    total_steps = config.num_epochs * steps_per_epoch_of(config,
                                                         pipeline.builder_for(config.data))
    model, train_state = build_state(config, total_steps)
    train_state, step = restore_named(workdir, config, train_state, checkpoint, log)
    train_state = jax.device_put(train_state, sharding.replicated(mesh))
    eval_step = steps.make_eval_step(model, config.loss.weights, config.loss.options, mesh,
                                     num_pairs=config.eval.num_pairs)
    result = evaluate(config, eval_step, train_state, mesh, split, max_batches=max_batches)
    header = f"{'split':<12}" + "".join(f"{name:>10}" for name in EVAL_KEYS)
    row = f"{split:<12}" + "".join(f"{result[name]:>10.4f}" for name in EVAL_KEYS)
    log(f"checkpoint of step {step} ({checkpoint}) in {workdir}\n{header}\n{row}")
    record = {"step": step, "split": split, "checkpoint": checkpoint, **result}
    if jax.process_index() == 0:
        os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
        path = os.path.join(workdir, "eval", f"{split}_step{step}.json")
        with open(path, "w") as f:
            json.dump(record, f, indent=2)
        log(f"wrote {path}")
    return record


def main_train(config, workdir: str) -> int:
    try:
        train_and_evaluate(config, workdir, progress=True)
    except (ValueError, NonFiniteLoss) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
