"""A run's validation: the `Evaluator` of a split during and after training (`depthsense
validate`), the epoch table and the predictions picture."""

from __future__ import annotations

import json
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from depthsense_jax import evaluator, metrics, params_io, storage, viz
from depthsense_jax import workdir as workdir_lib
from depthsense_jax.data import pipeline
from depthsense_jax.models import registry
from depthsense_jax.train import sharding, steps

EVAL_KEYS = steps.EVAL_METRICS


def split_evaluator(config: ml_collections.ConfigDict, model, mesh,
                    split: str) -> evaluator.Evaluator:
    """The evaluator of `split`: its batches (padded to the host batch and sharded over the
    mesh), the model's eval-mode prediction, and `steps.validation_scores` of each image
    weighted so that padded rows and unmeasurable images do not count. `run(variables)`
    gives the means of EVAL_KEYS (NaN for a metric no image could measure)."""
    key = jax.random.PRNGKey(config.seed + 1)
    host_batch = config.batch_size // jax.process_count()
    predict = steps.make_predict_fn(model, mesh)
    score = steps.make_score_fn(config.loss.weights, config.loss.options, mesh,
                                num_pairs=config.eval.num_pairs)

    def dataset():
        for batch in pipeline.make_dataset(config, split, process_index=jax.process_index(),
                                           process_count=jax.process_count(), training=False):
            yield sharding.global_batch(sharding.pad_batch(batch, host_batch), mesh)

    def scores(batch, pred):
        out = jax.device_get(score(key, pred, batch))
        return evaluator.Scores(out["metrics"], out["weights"])

    return evaluator.Evaluator(predict=lambda variables, batch: predict(variables,
                                                                        batch["image"]),
                               score=scores, dataset=dataset, metric_names=EVAL_KEYS)


def format_table(epoch: int, train: dict, validation: dict) -> str:
    lines = [f"epoch {epoch}", f"{'split':<12}{'loss':>9}{'SSIM':>8}{'MSE':>9}{'WHDR':>8}"
             f"{'AbsRel':>8}{'delta1':>8}"]
    for name, m in (("train", train), ("validation", validation)):
        row = f"{name:<12}{m['loss']:>9.4f}{m['ssim']:>8.4f}{m['mse']:>9.5f}"
        if name == "validation":
            row += f"{100 * m['whdr']:>7.2f}%{m['abs_rel']:>8.4f}{m['delta1']:>8.4f}"
        lines.append(row)
    return "\n".join(lines)


def prediction_picture(config: ml_collections.ConfigDict, model, variables: dict, mesh,
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
    pred = steps.make_predict_fn(model, mesh)(variables, images)
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


def validate_checkpoint(workdir: str, split: str = "validation", checkpoint: str = "latest",
                        max_batches: int | None = None,
                        log: Callable[[str], None] = lambda s: print(s, flush=True),
                        config: ml_collections.ConfigDict | None = None) -> dict:
    """Metrics (EVAL_KEYS, plus "step" and "split") of one checkpoint of a workdir on
    `split`: checkpoint "latest", "best" (lowest validation WHDR) or a step number. Only
    the checkpoint's params (and BatchNorm statistics) are read. `config`: the run's own
    (WORKDIR/config.json) unless given, e.g. with another data.name to score the model on
    other data. Also written to DIR/eval/{split}_step{N}.json."""
    config = config or workdir_lib.load_config(workdir)
    mesh = sharding.make_data_mesh()
    steps.validate(config, mesh.size)
    model_config, variables, step = params_io.restore_params(workdir, checkpoint, log)
    variables = jax.device_put(variables, sharding.replicated(mesh))
    model = registry.build(model_config)
    result = split_evaluator(config, model, mesh, split).run(
        variables, max_batches=max_batches).means
    header = f"{'split':<12}" + "".join(f"{name:>10}" for name in EVAL_KEYS)
    row = f"{split:<12}" + "".join(f"{result[name]:>10.4f}" for name in EVAL_KEYS)
    log(f"checkpoint of step {step} ({checkpoint}) in {workdir}\n{header}\n{row}")
    record = {"step": step, "split": split, "checkpoint": checkpoint, **result}
    if jax.process_index() == 0:
        path = workdir_lib.path(workdir, workdir_lib.EVAL, f"{split}_step{step}.json")
        storage.write_text(path, json.dumps(record, indent=2))
        log(f"wrote {path}")
    return record
