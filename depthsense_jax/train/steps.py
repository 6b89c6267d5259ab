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
from depthsense_jax.models import infer
from depthsense_jax.train.sharding import batch_sharding, check_batch_size, replicated
from depthsense_jax.train.state import TrainState


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Config errors that must stop a run before anything is compiled."""
    if config.image_size % 32:
        raise ValueError(f"config.image_size must be a multiple of 32, got {config.image_size}")
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


def make_train_step(
    model,
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
    """
    weights = dict(weights)
    options = dict(options or {})

    def step(state: TrainState, batch: dict, key: jax.Array):
        if debug_sharding is not None:
            jax.debug.inspect_array_sharding(batch["image"], callback=debug_sharding)
        step_key = jax.random.fold_in(key, state.step)

        def loss_fn(params):
            pred, updates = model.apply(
                {"params": params, "batch_stats": state.batch_stats}, batch["image"],
                train=True, encoder_train=not freeze_encoder, mutable=["batch_stats"],
            )
            total, parts = losses.combined_loss(step_key, pred, batch, weights, options)
            return total, (parts, updates["batch_stats"])

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


def _image_keys(key: jax.Array, batch_size: int) -> jax.Array:
    """fold_in(key, i) for each row i: an image's randomness does not depend on the other
    rows of its batch, nor on the batch size (padding rows included)."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(batch_size))


def per_image_loss(key: jax.Array, pred: jax.Array, batch: Mapping[str, jax.Array],
                   weights: Mapping[str, float], options: Mapping | None) -> jax.Array:
    """The combined loss of each image on its own: (B,) float32 (image i samples its pairs
    from fold_in(key, i))."""
    def one(image_key, p, b):
        image_batch = {name: value[None] for name, value in b.items()}
        total, _ = losses.combined_loss(image_key, p[None], image_batch, weights, options)
        return total

    return jax.vmap(one)(_image_keys(key, pred.shape[0]), pred, dict(batch))


def per_image_pairs(key: jax.Array, mask: jax.Array, num_pairs: int) -> sampling.Pairs:
    """`num_pairs` random pairs per image over its mask, image i from fold_in(key, i)."""
    def one(image_key, m):
        pairs = sampling.random_pairs(image_key, m[None], num_pairs)
        return jax.tree.map(lambda x: x[0], pairs)

    return jax.vmap(one)(_image_keys(key, mask.shape[0]), mask)


def make_eval_step(model, weights: Mapping[str, float], options: Mapping | None, mesh,
                   num_pairs: int = 3000, sigma: float = 0.02):
    """jit(step)(state, batch, key) -> {"metrics": {name: (B,)}, "weights": {name: (B,)}}.

    Metrics (EVAL_METRICS), per image: loss (the combined loss of the image alone), whdr (on
    `num_pairs` random pairs per image, prediction aligned by `metrics.whdr`), and, after
    per-image scale-and-shift alignment of the prediction to the target, ssim, mse,
    abs_rel and delta1. Weights are 0 for images that cannot be measured: fewer than two
    valid pixels (every metric), no counted pair (whdr), so padded rows and empty images
    drop out and weighted sums over batches give exact means. Image i draws its random
    pairs from fold_in(key, i): its metrics do not depend on the rest of its batch.
    """
    weights = dict(weights)
    options = dict(options or {})

    def step(state: TrainState, batch: dict, key: jax.Array):
        pred = infer(model, {"params": state.params, "batch_stats": state.batch_stats},
                     batch["image"])
        depth, mask = batch["depth"], batch["mask"]
        pairs = per_image_pairs(key, mask, num_pairs)
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

    # Replicated out: every host gets the whole global batch's metrics (they are (B,) small),
    # which a multi-host evaluation needs to sum them without a gather.
    rep, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(step, in_shardings=(rep, data, rep), out_shardings=rep)
