"""Evaluation during and after training: weighted means of the per-image metrics over a
split, the epoch table, the predictions picture, and scoring a workdir's checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from depthsense_jax import metrics, storage, viz
from depthsense_jax import workdir as workdir_lib
from depthsense_jax.data import pipeline
from depthsense_jax.models import infer
from depthsense_jax.train import checkpoints, sharding, steps
from depthsense_jax.train import state as state_lib

EVAL_KEYS = steps.EVAL_METRICS


def evaluate(config: ml_collections.ConfigDict, eval_step, train_state, mesh, split: str,
             max_batches: int | None = None) -> dict[str, float]:
    """Means over `split` (all of it, or its first `max_batches` batches) of the per-image
    evaluation metrics, each image weighted by the eval step's weight for that metric (0 for
    padded rows and for images that cannot be measured). A metric that no image could
    measure is NaN."""
    totals = dict.fromkeys(EVAL_KEYS, 0.0)
    weights = dict.fromkeys(EVAL_KEYS, 0.0)
    key = jax.random.PRNGKey(config.seed + 1)
    data = pipeline.make_dataset(config, split, process_index=jax.process_index(),
                                 process_count=jax.process_count(), training=False)
    host_batch = config.batch_size // jax.process_count()
    for index, batch in enumerate(data):
        if max_batches is not None and index >= max_batches:
            break
        out = jax.device_get(eval_step(
            train_state, sharding.global_batch(sharding.pad_batch(batch, host_batch), mesh),
            key))
        for name in EVAL_KEYS:
            w = np.asarray(out["weights"][name], np.float64)
            weights[name] += float(w.sum())
            totals[name] += float((np.asarray(out["metrics"][name], np.float64) * w).sum())
    return {name: totals[name] / weights[name] if weights[name] > 0 else float("nan")
            for name in EVAL_KEYS}


def format_table(epoch: int, train: dict, validation: dict) -> str:
    lines = [f"epoch {epoch}", f"{'split':<12}{'loss':>9}{'SSIM':>8}{'MSE':>9}{'WHDR':>8}"
             f"{'AbsRel':>8}{'delta1':>8}"]
    for name, m in (("train", train), ("validation", validation)):
        row = f"{name:<12}{m['loss']:>9.4f}{m['ssim']:>8.4f}{m['mse']:>9.5f}"
        if name == "validation":
            row += f"{100 * m['whdr']:>7.2f}%{m['abs_rel']:>8.4f}{m['delta1']:>8.4f}"
        lines.append(row)
    return "\n".join(lines)


def make_predict_fn(model, mesh):
    """jit(fn)(state, images (B, S, S, 3)) -> (B, S, S) float32, eval-mode BatchNorm."""
    def predict(state, images):
        return infer(model, {"params": state.params, "batch_stats": state.batch_stats}, images)

    return jax.jit(predict, in_shardings=(sharding.replicated(mesh),
                                          sharding.batch_sharding(mesh)),
                   out_shardings=sharding.batch_sharding(mesh))


def prediction_picture(config: ml_collections.ConfigDict, model, train_state, mesh,
                       num: int = 4, split: str = "validation") -> np.ndarray:
    """Rows of input | ground truth | prediction colour maps for the first `num` images of
    `split`: (rows * (S + 2), 3 * (S + 2), 3) uint8 RGB. The prediction is aligned to the
    ground truth (per-image least-squares scale and shift) so that both share one colour
    scale. Every process takes part (the prediction is gathered)."""
    host_batch = config.batch_size // jax.process_count()
    batch = next(iter(pipeline.make_dataset(
        config, split, process_index=jax.process_index(), process_count=jax.process_count(),
        training=False)))
    rows = len(batch["image"])
    images = sharding.global_batch(sharding.pad_batch(batch, host_batch), mesh)["image"]
    pred = make_predict_fn(model, mesh)(train_state, images)
    start = jax.process_index() * host_batch  # this host's rows in the global batch
    pred = np.asarray(multihost_utils.process_allgather(pred, tiled=True))[start:start + rows]
    depth, mask = batch["depth"], batch["mask"]
    aligned = np.asarray(metrics.align_scale_shift(pred, depth, mask))
    tiles = []
    for i in range(min(num, rows)):
        valid = mask[i]
        # One colour scale for truth and prediction: the truth's range over its mask.
        span = (depth[i][valid].min(), depth[i][valid].max()) if valid.any() else (0.0, 1.0)
        tiles.append([viz.to_uint8(batch["image"][i]),
                      viz.colorize(depth[i], valid, value_range=span),
                      viz.colorize(aligned[i], value_range=span)])
    return viz.grid(tiles)


def evaluate_checkpoint(workdir: str, split: str = "validation", checkpoint: str = "latest",
                        max_batches: int | None = None,
                        log: Callable[[str], None] = lambda s: print(s, flush=True),
                        ) -> dict:
    """Metrics (EVAL_KEYS, plus "step" and "split") of one checkpoint of a workdir on
    `split`: checkpoint "latest", "best" (lowest validation WHDR) or a step number. Also
    written to DIR/eval/{split}_step{N}.json."""
    config = workdir_lib.load_config(workdir)
    mesh = sharding.make_data_mesh()
    steps.validate(config, mesh.size)
    # The optimizer only gives the checkpoint its structure; its schedule length is moot.
    model, train_state = state_lib.build_state(config, total_steps=config.optimizer.accumulate)
    train_state, step = checkpoints.restore_named(workdir, config, train_state, checkpoint, log)
    train_state = jax.device_put(train_state, sharding.replicated(mesh))
    eval_step = steps.make_eval_step(model, config.loss.weights, config.loss.options, mesh,
                                     num_pairs=config.eval.num_pairs)
    result = evaluate(config, eval_step, train_state, mesh, split, max_batches=max_batches)
    header = f"{'split':<12}" + "".join(f"{name:>10}" for name in EVAL_KEYS)
    row = f"{split:<12}" + "".join(f"{result[name]:>10.4f}" for name in EVAL_KEYS)
    log(f"checkpoint of step {step} ({checkpoint}) in {workdir}\n{header}\n{row}")
    record = {"step": step, "split": split, "checkpoint": checkpoint, **result}
    if jax.process_index() == 0:
        path = workdir_lib.path(workdir, workdir_lib.EVAL, f"{split}_step{step}.json")
        storage.write_text(path, json.dumps(record, indent=2))
        log(f"wrote {path}")
    return record
