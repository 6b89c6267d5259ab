"""Jitted training and evaluation steps over a data-parallel mesh.

The state is replicated and the batch sharded along "data"; XLA inserts the all-reduces, so
BatchNorm statistics and the loss are over the global batch and a step gives the same
result on 1 or N devices (up to float summation order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import optax

from depthsense_jax import losses, metrics, sampling
from depthsense_jax.models import registry
from depthsense_jax.train.sharding import batch_sharding, check_batch_size, replicated
from depthsense_jax.train.state import TrainState


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Config errors that must stop a run before anything is compiled."""
    stride = registry.family_of(config.model).stride
    if config.image_size < stride or config.image_size % stride:
        raise ValueError(f"config.image_size must be a positive multiple of the model's stride "
                         f"{stride}, got {config.image_size}")
    check_batch_size(config.batch_size, num_devices)
    unknown = sorted(set(config.loss.weights) - set(losses.LOSS_NAMES))
    if unknown:
        raise ValueError(f"config.loss.weights names unknown loss(es) {unknown}; known: "
                         f"{list(losses.LOSS_NAMES)}")
    if not any(float(w) > 0 for w in config.loss.weights.values()):
        raise ValueError("config.loss.weights gives no loss a positive weight")
    losses.LossOptions.from_mapping(dict(config.loss.options))
    if config.optimizer.accumulate < 1:
        raise ValueError("config.optimizer.accumulate must be >= 1, got "
                         f"{config.optimizer.accumulate}")


def variables_of(state: TrainState) -> dict:
    """The model's variables in a TrainState: params, and batch_stats where it has them."""
    if state.batch_stats:
        return {"params": state.params, "batch_stats": state.batch_stats}
    return {"params": state.params}


def make_train_step(
    model,
    family: registry.ModelFamily,
    weights: Mapping[str, float],
    options: Mapping | None,
    mesh,
    debug_sharding: Callable | None = None,
    freeze_encoder: bool = False,
):
    """jit(step)(state, batch, key) -> (state, metrics).

    batch: {"image": (B, S, S, 3), "depth": (B, S, S), "mask": (B, S, S)} global arrays
    sharded over "data". key: the run's base PRNG key; the step's sampling key is folded from
    it and the step number, so a run is reproducible from its seed and resumable. The state
    is donated. metrics: scalar float32 {"loss", each loss part, "grad_norm"}.
    debug_sharding: if given, called (via jax.debug.inspect_array_sharding) with the sharding
    of the image batch inside the step. freeze_encoder: run the encoder's BatchNorm in eval
    mode (its statistics stay; the optimizer leaves its weights, see make_optimizer).
    model, family: the module and its `ModelFamily` (how it is applied in training).
    """
    weights = dict(weights)
    options = dict(options or {})

    def step(state: TrainState, batch: dict, key: jax.Array):
        if debug_sharding is not None:
            jax.debug.inspect_array_sharding(batch["image"], callback=debug_sharding)
        step_key = jax.random.fold_in(key, state.step)

        def loss_fn(params):
            pred, batch_stats = registry.apply_train(
                family, model, variables_of(state.replace(params=params)), batch["image"],
                freeze_encoder)
            total, parts = losses.combined_loss(step_key, pred, batch, weights, options)
            return total, (parts, batch_stats)

        (total, (parts, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
        out = {"loss": total, **parts, "grad_norm": optax.tree.norm(grads)}
        return new_state, out

    rep, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(step, in_shardings=(rep, data, rep), out_shardings=(rep, rep),
                   donate_argnums=(0,))


EVAL_METRICS = ("loss", "whdr", "ssim", "mse", "abs_rel", "delta1")


def per_image_loss(key: jax.Array, pred: jax.Array, batch: Mapping[str, jax.Array],
                   weights: Mapping[str, float], options: Mapping | None) -> jax.Array:
    """The combined loss of each image on its own: (B,) float32 (image i samples its pairs
    from fold_in(key, i))."""
    def one(image_key, p, b):
        image_batch = {name: value[None] for name, value in b.items()}
        total, _ = losses.combined_loss(image_key, p[None], image_batch, weights, options)
        return total

    return jax.vmap(one)(sampling.image_keys(key, pred.shape[0]), pred, dict(batch))


def validation_scores(key: jax.Array, pred: jax.Array, batch: Mapping[str, jax.Array],
                      weights: Mapping[str, float], options: Mapping | None,
                      num_pairs: int = 3000, sigma: float = 0.02) -> dict:
    """{"metrics": {name: (B,)}, "weights": {name: (B,)}} of predictions against a batch.

    Metrics (EVAL_METRICS), per image: loss (the combined loss of the image alone), whdr (on
    `num_pairs` random pairs per image, prediction aligned by `metrics.whdr`), and, after
    per-image scale-and-shift alignment of the prediction to the target, ssim, mse,
    abs_rel and delta1. Weights are 0 for images that cannot be measured: fewer than two
    valid pixels (every metric), no counted pair (whdr), so padded rows and empty images
    drop out and weighted sums over batches give exact means. Image i draws its random
    pairs from fold_in(key, i): its metrics do not depend on the rest of its batch.
    """
    depth, mask = batch["depth"], batch["mask"]
    pairs = sampling.per_image_pairs(key, mask, num_pairs)
    aligned = metrics.align_scale_shift(pred, depth, mask)
    errors = metrics.aligned_errors(pred, depth, mask)
    measurable = (jnp.sum(mask, axis=(1, 2)) >= 2).astype(jnp.float32)
    values = {
        "loss": per_image_loss(key, pred, batch, weights, options),
        "whdr": metrics.whdr(pred, depth, pairs, sigma=sigma, mask=mask),
        "ssim": metrics.ssim(jnp.clip(aligned, 0.0, 1.0), depth, mask=mask),
        "mse": metrics.mse(aligned, depth, mask),
        "abs_rel": errors["abs_rel"],
        "delta1": errors["delta1"],
    }
    image_weights = {name: measurable for name in EVAL_METRICS}
    image_weights["whdr"] = measurable * (metrics.counted_pairs(pairs, mask) > 0)
    return {"metrics": values, "weights": image_weights}


def make_predict_fn(model, mesh):
    """jit(fn)(variables, images (B, S, S, 3)) -> (B, S, S) float32 in eval mode, the
    images sharded over the mesh's data axis and the variables replicated."""
    def predict(variables, images):
        return registry.infer(model, variables, images)

    return jax.jit(predict, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                   out_shardings=batch_sharding(mesh))


def make_score_fn(weights: Mapping[str, float], options: Mapping | None, mesh,
                  num_pairs: int = 3000, sigma: float = 0.02):
    """jit(fn)(key, pred, batch) -> `validation_scores`, replicated: every host gets the
    whole global batch's scores ((B,) small), which a multi-host evaluation needs to sum
    them without a gather."""
    weights = dict(weights)
    options = dict(options or {})

    def score(key, pred, batch):
        return validation_scores(key, pred, batch, weights, options, num_pairs, sigma)

    rep, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(score, in_shardings=(rep, data, data), out_shardings=rep)
